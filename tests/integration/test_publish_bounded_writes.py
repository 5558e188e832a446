"""Publishing at monorepo scale against the local fake GitHub: a report with thousands of failing
cells costs a bounded number of API writes, the job summary stays under GitHub's 1 MiB, and a
publish that leaves nothing on GitHub can fail the job (``fail-on-publish-error``)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.action import main as action
from exportwatch.action.decide import render_context
from exportwatch.action.main import ModeOutcome, conclude
from exportwatch.diff import diff_reports, gate
from exportwatch.github.client import ClientSettings
from exportwatch.github.config import ActionConfig
from exportwatch.github.publish import MAX_API_WRITES_PER_PUBLISH, MAX_STEP_SUMMARY_BYTES
from exportwatch.render.markdown import render_summary
from tests.factories import base_report, job, ok, report, sub
from tests.fakegithub import FakeGitHub, events
from tests.unit.test_fuzz_report_inputs import artifact

REPO = "octo/vision"
HEAD = "1" * 40
REFUSED = {"message": "Resource not accessible by integration"}
FAST = ClientSettings(
    retries=1, backoff_factor=0.01, backoff_max=0.05, secondary_rate_wait=0.1, retry_after_max=1,
    seconds_between_writes=0, timeout=10,
)  # fmt: skip
#: Failing cells in the large report, and the distinct failures (fingerprint × line) among them.
CELLS = 2_000
DISTINCT = 600


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        server.add_pull(REPO, 7, head_sha=HEAD)
        yield server
    assert server.violations == [], "requests GitHub's OpenAPI description does not allow"


def config_for(fake: FakeGitHub, tmp: Path, **inputs: str) -> ActionConfig:
    env = {
        "INPUT_GITHUB-TOKEN": fake.token,
        "INPUT_COMMENT": "always",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": fake.server_url,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_OUTPUT": str(tmp / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
        "GITHUB_WORKSPACE": str(tmp),
    }
    return ActionConfig.from_env(env | {f"INPUT_{k.upper()}": v for k, v in inputs.items()})


def writes(fake: FakeGitHub) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]


@pytest.fixture(scope="module")
def broken_layer():
    """A torch upgrade that breaks shared layers: 2,000 models fail, 600 distinct failures, each
    with a long hostile message (the cells of one failure share its fingerprint, file and line)."""

    def failing_model(i: int):
        cause = i % DISTINCT
        root = sub(
            "", "fail", fp=f"fp-{cause}", frame=f"models/layer{cause}.py:{10 + cause % 7}",
            message=f"<img src=x> #{cause} failed " + "層 " * 100, detail="frame\n" * 200,
        )  # fmt: skip
        return job(f"model{i:05d}", "export", root)

    head = report(*(failing_model(i) for i in range(CELLS)))
    base = base_report(*(ok(f"model{i:05d}") for i in range(CELLS)))
    changes = diff_reports(base, head)
    return changes, gate(changes, "regression")


@pytest.mark.parametrize("cap", ["50", "500"])
def test_publish__thousands_of_failing_cells_cost_a_bounded_number_of_writes(
    fake, tmp_path, broken_layer, cap
):
    changes, result = broken_layer
    config = config_for(fake, tmp_path, **{"max-annotations": cap})
    outcome = ModeOutcome(changes=changes, result=result, pr_number=7, sha=HEAD)
    out = io.StringIO()
    code = conclude(config, outcome, out=out, settings=replace(FAST, api_url=fake.api_url))
    assert code == 1, out.getvalue()
    sent = writes(fake)
    assert len(sent) <= MAX_API_WRITES_PER_PUBLISH, sent
    (check,) = fake.check_runs(REPO)
    annotations = check["annotations"]
    assert len(annotations) == int(cap), "one annotation per distinct failure, up to the cap"
    assert len({(a["path"], a["start_line"]) for a in annotations}) == int(cap), "no failure twice"
    assert f"and {DISTINCT - int(cap)} more" in check["output"]["summary"]
    assert len(fake.comments(REPO, 7)) == 1
    # the writes: one comment, one check run, one update per further 50 annotations
    assert len(sent) == 2 + (int(cap) - 1) // 50


def test_publish__a_failure_in_many_cells_is_one_annotation_that_counts_them(fake, tmp_path, broken_layer):
    changes, result = broken_layer
    config = config_for(fake, tmp_path, **{"max-annotations": "1"})
    outcome = ModeOutcome(changes=changes, result=result, pr_number=None, sha=HEAD)
    conclude(config, outcome, out=io.StringIO(), settings=replace(FAST, api_url=fake.api_url))
    ((annotation,),) = [c["annotations"] for c in fake.check_runs(REPO)]
    others = CELLS // DISTINCT  # 2,000 cells over 600 causes: each cause in 3 or 4 models
    assert f"and {others - 1} more" in annotation["title"] or f"and {others} more" in annotation["title"]
    assert "more place(s)" in annotation["message"]


def test_summary__over_a_mebibyte_is_cut_at_a_line_with_a_cut_here_line(fake, tmp_path, broken_layer):
    """The step's summary file already holds 700 kB (another part of the step wrote it): what
    exportwatch appends is cut so the whole stays under GitHub's 1 MiB, and says where the rest is."""
    changes, result = broken_layer
    earlier = "earlier part of this step\n" * 27_000  # 702 kB
    (tmp_path / "summary.md").write_text(earlier)
    config = config_for(fake, tmp_path)
    outcome = ModeOutcome(changes=changes, result=result, pr_number=7, sha=HEAD)
    code = conclude(config, outcome, out=io.StringIO(), settings=replace(FAST, api_url=fake.api_url))
    assert code == 1
    data = (tmp_path / "summary.md").read_bytes()
    assert len(data) <= MAX_STEP_SUMMARY_BYTES
    text = data.decode("utf-8")  # never half a character
    assert text.startswith(earlier)
    ours = text[len(earlier) :].rstrip("\n").split("\n")
    assert ours[-1].startswith("**✂ cut here: the full report is in the artifact `exportwatch-report`**")
    full = render_summary(changes, result, context=render_context(config, sha=HEAD)).split("\n")
    kept = ours[:-2]  # before the blank line and the cut line (and any closer of an open block)
    while kept and kept[-1] in ("</details>", "```", ""):
        kept.pop()
    assert len(kept) > 100 and kept == full[: len(kept)], "cut at a line of the summary, none changed"


