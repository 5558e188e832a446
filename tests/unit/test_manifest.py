"""Manifest parsing: every bad manifest names file, line, column and field; good ones become specs.

These tests never import torch (neither does the module under test).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from exportwatch import manifest as manifest_module
from exportwatch.manifest import ConfigError, Manifest, TensorSpec, load_manifest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "manifests"
SCHEMA_PATH = REPO / "config" / "manifest.schema.json"

WriteManifest = Callable[[str], Path]


@pytest.fixture
def write_manifest(tmp_path: Path) -> WriteManifest:
    """Write dedented YAML to ``tmp_path/exportwatch.yml``; line 1 is the first line of text."""

    def write(text: str) -> Path:
        path = tmp_path / "exportwatch.yml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    return info.value


def assert_error(path: Path, *, at: str, field: str | None, message: str) -> None:
    """Loading ``path`` fails with exactly ``path:at: field: message``, and the parts agree."""
    error = error_of(path)
    where = f"{path}:{at}"
    assert str(error) == (f"{where}: {field}: {message}" if field else f"{where}: {message}")
    line, column = (int(n) for n in at.split(":"))
    assert (error.file, error.line, error.column, error.field_path) == (str(path), line, column, field)
    assert error.message == message


# --- bad manifests -------------------------------------------------------------------------------


def test_manifest__yaml_syntax_error_reports_the_yaml_position(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {args: [{shape: [2, 3]}
        """
    )
    error = error_of(path)
    assert error.file == str(path)
    assert error.line == 6 and error.column == 1
    assert error.field_path is None
    assert error.message == (
        "invalid YAML: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence at line 5, column 20)"
    )


def test_manifest__unknown_key_suggests_closest_field(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inptus: {args: []}
        """
    )
    assert_error(
        path, at="5:5", field="models[0].inptus", message="unknown key 'inptus' (did you mean 'inputs'?)"
    )


def test_manifest__unknown_key_without_a_close_match_lists_known_keys(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        zzz: 3
        models: []
        """
    )
    assert_error(
        path, at="2:1", field="zzz", message="unknown key 'zzz' (known keys: version, defaults, models)"
    )


def test_manifest__duplicate_model_name_points_at_the_second_and_names_the_first(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: cnn
            factory: m:f
            inputs: {}
          - name: cnn
            factory: m:g
            inputs: {}
        """
    )
    assert_error(
        path,
        at="6:11",
        field="models[1].name",
        message="duplicate model name 'cnn' (first defined at line 3)",
    )


def test_manifest__bad_dtype_suggests_the_closest_dtype(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              args:
                - {shape: [2, 3], dtype: flaot32}
        """
    )
    assert_error(
        path,
        at="7:34",
        field="models[0].inputs.args[0].dtype",
        message="unknown dtype 'flaot32' (did you mean 'float32'?)",
    )


def test_manifest__unknown_target_suggests_the_closest_target(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {}
            targets: [export, export-strcit]
        """
    )
    assert_error(
        path,
        at="6:23",
        field="models[0].targets[1]",
        message="unknown target 'export-strcit' (did you mean 'export-strict'?)",
    )


def test_manifest__bad_device_lists_the_known_devices(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {}
            device: metal
        """
    )
    assert_error(
        path,
        at="6:13",
        field="models[0].device",
        message="unknown device 'metal' (expected one of: cpu, cuda, auto)",
    )


def test_manifest__negative_timeout_is_rejected(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {}
            timeout: -5
        """
    )
    assert_error(path, at="6:14", field="models[0].timeout", message="must be greater than 0, got -5")


def test_manifest__error_in_a_default_points_at_the_defaults_section(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        defaults:
          timeout: 0
        models:
          - name: a
            factory: m:f
            inputs: {}
        """
    )
    assert_error(path, at="3:12", field="defaults.timeout", message="must be greater than 0, got 0")


