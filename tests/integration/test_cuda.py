"""CUDA code paths: run where a GPU is present, skip cleanly elsewhere (marker `cuda`)."""

from __future__ import annotations

import pytest
import torch

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import Verdict
from exportwatch.worker.inputs import resolve_device
from exportwatch.worker.walk import SweepSettings, device_for, prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)


def cnn_spec(device: str) -> ModelSpec:
    return ModelSpec(
        name="tiny_cnn",
        factory="exportwatch.examples.models:TinyCNN",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 3, 16, 16])]),
        input_sets={"big": InputsSpec(args=[TensorSpec(shape=[2, 3, 16, 16], low=-3, high=3)])},
        device=device,
    )


def test_device__cuda_without_a_gpu_is_a_skip_reason_not_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    device, reason = device_for(cnn_spec("cuda"), None)
    assert (device, reason) == ("cuda", "CUDA is not available")
    assert resolve_device("auto") == "cpu"


@pytest.mark.cuda
def test_device__auto_picks_cuda_when_present():
    assert resolve_device("auto") == "cuda"
    assert device_for(cnn_spec("auto"), None) == ("cuda", None)


@pytest.mark.cuda
@pytest.mark.parametrize("target", ["export", "export-strict", "onnx"])
def test_sweep__exports_and_verifies_a_model_on_cuda(target):
    prepared = prepare_model(cnn_spec("cuda"), device="cuda", settings=SETTINGS)
    first_param = next(prepared.model.parameters())
    assert first_param.device.type == "cuda"
    job = sweep_target(prepared, target, settings=SETTINGS)
    assert job.device == "cuda"
    assert job.verdict == Verdict.OK, job.root


@pytest.mark.cuda
def test_sweep__finds_the_bad_block_on_cuda():
    spec = ModelSpec(
        name="stacked",
        factory="exportwatch.examples.models:StackedEncoder",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 16])]),
        device="cuda",
    )
    job = sweep_target(prepare_model(spec, device="cuda", settings=SETTINGS), "export", settings=SETTINGS)
    assert job.submodule("encoder.5").verdict == Verdict.FAIL
