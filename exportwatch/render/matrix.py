"""Reports of one manifest swept on several library versions → one view, a column per version.

"Works on torch 2.13, breaks on 2.14": the question a team asks before it upgrades. Each report
is one column, labelled by the package whose version tells the reports apart (torch first);
each (model, target, device) is one row, with the verdict and the failing submodules per
column. Pure: no I/O, no torch; untrusted text goes through :mod:`exportwatch.render.escape`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exportwatch.errors import UsageError
from exportwatch.render.common import plural
from exportwatch.render.escape import (
    LABEL_LIMIT,
    json_text,
    md_code,
    md_text,
    no_workflow_commands,
    term_text,
)
from exportwatch.report import FAILING, INFRASTRUCTURE, PASSING, JobResult, Report, Verdict, origin_paths

#: Packages that can label a column, in the order they are tried.
_LABEL_PACKAGES = ("torch", "onnx", "onnxscript", "onnxruntime", "python")
#: Hidden marker of the matrix comment (a different comment from the PR check's).
MATRIX_MARKER = "<!-- exportwatch:version-matrix -->"
_ICON = {"pass": "✅", "fail": "❌", "infra": "💥", "error": "⚠️", "neutral": "⏭️", "absent": "—"}


class MatrixError(UsageError):
    """The reports cannot be put side by side (duplicate versions, different manifests)."""


@dataclass(frozen=True, kw_only=True)
class VersionColumn:
    label: str  # "torch 2.14.1"
    version: str  # "2.14.1"


@dataclass(frozen=True, kw_only=True)
class MatrixCell:
    verdict: Verdict
    origins: tuple[str, ...] = ()  # failing submodules that fail for their own reason
    category: str | None = None  # of the first origin
    message: str | None = None

    @property
    def klass(self) -> str:
        return _klass(self.verdict)


@dataclass(frozen=True, kw_only=True)
class MatrixRow:
    model: str
    target: str
    device: str
    cells: tuple[MatrixCell | None, ...]  # one per column; None: not in that report

    @property
    def varies(self) -> bool:
        """Exports on some versions and not on others (absent columns do not count)."""
        classes = {c.klass for c in self.cells if c is not None}
        return "pass" in classes and bool(classes - {"pass", "neutral"})


@dataclass(frozen=True, kw_only=True)
class VersionMatrix:
    package: str  # what the columns differ in
    columns: tuple[VersionColumn, ...]
    rows: tuple[MatrixRow, ...]

    @property
    def varying(self) -> tuple[MatrixRow, ...]:
        return tuple(r for r in self.rows if r.varies)

    def story(self, row: MatrixRow) -> str:
        """``works on torch 2.13.0; fails on torch 2.14.1``."""
        groups: dict[str, list[str]] = {}
        for column, cell in zip(self.columns, row.cells, strict=True):
            groups.setdefault(cell.klass if cell else "absent", []).append(column.version)
        words = {
            "pass": "works on",
            "fail": "fails on",
            "infra": "crashes on",
            "error": "not checked on",
            "neutral": "skipped on",
            "absent": "not swept on",
        }
        return "; ".join(f"{words[k]} {self.package} {', '.join(v)}" for k, v in groups.items())


def _klass(verdict: Verdict) -> str:
    if verdict in PASSING:
        return "pass"
    if verdict is Verdict.ERROR:
        return "error"
    if verdict in INFRASTRUCTURE:
        return "infra"
    if verdict in FAILING:
        return "fail"
    return "neutral"


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """``2.14.1+cu128`` sorts after ``2.13.0``: numbers as numbers, the rest as text."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.+-]", version))


def _cell(job: JobResult) -> MatrixCell:
    origins = sorted(origin_paths(job)) if job.verdict in FAILING else []
    index = {s.path: s for s in job.submodules}
    first = index.get(origins[0]) if origins else index.get("")
    return MatrixCell(
        verdict=job.verdict,
        origins=tuple(origins),
        category=first.category if first is not None else None,
        message=(first.message if first is not None else None) or job.reason,
    )


def version_matrix(reports: Sequence[Report]) -> VersionMatrix:
    """Put ``reports`` side by side; raise :class:`MatrixError` when they cannot be."""
    if len(reports) < 2:
        raise MatrixError(f"a version matrix needs at least two different reports, got {len(reports)}")
    manifests = {r.manifest for r in reports if r.manifest}
    if len(manifests) > 1:
        raise MatrixError(f"the reports are of different manifests: {', '.join(sorted(manifests))}")
    versions: Mapping[str, list[str | None]] = {
        package: [getattr(r.environment, package, None) or None for r in reports]
        for package in _LABEL_PACKAGES
    }
    package = next((p for p in _LABEL_PACKAGES if len(set(versions[p])) > 1), None)
    if package is None:
        raise MatrixError(
            "the reports ran on the same versions of torch, onnx, onnxscript, onnxruntime and python: "
            "nothing to put in columns"
        )
    labels = [v or "(none)" for v in versions[package]]
    duplicates = sorted({v for v in labels if labels.count(v) > 1})
    if duplicates:
        raise MatrixError(f"more than one report for {package} {', '.join(duplicates)}")
    order = sorted(range(len(reports)), key=lambda i: _version_key(labels[i]))
    columns = tuple(VersionColumn(label=f"{package} {labels[i]}", version=labels[i]) for i in order)
    by_column = [{j.key: j for j in reports[i].jobs} for i in order]
    keys = list(dict.fromkeys(k for jobs in by_column for k in jobs))
    rows = tuple(
        MatrixRow(
            model=key[0],
            target=key[1],
            device=key[2],
            cells=tuple(_cell(jobs[key]) if key in jobs else None for jobs in by_column),
        )
        for key in keys
    )
    return VersionMatrix(package=package, columns=columns, rows=rows)


