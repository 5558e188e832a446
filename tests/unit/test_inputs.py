"""Specs → live objects: user factories imported and checked, seeded inputs, real dynamic shapes."""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from exportwatch.manifest import ConfigError, Manifest, load_manifest
from exportwatch.worker.inputs import (
    build_dynamic_shapes,
    build_inputs,
    build_model,
    check_signature,
    load_callable,
    resolve_device,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"

MODELS_PY = """\
import torch


def helper(x):
    return x * 2  # module-level code: strict export needs this module in sys.modules


class AddMul(torch.nn.Module):
    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x, y):
        return helper(x) + y * self.scale


class Batchy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x, *, mask=None):
        out = self.fc(x)
        return out if mask is None else out * mask


class PairSum(torch.nn.Module):
    def forward(self, pair):
        return pair[0] + pair[1]


def broken(channels=0):
    raise ValueError("channels must be positive")


def not_a_module():
    return {"a": 1}


NOT_CALLABLE = 3


def make_inputs(batch=2, device="cpu"):
    return (torch.rand(batch, 3, device=device), torch.rand(batch, 3, device=device)), {}


def bad_inputs():
    return torch.rand(2)


def failing_inputs():
    raise KeyError("no such dataset")
"""


def line_of(needle: str) -> int:
    """The 1-based line of ``MODELS_PY`` that contains ``needle``."""
    return next(i for i, line in enumerate(MODELS_PY.splitlines(), 1) if needle in line)


@dataclass
class Project:
    """A throwaway repository: a manifest plus the Python files it points at."""

    root: Path

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        importlib.invalidate_caches()
        return path

    def manifest(self, text: str, *, models_py: str = MODELS_PY) -> Manifest:
        """Write ``models.py`` and the manifest (line 1 = first line of ``text``) and load it."""
        self.write("models.py", models_py)
        path = self.write("exportwatch.yml", textwrap.dedent(text).lstrip("\n"))
        return load_manifest(path)

    @property
    def manifest_path(self) -> str:
        return str(self.root / "exportwatch.yml")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A project whose imports are undone afterwards, so tests reusing file names stay apart."""
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    roots = (str(tmp_path.resolve()), str(FIXTURES))
    yield Project(tmp_path)
    sys.path[:] = path_before
    for name in set(sys.modules) - modules_before:
        module = sys.modules[name]
        places = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])]
        if any(str(place).startswith(roots) for place in places):
            del sys.modules[name]
            # inspect caches module files by name; a later module of the same name (a namespace
            # package ``models``, say) would be looked up through the stale entry and break
            # torch.library.custom_op's source lookup in a later test.
            stale = inspect._filesbymodname.pop(name, None)  # type: ignore[attr-defined]
            if stale is not None:
                inspect.modulesbyfile.pop(stale, None)  # type: ignore[attr-defined]


def config_error(fn: Callable[..., object], *args: object, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return info.value


def one_model(
    factory: str, extra: str = "", inputs: str = "{args: [{shape: [2, 3]}, {shape: [2, 3]}]}"
) -> str:
    """A one-model manifest: factory on line 4 (value at column 14), inputs on line 5 (column 13),
    then the ``extra`` fields from line 6 on."""
    lines = ["version: 1", "models:", "  - name: m", f"    factory: {factory}"]
    block = textwrap.dedent(inputs).strip("\n")
    if "\n" in block:
        lines += ["    inputs:", *("      " + line for line in block.splitlines())]
    else:
        lines.append(f"    inputs: {block}")
    lines += ["    " + line for line in textwrap.dedent(extra).strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


# --- factories that go wrong ---------------------------------------------------------------------


def test_build_model__factory_module_that_does_not_import_names_the_missing_module(project: Project) -> None:
    spec = project.manifest(one_model("no_such_pkg.nets:Net")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:4:14: models[0].factory: cannot import module 'no_such_pkg.nets':"
        f" no module named 'no_such_pkg' (looked in the manifest's directory {project.root.resolve()}"
        " and the installed packages)"
    )


def test_build_model__missing_factory_attribute_suggests_the_closest_name(project: Project) -> None:
    spec = project.manifest(one_model("models.py:AddMull")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:4:14: models[0].factory: models.py has no attribute 'AddMull'"
        " (did you mean 'AddMul'?)"
    )


def test_build_model__missing_factory_file_says_where_it_looked(project: Project) -> None:
    spec = project.manifest(one_model("nets/missing.py:Net")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:4:14: models[0].factory: file not found: nets/missing.py"
        f" (looked in {project.root.resolve()})"
    )


def test_build_model__factory_module_that_raises_on_import_shows_the_user_line(project: Project) -> None:
    project.write("broken_import.py", "import torch\nraise RuntimeError('boom')\n")
    spec = project.manifest(one_model("broken_import.py:Net")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:4:14: models[0].factory: importing broken_import.py raised"
        " RuntimeError: boom (at broken_import.py:2)"
    )
    assert not [name for name in sys.modules if "broken_import" in name]  # no half-imported module


def test_build_model__factory_that_raises_is_reported_with_the_exception(project: Project) -> None:
    spec = project.manifest(one_model("models.py:broken")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:4:14: models[0].factory: factory raised"
        f" ValueError: channels must be positive (at models.py:{line_of('raise ValueError')})"
    )
    assert isinstance(error.__cause__, ValueError)


def test_build_model__factory_returning_a_non_module_names_the_type(project: Project) -> None:
    spec = project.manifest(one_model("models.py:not_a_module")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:4:14: models[0].factory: factory returned dict, not a torch.nn.Module"
    )


def test_build_model__factory_kwargs_that_do_not_fit_point_at_kwargs(project: Project) -> None:
    spec = project.manifest(one_model("models.py:AddMul", extra="  kwargs: {scael: 2}")).models[0]
    error = config_error(build_model, spec, root=project.root)
    assert str(error) == (
        f"{project.manifest_path}:6:13: models[0].kwargs: kwargs do not match models.py:AddMul(scale=1.0):"
        " got an unexpected keyword argument 'scael'"
    )


def test_load_callable__attribute_that_is_not_callable_is_refused(project: Project) -> None:
    project.manifest(one_model("models.py:AddMul"))
    error = config_error(load_callable, "models.py:NOT_CALLABLE", root=project.root, location=None)
    assert str(error) == "'models.py:NOT_CALLABLE' is not callable (it is int)"


# --- inputs that go wrong ------------------------------------------------------------------------


def test_check_signature__inputs_the_model_rejects_show_the_forward_signature(project: Project) -> None:
    spec = project.manifest(one_model("models.py:AddMul", inputs="{args: [{shape: [2, 3]}]}")).models[0]
    model = build_model(spec, root=project.root)
    args, kwargs = build_inputs(spec.inputs, root=project.root, device="cpu")
    error = config_error(check_signature, model, args, kwargs, location=spec.inputs.location)
    assert str(error) == (
        f"{project.manifest_path}:5:13: models[0].inputs: inputs do not match AddMul.forward(x, y):"
        " missing a required argument: 'y'"
    )


def test_build_inputs__callable_returning_a_bare_tensor_is_refused(project: Project) -> None:
    spec = project.manifest(
        one_model("models.py:AddMul", inputs='{callable: "models.py:bad_inputs"}')
    ).models[0]
    error = config_error(build_inputs, spec.inputs, root=project.root, device="cpu")
    assert str(error) == (
        f"{project.manifest_path}:5:13: models[0].inputs: input callable models.py:bad_inputs returned"
        " a Tensor of shape [2]; expected (args, kwargs) or a tuple of positional args"
    )


def test_build_inputs__callable_that_raises_is_reported_at_the_inputs_location(project: Project) -> None:
    spec = project.manifest(
        one_model("models.py:AddMul", inputs='{callable: "models.py:failing_inputs"}')
    ).models[0]
    raised = f"input callable raised KeyError: 'no such dataset' (at models.py:{line_of('raise KeyError')})"
    error = config_error(build_inputs, spec.inputs, root=project.root, device="cpu", field_path="inputs")
    assert str(error) == f"{project.manifest_path}:5:13: models[0].inputs: {raised}"
    # Without a location (a spec made in code), the given field path still names the set.
    spec.inputs.location = None
    error = config_error(build_inputs, spec.inputs, root=project.root, field_path="models[0].input_sets.x")
    assert str(error) == f"models[0].input_sets.x: {raised}"


def test_build_dynamic_shapes__name_that_is_not_a_forward_argument_is_refused(project: Project) -> None:
    extra = """
    dims: {batch: {max: 8}}
    dynamic_shapes: {z: {0: batch}}
    """
    spec = project.manifest(one_model("models.py:AddMul", extra=extra)).models[0]
    model = build_model(spec, root=project.root)
    args, kwargs = build_inputs(spec.inputs, root=project.root)
    error = config_error(build_dynamic_shapes, spec, args, kwargs, model=model)
    assert str(error) == (
        f"{project.manifest_path}:7:21: models[0].dynamic_shapes: names 'z', which is not an input of"
        " AddMul.forward (it was given: x, y)"
    )


def test_build_dynamic_shapes__axis_beyond_the_tensor_rank_is_refused(project: Project) -> None:
    extra = """
    dims: {batch: {max: 8}}
    dynamic_shapes: {x: {2: batch}}
    """
    spec = project.manifest(one_model("models.py:AddMul", extra=extra)).models[0]
    model = build_model(spec, root=project.root)
    args, kwargs = build_inputs(spec.inputs, root=project.root)
    error = config_error(build_dynamic_shapes, spec, args, kwargs, model=model)
    assert str(error) == (
        f"{project.manifest_path}:7:21: models[0].dynamic_shapes.x[2]: no axis 2 in an input of shape [2, 3]"
    )


# --- factories that work -------------------------------------------------------------------------


def test_build_model__module_path_factory_imports_from_the_manifest_directory(project: Project) -> None:
    project.write("zoo_pkg/layers.py", MODELS_PY)
    manifest = project.manifest(
        """
        version: 1
        models:
          - {name: a, factory: "zoo_pkg.layers:AddMul", kwargs: {scale: 3.0}, inputs: {}}
          - {name: b, factory: "zoo_pkg.layers:AddMul", inputs: {}, train: true}
        """
    )
    a = build_model(manifest.model("a"), root=manifest.root)
    b = build_model(manifest.model("b"), root=manifest.root)
    assert type(a).__module__ == "zoo_pkg.layers"
    assert a.scale == 3.0
    assert (a.training, b.training) == (False, True)


def test_build_model__file_path_factory_is_registered_in_sys_modules_under_its_dotted_path(
    project: Project,
) -> None:
    project.write("zoo_files/cnn.py", MODELS_PY)
    spec = project.manifest(one_model("zoo_files/cnn.py:AddMul")).models[0]
    model = build_model(spec, root=project.root)
    assert type(model).__module__ == "zoo_files.cnn"
    assert sys.modules["zoo_files.cnn"].AddMul is type(model)
    # Loading again reuses the module rather than executing it a second time.
    assert load_callable("zoo_files/cnn.py:AddMul", root=project.root, location=None) is type(model)


def test_build_model__file_whose_dotted_name_is_taken_gets_a_unique_registered_name(project: Project) -> None:
    project.write("json.py", MODELS_PY)  # "json" is the standard library's
    spec = project.manifest(one_model("json.py:AddMul")).models[0]
    model = build_model(spec, root=project.root)
    module_name = type(model).__module__
    assert module_name.startswith("_exportwatch_file_json_")
    assert sys.modules[module_name].AddMul is type(model)
    assert sys.modules["json"].__file__ != sys.modules[module_name].__file__


def test_build_model__file_factory_model_exports_in_strict_mode(project: Project) -> None:
    spec = project.manifest(one_model("models.py:AddMul")).models[0]
    model = build_model(spec, root=project.root)
    args, kwargs = build_inputs(spec.inputs, root=project.root)
    program = torch.export.export(model, args, kwargs, strict=True)
    assert torch.allclose(program.module()(*args), model(*args))


# --- inputs that work ----------------------------------------------------------------------------


def test_build_inputs__nested_specs_become_tensors_in_the_same_containers(project: Project) -> None:
    spec = project.manifest(
        one_model(
            "models.py:AddMul",
            inputs="""
              args:
                - {shape: [2, 3], low: -2, high: -1}
                - [{shape: [4], dtype: int64, low: 5, high: 7}, {tuple: [{shape: [2], dtype: bool}, 3]}]
              kwargs:
                half: {shape: [2], dtype: half, fill: 1.5}
                opts: {dict: {shape: plain string, scale: {shape: [], dtype: double}}}
                c: {shape: [3], dtype: complex64}
                none: null
            """,
        )
    ).models[0]
    args, kwargs = build_inputs(spec.inputs, root=project.root, device="cpu")
    x, (ints, (flags, three)) = args
    assert isinstance(args, tuple) and isinstance(args[1], list) and isinstance(args[1][1], tuple)
    assert x.shape == (2, 3) and x.dtype == torch.float32 and bool(((x >= -2) & (x < -1)).all())
    assert ints.dtype == torch.int64 and set(ints.tolist()) <= {5, 6}
    assert flags.dtype == torch.bool and three == 3
    assert torch.equal(kwargs["half"], torch.full((2,), 1.5, dtype=torch.float16))
    assert kwargs["opts"]["shape"] == "plain string"
    assert kwargs["opts"]["scale"].dtype == torch.float64 and kwargs["opts"]["scale"].shape == ()
    assert kwargs["c"].dtype == torch.complex64
    assert kwargs["none"] is None


def test_build_inputs__same_seed_gives_the_same_tensors_and_another_seed_does_not(project: Project) -> None:
    manifest = project.manifest(
        """
        version: 1
        models:
          - name: a
            factory: models.py:AddMul
            inputs: {args: [{shape: [8]}, {shape: [8], dtype: int32}]}
          - name: b
            factory: models.py:AddMul
            inputs: {args: [{shape: [8]}, {shape: [8], dtype: int32}], seed: 1}
        """
    )
    first, _ = build_inputs(manifest.model("a").inputs, root=manifest.root)
    torch.rand(100)  # the global RNG plays no part
    again, _ = build_inputs(manifest.model("a").inputs, root=manifest.root)
    other, _ = build_inputs(manifest.model("b").inputs, root=manifest.root)
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_build_inputs__callable_form_is_seeded_gets_the_device_and_leaves_the_global_rng(
    project: Project,
) -> None:
    spec = project.manifest(
        one_model(
            "models.py:AddMul", inputs='{callable: "models.py:make_inputs", kwargs: {batch: 4}, seed: 3}'
        )
    ).models[0]
    state = torch.get_rng_state()
    (x, y), kwargs = build_inputs(spec.inputs, root=project.root, device="auto")
    assert torch.equal(torch.get_rng_state(), state)
    (x2, _), _ = build_inputs(spec.inputs, root=project.root, device="cpu")
    assert x.shape == (4, 3) and kwargs == {} and torch.equal(x, x2)
    model = build_model(spec, root=project.root)
    check_signature(model, (x, y), kwargs, location=spec.inputs.location)  # fits: no error


# --- dynamic shapes, exported for real -----------------------------------------------------------


def test_build_dynamic_shapes__named_batch_dim_exports_and_runs_at_another_batch_size(
    project: Project,
) -> None:
    extra = """
    dims: {batch: {min: 1, max: 64}}
    dynamic_shapes: {x: {0: batch}, mask: [batch, null]}
    """
    spec = project.manifest(
        one_model(
            "models.py:Batchy",
            extra=extra,
            inputs="{args: [{shape: [4, 3]}], kwargs: {mask: {shape: [4, 2]}}}",
        )
    ).models[0]
    model = build_model(spec, root=project.root)
    args, kwargs = build_inputs(spec.inputs, root=project.root)
    dynamic_shapes = build_dynamic_shapes(spec, args, kwargs, model=model)
    batch = dynamic_shapes["x"][0]
    assert isinstance(batch, torch.export.Dim) and dynamic_shapes["mask"][0] is batch
    program = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    assert [(int(r.lower), int(r.upper)) for r in program.range_constraints.values()] == [(1, 64)]
    x, mask = torch.rand(9, 3), torch.rand(9, 2)
    assert torch.allclose(program.module()(x, mask=mask), model(x, mask=mask))


def test_build_dynamic_shapes__positional_list_follows_a_tuple_input(project: Project) -> None:
    extra = """
    dims: {n: {max: 16}}
    dynamic_shapes: [[{0: n}, {0: n}]]
    """
    spec = project.manifest(
        one_model("models.py:PairSum", extra=extra, inputs="{args: [{tuple: [{shape: [5]}, {shape: [5]}]}]}")
    ).models[0]
    model = build_model(spec, root=project.root)
    args, kwargs = build_inputs(spec.inputs, root=project.root)
    dynamic_shapes = build_dynamic_shapes(spec, args, kwargs)
    assert isinstance(dynamic_shapes, tuple) and isinstance(dynamic_shapes[0], tuple)
    program = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    pair = (torch.rand(7), torch.rand(7))
    assert torch.allclose(program.module()(pair), pair[0] + pair[1])


def test_build_dynamic_shapes__none_when_the_manifest_sets_none(project: Project) -> None:
    spec = project.manifest(one_model("models.py:AddMul")).models[0]
    assert build_dynamic_shapes(spec, (), {}) is None


def test_inputs__full_example_fixture_builds_and_exports(project: Project) -> None:
    manifest = load_manifest(FIXTURES / "full.yml")
    spec = manifest.model("tiny_cnn")
    model = build_model(spec, root=manifest.root)
    for inputs in (spec.inputs, spec.input_sets["large_batch"]):
        args, kwargs = build_inputs(inputs, root=manifest.root, device=spec.device)
        check_signature(model, args, kwargs, location=inputs.location)
    args, kwargs = build_inputs(spec.inputs, root=manifest.root, device=spec.device)
    dynamic_shapes = build_dynamic_shapes(spec, args, kwargs, model=model)
    with torch.no_grad():
        program = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    assert [(int(r.lower), int(r.upper)) for r in program.range_constraints.values()] == [(1, 64)]
    mlp = manifest.model("from_module_path")
    args, kwargs = build_inputs(mlp.inputs, root=manifest.root)
    assert build_model(mlp, root=manifest.root)(*args, **kwargs).shape == (3, 2)


def test_resolve_device__auto_picks_cuda_only_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (resolve_device("auto"), resolve_device("cuda"), resolve_device("cpu")) == ("cpu", "cuda", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
