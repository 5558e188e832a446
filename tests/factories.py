"""A tiny DSL for building reports in tests (shared: other test modules may use it).

    report(
        job("cnn", "export", sub("", "fail"), sub("blocks", "fail"), sub("blocks.4", "fail", origin=True)),
        job("mlp", "onnx", sub("", "ok")),
        torch="2.6.0",
    )

Defaults are deterministic: a failing ``sub`` gets a fingerprint derived from its path, a
category and a message, so the same ``sub(...)`` on both sides reads as "still failing".
"""

from __future__ import annotations

from exportwatch.report import (
    FAILING,
    Delegation,
    Environment,
    JobResult,
    Mismatch,
    Report,
    SubmoduleResult,
    UserFrame,
    Verdict,
)

REPOSITORY = "acme/vision"
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
BASE_SHA = "fedcba9876543210fedcba9876543210fedcba98"
RUN_URL = "https://github.com/acme/vision/actions/runs/42"


def sub(
    path: str,
    verdict: str | Verdict = "ok",
    *,
    fp: str | None = None,
    origin: bool = False,
    category: str | None = None,
    message: str | None = None,
    detail: str | None = None,
    frame: str | None = None,
    function: str = "forward",
    source: str = "",
    hint: str | None = None,
    same_as: str | None = None,
    xfail: str | None = None,
    module_type: str | None = None,
    reason: str | None = None,
    mismatch: Mismatch | None = None,
    delegation: Delegation | None = None,
) -> SubmoduleResult:
    """One submodule result; ``frame="models/cnn.py:42"`` sets the user frame."""
    v = Verdict(verdict)
    failing = v in FAILING
    user_frame = None
    if frame is not None:
        file, _, line = frame.rpartition(":")
        user_frame = UserFrame(path=file, line=int(line), function=function, source=source)
    name = path or "root"
    return SubmoduleResult(
        path=path,
        module_type=module_type if module_type is not None else ("Net" if not path else "Block"),
        verdict=v,
        reason=reason,
        same_as=same_as,
        category=category if category is not None else (v.value if failing else None),
        # One reason by default: ancestors re-raise what failed below them.
        fingerprint=fp if fp is not None else (f"fp-{v.value}" if failing else None),
        message=message if message is not None else (f"{v.value} in {name}" if failing else None),
        detail=detail,
        user_frame=user_frame,
        hint=hint,
        origin=origin,
        xfail=xfail,
        mismatch=mismatch,
        delegation=delegation,
    )


def delegation(
    delegated: int, compute: int, *, backend: str = "xnnpack", subgraphs: int = 1, **not_delegated: int
) -> Delegation:
    """``delegation(4, 5, aten_cumsum=1)``: XNNPACK takes 4 of 5 compute nodes, ``aten.cumsum``
    is left once (``_`` in a keyword reads as ``.``: operator names are not identifiers)."""
    return Delegation(
        backend=backend,
        delegated_nodes=delegated,
        compute_nodes=compute,
        subgraphs=subgraphs,
        not_delegated={name.replace("_", ".", 1): n for name, n in not_delegated.items()},
    )


def job(
    model: str,
    target: str = "export",
    *subs: SubmoduleResult,
    device: str = "cpu",
    xfail: str | None = None,
    verdict: str | Verdict | None = None,
    duration_s: float = 1.0,
) -> JobResult:
    """A job; its verdict defaults to the root's (``ok`` when no submodules are given)."""
    if not subs and verdict is None:
        subs = (sub("", "ok"),)
    root = next((s for s in subs if s.path == ""), None)
    job_verdict = Verdict(verdict) if verdict is not None else (root.verdict if root else Verdict.OK)
    return JobResult(
        model=model,
        target=target,
        device=device,
        verdict=job_verdict,
        xfail=xfail,
        duration_s=duration_s,
        submodules=list(subs),
    )


def report(
    *jobs: JobResult,
    torch: str | None = "2.6.0",
    onnx: str | None = None,
    repository: str | None = REPOSITORY,
    sha: str | None = HEAD_SHA,
    run_url: str | None = RUN_URL,
    complete: bool = True,
    duration_s: float = 83.0,
) -> Report:
    return Report(
        tool_version="0.1.0",
        created_at="2025-01-01T00:00:00Z",
        complete=complete,
        repository=repository,
        git_sha=sha,
        run_url=run_url,
        duration_s=duration_s,
        environment=Environment(python="3.11.7", platform="linux", torch=torch, onnx=onnx),
        jobs=list(jobs),
    )


def base_report(*jobs: JobResult, **kwargs) -> Report:
    """A report from the base commit (its own sha, no run link)."""
    kwargs.setdefault("sha", BASE_SHA)
    kwargs.setdefault("run_url", None)
    return report(*jobs, **kwargs)


def ok(model: str, target: str = "export", **kwargs) -> JobResult:
    """A job whose root exported."""
    return job(model, target, sub("", "ok"), **kwargs)


def failing(model: str, target: str = "export", origin_path: str = "blocks.4", **kwargs) -> JobResult:
    """A job failing at the root because of one origin below it (root → parent → origin).

    The ancestors re-raise the origin's failure, so they share its fingerprint.
    """
    parent = origin_path.rpartition(".")[0]
    subs = [sub("", "fail", fp=f"origin-{origin_path}")]
    if parent:
        subs.append(sub(parent, "fail", fp=f"origin-{origin_path}"))
    subs.append(
        sub(
            origin_path,
            "fail",
            origin=True,
            category="data-dependent-control-flow",
            fp=f"origin-{origin_path}",
            message="Could not guard on data-dependent expression u0 > 0",
            frame="models/cnn.py:42",
            source="if x.sum() > 0:",
            hint="Use torch.cond for data-dependent branches.",
            detail="Traceback (most recent call last):\n  ...\ntorch._dynamo.exc.UserError: guard",
        )
    )
    return job(model, target, *subs, **kwargs)
