"""What the action publishes, decided as data: one annotation per distinct failure, the cap, when
publishing counts as failed, the inputs that set them, and the job summary's 1 MiB cut."""

from __future__ import annotations

import pytest

from exportwatch.action.decide import annotations_for, check_annotations, nothing_published
from exportwatch.diff import diff_reports, gate
from exportwatch.github.config import ActionConfig, ActionConfigError
from exportwatch.github.publish import Annotation, cut_summary, more_annotations_note, utf8_size
from exportwatch.render.escape import md_text
from tests.factories import base_report, job, ok, report, sub


def failing(model: str, *, fp: str, frame: str):
    return job(model, "export", sub("", "fail", fp=fp, frame=frame, message=f"{fp} broke"))


def test_annotations_for__one_per_fingerprint_and_line_counting_the_other_places():
    models = [f"m{i}" for i in range(6)]
    head = report(
        *(failing(m, fp="shared", frame="models/layer.py:10") for m in models[:4]),
        failing("m4", fp="shared", frame="models/other.py:3"),  # same cause, another line
        failing("m5", fp="own", frame="models/layer.py:10"),  # another cause, same line
    )
    changes = diff_reports(base_report(*(ok(m) for m in models)), head)
    annotations = annotations_for(changes, gate(changes, "regression"))
    assert sorted((a.path, a.start_line, a.message.split("\n")[0]) for a in annotations) == [
        ("models/layer.py", 10, "own broke"),
        ("models/layer.py", 10, "shared broke"),
        ("models/other.py", 3, "shared broke"),
    ]
    (shared,) = [a for a in annotations if a.path == "models/layer.py" and "shared" in a.message]
    assert "and 3 more" in (shared.title or "")
    assert "The same failure in 3 more place(s)." in shared.message
    (own,) = [a for a in annotations if "own" in a.message]
    assert "more" not in (own.title or "") and "more place" not in own.message


def test_check_annotations__keeps_the_first_on_repository_files_and_counts_the_rest():
    placed = [Annotation(path=f"f{i}.py", start_line=1, message="x") for i in range(7)]
    nowhere = Annotation(path=None, start_line=1, message="x")  # only the log can show it
    shown, left_out = check_annotations([placed[0], nowhere, *placed[1:]], limit=5)
    assert shown == placed[:5] and left_out == 2
    assert check_annotations(placed, limit=0) == ([], 7)
    assert check_annotations(placed, limit=50) == (placed, 0)


def test_more_annotations_note__says_and_n_more_only_when_some_were_left_out():
    assert more_annotations_note(0, annotated=50) == ""
    note = more_annotations_note(650, annotated=50)
    assert "50 distinct failure(s) annotated, and 650 more" in note and "max-annotations" in note


def test_nothing_published__only_when_tried_and_neither_comment_nor_check_landed():
    assert nothing_published(attempted=True, comment_url="", check_created=False)
    assert not nothing_published(attempted=True, comment_url="https://x/c/1", check_created=False)
    assert not nothing_published(attempted=True, comment_url="", check_created=True)
    assert not nothing_published(attempted=False, comment_url="", check_created=False)


def test_config__max_annotations_defaults_to_50_and_stays_within_0_to_500():
    assert ActionConfig.from_env({}).max_annotations == 50
    assert ActionConfig.from_env({"INPUT_MAX-ANNOTATIONS": ""}).max_annotations == 50
    assert ActionConfig.from_env({"INPUT_MAX-ANNOTATIONS": "0"}).max_annotations == 0
    assert ActionConfig.from_env({"INPUT_MAX-ANNOTATIONS": "500"}).max_annotations == 500
    for bad in ("501", "-1", "ten", "5.5"):
        with pytest.raises(ActionConfigError, match="max-annotations"):
            ActionConfig.from_env({"INPUT_MAX-ANNOTATIONS": bad})


def test_config__fail_on_publish_error_is_auto_by_default_and_auto_means_mode_publish():
    def fails(mode: str, value: str | None) -> bool:
        env = {"INPUT_MODE": mode} | ({"INPUT_FAIL-ON-PUBLISH-ERROR": value} if value is not None else {})
        return ActionConfig.from_env(env).fails_when_nothing_published

    assert [fails(m, None) for m in ("publish", "full", "merge")] == [True, False, False]
    assert [fails(m, "auto") for m in ("publish", "full")] == [True, False]
    assert [fails(m, "true") for m in ("publish", "full")] == [True, True]
    assert [fails(m, "false") for m in ("publish", "full")] == [False, False]
    with pytest.raises(ActionConfigError, match=r"fail-on-publish-error.*true, false or auto"):
        ActionConfig.from_env({"INPUT_FAIL-ON-PUBLISH-ERROR": "sometimes"})


def test_cut_summary__leaves_a_short_summary_alone():
    assert cut_summary("## ok\nall good", max_bytes=1024, artifact="a") == "## ok\nall good\n"


def test_cut_summary__cuts_at_a_line_closes_open_blocks_and_ends_with_the_cut_line():
    hostile = "<img src=x onerror=alert(1)> `tick` *star* #12 &amp; 層"
    lines = ["## exportwatch", "<details><summary>still failing</summary>", "", "```text"]
    escaped = md_text(hostile)
    lines += [f"{i}: {escaped} 🎉" for i in range(5_000)]
    body = "\n".join(lines)
    limit = 50_000
    assert utf8_size(body) > limit
    cut = cut_summary(body, max_bytes=limit, artifact="exportwatch-report")
    assert utf8_size(cut) <= limit and cut.endswith("\n")
    out = cut.rstrip("\n").split("\n")
    assert out[-1].startswith("**✂ cut here: the full report is in the artifact `exportwatch-report`**")
    assert out[-4:-1] == ["```", "</details>", ""], "the open fence, then the open details, closed"
    kept = out[:-4]
    assert len(kept) > 300 and kept == lines[: len(kept)], "whole lines of the original, unchanged"
