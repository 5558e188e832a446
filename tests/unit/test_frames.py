"""Which line a failure points at: the repository's, else a library's, else the module's forward;
and tracebacks cut to the frames that matter, with no runner's absolute paths."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from exportwatch.diagnose import (
    exception_chain,
    find_user_frame,
    format_traceback,
    interface_frame,
    library_location,
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A package ``fakelib`` installed in a site-packages directory, and a repository beside it."""
    site = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    _write(site / "fakelib" / "__init__.py", "")
    _write(
        site / "fakelib" / "modeling.py",
        """\
        def helper(value):
            raise ValueError(f"bad value {value}")  # the library line


        class Layer:
            def forward(self, x):
                return helper(x)
        """,
    )
    repo = tmp_path / "repo"
    _write(repo / "driver.py", "def run(layer, x):\n    return layer.forward(x)\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(repo))
    for name in ("fakelib", "fakelib.modeling", "driver"):
        sys.modules.pop(name, None)
    yield site, repo
    for name in ("fakelib", "fakelib.modeling", "driver"):
        sys.modules.pop(name, None)


def _raise(callable_, *args):
    try:
        callable_(*args)
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def test_library_location__is_relative_to_the_directory_holding_the_package(installed):
    site, _repo = installed
    assert library_location(str(site / "fakelib" / "modeling.py")) == ("fakelib", "fakelib/modeling.py")
    assert library_location("<string>") is None
    assert library_location(importlib.import_module("json").__file__) is None  # the stdlib


def test_find_user_frame__prefers_the_repository(installed, tmp_path):
    _site, repo = installed
    modeling = importlib.import_module("fakelib.modeling")
    driver = importlib.import_module("driver")
    exc = _raise(driver.run, modeling.Layer(), 3)
    frame = find_user_frame(exception_chain(exc), repo)
    assert frame is not None and frame.library is None
    assert (frame.path, frame.function) == ("driver.py", "run")


def test_find_user_frame__falls_back_to_the_innermost_library_frame(installed, tmp_path):
    modeling = importlib.import_module("fakelib.modeling")
    elsewhere = tmp_path / "other-repo"
    elsewhere.mkdir()
    exc = _raise(modeling.Layer().forward, 3)
    frame = find_user_frame(exception_chain(exc), elsewhere)
    assert frame is not None
    assert frame.library == "fakelib"
    assert frame.path == "fakelib/modeling.py"
    assert frame.function == "helper"
    assert frame.source.startswith('raise ValueError(f"bad value {value}")')
    assert not frame.in_repository


def test_find_user_frame__never_takes_the_code_that_called_the_exporter(installed, tmp_path):
    """Frames above the first torch frame are the driver (a harness, a script), not the model."""
    import torch

    site, _repo = installed
    _write(site / "harness" / "__init__.py", "def drive(fn, x):\n    return fn(x)\n")
    sys.modules.pop("harness", None)
    harness = importlib.import_module("harness")

    exc = _raise(harness.drive, lambda x: torch.nn.functional.pad(x, (1,), mode="bogus"), torch.zeros(2))
    assert find_user_frame(exception_chain(exc), tmp_path / "nowhere") is None


def test_interface_frame__points_at_forward_def_and_at_its_return_for_output_problems(tmp_path):
    source = _write(
        tmp_path / "iface_net.py",
        """\
        import functools


        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs)
            return wrapper


        class Net:
            @logged
            def forward(self, x, cache=None):
                y = x + 1
                return y, cache
        """,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop("iface_net", None)
        net = importlib.import_module("iface_net").Net()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("iface_net", None)
    lines = source.read_text().splitlines()
    frame = interface_frame(net, tmp_path)
    assert frame is not None and frame.path == "iface_net.py" and frame.library is None
    assert lines[frame.line - 1].strip().startswith("def forward(")  # the decorator is skipped
    out = interface_frame(net, tmp_path, output=True)
    assert out is not None and out.source == "return y, cache"


def test_format_traceback__keeps_model_frames_folds_the_rest_and_shows_no_absolute_path(installed, tmp_path):
    import json

    modeling = importlib.import_module("fakelib.modeling")
    _site, repo = installed

    def hook(obj):
        return modeling.Layer().forward(obj)

    exc = _raise(lambda: json.loads('{"a": 1}', object_hook=hook))
    text = format_traceback(exc, repo)
    assert "fakelib/modeling.py:2 in helper" in text
    assert "fakelib/modeling.py:7 in forward" in text
    assert "frames of json" in text  # the stdlib's frames, folded with a count
    assert str(tmp_path) not in text and "/site-packages/" not in text


def test_format_traceback__drops_exportwatch_s_own_frames():
    import torch

    from exportwatch.targets.verify import compare_leaf

    exc = _raise(
        lambda: compare_leaf(torch.zeros(2), torch.zeros(2), input_set="x", output="", tolerance=None)
    )
    text = format_traceback(exc, None)
    assert "exportwatch/targets" not in text and "verify.py" not in text


def test_find_user_frame__a_virtualenv_inside_the_repository_holds_libraries(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    site = repo / ".venv" / "lib" / "python3.11" / "site-packages"
    _write(site / "venvlib" / "__init__.py", "def forward(x):\n    raise ValueError('inside venvlib')\n")
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("venvlib", None)
    try:
        exc = _raise(importlib.import_module("venvlib").forward, 1)
    finally:
        sys.modules.pop("venvlib", None)
    frame = find_user_frame(exception_chain(exc), repo)
    assert frame is not None and frame.library == "venvlib"
    assert frame.path == "venvlib/__init__.py" and "inside venvlib" in frame.source


def test_relative_paths__messages_name_no_runner_directory(tmp_path):
    import torch

    from exportwatch.diagnose import relative_paths

    repo = tmp_path / "repo"
    _write(repo / "models" / "net.py", "x = 1\n")
    torch_file = Path(torch.__file__)
    text = f'File "{repo}/models/net.py", line 3, in forward\n  File "{torch_file}", line 9'
    shown = relative_paths(text, repo)
    assert 'File "models/net.py", line 3' in shown
    assert 'File "torch/__init__.py", line 9' in shown
    assert str(tmp_path) not in shown and str(torch_file.parent) not in shown


def test_diagnose__a_frameless_failure_re_raised_by_a_parent_keeps_the_childs_fingerprint(tmp_path):
    """Without a frame the message tells failures apart: module types must not, or every failing
    ancestor of a frameless failure would read as an origin of its own."""
    from exportwatch.diagnose import diagnose_exception

    class Block:
        def forward(self, x):
            return x

    class Encoder:
        def forward(self, x):
            return x

    def frameless() -> BaseException:  # never raised: no frame of any kind
        return RuntimeError("Could not guard on data-dependent expression Eq(u0, 1)")

    a = diagnose_exception(frameless(), target="export", stage="capture", repo_root=tmp_path, module=Block())
    b = diagnose_exception(
        frameless(), target="export", stage="capture", repo_root=tmp_path, module=Encoder()
    )
    assert a.category == b.category == "data-dependent-control-flow"
    assert a.fingerprint == b.fingerprint


def test_find_user_frame__a_package_imported_through_an_import_hook_is_a_library(tmp_path):
    """An editable install serves its package through a finder: no directory on sys.path."""
    import importlib.util

    package = tmp_path / "elsewhere" / "src" / "hookpkg"
    _write(package / "__init__.py", "")
    _write(package / "layers.py", "def forward(x):\n    raise ValueError('inside hookpkg')\n")
    spec = importlib.util.spec_from_file_location("hookpkg_layers", package / "layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exc = _raise(module.forward, 1)
    frame = find_user_frame(exception_chain(exc), tmp_path / "repo")
    assert frame is not None and frame.library == "hookpkg"
    assert frame.path == "hookpkg/layers.py" and "inside hookpkg" in frame.source


def test_interface_frame__a_torch_module_points_at_its_own_forward(tmp_path):
    import torch

    frame = interface_frame(torch.nn.MultiheadAttention(4, 2), tmp_path)
    assert frame is not None and frame.library == "torch"
    assert frame.path == "torch/nn/modules/activation.py" and frame.source.startswith("def forward(")
