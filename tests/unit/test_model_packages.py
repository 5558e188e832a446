"""The report records the versions of the libraries the models' code imports, so a diff can say
"transformers 4.57.0 → 5.24.0" and a cache never serves one version's result for another's."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from exportwatch.manifest import load_manifest
from exportwatch.report.provenance import new_report
from exportwatch.sweep.preload import model_packages


def _project(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "helpers.py").write_text("X = 1\n")
    (tmp_path / "models" / "net.py").write_text(
        "import json\nimport yaml\nimport torch\nfrom models import helpers\n\n"
        "def build():\n    import markdown_it  # imported inside the factory: read too\n"
        "    return torch.nn.Linear(2, 2)\n"
    )
    manifest = tmp_path / "exportwatch.yml"
    manifest.write_text(
        "version: 1\nmodels:\n"
        "  - {name: net, factory: 'models/net.py:build', inputs: {args: [{shape: [1, 2]}]}}\n"
    )
    return manifest


def test_model_packages__names_the_installed_libraries_the_factories_import(tmp_path: Path) -> None:
    packages = model_packages(load_manifest(_project(tmp_path)))
    # torch has a field of its own; json is the standard library; models/ is the repository.
    assert packages == {
        "markdown-it-py": metadata.version("markdown-it-py"),
        "pyyaml": metadata.version("pyyaml"),
    }


def test_model_packages__are_in_every_new_report(tmp_path: Path) -> None:
    manifest = load_manifest(_project(tmp_path))
    report = new_report(manifest, model_packages(manifest))
    assert report.environment.packages["pyyaml"] == metadata.version("pyyaml")
    assert report.to_dict()["environment"]["packages"]["pyyaml"] == metadata.version("pyyaml")


def test_model_packages__an_unreadable_factory_names_fewer_packages_never_fails(tmp_path: Path) -> None:
    manifest = _project(tmp_path)
    (tmp_path / "models" / "net.py").write_bytes(b"\xff\xfe not python (")
    assert model_packages(load_manifest(manifest)) == {}
