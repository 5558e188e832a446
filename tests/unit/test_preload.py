"""What the fork server imports for the manifest's models: read from source, libraries only."""

from __future__ import annotations

import textwrap

from exportwatch.manifest import load_manifest
from exportwatch.sweep.preload import (
    ImportStatement,
    common_prefix,
    import_statements,
    leading_imports,
    plan_preload,
    preload_fits,
    run_preload,
    safe_preload,
)


def test_import_statements__finds_imports_in_function_bodies_and_ignores_relative_ones():
    source = textwrap.dedent("""\
        import os, json as j
        from . import sibling
        def tiny_llama():
            from transformers import LlamaConfig, LlamaForCausalLM
            import timm.layers
            return LlamaForCausalLM(LlamaConfig())
    """)
    assert import_statements(source) == [
        ImportStatement("os"),
        ImportStatement("json"),
        ImportStatement("transformers", ("LlamaConfig", "LlamaForCausalLM")),
        ImportStatement("timm.layers"),
    ]


def test_import_statements__unparsable_source_preloads_nothing():
    assert import_statements("def broken(:\n") == []


def test_plan_preload__keeps_installed_libraries_and_leaves_the_repository_to_each_model(tmp_path):
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "models.py").write_text(
        "import json\nimport helpers\nimport torch\nimport yaml\n"
        "def build():\n    from yaml.nodes import ScalarNode\n    import exportwatch\n"
    )
    (tmp_path / "m.yml").write_text(
        "version: 1\nmodels:\n  - name: a\n    factory: models.py:build\n    inputs: {args: [{shape: [1]}]}\n"
        "  - name: b\n    factory: yaml.constructor:SafeConstructor\n    inputs: {args: [{shape: [1]}]}\n"
    )
    manifest = load_manifest(tmp_path / "m.yml")
    planned = plan_preload(manifest.models, manifest_root=tmp_path, repo_root=tmp_path)
    # Not the stdlib (json), not the repository (helpers), not torch or exportwatch (loaded already).
    assert planned == [
        ImportStatement("yaml"),
        ImportStatement("yaml.nodes", ("ScalarNode",)),
        ImportStatement("yaml.constructor"),
    ]


def test_run_preload__a_failing_import_is_left_to_the_models_process():
    done = run_preload([ImportStatement("json", ("dumps",)), ImportStatement("no_such_module_anywhere")])
    assert done == ["from json import dumps"]


# --- only what the file imports before any code of its own ------------------------------------

KINDS = {
    "__future__": "loaded",
    "torch": "loaded",
    "os": "loaded",
    "transformers": "library",
    "idna": "library",
    "guard": "user's",
}


def _leading(source: str) -> list[str]:
    return [str(s) for s in leading_imports(textwrap.dedent(source), kind_of=lambda top: KINDS[top])]


def test_leading_imports__libraries_imported_before_any_code_of_the_files_own():
    source = '''\
        """A docstring runs nothing."""
        from __future__ import annotations
        import os
        import torch
        from transformers import GPT2Config, GPT2Model
        import idna
        X = 1
        '''
    assert _leading(source) == ["from transformers import GPT2Config, GPT2Model", "import idna"]


def test_leading_imports__a_shim_of_the_users_ends_them():
    assert _leading("import torch\nimport guard\nimport idna\n") == []
    assert _leading("import idna, guard, transformers\n") == ["import idna"]
    assert _leading("from . import sibling\nimport idna\n") == []


def test_leading_imports__an_assignment_or_a_setting_before_the_library_ends_them():
    assert _leading('import os\nos.environ["HF_HUB_OFFLINE"] = "1"\nimport transformers\n') == []
    assert _leading("import torch\ntorch._dynamo.config.cache_size_limit = 7\nimport transformers\n") == []
    assert _leading("try:\n    import idna\nexcept ImportError:\n    pass\n") == []
    assert _leading("import idna\ndef build():\n    import transformers\n") == ["import idna"]
    assert _leading("from idna import *\nimport transformers\n") == ["import idna"]


def test_common_prefix__only_what_every_model_imports_first_in_that_order():
    a = [ImportStatement("transformers", ("GPT2Config",)), ImportStatement("idna")]
    b = [ImportStatement("transformers", ("GPT2Config", "LlamaConfig")), ImportStatement("idna")]
    assert common_prefix([a, a]) == a
    # The names both import are kept; what follows came after the other names in plain Python.
    assert common_prefix([a, b]) == [ImportStatement("transformers", ("GPT2Config",))]
    assert common_prefix([a, [ImportStatement("idna")]]) == []
    assert common_prefix([a, []]) == []
    assert common_prefix([]) == []


def _manifest(tmp_path, **files: str):
    for name, source in files.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    models = "".join(
        f"  - {{name: {name}, factory: '{name}.py:build', inputs: {{args: [{{shape: [1]}}]}}}}\n"
        for name in files
    )
    return load_manifest_text(tmp_path, "version: 1\nmodels:\n" + models)


def load_manifest_text(tmp_path, text: str):
    (tmp_path / "m.yml").write_text(text)
    return load_manifest(tmp_path / "m.yml").models


