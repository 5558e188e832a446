"""JSON → report dataclasses in one compiled pass, checked against the published schema.

A report may come from an untrusted run and may hold 200,000 submodules: decoding it with
``json``, checking it with the pure-Python ``jsonschema`` and building the dataclasses by hand
took 127× a plain ``json.load``. Here pydantic-core (Rust) decodes the JSON, checks every
field and builds the dataclasses at once. Its schema is made from two sources that must agree:
the dataclasses' type hints (what the code reads) and ``schemas/report.schema.json`` (the
published contract: ``required``, ``minimum``, ``maxLength``, ``pattern``, ``enum``).
``tests/unit/test_report_schema_agreement.py`` proves that both refuse the same documents.

Two validators: ``strict`` (untrusted reports: the schema's bounds as well) and the lenient
one our own files get (a trusted sweep log may hold ``attempts: -1``). Both refuse wrong types,
non-finite numbers, lone surrogates, integers over 2⁶³ and paths over ``MAX_PATH_CHARS``.
Every refusal is a :class:`ReportError` that names its place (``jobs[3].verdict: missing``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import json
import typing
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields, is_dataclass
from enum import Enum
from importlib import resources
from typing import Any

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from exportwatch.report.model import (
    SCHEMA_VERSION,
    Blocker,
    Blockers,
    CreatedAt,
    Delegation,
    Environment,
    Fix,
    JobResult,
    Mismatch,
    Report,
    ReportError,
    SourceEdit,
    SubmoduleResult,
    UserFrame,
    _json_kind,
    _short,
)

#: Longest submodule path (and ``same_as``, ``covered_by``, alias) a report may hold: far beyond
#: any model's, short enough that walking a path's ancestors stays cheap.
MAX_PATH_CHARS = 1_000
#: Integers a report may hold (counts, line numbers): anything larger is not a count.
MAX_INT = 2**63 - 1
_PATH_FIELDS = frozenset({"path", "same_as", "covered_by", "aliases"})

#: Where each dataclass is described in the published schema.
SCHEMA_PLACES: dict[type, tuple[str, ...]] = {
    Report: (),
    Environment: ("$defs", "environment"),
    JobResult: ("$defs", "job"),
    SubmoduleResult: ("$defs", "submodule"),
    UserFrame: ("$defs", "user_frame"),
    Mismatch: ("$defs", "mismatch"),
    Delegation: ("$defs", "delegation"),
    Blockers: ("$defs", "blockers"),
    Blocker: ("$defs", "blocker"),
    CreatedAt: ("$defs", "created_at"),
    Fix: ("$defs", "fix"),
    SourceEdit: ("$defs", "source_edit"),
}

# Union branches are named in pydantic's error locations: the value's own branch is dropped
# from a location, the fallbacks' errors are dropped altogether (the value's error says more).
_VALUE = "\x00value"
_INTEGRAL = "\x00integral"
_NULL = "\x00null"
_FALLBACKS = frozenset({_INTEGRAL, _NULL})


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report (``config/report.schema.json``), shipped with the package: a
    copy, the validators' source stays as published."""
    return copy.deepcopy(_schema_document())