def test_manifest__wrong_type_names_the_expected_type(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {}
            train: "yes"
        """
    )
    assert_error(path, at="6:12", field="models[0].train", message="expected true or false, got string 'yes'")


def test_manifest__undeclared_dim_in_dynamic_shapes_suggests_a_declared_one(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {args: [{shape: [2, 3]}]}
            dims: {batch: {min: 1, max: 8}}
            dynamic_shapes: {x: {0: batc}}
        """
    )
    assert_error(
        path,
        at="7:29",
        field="models[0].dynamic_shapes.x[0]",
        message="dim 'batc' is not declared in dims (did you mean 'batch'?)",
    )


def test_manifest__dim_with_min_above_max_is_rejected(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {}
            dims:
              batch: {min: 64, max: 1}
        """
    )
    assert_error(path, at="7:14", field="models[0].dims.batch", message="min (64) is greater than max (1)")


def test_manifest__missing_version_is_reported(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        models:
          - name: a
            factory: m:f
            inputs: {}
        """
    )
    assert_error(path, at="1:1", field="version", message="required field is missing (write 'version: 1')")


def test_manifest__unsupported_version_says_which_one_is_read(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 2
        models: []
        """
    )
    assert_error(
        path,
        at="1:10",
        field="version",
        message="unsupported manifest version 2 (this exportwatch reads version 1)",
    )


def test_manifest__duplicate_yaml_key_points_at_the_second_and_names_the_first(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs: {}
            timeout: 10
            timeout: 20
        """
    )
    assert_error(
        path, at="7:5", field="models[0].timeout", message="duplicate key 'timeout' (first set at line 6)"
    )


def test_manifest__missing_name_points_at_the_model_entry(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - factory: m:f
            inputs: {}
        """
    )
    assert_error(path, at="3:5", field="models[0].name", message="required field is missing")


def test_manifest__empty_models_list_is_rejected(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models: []
        """
    )
    assert_error(path, at="2:9", field="models", message="no models listed: add at least one entry")


def test_manifest__missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    error = error_of(path)
    assert str(error) == f"{path}: manifest file not found"
    assert error.line is None


def test_manifest__name_and_factory_cannot_be_defaults(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        defaults:
          factory: m:f
        models:
          - name: a
            inputs: {}
        """
    )
    assert_error(
        path,
        at="3:3",
        field="defaults.factory",
        message="'factory' cannot be set in defaults; set it on each model",
    )


def test_manifest__malformed_factory_reference_shows_both_forms(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: models.TinyCNN
            inputs: {}
        """
    )
    assert_error(
        path,
        at="4:14",
        field="models[0].factory",
        message="expected 'package.module:callable' or 'path/to/file.py:callable', got 'models.TinyCNN'",
    )


def test_manifest__callable_inputs_cannot_also_declare_args(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              callable: inputs.py:make
              args: [{shape: [1]}]
        """
    )
    assert_error(
        path,
        at="7:7",
        field="models[0].inputs.args",
        message="cannot be combined with 'callable' (the callable returns the inputs)",
    )


def test_manifest__fill_and_value_range_are_exclusive(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              kwargs:
                mask: {shape: [2], fill: 1, low: 0}
        """
    )
    assert_error(
        path,
        at="7:34",
        field="models[0].inputs.kwargs.mask.fill",
        message="fill gives a constant tensor; it cannot be combined with low/high",
    )


def test_manifest__integer_range_must_fit_the_dtype(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              args: [{shape: [2], dtype: uint8, low: -1, high: 5}]
        """
    )
    assert_error(
        path,
        at="6:14",
        field="models[0].inputs.args[0]",
        message="range [-1, 5) does not fit uint8 ([0, 255])",
    )


def test_manifest__misspelt_tensor_key_is_caught_rather_than_read_as_a_dict(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              args: [{shpe: [2], dtype: float32}]
        """
    )
    assert_error(
        path,
        at="6:15",
        field="models[0].inputs.args[0].shpe",
        message="unknown key 'shpe' (did you mean 'shape'?)",
    )


