"""The manifest's ``methods`` (issue 28): a module the model uses only through another method
than ``forward`` (encodec's ``quantizer`` through ``encode``) is exported through it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from exportwatch.manifest import ConfigError, load_manifest

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "config" / "manifest.schema.json").read_text(encoding="utf-8")
)


def write(tmp_path: Path, methods: str, *, defaults: str = "") -> Path:
    path = tmp_path / "exportwatch.yml"
    text = f"""
        version: 1
        {defaults}
        models:
          - name: codec
            factory: m:f
            inputs: {{}}
            methods: {methods}
        """
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    return info.value


def test_methods__maps_submodule_paths_to_methods(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, "{quantizer: encode, layers.0.codec: _decode}"))
    assert manifest.model("codec").methods == {"quantizer": "encode", "layers.0.codec": "_decode"}


def test_methods__defaults_to_none(tmp_path: Path) -> None:
    assert load_manifest(write(tmp_path, "null")).model("codec").methods == {}


@pytest.mark.parametrize(
    ("methods", "column", "field", "message"),
    [
        ("{quantizer: forward}", 26, ".quantizer", "'forward' is how every module is exported already"),
        ("{quantizer: 'encode()'}", 26, ".quantizer", "expected a method name like 'encode'"),
        ("{quantizer: __call__}", 26, ".quantizer", "expected a method name like 'encode'"),
        ("{quantizer: 3}", 26, ".quantizer", "expected a method name"),
        ("{'a..b': encode}", 15, "['a..b']", "expected a submodule path like 'encoder.quantizer'"),
        ("[encode]", 14, None, "expected a mapping of submodule path → method name"),
    ],
)
def test_methods__refuses_what_cannot_be_exported_with_its_location(
    tmp_path: Path, methods: str, column: int, field: str | None, message: str
) -> None:
    error = error_of(write(tmp_path, methods))
    assert (error.line, error.column) == (7, column)
    assert error.field_path == "models[0].methods" + (field or "")
    assert message in error.message


def test_methods__are_per_model_not_defaults(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "null", defaults="defaults: {methods: {quantizer: encode}}"))
    assert error.field_path == "defaults.methods"
    assert "cannot be set in defaults" in error.message


def test_methods__schema_accepts_what_the_parser_accepts_and_refuses_forward() -> None:
    model = {"name": "codec", "factory": "m:f", "inputs": {}}
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.validate({"version": 1, "models": [{**model, "methods": {"layers.0.quantizer": "encode"}}]})
    for bad in ({"quantizer": "forward"}, {"a..b": "encode"}, {"quantizer": "__call__"}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({"version": 1, "models": [{**model, "methods": bad}]})
