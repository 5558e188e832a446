"""The published JSON Schema and the compiled loader agree: documents generated from the schema
(every property of every object, set to values at and past each bound, of every JSON type, or
left out) are accepted by the strict loader exactly when jsonschema accepts them.

The loader refuses a few things no schema can say, tested in test_report_untrusted.py: a key
given twice, two results for one job, lone surrogates. The generated documents avoid them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import fields
from typing import Any

import jsonschema
import pytest

from exportwatch.report import Report, ReportError, report_schema
from exportwatch.report.validate import SCHEMA_PLACES, schema_part, validate_report
from tests.conftest import REPO_ROOT

SCHEMA = report_schema()
CHECK = jsonschema.Draft202012Validator(SCHEMA)


def accepted_by_loader(document: Any) -> bool:
    try:
        validate_report(json.dumps(document), strict=True)
    except ReportError:
        return False
    return True


def valid_value(prop: dict[str, Any], name: str) -> Any:
    """A value ``prop`` accepts, made from the schema alone (``$ref`` followed)."""
    if "$ref" in prop:
        return valid_value(_resolve(prop["$ref"]), name)
    if "const" in prop:
        return prop["const"]
    if "enum" in prop:
        return next(v for v in prop["enum"] if v is not None)
    kind = prop.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if "object" in kinds:
        return valid_object(prop)
    if "array" in kinds:
        return [valid_value(prop.get("items", {}), name)]
    if "string" in kinds:
        return "3/4" if "pattern" in prop else name
    if "integer" in kinds:
        return prop.get("minimum", 0) + 1
    if "number" in kinds:
        return prop.get("minimum", 0) + 0.5
    if "boolean" in kinds:
        return True
    return None


def valid_object(part: dict[str, Any]) -> dict[str, Any]:
    properties = part.get("properties", {})
    made = {name: valid_value(prop, name) for name, prop in properties.items()}
    if "additionalProperties" in part and isinstance(part["additionalProperties"], dict):
        made["some-key"] = valid_value(part["additionalProperties"], "v")
    return made


def _resolve(ref: str) -> dict[str, Any]:
    part: Any = SCHEMA
    for key in ref.removeprefix("#/").split("/"):
        part = part[key]
    return dict(part)


def probes(prop: dict[str, Any]) -> list[Any]:
    """Values of every JSON type, and values at and just past each of ``prop``'s bounds."""
    values: list[Any] = [None, True, False, 0, -1, 1, 3.0, 2.5, -0.5, "", "x", [], ["x"], [0], {}, {"k": "v"}]
    values += [{"k": 0}, 2**63 - 1, 2**63, 1e19, -(2**63)]
    if "maxLength" in prop:
        values += ["a" * prop["maxLength"], "a" * (prop["maxLength"] + 1)]
    if "minimum" in prop:
        values += [prop["minimum"], prop["minimum"] - 1, prop["minimum"] - 0.5]
    if "maximum" in prop:
        values += [prop["maximum"], prop["maximum"] + 1]
    if "pattern" in prop:
        values += ["3/4", "3/4\n", "a/b", "3/", "1/2/3"]
    if "enum" in prop:
        values += [v for v in prop["enum"]] + ["unknown"]
    if "items" in prop:
        item = prop["items"]
        values += [[p] for p in probes(item) if not isinstance(p, list | dict)] if "$ref" not in item else []
    if isinstance(prop.get("additionalProperties"), dict):
        values += [{"k": p} for p in probes(prop["additionalProperties"]) if not isinstance(p, list | dict)]
    return values


#: Where each part of the schema sits in a document: a path of keys into it.
PLACES: dict[str, tuple[Any, ...]] = {
    "report": (),
    "environment": ("environment",),
    "job": ("jobs", 0),
    "submodule": ("jobs", 0, "submodules", 0),
    "user_frame": ("jobs", 0, "submodules", 0, "user_frame"),
    "mismatch": ("jobs", 0, "submodules", 0, "mismatch"),
}


def base_document() -> dict[str, Any]:
    document = valid_object(SCHEMA)
    document["jobs"][0]["submodules"][0]["path"] = ""
    return document