@functools.cache
def _schema_document() -> dict[str, Any]:
    text = resources.files("exportwatch").joinpath("schemas/report.schema.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def schema_part(cls: type) -> dict[str, Any]:
    """The published schema's object for dataclass ``cls``."""
    part: Any = _schema_document()
    for key in SCHEMA_PLACES[cls]:
        part = part[key]
    return typing.cast(dict[str, Any], part)


def validate_report(data: str | bytes, *, strict: bool) -> Report:
    """The report that JSON text ``data`` holds, or a located :class:`ReportError`.

    ``strict``: the published schema's bounds too (an untrusted report). Duplicate keys are not
    seen here (the decoder keeps the last): ``io.check_json`` refuses them first.
    """
    try:
        with _collector_paused():
            report: Report = _validator(strict).validate_json(data)
    except ValidationError as exc:
        raise ReportError(describe(exc, strict=strict)) from None
    except RecursionError as exc:
        raise ReportError("nested deeper than any report (refused)") from exc
    first: dict[tuple[str, str, str], int] = {}
    for index, job in enumerate(report.jobs):  # two results for one job: which would count?
        earlier = first.setdefault(job.key, index)
        if earlier != index:
            raise ReportError(
                f"jobs[{index}]: a second result for {_short(job.model)} · {_short(job.target)} · "
                f"{_short(job.device)} (the first is jobs[{earlier}])"
            )
    return report


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic GC paused while the dataclasses are built: they hold no cycles, and at 200,000
    submodules its passes over the new objects took half of the load."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def validate_document(data: Any, *, strict: bool) -> Report:
    """``validate_report`` for parsed JSON (a partial log's lines, a cache entry)."""
    try:
        text = json.dumps(data, allow_nan=True)  # NaN is written as NaN and refused as a value
    except (TypeError, ValueError) as exc:
        raise ReportError(f"not JSON data: {exc}") from None
    return validate_report(text, strict=strict)


# ---------------------------------------------------------------------------------- the schema


@functools.cache
def _validator(strict: bool) -> SchemaValidator:
    return SchemaValidator(_dataclass(Report, strict=strict, top=True))


def _dataclass(cls: type, *, strict: bool, top: bool = False) -> cs.CoreSchema:
    """Fields without a default are required, and in ``strict`` mode the schema's ``required``
    too; unknown fields are ignored (a newer minor version's additions)."""
    hints = typing.get_type_hints(cls)
    part = schema_part(cls)
    required = set(part.get("required", [])) if strict else set()
    properties = part.get("properties", {})
    made = []
    for spec in fields(cls):
        prop = properties.get(spec.name, {})
        if top and spec.name == "schema_version":
            value = _integer(minimum=SCHEMA_VERSION, maximum=SCHEMA_VERSION)  # described apart
            made.append(cs.dataclass_field(spec.name, value))
            continue
        value = _field_value(hints[spec.name], spec, prop, strict=strict)
        default = _default(spec)
        if default is not None and spec.name not in required:
            value = cs.with_default_schema(value, **default)
        made.append(cs.dataclass_field(spec.name, value))
    return cs.dataclass_schema(
        cls,
        cs.dataclass_args_schema(cls.__name__, made, collect_init_only=False),
        [spec.name for spec in fields(cls)],
        slots=True,
    )


def _default(spec: Field[Any]) -> dict[str, Any] | None:
    if spec.default is not MISSING:
        return {"default": spec.default}
    if spec.default_factory is not MISSING:
        return {"default_factory": spec.default_factory}
    return None


def _field_value(hint: Any, spec: Field[Any], prop: dict[str, Any], *, strict: bool) -> cs.CoreSchema:
    """One field: its type, the schema's bounds when ``strict``, and what ``null`` means.

    ``null`` is ``None`` for an optional field; for a field with a default it reads as the
    default (the lenient reader always, the strict one where the schema allows ``null``).
    """
    inner, optional = _unwrap_optional(hint)
    value = _typed(inner, spec.name, prop if strict else {}, strict=strict)
    if optional:
        return cs.nullable_schema(value)
    default = _default(spec)
    null_allowed = not strict or "null" in _types(prop)
    if default is None or not null_allowed:
        return value
    fallback = default.get("default_factory") or (lambda value=default["default"]: value)
    return _first_of(
        value, (_NULL, cs.no_info_after_validator_function(lambda _: fallback(), cs.none_schema()))
    )


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return hint, False


def _types(prop: dict[str, Any]) -> list[str]:
    kind = prop.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _typed(hint: Any, name: str, prop: dict[str, Any], *, strict: bool) -> cs.CoreSchema:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        items = prop.get("items", {})
        return cs.list_schema(_typed(args[0], name, items, strict=strict), strict=True, fail_fast=True)
    if origin is dict:
        values = prop.get("additionalProperties", {})
        return cs.dict_schema(
            cs.str_schema(strict=True),
            _typed(args[1], "", values if isinstance(values, dict) else {}, strict=strict),
            strict=True,
            fail_fast=True,
        )
    if isinstance(hint, type) and issubclass(hint, Enum):
        return cs.enum_schema(hint, list(hint), sub_type="str", strict=True)
    if isinstance(hint, type) and is_dataclass(hint):
        return _dataclass(hint, strict=strict)
    if hint is str:
        bound = MAX_PATH_CHARS if name in _PATH_FIELDS else prop.get("maxLength")
        text = cs.str_schema(strict=True, max_length=bound, pattern=prop.get("pattern"))
        if "enum" in prop:  # a closed set of words (``stage``)
            return cs.literal_schema([v for v in prop["enum"] if v is not None])
        return text
    if hint is bool:
        return cs.bool_schema(strict=True)
    if hint is int:
        return _integer(minimum=prop.get("minimum"), maximum=prop.get("maximum"))
    if hint is float:
        bounds = {"ge": prop.get("minimum"), "le": prop.get("maximum")}
        return cs.float_schema(strict=True, allow_inf_nan=False, **bounds)
    raise TypeError(f"no reader for a field of type {hint}")  # a field type added without one


def _integer(*, minimum: int | None = None, maximum: int | None = None) -> cs.CoreSchema:
    """An integer in range; ``3.0`` is one too (JSON Schema's ``integer``)."""
    low = -MAX_INT if minimum is None else minimum
    high = MAX_INT if maximum is None else maximum
    whole = cs.int_schema(strict=True, ge=low, le=high)

    def integral(number: float) -> int:
        if not number.is_integer() or not low <= number <= high:
            raise ValueError("not a whole number in range")
        return int(number)

    return _first_of(
        whole, (_INTEGRAL, cs.no_info_after_validator_function(integral, cs.float_schema(strict=True)))
    )


def _first_of(value: cs.CoreSchema, *fallbacks: tuple[str, cs.CoreSchema]) -> cs.CoreSchema:
    choices: list[cs.CoreSchema | tuple[cs.CoreSchema, str]] = [(value, _VALUE)]
    choices += [(schema, label) for label, schema in fallbacks]
    return cs.union_schema(choices, mode="left_to_right")


# ---------------------------------------------------------------------------------- the errors


def describe(exc: ValidationError, *, strict: bool) -> str:
    """The first error in document order, in one line: ``jobs[3].verdict: missing``."""
    errors = []
    for error in exc.errors(include_url=False, include_context=True, include_input=True):
        loc = error["loc"]
        if any(part in _FALLBACKS for part in loc):
            continue
        errors.append((tuple(part for part in loc if part != _VALUE), error))
    if not errors:  # every branch was a fallback: cannot happen, but never crash on it
        return "not a readable report"
    for loc, error in errors:
        if error["type"] == "json_invalid":
            return f"not valid JSON: {_json_problem(error)}"
        if not loc:
            return (
                f"not an exportwatch report: the file holds {_json_kind(error.get('input'))}, not an object"
            )
    for loc, error in errors:
        if loc[0] == "schema_version":
            if error["type"] == "missing":
                return "not an exportwatch report: it has no schema_version field"
            return (
                f"report schema_version {_short(error.get('input'))} is not supported (this exportwatch "
                f"reads {SCHEMA_VERSION})"
            )
    # Validation order: the fields in the dataclasses' order, a list's first bad item (fail_fast).
    loc, error = errors[0]
    where = _where(loc)
    problem = _problem(error, field=str(next((p for p in reversed(loc) if isinstance(p, str)), "")))
    if strict:
        problem += " (does not match the report schema)"
    return f"{where}: {problem if len(problem) <= 300 else problem[:300] + '…'}"


def _where(loc: tuple[Any, ...]) -> str:
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where += f".{part}" if where else str(part)
    return where or "(top)"


_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "an object",
    "dataclass_type": "an object",
    "dataclass_args_type": "an object",
    "none_required": "null",
}