def test_manifest__yaml_tags_are_refused_with_the_tuple_spelling(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              args: [!tuple [1, 2]]
        """
    )
    assert_error(
        path,
        at="6:14",
        field="models[0].inputs.args[0]",
        message="unsupported YAML tag '!tuple' (write a tuple as {tuple: [...]})",
    )


def test_manifest__empty_file_is_reported(write_manifest: WriteManifest) -> None:
    path = write_manifest("# nothing yet\n")
    assert_error(path, at="1:1", field=None, message="manifest is empty: expected 'version: 1' and 'models'")


# --- good manifests ------------------------------------------------------------------------------


def test_manifest__defaults_merge_under_each_model_and_the_model_wins(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        defaults:
          targets: [export, export-strict]
          device: cpu
          timeout: 120
        models:
          - name: a
            factory: m:f
            inputs: {}
            timeout: 30
          - name: b
            factory: m:g
            inputs: {}
        """
    )
    manifest = load_manifest(path)
    a, b = manifest.models
    assert (a.timeout, b.timeout) == (30.0, 120.0)
    assert a.targets == b.targets == ["export", "export-strict"]
    assert a.raw == {
        "targets": ["export", "export-strict"],
        "device": "cpu",
        "timeout": 30,
        "name": "a",
        "factory": "m:f",
        "inputs": {},
    }
    assert a.field_locations["timeout"].field_path == "models[0].timeout"
    assert b.field_locations["timeout"].field_path == "defaults.timeout"
    assert b.field_locations["timeout"].line == 5
    assert a.raw["targets"] is not b.raw["targets"]  # raw is a copy per model
    assert (a.train, a.no_grad, a.verify) == (False, True, True)


def test_manifest__nested_inputs_keep_lists_tuples_dicts_and_constants(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              args:
                - [{shape: [4]}, {tuple: [{shape: [2], dtype: long}, 3]}]
                - {key: {shape: [1], fill: 2}, flag: true}
                - {dict: {shape: not a tensor}}
                - null
                - 1.5
              kwargs: {mode: fast}
              seed: 3
        """
    )
    inputs = load_manifest(path).models[0].inputs
    assert inputs.args == [
        [TensorSpec(shape=[4]), (TensorSpec(shape=[2], dtype="int64"), 3)],
        {"key": TensorSpec(shape=[1], fill=2), "flag": True},
        {"shape": "not a tensor"},
        None,
        1.5,
    ]
    assert inputs.kwargs == {"mode": "fast"}
    assert inputs.seed == 3
    assert inputs.location is not None
    assert (inputs.location.line, inputs.location.column, inputs.location.field_path) == (
        6,
        7,
        "models[0].inputs",
    )


def test_manifest__callable_inputs_and_expect_forms_become_spec_fields(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: models/cnn.py:make
            kwargs: {channels: 8}
            inputs: {callable: "inputs.py:make_inputs", kwargs: {batch: 2}, seed: 5}
            input_sets:
              big: {args: [{shape: [8, 3]}]}
            expect: {xfail: {"": "root reason", "blocks.4": "data-dependent branch"}}
          - name: b
            factory: pkg.mod:Model
            inputs: {}
            expect: {xfail: "whole model"}
            rtol: 1e-4
            atol: 1.0e-5
            opset: 18
            depends_on: ["src/*.py"]
        """
    )
    a, b = load_manifest(path).models
    assert a.factory == "models/cnn.py:make" and a.factory_kwargs == {"channels": 8}
    assert (a.inputs.callable, a.inputs.callable_kwargs, a.inputs.seed) == (
        "inputs.py:make_inputs",
        {"batch": 2},
        5,
    )
    assert a.input_sets["big"].args == [TensorSpec(shape=[8, 3])]
    assert a.input_sets["big"].location.field_path == "models[0].input_sets.big"
    assert (a.xfail, a.xfail_submodules) == ("root reason", {"blocks.4": "data-dependent branch"})
    assert (b.xfail, b.xfail_submodules) == ("whole model", {})
    assert (b.rtol, b.atol, b.opset, b.depends_on) == (1e-4, 1e-5, 18, ["src/*.py"])
    assert b.location is not None and (b.location.line, b.location.field_path) == (10, "models[1]")


