"""``tensorrt`` has a place in the design (docs/targets.md) but no exporter: a manifest that asks
for it is refused with why, located like every manifest error, not as a typo."""

from __future__ import annotations

import pytest

from exportwatch.manifest import KNOWN_TARGETS, ConfigError, load_manifest
from exportwatch.manifest.specs import PLANNED_TARGETS


def test_manifest__tensorrt_is_a_clear_not_implemented_usage_error(tmp_path):
    path = tmp_path / "exportwatch.yml"
    path.write_text(
        "version: 1\nmodels:\n  - name: m\n    factory: models.py:Net\n"
        "    inputs: {args: [{shape: [2, 8]}]}\n    targets: [export, tensorrt]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_manifest(path)
    error = caught.value
    assert (error.line, error.field_path) == (6, "models[0].targets[1]")
    assert "target 'tensorrt' is not implemented yet" in error.message
    assert "CUDA GPU" in error.message and "docs/targets.md" in error.message
    assert error.exit_code == 2


def test_planned_targets__are_never_accepted_targets():
    assert not set(PLANNED_TARGETS) & set(KNOWN_TARGETS)