def _problem(error: Any, *, field: str) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_json_kind(value)}"
    if kind == "finite_number":
        return "not a finite number"
    if kind == "enum":
        label = "verdict" if field == "verdict" else "result source" if field == "source" else field
        if not isinstance(value, str):
            return f"expected a {label} ({ctx.get('expected', '')}), got {_json_kind(value)}"
        return f"unknown {label} {_short(value)} (known: {ctx.get('expected', '')})"
    if kind == "literal_error":
        return f"unknown {field} {_short(value)} (known: {ctx.get('expected', '')})"
    if kind in ("less_than_equal", "greater_than_equal"):
        bound = ctx.get("le", ctx.get("ge"))
        if bound in (MAX_INT, -MAX_INT):
            return "integer out of range"
        return f"{_short(value)} is {'over' if kind == 'less_than_equal' else 'under'} the bound {bound}"
    if kind == "string_too_long":
        length = len(value) if isinstance(value, str) else "?"
        what = "a path" if field in _PATH_FIELDS else "a text"
        return f"{what} of {length} characters, over the {ctx.get('max_length')} limit"
    if kind == "string_pattern_mismatch":
        return f"{_short(value)} does not match {ctx.get('pattern')}"
    return " ".join(str(error.get("msg", kind)).split())


def _json_problem(error: Any) -> str:
    text = str(error.get("ctx", {}).get("error") or error.get("msg", ""))
    return text.removeprefix("Invalid JSON: ")
