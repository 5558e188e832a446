"""The dependency fingerprint: static import resolution, globs and content hashes (no torch)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exportwatch.git import GitTree
from exportwatch.manifest import InputsSpec, ModelSpec
from exportwatch.report import Environment
from exportwatch.report.provenance import (
    Fingerprinter,
    ImportGraph,
    WorkingTree,
    entry_text,
    glob_regex,
    match_globs,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def spec(factory: str, *, name: str = "m", raw: dict | None = None, **fields) -> ModelSpec:
    fields.setdefault("inputs", InputsSpec())
    return ModelSpec(name=name, factory=factory, raw=raw or {"name": name, "factory": factory}, **fields)


def deps_of(root: Path, factory: str, *, manifest_dir: str = "", **fields) -> list[str]:
    printer = Fingerprinter(WorkingTree(root), manifest_dir=manifest_dir)
    return sorted(printer.fingerprint(spec(factory, **fields)).dependencies)


ENV = Environment(python="3.11.7", torch="2.13.0", onnx="1.17.0")


def test_deps__follow_relative_imports_inside_a_package(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/model.py": "from .layers import Block\nfrom . import util\nfrom .sub.deep import x\n",
            "pkg/layers.py": "import torch\n",
            "pkg/util.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/deep.py": "from ..consts import K\nx = K\n",
            "pkg/consts.py": "K = 1\n",
            "pkg/unused.py": "",
        },
    )
    assert deps_of(tmp_path, "pkg.model:make") == [
        "pkg/__init__.py",
        "pkg/consts.py",
        "pkg/layers.py",
        "pkg/model.py",
        "pkg/sub/__init__.py",
        "pkg/sub/deep.py",
        "pkg/util.py",
    ]


def test_deps__include_the_init_files_of_every_package_on_the_way_to_a_module(tmp_path):
    write(
        tmp_path,
        {"a/__init__.py": "", "a/b/__init__.py": "import a.shared\n", "a/b/c.py": "", "a/shared.py": ""},
    )
    assert deps_of(tmp_path, "a.b.c:make") == ["a/__init__.py", "a/b/__init__.py", "a/b/c.py", "a/shared.py"]


def test_deps__from_package_import_name_adds_the_submodule_when_the_name_is_one(tmp_path):
    write(
        tmp_path,
        {
            "m.py": "from nets import resnet, CONSTANT\n",
            "nets/__init__.py": "CONSTANT = 3\n",
            "nets/resnet.py": "",
            "nets/vit.py": "",
        },
    )
    assert deps_of(tmp_path, "m:make") == ["m.py", "nets/__init__.py", "nets/resnet.py"]


def test_deps__ignore_imports_that_resolve_outside_the_repository(tmp_path):
    repo = tmp_path / "repo"
    write(tmp_path, {"outside_helper.py": ""})
    write(
        repo,
        {
            "m.py": "import os, sys, torch\nimport numpy as np\nimport outside_helper\nfrom torch import nn\n"
            "from ... import escape\n",
        },
    )
    assert deps_of(repo, "m:make") == ["m.py"]


def test_deps__resolve_a_file_reference_from_the_manifest_directory_and_fall_back_to_the_root(tmp_path):
    write(
        tmp_path,
        {
            "ml/nets/net.py": "import common.util\nimport local_helper\n",
            "ml/local_helper.py": "",
            "common/__init__.py": "",
            "common/util.py": "",
            "local_helper.py": "# shadowed by ml/local_helper.py\n",
        },
    )
    assert deps_of(tmp_path, "nets/net.py:make", manifest_dir="ml") == [
        "common/__init__.py",
        "common/util.py",
        "ml/local_helper.py",
        "ml/nets/net.py",
    ]


def test_deps__follow_a_literal_import_module_call_but_not_a_computed_one(tmp_path):
    write(
        tmp_path,
        {
            "m.py": "import importlib\nimportlib.import_module('plugins.a')\n"
            "name = 'plugins.' + 'b'\nimportlib.import_module(name)\n",
            "plugins/__init__.py": "",
            "plugins/a.py": "",
            "plugins/b.py": "",
        },
    )
    assert deps_of(tmp_path, "m:make") == ["m.py", "plugins/__init__.py", "plugins/a.py"]


def test_deps__add_files_matched_by_depends_on_globs(tmp_path):
    write(
        tmp_path,
        {
            "ml/m.py": "",
            "ml/data/vocab.txt": "",
            "ml/data/deep/weights.bin": "",
            "plugins/p1.py": "",
            "ml/other.csv": "",
        },
    )
    assert deps_of(tmp_path, "m:make", manifest_dir="ml", depends_on=["data", "/plugins/*.py"]) == [
        "ml/data/deep/weights.bin",
        "ml/data/vocab.txt",
        "ml/m.py",
        "plugins/p1.py",
    ]


def test_deps__glob_double_star_spans_directories_and_single_star_does_not():
    assert glob_regex("src/**/*.py").fullmatch("src/a/b/c.py")
    assert glob_regex("src/**/*.py").fullmatch("src/c.py")
    assert not glob_regex("src/*.py").fullmatch("src/a/c.py")
    assert match_globs(["../../etc/*"], ["etc/passwd"], manifest_dir="ml") == []


def test_deps__an_unparseable_file_is_still_a_dependency(tmp_path):
    write(tmp_path, {"m.py": "import helper\n", "helper.py": "def broken(:\n"})
    assert deps_of(tmp_path, "m:make") == ["helper.py", "m.py"]


def test_deps__input_callables_and_extra_input_sets_count_as_entry_points(tmp_path):
    write(tmp_path, {"m.py": "", "inputs_a.py": "", "inputs_b.py": ""})
    extra = spec(
        "m:make",
        inputs=InputsSpec(callable="inputs_a:make"),
        input_sets={"big": InputsSpec(callable="inputs_b.py:make")},
    )
    printer = Fingerprinter(WorkingTree(tmp_path), manifest_dir="")
    assert sorted(printer.fingerprint(extra).dependencies) == ["inputs_a.py", "inputs_b.py", "m.py"]


def test_content_hash__changes_with_files_entry_target_device_and_torch_not_unrelated_files(tmp_path):
    write(tmp_path, {"m.py": "x = 1\n", "other.py": ""})
    printer = lambda: Fingerprinter(WorkingTree(tmp_path), manifest_dir="")  # noqa: E731
    first = printer().fingerprint(spec("m:make")).content_hash("export", ENV)
    (tmp_path / "other.py").write_text("y = 2\n")
    assert printer().fingerprint(spec("m:make")).content_hash("export", ENV) == first
    assert printer().fingerprint(spec("m:make")).content_hash("export-strict", ENV) != first
    assert printer().fingerprint(spec("m:make", device="cuda")).content_hash("export", ENV) != first
    newer = Environment(python="3.11.7", torch="2.14.0", onnx="1.17.0")
    assert printer().fingerprint(spec("m:make")).content_hash("export", newer) != first
    raw = {"name": "m", "factory": "m:make", "inputs": {"args": [{"shape": [3]}]}}
    assert printer().fingerprint(spec("m:make", raw=raw)).content_hash("export", ENV) != first
    (tmp_path / "m.py").write_text("x = 2\n")
    assert printer().fingerprint(spec("m:make")).content_hash("export", ENV) != first


def test_content_hash__onnx_versions_matter_only_to_onnx_targets(tmp_path):
    write(tmp_path, {"m.py": ""})
    fp = Fingerprinter(WorkingTree(tmp_path), manifest_dir="").fingerprint(spec("m:make"))
    other_onnx = Environment(python="3.11.7", torch="2.13.0", onnx="1.18.0")
    assert fp.content_hash("export", ENV) == fp.content_hash("export", other_onnx)
    assert fp.content_hash("onnx", ENV) != fp.content_hash("onnx", other_onnx)


def test_content_hash__a_model_library_upgrade_is_a_new_result_not_a_cache_hit(tmp_path):
    # A cached result of transformers 4.x must not stand for 5.x: the libraries the models
    # import are part of the key (an environment that recorded none keeps its old hash).
    write(tmp_path, {"m.py": ""})
    fp = Fingerprinter(WorkingTree(tmp_path), manifest_dir="").fingerprint(spec("m:make"))
    old = Environment(python="3.11.7", torch="2.13.0", packages={"transformers": "4.57.0"})
    new = Environment(python="3.11.7", torch="2.13.0", packages={"transformers": "5.24.0"})
    assert fp.content_hash("export", old) != fp.content_hash("export", new)
    assert fp.content_hash("export", Environment(python="3.11.7", torch="2.13.0")) == fp.content_hash(
        "export", Environment(python="3.11.7", torch="2.13.0", packages={})
    )


def test_entry_text__normalises_integer_axis_keys_mixed_with_names():
    raw = {"name": "m", "dynamic_shapes": {"x": {0: "batch", 1: "seq"}, "y": [{0: "batch"}, None]}}
    assert entry_text(raw) == entry_text(dict(reversed(list(raw.items()))))
    assert '"<int>0":"batch"' in entry_text(raw)


def test_git_tree__fingerprints_a_commit_without_checkout_like_the_working_tree(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/m.py": "from . import h\n", "pkg/h.py": "v = 1\n"})
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    sha = run("rev-parse", "HEAD").stdout.decode().strip()
    committed = Fingerprinter(GitTree(tmp_path, sha), manifest_dir="").fingerprint(spec("pkg.m:make"))
    (tmp_path / "pkg/h.py").write_text("v = 2\n")
    on_disk = Fingerprinter(WorkingTree(tmp_path), manifest_dir="").fingerprint(spec("pkg.m:make"))
    assert (
        sorted(committed.dependencies)
        == sorted(on_disk.dependencies)
        == ["pkg/__init__.py", "pkg/h.py", "pkg/m.py"]
    )
    assert on_disk.changed_files(committed) == ["pkg/h.py"]


@pytest.mark.parametrize("source", ["import a.b as ab\n", "from a import b\n", "from a.b import thing\n"])
def test_import_graph__resolves_every_spelling_of_a_submodule_import(tmp_path, source):
    write(tmp_path, {"m.py": source, "a/__init__.py": "", "a/b.py": ""})
    graph = ImportGraph(WorkingTree(tmp_path), [""])
    assert set(graph.imports_of("m.py")) == {"a/__init__.py", "a/b.py"}


def test_deps__resolve_a_package_under_the_src_layout(tmp_path):
    write(tmp_path, {"src/mypkg/__init__.py": "", "src/mypkg/models.py": "from .layers import Block\n",
                     "src/mypkg/layers.py": "X = 1\n"})  # fmt: skip
    assert deps_of(tmp_path, "mypkg.models:M") == [
        "src/mypkg/__init__.py", "src/mypkg/layers.py", "src/mypkg/models.py",
    ]  # fmt: skip


def test_content_hash__is_none_when_the_factory_is_not_in_the_repository_or_the_device_is_auto(tmp_path):
    write(tmp_path, {"m.py": "def make(): ...\n"})
    printer = Fingerprinter(WorkingTree(tmp_path), manifest_dir="")
    outside = printer.fingerprint(spec("torchvision.models:resnet18"))
    assert outside.unresolved == ("torchvision.models:resnet18",)
    assert outside.content_hash("export", ENV) is None
    auto = printer.fingerprint(spec("m:make"), device="auto")
    assert auto.content_hash("export", ENV) is None
    assert printer.fingerprint(spec("m:make"), device="cpu").content_hash("export", ENV)