def headline(matrix: VersionMatrix) -> str:
    versions = ", ".join(c.version for c in matrix.columns)
    varying = matrix.varying
    if not varying:
        return f"{matrix.package} {versions}: every export has the same outcome on each version"
    models = len({r.model for r in varying})
    verb = "works" if len(varying) == 1 else "work"
    return (
        f"{matrix.package} {versions}: {plural(len(varying), 'export')} in {plural(models, 'model')} "
        f"{verb} on some versions and not on others"
    )


def _cell_md(cell: MatrixCell | None) -> str:
    if cell is None:
        return _ICON["absent"]
    text = f"{_ICON[cell.klass]} {md_text(cell.verdict.value)}"
    if cell.origins:
        text += f" {md_text(cell.origins[0] or '(root)', limit=LABEL_LIMIT)}"
        if len(cell.origins) > 1:
            text += f" \\+{len(cell.origins) - 1}"
    return text


def render_matrix_markdown(matrix: VersionMatrix, *, title: str | None = None) -> str:
    """The matrix as a PR comment / job summary: headline, one table, then what breaks where."""
    prefix = f"{md_text(title, limit=LABEL_LIMIT)}: " if title else ""
    out = [MATRIX_MARKER, f"### exportwatch · {prefix}{md_text(headline(matrix), limit=2000)}", ""]
    header = ["model", "target", "device", *(md_text(c.label, limit=LABEL_LIMIT) for c in matrix.columns)]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + " --- |" * len(header))
    for row in sorted(matrix.rows, key=lambda r: (not r.varies, r.model, r.target, r.device)):
        names = [md_text(row.model, limit=LABEL_LIMIT), md_text(row.target), md_text(row.device)]
        out.append("| " + " | ".join([*names, *(_cell_md(c) for c in row.cells)]) + " |")
    if matrix.varying:
        out += ["", "#### Where the versions differ", ""]
        for row in matrix.varying:
            out.append(
                f"- **{md_text(row.model, limit=LABEL_LIMIT)}** · {md_text(row.target)}: "
                f"{md_text(matrix.story(row), limit=1000)}"
            )
            for column, cell in zip(matrix.columns, row.cells, strict=True):
                if cell is None or cell.klass == "pass" or not (cell.origins or cell.message):
                    continue
                where = md_code(cell.origins[0] or "(root)") if cell.origins else ""
                category = f" ({md_text(cell.category)})" if cell.category else ""
                message = f": {md_text(cell.message)}" if cell.message else ""
                out.append(f"  - {md_text(column.label)}: {where}{category}{message}")
    return no_workflow_commands("\n".join(out)) + "\n"  # code spans keep ``##[``: break it


def render_matrix_text(matrix: VersionMatrix) -> str:
    """The matrix for a terminal or a CI log: no control characters, no workflow commands."""
    header = ["MODEL", "TARGET", "DEVICE", *(term_text(c.label, limit=LABEL_LIMIT) for c in matrix.columns)]
    rows = [
        [
            term_text(r.model, limit=LABEL_LIMIT),
            term_text(r.target),
            term_text(r.device),
            *((c.verdict.value if c else "-") for c in r.cells),
        ]
        for r in matrix.rows
    ]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [term_text(headline(matrix), limit=2000), ""]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]
    for row in matrix.varying:
        name = f"{term_text(row.model, limit=LABEL_LIMIT)} · {term_text(row.target)}"
        lines.append(f"  ! {name}: {term_text(matrix.story(row))}")
    return no_workflow_commands("\n".join(lines)) + "\n"


def render_matrix_json(matrix: VersionMatrix) -> str:
    data = {
        "package": matrix.package,
        "columns": [c.version for c in matrix.columns],
        "headline": headline(matrix),
        "rows": [
            {
                "model": r.model,
                "target": r.target,
                "device": r.device,
                "varies": r.varies,
                "verdicts": [c.verdict.value if c else None for c in r.cells],
                "origins": [list(c.origins) if c else None for c in r.cells],
            }
            for r in matrix.rows
        ],
    }
    return json_text(json.dumps(data, indent=2)) + "\n"
