"""Changes + gate → JSON, for ``--format json`` and for users who write their own gate.

The values are the reports' own, unchanged; only their encoding is made inert: control, bidi
and invisible characters and each ``##[`` are ``\\u`` escapes, because the JSON is printed to
terminals and CI logs (see :func:`exportwatch.render.escape.json_text`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass
from enum import Enum
from typing import Any

from exportwatch.diff import Cell, ChangeKind, Changes, GateResult
from exportwatch.render.common import headline, tally
from exportwatch.render.escape import json_text

#: Bumped when a field changes meaning or disappears (new fields do not bump it).
DIFF_SCHEMA_VERSION = 1


def changes_to_dict(changes: Changes, gate: GateResult, *, include_unchanged: bool = True) -> dict[str, Any]:
    """Plain data: every cell (or only changed ones), the model rows, notes and the gate."""
    line = headline(changes, gate)
    cells = [
        _cell(c) for c in changes.cells.values() if include_unchanged or c.kind is not ChangeKind.UNCHANGED_OK
    ]
    return {
        "diff_schema_version": DIFF_SCHEMA_VERSION,
        "headline": {"status": line.status, "text": line.text},
        "gate": {
            "policy": gate.policy.value,
            "passed": gate.passed,
            "exit_code": gate.exit_code,
            "failing": [_key(k) for k in gate.failing],
            "reasons": list(gate.reasons),
            "notes": list(gate.notes),
        },
        "counts": {k.value: n for k, n in changes.counts.items()},
        # The numbers the comment, the terminal and the HTML report quote (render.common.tally).
        "tally": asdict(tally(changes)),
        "moves": [
            {
                "model": m.model,
                "target": m.target,
                "device": m.device,
                "old_prefix": m.old_prefix,
                "new_prefix": m.new_prefix,
                "count": m.count,
            }
            for m in changes.moves
        ],
        "has_changes": changes.has_changes,
        "targets": list(changes.targets),
        "devices": list(changes.devices),
        "version_notes": [asdict(v) for v in changes.version_notes],
        "upgrade": _upgrade(changes),
        "notes": list(changes.notes),
        "xfail_passing": [_key(c.key) for c in changes.xfail_passing],
        "base": _plain(asdict(changes.base)) if changes.base else None,
        "head": _plain(asdict(changes.head)),
        "models": [
            {
                "model": row.model,
                "device": row.device,
                "worst": row.worst.value,
                "cells": {
                    target: {
                        "kind": cell.kind.value,
                        "base": _v(cell.base),
                        "head": _v(cell.head),
                        "expected": cell.expected,
                        "submodules": {k.value: n for k, n in cell.submodule_kinds.items() if n},
                    }
                    for target, cell in row.cells.items()
                },
            }
            for row in changes.models
        ],
        "cells": cells,
    }


def render_json(changes: Changes, gate: GateResult) -> str:
    return json_text(json.dumps(changes_to_dict(changes, gate), indent=2, ensure_ascii=False)) + "\n"


def _key(key: tuple[str, str, str, str]) -> dict[str, str]:
    model, target, device, path = key
    return {"model": model, "target": target, "device": device, "path": path}


def _v(verdict: Any) -> str | None:
    return verdict.value if verdict is not None else None


def _cell(cell: Cell) -> dict[str, Any]:
    data = {
        **_key(cell.key),
        "kind": cell.kind.value,
        "base": _v(cell.base),
        "head": _v(cell.head),
        "base_fingerprint": cell.base_fingerprint,
        "head_fingerprint": cell.head_fingerprint,
        "module_type": cell.module_type,
        "same_as": cell.same_as,
        "note": cell.note,
        "origin": cell.origin,
        "caused_by": cell.caused_by,
        "folded_under": cell.folded_under,
        "moved_from": cell.moved_from,
        "xfail": cell.xfail,
        "xfail_scope": cell.xfail_scope,
        "head_result": _plain(cell.head_result) if cell.head_result else None,
        "base_result": _plain(cell.base_result) if cell.base_result else None,
    }
    return data


def _plain(value: Any) -> Any:
    """``asdict`` and enums to values, without ``asdict``'s deep copies: a result is dumped once
    per cell, and a large report has hundreds of thousands of cells."""
    names = _FIELD_NAMES.get(type(value))
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES.setdefault(type(value), tuple(f.name for f in fields(value)))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _upgrade(changes: Changes) -> dict[str, Any] | None:
    """What the version change did, on jobs whose code is the same on both sides."""
    upgrade = changes.upgrade
    if upgrade is None:
        return None
    return {
        "summary": upgrade.summary(),
        "versions": [asdict(v) for v in upgrade.versions],
        "models": list(upgrade.models),
        "regressions": [_key(k) for k in upgrade.regressions],
        "fixes": [_key(k) for k in upgrade.fixes],
    }
