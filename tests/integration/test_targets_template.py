"""The attempt template every target shares (``targets/base.py``): one flow, hooks per target.

The targets here are small real ones (``torch.export`` underneath, no mocks of the template):
each test breaks one step on purpose and checks what the flow makes of it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch

from exportwatch.report import Verdict
from exportwatch.targets import get_target
from exportwatch.targets.base import (
    Attempt,
    Call,
    Outcome,
    Runner,
    Stage,
    Target,
    TargetOptions,
    TraceShelf,
)
from exportwatch.targets.verify import NumericMismatchError

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
X = torch.randn(2, 3)


class Doubles(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class BranchesOnData(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x + 1
        return x - 1


def broken_check(program: Any) -> None:
    raise ValueError("the program has an odd node")


class Exported(Target[Any]):
    """``torch.export`` and ``ep.module()``; what the tests break is chosen per instance."""

    name = "test-exported"

    def __init__(self, **breaks: Any) -> None:
        self.breaks = breaks

    def capture(self, job: Attempt) -> Any:
        if self.breaks.get("outside_a_stage"):
            raise IndexError("exportwatch's own bug")
        with job.stage(Stage.CAPTURE):
            program = torch.export.export(job.module, job.example.args, job.example.kwargs)
        job.artifact = program
        job.attach("nodes", len(program.graph.nodes))
        held = job.hold(open(job.scratch() / "held.txt", "w"))  # noqa: SIM115 (closed by the attempt)
        self.breaks.setdefault("seen", []).append((held, job.scratch()))
        return program

    def check(self, job: Attempt, exported: Any) -> None:
        if self.breaks.get("check"):
            with job.stage(Stage.CHECKER):
                broken_check(exported)

    def unverifiable(self, job: Attempt) -> str | None:
        return self.breaks.get("unverifiable")

    def load(self, job: Attempt, exported: Any) -> Runner:
        if self.breaks.get("load"):
            raise AssertionError("load must not run")
        module = exported.module()
        offset = self.breaks.get("offset", 0.0)
        raise_on = self.breaks.get("raise_on")

        def run(call: Call) -> Any:
            if raise_on is not None and call is raise_on:
                raise RuntimeError("the runtime rejected this input\nsecond line")
            return module(*call.args, **call.kwargs) + offset

        return run

    def keep(self, job: Attempt, directory: Path) -> None:
        if self.breaks.get("keep_raises"):
            raise OSError("disk full")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{job.options.artifact_name}.txt").write_text(str(job.artifact.graph))


def test_template__passes_and_attaches_what_the_target_recorded() -> None:
    checks = [("other", Call(args=(X * 3,)))]
    outcome = Exported().attempt(Doubles(), Call(args=(X,)), checks=checks, options=TargetOptions())
    assert outcome == Outcome.ok(extras={"nodes": 3})
    assert outcome.verdict is Verdict.OK and outcome.stage is None and outcome.error is None
    assert dict(outcome.extras) == {"nodes": 3}  # x, mul, output


def test_template__a_failed_step_records_its_stage_and_the_exception_with_an_untouched_traceback() -> None:
    outcome = Exported(check=True).attempt(Doubles(), Call(args=(X,)), options=TargetOptions())
    assert (outcome.verdict, outcome.stage) == (Verdict.FAIL, Stage.CHECKER)
    assert isinstance(outcome.error, ValueError) and str(outcome.error) == "the program has an odd node"
    frames = traceback.extract_tb(outcome.error.__traceback__)
    # From the hook's frame to the raise: the template adds no frame (the diagnosis reads them).
    assert [f.name for f in frames] == ["check", "broken_check"]
    assert outcome.error.__cause__ is None and outcome.error.__context__ is None


def test_template__a_capture_failure_keeps_the_exporters_own_chain() -> None:
    outcome = Exported().attempt(BranchesOnData(), Call(args=(torch.ones(3),)), options=TargetOptions())
    assert (outcome.verdict, outcome.stage) == (Verdict.FAIL, Stage.CAPTURE)
    assert type(outcome.error).__module__.startswith("torch")
    assert dict(outcome.extras) == {}  # attached after the step that failed


def test_template__an_exception_outside_a_stage_escapes_as_exportwatchs_own_bug() -> None:
    with pytest.raises(IndexError, match="exportwatch's own bug"):
        Exported(outside_a_stage=True).attempt(Doubles(), Call(args=(X,)), options=TargetOptions())


def test_template__verifies_every_input_set_and_the_first_disagreement_decides() -> None:
    checks = [("small", Call(args=(X,))), ("large", Call(args=(X * 100,)))]
    outcome = Exported(offset=0.5).attempt(Doubles(), Call(args=(X,)), checks=checks, options=TargetOptions())
    assert (outcome.verdict, outcome.stage) == (Verdict.MISMATCH, Stage.ACCURACY)
    assert outcome.mismatch is not None and outcome.mismatch.input_set == "example"
    assert isinstance(outcome.error, NumericMismatchError) and outcome.error.mismatch == outcome.mismatch


def test_template__a_runner_that_raises_is_a_runtime_mismatch_naming_the_input_set() -> None:
    second = Call(args=(X + 1,))
    outcome = Exported(raise_on=second).attempt(
        Doubles(), Call(args=(X,)), checks=[("second", second)], options=TargetOptions()
    )
    assert (outcome.verdict, outcome.stage) == (Verdict.MISMATCH, Stage.RUNTIME)
    assert outcome.mismatch is not None
    assert outcome.mismatch.message == (
        "input set 'second': the exported program raised RuntimeError: the runtime rejected this input"
    )
    assert isinstance(outcome.error, RuntimeError)


def test_template__an_input_set_eager_rejects_is_noted_not_verified() -> None:
    wrong = Call(args=(torch.ones(2, 3), torch.ones(1)))  # Doubles takes one argument
    outcome = Exported().attempt(
        Doubles(), Call(args=(X,)), checks=[("wrong", wrong)], options=TargetOptions()
    )
    assert outcome.verdict is Verdict.OK
    assert len(outcome.warnings) == 1
    assert outcome.warnings[0].startswith("input set 'wrong': eager forward raised TypeError")


def test_template__verification_off_or_unavailable_never_loads() -> None:
    off = Exported(load=True).attempt(Doubles(), Call(args=(X,)), options=TargetOptions(verify=False))
    assert off == Outcome.ok(extras={"nodes": 3})
    phases: list[str] = []
    unavailable = Exported(load=True, unverifiable="no runtime here").attempt(
        Doubles(), Call(args=(X,)), options=TargetOptions(report_phase=phases.append)
    )
    assert unavailable == Outcome.ok(["no runtime here"], extras={"nodes": 3})
    assert phases == []  # no "verification" phase was entered
    Exported().attempt(Doubles(), Call(args=(X,)), options=TargetOptions(report_phase=phases.append))
    assert phases == ["verification"]


def test_template__keeps_artifacts_of_a_failed_attempt_only(tmp_path: Path) -> None:
    passed = Exported().attempt(
        Doubles(), Call(args=(X,)), options=TargetOptions(artifacts_dir=tmp_path / "ok", artifact_name="m")
    )
    assert passed.verdict is Verdict.OK and not (tmp_path / "ok").exists()
    failed = Exported(offset=1.0).attempt(
        Doubles(), Call(args=(X,)), options=TargetOptions(artifacts_dir=tmp_path / "bad", artifact_name="m")
    )
    assert failed.verdict is Verdict.MISMATCH
    assert "aten.mul" in (tmp_path / "bad" / "m.txt").read_text()


def test_template__an_artifact_that_cannot_be_kept_costs_nothing_but_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = Exported(offset=1.0, keep_raises=True).attempt(
        Doubles(), Call(args=(X,)), options=TargetOptions(artifacts_dir=tmp_path)
    )
    assert (kept.verdict, kept.stage) == (Verdict.MISMATCH, Stage.ACCURACY)
    assert "could not keep test-exported artifacts" in caplog.text


def test_template__what_a_hook_held_and_its_scratch_are_gone_when_the_attempt_ends() -> None:
    target = Exported()
    target.attempt(Doubles(), Call(args=(X,)), options=TargetOptions())
    ((held, scratch),) = target.breaks["seen"]
    assert held.closed and not scratch.exists()


def test_outcome__is_frozen_and_its_equality_ignores_the_live_exception() -> None:
    first = Outcome.failed(Stage.CAPTURE, ValueError("a"), ["note"])
    assert first == Outcome.failed(Stage.CAPTURE, KeyError("b"), ("note",))
    assert "ValueError" not in repr(first)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.stage = Stage.RUNTIME  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.extras["late"] = 1  # type: ignore[index]


def test_stage__reads_as_the_plain_name_a_report_records() -> None:
    assert Stage.CAPTURE == "capture" and str(Stage.RUNTIME) == "runtime"
    assert f"{Stage.ACCURACY}" == "accuracy" and f"{Stage.CHECKER:>8}" == " checker"
    assert json.dumps({"stage": Stage.CHECKER}) == '{"stage": "checker"}'
    assert Stage("translation") is Stage.TRANSLATION


class FromEarlierCapture(Exported):
    """A later target that starts from the ``export`` target's capture, as ONNX does."""

    name = "test-from-capture"

    def capture(self, job: Attempt) -> Any:
        assert job.options.traces is not None
        shared = job.options.traces.take(job.module, job.example)
        job.attach("reused", shared is not None)
        if shared is not None:
            return shared.program
        return super().capture(job)


