"""When publish cannot read the sweep's reports, the job summary still says what happened and
how to try again (``github.publish.unpublished_summary``)."""

from __future__ import annotations

import re

from exportwatch.github.publish import unpublished_summary

SWEEP = "https://github.com/o/r/actions/runs/111"
PUBLISH = "https://github.com/o/r/actions/runs/222"


def test_unpublished_summary__says_what_happened_and_how_to_rerun():
    text = unpublished_summary(
        "artifact 'exportwatch-report': GitHub answered 502 Bad Gateway",
        artifact="exportwatch-report",
        sweep_run_url=SWEEP,
        publish_run_url=PUBLISH,
    )
    assert text.startswith("## exportwatch: nothing published\n")
    assert f"[the sweep's run]({SWEEP})" in text and "`exportwatch-report`" in text
    assert "502 Bad Gateway" in text
    assert f"[this run]({PUBLISH})" in text and "`gh run rerun 222 --failed`" in text
    assert "re-run the sweep's workflow" in text


def test_unpublished_summary__quotes_the_error_inert():
    """The error may quote GitHub's or a proxy's answer: no mention, reference or markup."""
    text = unpublished_summary(
        "HTTP 500: <img src=x> @octocat #12 [x](https://evil.example)",
        artifact="exportwatch-report",
        sweep_run_url=None,
        publish_run_url=None,
    )
    quoted = next(line for line in text.splitlines() if line.startswith("> "))
    assert re.search(r"(?<!\\)[<\[]", quoted) is None  # every < and [ escaped: no tag, no link
    assert "@octocat" not in quoted and "#12" not in quoted  # joined: no mention, no reference
    assert "`gh run rerun RUN_ID --failed`" in text
