"""Base report × head report → what changed, and whether the pull request may merge.

Pure: no I/O, no torch. Every renderer (PR comment, job summary, terminal, JSON) reads the one
:class:`Changes` built here, so the views cannot disagree about what counts as a regression.

Cells are keyed by (model, target, device, submodule path); ``""`` is the root, and the
model-level verdict is the root's. Verdicts are compared after following ``same-as`` links.
A submodule a report does not list, under an ancestor that exported, counts as ``covered``:
a sweep need not try the children of a module that exported. But where the report lists the
ancestor's subtree (a sweep lists every submodule it walked), a path it does not list did not
exist on that side: no verdict is claimed for it. A subtree that moved (a model wrapped as
``backbone``, a child renamed) is compared across the move: see :func:`find_moves`.

The package, by responsibility: ``kinds`` (keys, change kinds, policies), ``xfail`` (expected
failures), ``changes`` (the result: cells, rows, moves, notes), ``classify`` (one cell's kind),
``coverage`` (a delegation coverage drop), ``compare`` (the diff itself, linear in the cells),
``moves`` (renamed subtrees), ``notes`` (versions, upgrade, partial reports, devices), ``gate``
(the merge verdict) and ``wording`` (what the gate says). Other packages import from
``exportwatch.diff`` only.
"""

from exportwatch.diff.changes import (
    Cell,
    Changes,
    ModelCell,
    ModelRow,
    Move,
    ReportMeta,
    Upgrade,
    VersionNote,
)
from exportwatch.diff.classify import classify
from exportwatch.diff.compare import diff_reports
from exportwatch.diff.coverage import (
    DEFAULT_COVERAGE_THRESHOLD,
    CoverageDrop,
    coverage_drop,
    coverage_drop_note,
)
from exportwatch.diff.gate import GateResult, gate, gate_counts
from exportwatch.diff.kinds import (
    DEFAULT_POLICY,
    QUIET,
    SEVERITY,
    CellKey,
    ChangeKind,
    JobKey,
    Policy,
    parse_policy,
)
from exportwatch.diff.moves import find_moves, rename_paths
from exportwatch.diff.xfail import XfailIndex

__all__ = [
    "DEFAULT_COVERAGE_THRESHOLD",
    "DEFAULT_POLICY",
    "QUIET",
    "SEVERITY",
    "Cell",
    "CellKey",
    "ChangeKind",
    "Changes",
    "CoverageDrop",
    "GateResult",
    "JobKey",
    "ModelCell",
    "ModelRow",
    "Move",
    "Policy",
    "ReportMeta",
    "Upgrade",
    "VersionNote",
    "XfailIndex",
    "classify",
    "coverage_drop",
    "coverage_drop_note",
    "diff_reports",
    "find_moves",
    "gate",
    "gate_counts",
    "parse_policy",
    "rename_paths",
]