def test_safe_preload__a_file_that_starts_with_its_imports_gets_its_libraries_preloaded(tmp_path):
    specs = _manifest(tmp_path, net="import torch\nimport yaml.nodes\nfrom idna import encode\nX = 1\n")
    assert safe_preload(specs, manifest_root=tmp_path, repo_root=tmp_path) == [
        ImportStatement("yaml.nodes"),
        ImportStatement("idna", ("encode",)),
    ]


def test_safe_preload__a_shim_in_the_manifests_folder_stops_the_preload_for_every_model(tmp_path):
    (tmp_path / "guard.py").write_text("import sys\n")
    specs = _manifest(
        tmp_path, plain="import torch\nimport idna\n", shimmed="import guard\nimport idna\nimport torch\n"
    )
    assert safe_preload(specs[:1], manifest_root=tmp_path, repo_root=tmp_path) == [ImportStatement("idna")]
    # One fork server serves both: idna must not be in sys.modules when guard runs.
    assert safe_preload(specs, manifest_root=tmp_path, repo_root=tmp_path) == []


def test_preload_fits__a_server_serves_models_whose_files_start_with_what_it_preloaded(tmp_path):
    specs = _manifest(tmp_path, a="import idna\nimport yaml\n", b="import yaml\n")
    root = {"manifest_root": tmp_path, "repo_root": tmp_path}
    assert preload_fits([ImportStatement("idna")], specs[:1], **root)
    assert not preload_fits([ImportStatement("idna")], specs[1:], **root)
    assert preload_fits([], specs, **root)


def test_safe_preload__a_package_s_init_that_runs_code_first_stops_the_preload(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("import os\nos.environ['IDNA_SETTING'] = '1'\n")
    (tmp_path / "pkg" / "net.py").write_text("import idna\ndef build():\n    pass\n")
    (tmp_path / "plain.py").write_text("import idna\ndef build():\n    pass\n")
    inputs = "inputs: {args: [{shape: [1]}]}"
    specs = load_manifest_text(
        tmp_path,
        "version: 1\nmodels:\n"
        f"  - {{name: a, factory: 'plain.py:build', {inputs}}}\n"
        f"  - {{name: b, factory: 'pkg.net:build', {inputs}}}\n"
        f"  - {{name: c, factory: 'pkg/net.py:build', {inputs}}}\n",
    )
    root = {"manifest_root": tmp_path, "repo_root": tmp_path}
    assert safe_preload(specs[:1], **root) == [ImportStatement("idna")]
    # ``import pkg.net`` sets the variable before net.py imports idna: so must the fork.
    assert safe_preload(specs[:2], **root) == []
    assert safe_preload([specs[0], specs[2]], **root) == []


def test_safe_preload__a_package_whose_init_only_imports_libraries_keeps_the_preload(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""Nets."""\nimport yaml\n')
    (tmp_path / "pkg" / "net.py").write_text("import idna\ndef build():\n    pass\n")
    specs = load_manifest_text(
        tmp_path,
        "version: 1\nmodels:\n  - {name: b, factory: 'pkg.net:build', inputs: {args: [{shape: [1]}]}}\n",
    )
    root = {"manifest_root": tmp_path, "repo_root": tmp_path}
    assert safe_preload(specs, **root) == [ImportStatement("yaml"), ImportStatement("idna")]


def test_safe_preload__a_module_found_only_by_a_finder_of_its_own_preloads_nothing(tmp_path, monkeypatch):
    import importlib.abc
    import importlib.machinery
    import sys

    class EditableFinder(importlib.abc.MetaPathFinder):  # as setuptools' editable installs add
        def find_spec(self, name, path=None, target=None):
            if name == "editable_pkg":
                origin = str(tmp_path / "src" / "editable_pkg" / "__init__.py")  # the repository's
                return importlib.machinery.ModuleSpec(name, None, origin=origin)
            return None

    monkeypatch.setattr(sys, "meta_path", [EditableFinder(), *sys.meta_path])
    (tmp_path / "plain.py").write_text("import idna\ndef build():\n    pass\n")
    inputs = "inputs: {args: [{shape: [1]}]}"
    specs = load_manifest_text(
        tmp_path,
        "version: 1\nmodels:\n"
        f"  - {{name: a, factory: 'plain.py:build', {inputs}}}\n"
        f"  - {{name: b, factory: 'editable_pkg.nets:build', {inputs}}}\n",
    )
    # Its unread file may start with a shim: nothing is preloaded before it runs.
    assert safe_preload(specs, manifest_root=tmp_path, repo_root=tmp_path) == []


def test_safe_preload__a_package_around_the_manifest_s_folder_is_not_imported_by_its_files(tmp_path):
    (tmp_path / "__init__.py").write_text("import os\nos.environ['IDNA_SETTING'] = '1'\n")
    (tmp_path / "net.py").write_text("import idna\ndef build():\n    pass\n")
    specs = load_manifest_text(
        tmp_path,
        "version: 1\nmodels:\n  - {name: a, factory: 'net.py:build', inputs: {args: [{shape: [1]}]}}\n",
    )
    # net.py is imported as ``net``: the folder's own __init__.py never runs.
    assert safe_preload(specs, manifest_root=tmp_path, repo_root=tmp_path) == [ImportStatement("idna")]