def test_template__a_target_can_start_from_an_earlier_targets_capture() -> None:
    module, example = Doubles().eval(), Call(args=(X,))
    shelf = TraceShelf(lambda m: tuple(p._version for p in m.parameters()))
    options = TargetOptions(traces=shelf)
    first = get_target("export").attempt(module, example, options=options)
    assert first.verdict is Verdict.OK
    later = FromEarlierCapture().attempt(module, example, options=options)
    assert later.verdict is Verdict.OK and dict(later.extras) == {"reused": True}
    again = FromEarlierCapture().attempt(module, example, options=options)
    assert dict(again.extras) == {"reused": False, "nodes": 3}  # handed on once, then traced anew


def _guide_example() -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Adding a target", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the guide shows its example class in a python block"
    return blocks[0]


@pytest.mark.slow  # core ATen decompositions: about 2 s the first time in a process
def test_guide__the_example_target_in_the_architecture_guide_runs_as_written(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "guide_example"}
    exec(compile(_guide_example(), str(ARCHITECTURE), "exec"), namespace)  # our own docs
    target_class = next(
        value
        for value in namespace.values()
        if isinstance(value, type) and issubclass(value, Target) and value is not Target
    )
    target = target_class()
    checks = [("x3", Call(args=(X * 3,)))]
    assert target.attempt(Doubles(), Call(args=(X,)), checks=checks, options=TargetOptions()) == Outcome.ok()
    failed = target.attempt(BranchesOnData(), Call(args=(torch.ones(3),)), options=TargetOptions())
    assert (failed.verdict, failed.stage) == (Verdict.FAIL, Stage.CAPTURE)