def test_manifest__dtype_aliases_are_stored_by_their_torch_name(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - name: a
            factory: m:f
            inputs:
              args: [{shape: [1], dtype: half}, {shape: [1], dtype: long}, {shape: [1], dtype: double}]
        """
    )
    dtypes = [t.dtype for t in load_manifest(path).models[0].inputs.args]
    assert dtypes == ["float16", "int64", "float64"]


def test_manifest__yaml_anchors_and_merge_keys_are_allowed(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - &base
            name: a
            factory: m:f
            inputs: {args: [{shape: [2]}]}
          - <<: *base
            name: b
        """
    )
    a, b = load_manifest(path).models
    assert (a.name, b.name) == ("a", "b")
    assert b.inputs.args == a.inputs.args


def test_manifest__root_is_the_absolute_directory_of_the_manifest(write_manifest: WriteManifest) -> None:
    path = write_manifest(
        """
        version: 1
        models:
          - {name: a, factory: "m:f", inputs: {}}
        """
    )
    manifest = load_manifest(path)
    assert isinstance(manifest, Manifest)
    assert manifest.root == path.parent.resolve() and manifest.root.is_absolute()
    assert manifest.model("a").name == "a"


def test_manifest__example_fixtures_parse() -> None:
    full = load_manifest(FIXTURES / "full.yml")
    assert [m.name for m in full.models] == ["tiny_cnn", "from_module_path"]
    cnn = full.model("tiny_cnn")
    assert cnn.targets == ["export", "export-strict", "onnx", "onnx-legacy"]
    assert cnn.dynamic_shapes == {"x": {0: "batch"}, "mask": ["batch", None]}
    assert full.model("from_module_path").depends_on == ["fixture_models.py"]  # from defaults
    assert load_manifest(FIXTURES / "minimal.yml").models[0].targets == ["export"]


# --- the JSON Schema stays in step with the parser -----------------------------------------------


