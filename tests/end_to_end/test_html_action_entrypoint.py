"""The HTML report through the action as the runner starts it (issue 18, part 2): the page lies
beside the head report, the ``html-report`` output names it, and the comment and the job summary
link to its artifact only when the workflow says it uploads one (``html-artifact``), and only
through the trusted run's URL.

Publish mode needs no torch and no sweep, so most cases run it against the local fake GitHub;
one case sweeps for real (``mode: sweep``, the untrusted half).
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.end_to_end.test_entrypoint import FORK, REPO, Run, make_checkout, pr_payload, run_action
from tests.factories import RUN_URL, base_report, failing, job, ok, report, sub
from tests.fakegithub import FakeGitHub, events

pytestmark = pytest.mark.slow

HEAD_SHA = "d" * 40
HTML_ARTIFACT = {"INPUT_HTML-ARTIFACT": "exportwatch-html"}


class Page(HTMLParser):
    """What a browser would find in the page: its tags (balanced or not) and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
    assert server.violations == []


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The runner's usual umask, so "0644" is what a plain ``open`` gives the action's files."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def publish_run(
    tmp_path: Path, fake: FakeGitHub, *, extra_env: dict[str, str] | None = None
) -> tuple[Run, Path]:
    """The trusted half on an artifact whose head breaks ``stacked_encoder`` (base: it exports)."""
    fake.add_pull(REPO, 7, head_sha=HEAD_SHA, head_ref="feature", head_repo=FORK)
    fake.add_workflow_run(REPO, 9101, head_sha=HEAD_SHA, head_branch="feature", head_repo=FORK)
    broken = failing("stacked_encoder", origin_path="encoder.5")
    broken.submodules.append(sub("embed", "covered", module_type="Embedding"))
    head = report(broken, ok("mlp"))
    base = base_report(job("stacked_encoder", "export", sub("", "ok")), ok("mlp"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("exportwatch-report.json", head.to_json())
        zf.writestr("exportwatch-report.base.json", base.to_json())
    fake.add_artifact(REPO, 9101, "exportwatch-report", buffer.getvalue())
    trusted = tmp_path / "trusted"
    trusted.mkdir(exist_ok=True)
    run = run_action(
        trusted, fake, event_name="workflow_run",
        payload=events.workflow_run(repo=REPO, run_id=9101, head_sha=HEAD_SHA, head_repo=FORK),
        sha="f" * 40, inputs={"mode": "publish"}, token=fake.token, extra_env=extra_env,
    )  # fmt: skip
    return run, trusted


def this_run(fake: FakeGitHub) -> str:
    return f"{fake.server_url}/{REPO}/actions/runs/777"  # GITHUB_RUN_ID in run_action


def test_html_action__publish_writes_the_page_beside_the_report_and_links_its_artifact_from_the_run(
    tmp_path, fake, umask_022
):
    run, trusted = publish_run(tmp_path, fake, extra_env=HTML_ARTIFACT)

    assert run.done.returncode == 1, run.log
    assert run.outputs["verdict"] == "failed" and run.outputs["regressions"] == "1"
    assert run.outputs["html-report"] == "exportwatch-report.html"
    page_file = trusted / "exportwatch-report.html"
    assert stat.S_IMODE(page_file.stat().st_mode) == 0o644, "later steps run as the runner user"
    page = parse_page(page_file)
    assert page.doctype.lower() == "doctype html"
    assert {"html", "head", "body", "details"} <= set(page.tags)
    assert "stacked_encoder" in "".join(page.text) and "encoder.5" in "".join(page.text)
    link = f"🌳 HTML report: in the `exportwatch-html` artifact of [this run]({this_run(fake)})"
    (comment,) = fake.comments(REPO, 7)
    assert link in comment["body"]
    assert link in run.summary
    for text in (comment["body"], run.summary):  # the report's own run_url is text, never a link
        assert f"]({RUN_URL})" not in text
    # the job summary's tree: the failing branch, collapsed, without the covered sibling
    tree = run.summary.split("<details><summary>stacked_encoder · export</summary>", 1)[1]
    tree = tree.split("</details>", 1)[0]
    assert "encoder.5 (Block) · data-dependent-control-flow  ◀ origin [regression]" in tree
    assert "embed" not in tree


def test_html_action__without_the_html_artifact_input_the_page_is_written_but_nothing_links_it(
    tmp_path, fake, umask_022
):
    run, trusted = publish_run(tmp_path, fake)

    assert run.done.returncode == 1, run.log
    assert run.outputs["html-report"] == "exportwatch-report.html"
    assert (trusted / "exportwatch-report.html").is_file()
    (comment,) = fake.comments(REPO, 7)
    for text in (comment["body"], run.summary):
        assert "HTML report" not in text and "exportwatch-html" not in text


def test_html_action__a_page_that_cannot_be_written_is_one_warning_and_keeps_the_verdict(tmp_path, fake):
    (tmp_path / "trusted" / "exportwatch-report.html").mkdir(parents=True)  # in the way

    run, _ = publish_run(tmp_path, fake, extra_env=HTML_ARTIFACT)

    assert run.done.returncode == 1, run.log
    assert run.outputs["verdict"] == "failed" and run.outputs["html-report"] == ""
    (warning,) = [line for line in run.done.stdout.splitlines() if "HTML report" in line]
    assert warning.startswith("::warning::exportwatch: exportwatch-report.html: cannot write the HTML report")
    assert len(fake.comments(REPO, 7)) == 1 and len(fake.check_runs(REPO)) == 1


def test_html_action__sweep_mode_writes_the_page_of_head_and_base_and_talks_to_no_api(
    tmp_path, fake, umask_022
):
    checkout = make_checkout(tmp_path / "workspace")

    run = run_action(
        checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout, head_repo=FORK),
        sha=checkout.head, inputs={"mode": "sweep", "workers": "1", "github-token": ""}, token=None,
        extra_env=HTML_ARTIFACT,
    )  # fmt: skip

    assert run.done.returncode == 0, run.log
    assert run.outputs["verdict"] == "swept" and run.outputs["html-report"] == "exportwatch-report.html"
    page_file = checkout.path / "exportwatch-report.html"
    assert stat.S_IMODE(page_file.stat().st_mode) == 0o644
    text = "".join(parse_page(page_file).text)
    assert "gated" in text and "mlp" in text
    assert "base" in text.lower()  # drawn with the base report: a regression to show
    assert f"[this run]({this_run(fake)})" in run.summary
    assert "<details><summary>gated · export</summary>" in run.summary
    assert "<details><summary>mlp · export</summary>" not in run.summary, "it exports: no tree"
    assert fake.requests == [], "the untrusted half talks to no API"