def part_of(name: str) -> dict[str, Any]:
    return SCHEMA if name == "report" else SCHEMA["$defs"][name]


def cases() -> list[tuple[str, str, Any]]:
    """(part, property, value or ``DELETE``): every property, every probe, and left out."""
    made = []
    for name in PLACES:
        properties = part_of(name).get("properties", {})
        for prop_name, prop in properties.items():
            resolved = _resolve(prop["$ref"]) if "$ref" in prop else prop
            made.append((name, prop_name, DELETE))
            for value in probes(resolved):
                made.append((name, prop_name, value))
    return made


DELETE = object()


def _prop(part: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = part_of(part).get("properties", {}).get(name, {})
    return found


def test_the_generated_base_document_is_valid_for_both():
    document = base_document()
    assert CHECK.is_valid(document), list(CHECK.iter_errors(document))[:3]
    assert accepted_by_loader(document)


def test_schema_and_loader_accept_and_refuse_the_same_generated_documents():
    assert CHECK.is_valid(base_document())
    disagreements = []
    count = 0
    for name, prop_name, value in cases():
        document = base_document()
        holder: Any = document
        for key in PLACES[name]:
            holder = holder[key]
        if value is DELETE:
            del holder[prop_name]
        else:
            holder[prop_name] = copy.deepcopy(value)
        count += 1
        schema_says, loader_says = CHECK.is_valid(document), accepted_by_loader(document)
        if isinstance(value, str) and value.endswith("\n") and "pattern" in _prop(name, prop_name):
            schema_says = False  # ECMA-262's ``$`` (JSON Schema's regexes) is the text's end; re's is not
        if schema_says != loader_says:
            shown = "left out" if value is DELETE else repr(value)[:60]
            disagreements.append(f"{name}.{prop_name} = {shown}: schema {schema_says}, loader {loader_says}")
    assert count > 1_000  # the generator reached every property
    assert disagreements == [], "\n".join(disagreements[:40])


def test_schema_and_loader_agree_on_both_sides_of_every_bound():
    """A generator that only made valid (or only invalid) documents would prove nothing."""
    verdicts = set()
    for name, prop_name, value in cases():
        document = base_document()
        holder: Any = document
        for key in PLACES[name]:
            holder = holder[key]
        if value is not DELETE:
            holder[prop_name] = copy.deepcopy(value)
            verdicts.add((prop_name, CHECK.is_valid(document)))
    for prop_name in (
        "message",
        "detail",
        "path",
        "shard",
        "attempts",
        "line",
        "duration_s",
        "verdict",
        "stage",
    ):
        assert (prop_name, True) in verdicts and (prop_name, False) in verdicts, prop_name


def test_every_dataclass_field_is_a_schema_property_and_every_property_a_field():
    for cls in SCHEMA_PLACES:
        properties = set(schema_part(cls).get("properties", {}))
        names = {spec.name for spec in fields(cls)}
        assert names == properties, (cls.__name__, names ^ properties)
        assert set(schema_part(cls).get("required", [])) <= names


def test_a_pattern_ends_at_the_end_of_the_text_as_in_ecma_262():
    """jsonschema's ``re.search`` lets ``$`` match before a final newline; JSON Schema's regexes are
    ECMA-262's, where it does not: the loader refuses ``"3/4\\n"`` as a shard."""
    document = base_document()
    document["shard"] = "3/4\n"
    assert not accepted_by_loader(document)
    document["shard"] = "3/4"
    assert accepted_by_loader(document)


def test_the_packaged_schema_is_the_published_one():
    published = json.loads((REPO_ROOT / "config" / "report.schema.json").read_text())
    assert report_schema() == published


@pytest.mark.parametrize("strict", [True, False])
def test_every_writer_produced_report_is_read_back_equal(strict):
    from tests.factories import failing, ok, report

    made = report(failing("cnn"), ok("vit", "onnx"))
    assert validate_report(made.to_json(), strict=strict) == made
    assert isinstance(made, Report)
