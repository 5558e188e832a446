"""Exception → category, stable fingerprint, user-code frame and fix hint.

A PR comment is only as good as its diagnosis: two branches failing for the same reason must
share a fingerprint (or every PR reports a fake "changed failure"), and two different reasons
must not. The same root cause surfaces under different classes per mode (strict ``Unsupported``
with a graph-break type, non-strict ``GuardOnDataDependentSymNode``, ONNX ``TorchExportError``
wrapping either), so classification walks the whole ``__cause__``/``__context__`` chain and
reads classes by *qualified name* and attributes (``error_type``, ``gb_type``, ``cond``,
``func``) against one ordered table of rules.

The package never imports torch: torch objects are inspected by duck typing. Its rooms:
``catalogue`` (categories, hints), ``fingerprint`` (normalisation), ``chain`` (the exception
chain as evidence), ``rules`` (the ordered table), ``frames`` (which line a failure points at,
tracebacks); this module holds the entry points that combine them into a :class:`Diagnosis`.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from exportwatch.diagnose.catalogue import (
    CATEGORIES,
    HINTS,
    LIBRARY_HINTS,
    Hint,
    LibraryHint,
    hint_for,
    hint_for_failure,
)
from exportwatch.diagnose.chain import Link, _safe_str, exception_chain, qualified_name
from exportwatch.diagnose.fingerprint import _digits_out, fingerprint, normalise, strip_ansi
from exportwatch.diagnose.frames import (
    _OWN_ROOT,
    TOOLCHAIN_PACKAGES,
    _detail,
    _frame_key,
    find_user_frame,
    format_traceback,
    interface_frame,
    library_call_site,
    library_location,
    relative_paths,
)
from exportwatch.diagnose.rules import RULES, Evidence, Rule, classify, constraint_details
from exportwatch.report import MAX_DETAIL_CHARS, MAX_MESSAGE_CHARS, UserFrame, cap, first_line

# ---------------------------------------------------------------------------------------------
# The result


@dataclass(kw_only=True)
class Diagnosis:
    category: str
    fingerprint: str
    exception_type: str
    root_cause: str | None
    message: str
    detail: str
    user_frame: UserFrame | None
    hint: str | None
    #: What tells two failures of one category apart (op name, guard, graph-break type).
    discriminator: str | None = None
    #: Qualified class of the exception the deciding rule matched (may be a wrapper's cause).
    cause: str | None = None
    #: The rule that decided the category, for debugging the table.
    rule: str | None = None


# ---------------------------------------------------------------------------------------------
# Public entry points


def _headline(link: Link, category: str | None = None) -> str:
    """The deciding exception's first line; a bare token (an op name) gets its class name.

    A constraint violation's first line names only the dims ("Constraints violated (b)!");
    the guard that was violated and torch's suggested fix follow it.
    """
    line = link.first_line
    if category == "constraint-violation":
        bullets, fixes = constraint_details(link.message)
        if bullets:
            guard = re.split(r"(?<=[.!])\s+(?=If you|For more|Please)", bullets[0], maxsplit=1)[0]
            line = f"{line.split(' For more information')[0].rstrip('!')}: {guard}"
            if len(bullets) > 1:
                line += f" (and {len(bullets) - 1} more)"
            if fixes:
                line += f"; suggested fix: {'; '.join(fixes[:3])}"
        return line
    if line and " " not in line:
        return f"{link.qualname.rsplit('.', 1)[-1]}: {line}"
    return line


def _is_output_problem(chain: Sequence[Link]) -> bool:
    return any(re.search(r"\bin output\b|INVALID_OUTPUT|output of type", link.message) for link in chain)


def diagnose_exception(
    exc: BaseException,
    *,
    target: str,
    stage: str | None,
    repo_root: Path,
    module: object | None = None,
) -> Diagnosis:
    """Category, fingerprint, user frame and hint for a failed export attempt.

    ``module`` (the submodule whose export failed) supplies a frame when none of the exception's
    frames is the user's or a library's: a failure at the module's interface (an input or output
    type) is fixed in its ``forward``. That frame is shown but kept out of the fingerprint, so the
    same failure in a parent and a child still reads as one.
    """
    chain = exception_chain(exc)
    rule, link, disc = classify(chain, stage)
    category = rule.category if rule else "unknown"
    deciding = link or chain[-1]
    frame = find_user_frame(chain, repo_root)
    message = _headline(deciding, category) or chain[0].first_line or type(exc).__name__
    shown_frame = frame
    if shown_frame is None and module is not None:
        try:
            shown_frame = interface_frame(module, repo_root, output=_is_output_problem(chain))
        except Exception:  # a frame is a courtesy; never let finding one cost the diagnosis
            shown_frame = None
    # Without a frame the message is all that tells failures apart: a parent re-raising its
    # child's failure then still shares its fingerprint (and is explained by it, not an origin).
    where = _frame_key(frame)
    caller = library_call_site(chain, repo_root) if frame is not None and frame.library else None
    if caller is not None:  # two call sites of one library helper: two failures, neither hidden
        where += " <- " + _frame_key(caller)
    return Diagnosis(
        category=category,
        fingerprint=fingerprint(target, stage, category, deciding.qualname, disc, normalise(message), where),
        exception_type=chain[0].qualname,
        root_cause=chain[-1].qualname,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(_detail(chain, repo_root), MAX_DETAIL_CHARS) or "",
        user_frame=shown_frame,
        hint=str(hint_for_failure(category, rule, chain)),
        discriminator=disc,
        cause=deciding.qualname,
        rule=rule.name if rule else None,
    )


def fallback_diagnosis(
    exc: BaseException, *, target: str, stage: str | None, error: BaseException
) -> Diagnosis:
    """The raw exception, when diagnosing it raised: the result stays, less well explained."""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    text = strip_ansi(_safe_str(exc))
    message = first_line(text) or type(exc).__name__
    formatted = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Diagnosis(
        category="unknown",
        fingerprint=fingerprint(target, stage, "unknown", name, None, normalise(message)),
        exception_type=name,
        root_cause=None,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(
            f"{name}: {cap(text, 2_000)}\n\n(exportwatch could not diagnose this failure: "
            f"{type(error).__name__}: {_safe_str(error)})\n\n{formatted}",
            MAX_DETAIL_CHARS,
        )
        or "",
        user_frame=None,
        hint=hint_for("unknown"),
    )


def diagnose_model_error(exc: BaseException, *, repo_root: Path) -> Diagnosis:
    """The eager forward itself raised: not an export problem, whatever the class."""
    chain = exception_chain(exc)
    frame = find_user_frame(chain, repo_root)
    root = chain[-1]
    message = chain[0].first_line or type(exc).__name__
    return Diagnosis(
        category="model-error",
        fingerprint=fingerprint(
            "eager",
            None,
            "model-error",
            root.qualname,
            None,
            normalise(root.first_line),
            _frame_key(frame),
        ),
        exception_type=chain[0].qualname,
        root_cause=root.qualname,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(_detail(chain, repo_root), MAX_DETAIL_CHARS) or "",
        user_frame=frame,
        hint=hint_for("model-error"),
        cause=root.qualname,
    )


def diagnose_mismatch(
    *,
    target: str,
    stage: str | None,
    message: str,
    output: str,
    module: object | None = None,
    repo_root: Path | None = None,
) -> Diagnosis:
    """An exported program that runs but disagrees with eager (numbers are not identity).

    Its line is the ``return`` of the module's ``forward`` (where the output that disagrees is
    produced): the exported graph's nodes carry no eager values to compare against, so the
    first diverging node is not known. Shown, kept out of the fingerprint (numbers and lines
    are not identity; the output's name is).
    """
    line = first_line(strip_ansi(message)) or "exported program disagrees with eager"
    frame = None
    if module is not None and repo_root is not None:
        try:
            frame = interface_frame(module, repo_root, output=True)
        except Exception:  # a frame is a courtesy; never let finding one cost the diagnosis
            frame = None
    return Diagnosis(
        category="numeric-mismatch",
        fingerprint=fingerprint(
            target, stage, "numeric-mismatch", "mismatch", output, _digits_out(normalise(line))
        ),
        exception_type="mismatch",
        root_cause=None,
        message=cap(line, MAX_MESSAGE_CHARS) or "",
        detail=cap(strip_ansi(message), MAX_DETAIL_CHARS) or "",
        user_frame=frame,
        hint=hint_for("numeric-mismatch"),
        discriminator=output or None,
    )


def internal_error_diagnosis(exc: BaseException, *, target: str) -> Diagnosis:
    """exportwatch's own code raised while checking a module: the ``error`` verdict's account.

    The fingerprint keys on where in exportwatch it raised, so the same bug reads the same.
    """
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename.replace("\\", "/").startswith(_OWN_ROOT + "/")]
    where = f"{os.path.basename(own[-1].filename)}:{own[-1].name}" if own else ""
    message = f"exportwatch internal error: {type(exc).__name__}: {first_line(_safe_str(exc))}"
    formatted = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Diagnosis(
        category="internal-error",
        fingerprint=fingerprint(target, None, "internal-error", name, where, None),
        exception_type=name,
        root_cause=None,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(formatted, MAX_DETAIL_CHARS) or "",
        user_frame=None,
        hint=hint_for("internal-error"),
    )


INFRASTRUCTURE_KINDS = ("crash", "timeout", "oom")


def diagnose_infrastructure(kind: str, *, target: str, message: str) -> Diagnosis:
    """crash / timeout / oom: no exception object, only what the parent process saw.

    A crash keeps its signal or exit code in the fingerprint; for timeouts and OOMs the
    numbers are limits and measurements, so they are left out.
    """
    category = kind if kind in INFRASTRUCTURE_KINDS else "unknown"
    text = normalise(message)
    if category in ("timeout", "oom"):
        text = _digits_out(text)
    return Diagnosis(
        category=category,
        fingerprint=fingerprint(target, None, category, kind, None, text),
        exception_type=kind,
        root_cause=None,
        message=cap(first_line(message) or kind, MAX_MESSAGE_CHARS) or "",
        detail=cap(message, MAX_DETAIL_CHARS) or "",
        user_frame=None,
        hint=hint_for(category),
    )


def diagnose_ending(exc: BaseException, *, target: str, message: str, repo_root: Path) -> Diagnosis:
    """Model code ended the program (``sys.exit``, ``KeyboardInterrupt``): a ``crash`` with its line."""
    chain = exception_chain(exc)
    frame = find_user_frame(chain, repo_root)
    return Diagnosis(
        category="crash",
        fingerprint=fingerprint(
            target, None, "crash", chain[0].qualname, None, normalise(message), _frame_key(frame)
        ),
        exception_type=chain[0].qualname,
        root_cause=None,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(message + "\n\n" + _detail(chain, repo_root), MAX_DETAIL_CHARS) or "",
        user_frame=frame,
        hint=hint_for("crash"),
    )


__all__ = [
    "CATEGORIES",
    "HINTS",
    "LIBRARY_HINTS",
    "RULES",
    "TOOLCHAIN_PACKAGES",
    "Diagnosis",
    "Evidence",
    "Hint",
    "LibraryHint",
    "Link",
    "Rule",
    "classify",
    "constraint_details",
    "diagnose_ending",
    "diagnose_exception",
    "diagnose_infrastructure",
    "diagnose_mismatch",
    "diagnose_model_error",
    "exception_chain",
    "fallback_diagnosis",
    "find_user_frame",
    "fingerprint",
    "format_traceback",
    "hint_for",
    "hint_for_failure",
    "interface_frame",
    "internal_error_diagnosis",
    "library_call_site",
    "library_location",
    "normalise",
    "qualified_name",
    "relative_paths",
    "strip_ansi",
]
