"""What the fork server imports for the manifest's models: read from source, libraries only."""

from __future__ import annotations

import textwrap

from exportwatch.manifest import load_manifest
from exportwatch.sweep.preload import ImportStatement, import_statements, plan_preload, run_preload


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