def test_fail_on_publish_error__mode_publish_fails_when_every_write_is_refused(fake, tmp_path):
    """A passing gate, a token GitHub refuses every write for: in mode publish (auto) the job
    fails with one error line; with the input false it passes with warnings, as before."""
    head, base = report(ok("cnn")), base_report(ok("cnn"))
    fake.add_workflow_run(REPO, 500, head_sha=HEAD)
    fake.add_artifact(
        REPO, 500, "exportwatch-report", artifact(head.to_json().encode(), base.to_json().encode(), "none")
    )
    for method in ("POST", "PATCH"):
        fake.inject(method, ".*", 403, times=10_000, body=REFUSED)

    def publish(tmp: Path, **inputs: str) -> tuple[int, str]:
        tmp.mkdir()
        event = events.write(tmp, events.workflow_run(repo=REPO, run_id=500, head_sha=HEAD))
        env = {
            "INPUT_MODE": "publish",
            "INPUT_COMMENT": "always",
            "INPUT_GITHUB-TOKEN": fake.token,
            "GITHUB_EVENT_NAME": "workflow_run",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": fake.api_url,
            "GITHUB_SERVER_URL": fake.server_url,
            "GITHUB_RUN_ID": "501",
            "GITHUB_OUTPUT": str(tmp / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
            "GITHUB_WORKSPACE": str(tmp),
        } | {f"INPUT_{k.upper()}": v for k, v in inputs.items()}
        out = io.StringIO()
        code = action.main(env=env, out=out, settings=replace(FAST, api_url=fake.api_url))
        return code, out.getvalue()

    code, log = publish(tmp_path / "auto")
    assert code == 2, log
    errors = [line for line in log.splitlines() if line.startswith("::error::")]
    assert len(errors) == 1 and "nothing was published" in errors[0], log
    assert "Traceback" not in log
    assert (tmp_path / "auto" / "summary.md").read_text(), "the job summary is still written"
    assert fake.check_runs(REPO) == [] and fake.comments(REPO, 7) == []
    assert writes(fake), "the writes were tried"

    code, log = publish(tmp_path / "off", **{"fail-on-publish-error": "false"})
    assert code == 0, log
    assert not [line for line in log.splitlines() if line.startswith("::error::")]
    assert "::warning::exportwatch: cannot create check run" in log


def test_fail_on_publish_error__full_mode_passes_by_default_and_fails_when_asked(fake, tmp_path):
    """A fork's read-only token in mode full: by default the gate decides (0); set true, exit 2."""
    for method in ("POST", "PATCH"):
        fake.inject(method, ".*", 403, times=10_000, body=REFUSED)
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn")))
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=HEAD)
    settings = replace(FAST, api_url=fake.api_url)
    (tmp_path / "default").mkdir()
    (tmp_path / "strict").mkdir()
    default = config_for(fake, tmp_path / "default")
    assert conclude(default, outcome, out=io.StringIO(), settings=settings) == 0
    strict = config_for(fake, tmp_path / "strict", **{"fail-on-publish-error": "true"})
    out = io.StringIO()
    assert conclude(strict, outcome, out=out, settings=settings) == 2
    assert "::error::exportwatch: nothing was published" in out.getvalue()


def test_fail_on_publish_error__a_check_run_alone_is_a_trace(fake, tmp_path):
    """Only the comment refused: the check run says the result, so nothing fails."""
    fake.inject("POST", r"/comments$", 403, times=100, body=REFUSED)
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn")))
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=HEAD)
    config = config_for(fake, tmp_path, **{"fail-on-publish-error": "true"})
    assert conclude(config, outcome, out=io.StringIO(), settings=replace(FAST, api_url=fake.api_url)) == 0
    assert len(fake.check_runs(REPO)) == 1
