"""A worker above the recycle limit between units is replaced; results unaffected."""

from __future__ import annotations

from exportwatch.manifest import load_manifest
from exportwatch.plan import plan_units
from exportwatch.sweep.runner import repository_root
from exportwatch.sweep.settings import SweepSettings
from exportwatch.sweep.workers import WorkerPool
from tests.conftest import REPO_ROOT


def test_pool__recycles_a_worker_over_the_limit_between_units(tmp_path):
    manifest = load_manifest(REPO_ROOT / "config" / "example.exportwatch.yml")
    units = plan_units(
        manifest, models=["tiny_cnn", "transformer_block", "topk_router"], targets=["export"], device=None
    )
    jobs = []
    settings = SweepSettings(manifest_root=manifest.root, repo_root=repository_root(manifest))
    pool = WorkerPool(
        size=1,
        settings=settings,
        recycle_mb=1.0,  # every worker is over 1 MiB
        on_event=lambda e: jobs.append(e.job) if e.job else None,
    )
    pool.run(units)
    assert [j.model for j in jobs] == ["tiny_cnn", "transformer_block", "topk_router"]
    assert pool.recycled == 2  # after each unit but the last
    assert all(j.verdict.value in ("ok", "fail") for j in jobs)
