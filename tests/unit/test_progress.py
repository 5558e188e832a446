"""Progress output: one line per job in CI logs, a live status line on a terminal."""

from __future__ import annotations

import io
import re
from dataclasses import replace

from exportwatch.report import JobResult, Report, SubmoduleResult, Verdict
from exportwatch.sweep.progress import Progress, sweep_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def job(model: str, verdict: Verdict, *failing: str) -> JobResult:
    subs = [SubmoduleResult(path="", module_type="M", verdict=verdict)]
    subs += [SubmoduleResult(path=p, module_type="B", verdict=Verdict.FAIL, origin=True) for p in failing]
    return JobResult(model=model, target="export", device="cpu", verdict=verdict, duration_s=1.25,
                     submodules=subs)  # fmt: skip


def test_progress__prints_one_plain_line_per_job_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(total=2, stream=stream)
    progress.start("cnn", "export")
    progress.result(job("cnn", Verdict.OK))
    progress.result(job("enc", Verdict.FAIL, "encoder.5"))
    assert stream.getvalue().splitlines() == [
        "[1/2] cnn · export · cpu: ok in 1.2s",
        "[2/2] enc · export · cpu: FAIL, 2 failing submodules in 1.2s",
    ]
    assert "\r" not in stream.getvalue()


def test_progress__keeps_a_live_line_of_running_jobs_on_a_terminal():
    stream = Terminal()
    progress = Progress(total=3, stream=stream)
    progress.start("cnn", "export")
    assert "running cnn · export" in stream.getvalue()
    progress.result(job("cnn", Verdict.OK))
    progress.close()
    text = stream.getvalue()
    assert "\r\x1b[2K" in text  # the live line is rewritten in place
    assert "[1/3] cnn · export · cpu: ok" in text


def test_progress__quiet_prints_nothing():
    stream = Terminal()
    progress = Progress(total=1, stream=stream, quiet=True)
    progress.start("cnn", "export")
    progress.result(job("cnn", Verdict.OK))
    assert stream.getvalue() == ""


def test_sweep_table__names_origins_and_marks_xfail():
    failing = job("enc", Verdict.FAIL, "encoder.5")
    failing.xfail = "known"
    table = sweep_table(Report(jobs=[job("cnn", Verdict.OK), failing]))
    lines = table.splitlines()
    assert lines[0].split() == ["model", "target", "device", "verdict", "failing", "submodules", "time"]
    assert "fail (xfail)" in lines[3] and "encoder.5" in lines[3]


def test_sweep_table__says_root_when_only_the_whole_model_fails():
    table = sweep_table(Report(jobs=[job("router", Verdict.FAIL)]))
    assert "(root)" in table.splitlines()[2]


def test_progress__prints_each_warning_once_when_it_closes_after_the_job_lines():
    stream = io.StringIO()
    progress = Progress(total=1, stream=stream)
    progress.warning("m.yml:9: expect.xfail names submodule 'encoder.50'")
    progress.warning("m.yml:9: expect.xfail names submodule 'encoder.50'")  # a restarted process
    progress.result(job("enc", Verdict.OK))
    assert "warning" not in stream.getvalue()
    progress.close()
    progress.close()
    assert stream.getvalue().splitlines() == [
        "[1/1] enc · export · cpu: ok in 1.2s",
        "warning: m.yml:9: expect.xfail names submodule 'encoder.50'",
    ]


def test_progress__a_reason_given_replaces_the_job_s_own():
    stream = io.StringIO()
    skipped = job("cnn", Verdict.SKIPPED)
    skipped.reason = "configuration error: models.yml:4:14: models[0].factory: a long message"
    Progress(total=1, stream=stream).result(skipped, reason="configuration error, below")
    assert stream.getvalue() == "[1/1] cnn · export · cpu: skipped (configuration error, below) in 1.2s\n"


def test_progress__the_live_line_says_lowering_while_the_executorch_target_lowers():
    stream = Terminal()
    progress = Progress(total=2, stream=stream)
    progress.start("cnn", "executorch")
    progress.phase("cnn", "executorch", "lowering")
    assert progress.doing("cnn", "executorch") == "lowering…"
    live = stream.getvalue().rsplit("\r\x1b[2K", 1)[-1]  # the live line as the terminal shows it
    assert re.search(r"running cnn · executorch \(\d+s, lowering…\)$", live), live
    progress.phase("cnn", "executorch", "verification")
    assert re.search(r"\(\d+s, verifying…\)$", stream.getvalue().rsplit("\r\x1b[2K", 1)[-1])
    progress.result(replace(job("cnn", Verdict.OK), target="executorch"))
    assert progress.doing("cnn", "executorch") is None  # the job is over: nothing said about it
    progress.close()


def test_progress__a_phase_of_a_job_not_running_or_not_worth_a_word_changes_nothing():
    stream = Terminal()
    progress = Progress(total=1, stream=stream)
    progress.phase("cnn", "executorch", "lowering")  # no such job running
    progress.start("cnn", "executorch")
    progress.phase("cnn", "executorch", "build")  # before any target: not a word of the live line
    assert progress.doing("cnn", "executorch") is None
    assert "lowering" not in stream.getvalue()


def test_progress__a_log_gets_no_line_per_phase():
    stream = io.StringIO()
    progress = Progress(total=1, stream=stream)
    progress.start("cnn", "executorch")
    progress.phase("cnn", "executorch", "lowering")
    assert stream.getvalue() == ""  # one line per job in CI logs, none per phase


def test_pool__a_phase_of_the_running_target_is_news_for_the_progress_line(tmp_path):
    """The model's process sends ``Phase("lowering", path)``; the pool tells its caller which
    target it belongs to, and the runner hands that to ``Progress.phase``."""
    from exportwatch.manifest import InputsSpec, ModelSpec
    from exportwatch.plan import Unit
    from exportwatch.sweep.protocol import News, Phase, TargetPhase, TargetStarted
    from exportwatch.sweep.settings import SweepSettings
    from exportwatch.sweep.workers import WorkerPool, _Running

    news: list[News] = []
    pool = WorkerPool(
        size=1,
        settings=SweepSettings(manifest_root=tmp_path, repo_root=tmp_path, log_dir=tmp_path),
        on_event=news.append,
    )
    spec = ModelSpec(name="cnn", factory="m.py:Net", inputs=InputsSpec())
    running = _Running(
        token=1,
        unit=Unit(spec=spec, targets=["export", "executorch"], device="cpu", order=0),
        conn=None,  # type: ignore[arg-type]  # _handle never reads the pipe
        log_path=None,
        launched=0.0,
        deadline=0.0,
    )
    pool._handle(running, Phase("build"))  # before any target: no news
    pool._handle(running, TargetStarted("executorch"))
    pool._handle(running, Phase("lowering", "features"))
    assert news[-1] == News("cnn", TargetPhase("executorch", "lowering", "features"))
    assert [n.event for n in news if isinstance(n.event, TargetPhase)] == [news[-1].event]
