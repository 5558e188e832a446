"""Expected failures from the manifest, applied to reports swept before they were added."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class XfailIndex:
    """Expected failures from the manifest (``expect: xfail``), keyed by model and submodule.

    Reports carry the same reasons in ``JobResult.xfail`` / ``SubmoduleResult.xfail``; an index
    lets a caller apply the *head* manifest's entries to reports swept before they were added.
    """

    models: Mapping[str, str] = field(default_factory=dict)  # model -> reason
    submodules: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (model, path) -> reason

    def reason(self, *, model: str, path: str) -> tuple[str, str] | None:
        """(reason, scope) where scope is ``"submodule"`` or ``"model"``; None when not expected."""
        if (model, path) in self.submodules:
            return self.submodules[(model, path)], "submodule"
        if model in self.models:
            return self.models[model], "model"
        return None

    @classmethod
    def from_manifest(cls, manifest: Any) -> XfailIndex:
        """Read ``ModelSpec.xfail`` / ``xfail_submodules`` (duck-typed: diff imports no manifest)."""
        models: dict[str, str] = {}
        submodules: dict[tuple[str, str], str] = {}
        for spec in manifest.models:
            if spec.xfail:
                models[spec.name] = spec.xfail
            for path, reason in (spec.xfail_submodules or {}).items():
                submodules[(spec.name, path)] = reason
        return cls(models=models, submodules=submodules)