def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _as_json(path: Path) -> object:
    """What an editor's YAML-to-JSON validation sees: keys become strings."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=manifest_module.ManifestYamlLoader)
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("name", ["full.yml", "minimal.yml"])
def test_schema__example_manifests_validate(name: str) -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_as_json(FIXTURES / name))


def test_schema__property_names_equal_the_parser_known_keys() -> None:
    schema = _schema()
    defs = schema["$defs"]
    declared, from_callable = (branch for branch in defs["inputs"]["oneOf"] if branch.get("type") == "object")
    assert tuple(schema["properties"]) == manifest_module.TOP_KEYS
    assert tuple(defs["model"]["properties"]) == manifest_module.MODEL_KEYS
    assert tuple(schema["properties"]["defaults"]["properties"]) == manifest_module.DEFAULTS_KEYS
    assert set(declared["properties"]) | set(from_callable["properties"]) == set(manifest_module.INPUTS_KEYS)
    assert tuple(defs["tensor"]["properties"]) == manifest_module.TENSOR_KEYS
    assert tuple(defs["dim"]["anyOf"][1]["properties"]) == manifest_module.DIM_KEYS
    assert tuple(defs["field_expect"]["properties"]) == manifest_module.EXPECT_KEYS
    assert tuple(defs["tensor"]["properties"]["dtype"]["enum"]) == tuple(manifest_module.DTYPES)
    assert tuple(defs["field_targets"]["items"]["enum"]) == manifest_module.KNOWN_TARGETS
    assert tuple(defs["field_device"]["enum"]) == manifest_module.KNOWN_DEVICES
    assert tuple(defs["tuple"]["properties"]) == (manifest_module.TUPLE_KEY,)


def test_schema__rejects_an_unknown_model_key_like_the_parser() -> None:
    bad = {"version": 1, "models": [{"name": "a", "factory": "m:f", "inputs": {}, "inptus": {}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_schema()).validate(bad)


@pytest.mark.parametrize("value", [".nan", ".inf", "9" * 400])
def test_manifest__refuses_a_timeout_that_is_not_a_finite_number(tmp_path, value):
    path = tmp_path / "m.yml"
    path.write_text(
        "version: 1\nmodels:\n  - name: a\n    factory: x:y\n"
        f"    timeout: {value}\n    inputs: {{args: [{{shape: [2]}}]}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_manifest(path)
    assert "m.yml:5:14: models[0].timeout: must be a finite number" in str(caught.value)


def test_manifest__refuses_a_seed_torch_cannot_take(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text(
        "version: 1\nmodels:\n  - name: a\n    factory: x:y\n"
        f"    inputs: {{args: [{{shape: [2]}}], seed: {10**30}}}\n"
    )
    with pytest.raises(ConfigError, match=r"models\[0\]\.inputs\.seed: must be at most 9223372036854775807"):
        load_manifest(path)


# --- hostile YAML: bounded before anything is built -----------------------------------------------


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["version: 1", f"a0: &a0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join([*lines, "models: []", ""])


def test_manifest__alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    # 9 levels of 9 aliases: 436 bytes that expand to 9**9 (387 million) strings.
    path = tmp_path / "bomb.yml"
    path.write_text(_alias_bomb(9, 9), encoding="utf-8")
    assert path.stat().st_size < 500
    error = error_of(path)
    assert error.file == str(path)
    assert "aliases expand to more than 100,000 values" in error.message


def test_manifest__merge_key_bomb_is_refused(write_manifest: WriteManifest) -> None:
    lines = ["version: 1", "b0: &b0 {k: v}"]
    for i in range(1, 30):
        lines.append(f"b{i}: &b{i} {{<<: [*b{i - 1}], x{i}: [*b{i - 1}, *b{i - 1}]}}")
    path = write_manifest("\n".join([*lines, "models: []", ""]))
    assert "aliases expand" in error_of(path).message


def test_manifest__a_few_aliases_are_still_read(write_manifest: WriteManifest) -> None:
    # 3 levels of 3: 27 values, the kind of reuse real manifests have; the bomb check must not
    # refuse it (the schema then complains about the unknown top-level keys, not the aliases).
    error = error_of(write_manifest(_alias_bomb(3, 3)))
    assert "aliases" not in error.message
    assert "a0" in str(error)


@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ("{a: ", "}")])
def test_manifest__deep_nesting_is_refused_without_a_recursion_error(
    write_manifest: WriteManifest, opening: str, closing: str
) -> None:
    path = write_manifest(f"version: 1\nmodels: {opening * 100_000}1{closing * 100_000}\n")
    error = error_of(path)
    assert error.message == "YAML nested 100000 levels deep (at most 100 are allowed)"


def test_manifest__deep_block_nesting_is_refused(write_manifest: WriteManifest) -> None:
    text = "version: 1\nmodels:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(2000))
    assert "levels deep" in error_of(write_manifest(text)).message


# --- the code a manifest names, checked from its source (nothing imported) ----------------------

MODELS_PY = '''\
import torch
from torch import nn


class AddMul(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x, y):
        return x + y * self.scale


def make():
    """The class, built."""
    return AddMul()


def inputs():
    return (torch.ones(2),), {}
'''


def reference_errors(
    tmp_path: Path, factory: str, *, extra: str = "", files: dict[str, str] | None = None
) -> list[str]:
    """``check_references`` on a one-model manifest: factory value at 4:14, inputs at 5:13 (one
    positional tensor), then ``extra`` fields; ``models.py`` is :data:`MODELS_PY`."""
    for name, text in {"models.py": MODELS_PY, **(files or {})}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    inputs = "    inputs: {args: [{shape: [2]}, {shape: [2]}]}"
    lines = ["version: 1", "models:", "  - name: m", f"    factory: {factory}", inputs, *extra.splitlines()]
    (tmp_path / "exportwatch.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = load_manifest(tmp_path / "exportwatch.yml")
    return [str(e) for e in manifest_module.check_references(manifest, search_path=[str(tmp_path)])]


def test_check_references__missing_factory_file_is_located_with_the_closest_file(tmp_path: Path) -> None:
    errors = reference_errors(tmp_path, "modles.py:AddMul")
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:4:14: models[0].factory: file not found: modles.py"
        f" (looked in {tmp_path.resolve()}) (did you mean 'models.py'?)"
    ]


def test_check_references__missing_factory_attribute_is_located_with_the_closest_name(tmp_path: Path) -> None:
    errors = reference_errors(tmp_path, "models.py:AddMull")
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:4:14: models[0].factory: models.py has no attribute 'AddMull'"
        " (did you mean 'AddMul'?)"
    ]


def test_check_references__missing_module_names_the_closest_module(tmp_path: Path) -> None:
    errors = reference_errors(tmp_path, "modles:AddMul")
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:4:14: models[0].factory: cannot import module 'modles': no module"
        f" named 'modles' (looked in the manifest's directory {tmp_path.resolve()} and the installed"
        " packages) (did you mean 'models'?)"
    ]


def test_check_references__missing_submodule_of_a_package_names_the_closest_one(tmp_path: Path) -> None:
    files = {"nets/__init__.py": "", "nets/cnn.py": "class Net:\n    pass\n"}
    errors = reference_errors(tmp_path, "nets.cnm:Net", files=files)
    assert len(errors) == 1 and errors[0].startswith(
        f"{tmp_path / 'exportwatch.yml'}:4:14: models[0].factory:"
    )
    assert "cannot import module 'nets.cnm': no module named 'nets.cnm'" in errors[0]
    assert errors[0].endswith("(did you mean 'cnn'?)")


def test_check_references__missing_attribute_of_a_repository_module_is_found(tmp_path: Path) -> None:
    files = {"nets/__init__.py": "", "nets/cnn.py": "class Net:\n    pass\n"}
    errors = reference_errors(tmp_path, "nets.cnn:Nett", files=files)
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:4:14: models[0].factory: module 'nets.cnn' has no attribute 'Nett'"
        " (did you mean 'Net'?)"
    ]


def test_check_references__missing_submodule_of_an_installed_package_is_found(tmp_path: Path) -> None:
    errors = reference_errors(tmp_path, "json.decodr:JSONDecoder")
    assert len(errors) == 1 and "no module named 'json.decodr'" in errors[0]
    assert errors[0].endswith("(did you mean 'decoder'?)")


def test_check_references__an_installed_module_s_attributes_are_left_to_the_import(tmp_path: Path) -> None:
    assert reference_errors(tmp_path, "json:no_such_function") == []  # outside the repository


def test_check_references__input_callable_is_checked_at_the_inputs_location(tmp_path: Path) -> None:
    errors = reference_errors(
        tmp_path, "models.py:AddMul", extra="    input_sets:\n      big: {callable: 'models.py:inputz'}"
    )
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:7:12: models[0].input_sets.big: models.py has no attribute 'inputz'"
        " (did you mean 'inputs'?)"
    ]


@pytest.mark.parametrize("factory", ["models.py:AddMul", "models.py:make"])
def test_check_references__inputs_that_forward_cannot_take_are_located(tmp_path: Path, factory: str) -> None:
    errors = reference_errors(tmp_path, factory, extra="    input_sets:\n      three: {args: [1, 2, 3]}")
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:7:14: models[0].input_sets.three: inputs do not match"
        " AddMul.forward(x, y): too many positional arguments"
    ]


def test_check_references__factory_kwargs_the_class_does_not_take_point_at_kwargs(tmp_path: Path) -> None:
    errors = reference_errors(tmp_path, "models.py:AddMul", extra="    kwargs: {scael: 2}")
    assert errors == [
        f"{tmp_path / 'exportwatch.yml'}:6:13: models[0].kwargs: kwargs do not match"
        " models.py:AddMul(scale=1.0): got an unexpected keyword argument 'scael'"
    ]


def test_check_references__a_factory_file_that_does_not_parse_names_the_line(tmp_path: Path) -> None:
    errors = reference_errors(tmp_path, "broken.py:Net", files={"broken.py": "class Net(\n"})
    assert len(errors) == 1 and errors[0].startswith(
        f"{tmp_path / 'exportwatch.yml'}:4:14: models[0].factory:"
    )
    assert "importing broken.py raised SyntaxError:" in errors[0] and "(at broken.py:1)" in errors[0]


def test_check_references__a_good_manifest_has_no_errors_and_runs_none_of_its_code(tmp_path: Path) -> None:
    files = {"models.py": MODELS_PY + "raise SystemExit('imported!')\n"}
    before = set(sys.modules)  # other tests import the fixtures' own ``models`` package
    assert reference_errors(tmp_path, "models.py:make", files=files) == []
    assert set(sys.modules) - before == set()  # nothing imported, the user's file least of all


@pytest.mark.parametrize(
    "source",
    [
        "from torch.nn import *\n",  # a star import may bring it
        "def __getattr__(name):\n    return object\n",  # a lazy module attribute
        "globals()['Net'] = object\n",
        "import sys\nsetattr(sys.modules[__name__], 'Net', object)\n",
        "exec('Net = object')\n",
        "def setup():\n    global Net\n    Net = object\n",  # bound when setup() runs
        "if True:\n    Net = object\nelse:\n    pass\n",
        "try:\n    from fast import Net\nexcept ImportError:\n    pass\n",
        "for Net in [object]:\n    pass\n",
        "import torch.nn as Net\n",
        "with open(__file__) as Net:\n    pass\n",
        "match 1:\n    case Net:\n        pass\n",
        "from ._lazy import __getattr__\n",  # a lazy module attribute, bound by an import
        "import lazy_loader\n__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, ['models'])\n",
        "import sys as _sys\n_sys.modules[__name__].Net = object\n",
        "import importlib\n_this = importlib.import_module(__name__)\nsetattr(_this, 'Net', object)\n",
    ],
)
def test_check_references__a_name_that_may_exist_at_run_time_is_never_an_error(
    tmp_path: Path, source: str
) -> None:
    assert reference_errors(tmp_path, "dynamic.py:Net", files={"dynamic.py": source}) == []


NET = "import torch\nclass Net(torch.nn.Module):\n"


@pytest.mark.parametrize(
    "source",
    [
        NET + "    @torch.jit.ignore\n    def forward(self, x):\n        return x\n",  # a decorator
        "import torch\nclass Base(torch.nn.Module):\n    pass\nclass Net(Base):\n    def forward(self, x):\n"
        "        return x\n",  # a base of its own may have its own __call__
        NET + "    def __init__(self):\n        super().__init__()\n        self.forward = self.run\n"
        "    def forward(self, x):\n        return x\n",
        NET + "    def __init__(self):\n        super().__init__()\n"
        "        self.register_forward_pre_hook(lambda m, a: a[:1])\n"
        "    def forward(self, x):\n        return x\n",
        NET + "    def forward(self, *args):\n        return args\n",
        # not torch's nn:
        "from mylib import nn\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n",
        NET + "    def forward(self, x):\n        return x\n    def __call__(self, *a):\n        return a\n",
        NET + "    def __init__(self):\n        super().__init__()\n        wrap_forward(self)\n"
        "    def forward(self, x):\n        return x\n",  # code elsewhere may wrap it
        NET + "    def forward(self, x):\n        return x\nNet.forward.__signature__ = None\n",
    ],
)
def test_check_references__a_forward_that_may_take_the_inputs_is_never_an_error(
    tmp_path: Path, source: str
) -> None:
    assert reference_errors(tmp_path, "nets.py:Net", files={"nets.py": source}) == []


def test_check_references__a_forward_replaced_from_another_file_is_never_an_error(tmp_path: Path) -> None:
    files = {
        "nets/__init__.py": "from .net import Net\nfrom .fast import enable\nenable()\n",
        "nets/net.py": NET + "    def forward(self, x):\n        return x\n",
        "nets/fast.py": "def _forward(self, x, y):\n    return x + y\ndef enable():\n"
        "    from .net import Net\n    Net.forward = _forward\n",
    }
    # ``import nets.net`` runs nets/__init__.py, whose enable() gives Net.forward a second input.
    assert reference_errors(tmp_path, "nets.net:Net", files=files) == []
