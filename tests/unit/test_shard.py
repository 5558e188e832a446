"""Sharding: a deterministic, balanced split of whole models; costs from history or defaults."""

from __future__ import annotations

import itertools
import random

import pytest

from exportwatch.manifest import InputsSpec, ModelSpec
from exportwatch.plan import (
    Unit,
    estimate_costs,
    load_history,
    longest_first,
    partition,
    select_shard,
    shard_loads,
)
from exportwatch.report import JobResult, Report, ResultSource, Verdict
from exportwatch.report.shards import ShardError, format_shard, parse_shard


def unit(name: str, order: int, targets: tuple[str, ...] = ("export",), timeout: float = 300.0) -> Unit:
    spec = ModelSpec(name=name, factory="m:f", inputs=InputsSpec(), targets=list(targets), timeout=timeout)
    return Unit(spec=spec, targets=list(targets), device=None, order=order)


def units_for(costs: dict[str, float]) -> list[Unit]:
    return [unit(name, i) for i, name in enumerate(costs)]


def names(shards: list[list[Unit]]) -> list[list[str]]:
    return [[u.spec.name for u in shard] for shard in shards]


def hist_job(model: str, target: str = "export", duration: float = 1.0, **kw) -> JobResult:
    return JobResult(model=model, target=target, device="cpu", verdict=kw.pop("verdict", Verdict.OK),
                     duration_s=duration, **kw)


COST_SETS = {
    "uniform": {f"m{i:02d}": 1.0 for i in range(11)},
    "one-giant": {"giant": 50.0, **{f"m{i:02d}": 1.0 for i in range(9)}},
    "graham-worst-case": {"a": 5, "b": 5, "c": 4, "d": 4, "e": 3, "f": 3, "g": 3},  # LPT 11 vs OPT 9 on 3
    "skewed": {f"m{i:02d}": float(1 + (i * 7919) % 23) ** 1.5 for i in range(17)},
    "ties": {"x": 2.0, "y": 2.0, "z": 2.0, "w": 1.0, "v": 1.0},
    "single": {"only": 3.0},
}


# ------------------------------------------------------------------------------ parse_shard


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3 / 3 ", (3, 3))])
def test_parse_shard__reads_index_and_count(text, expected):
    assert parse_shard(text) == expected
    assert format_shard(expected) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "not of the form I/N"),
        ("a/b", "not of the form I/N"),
        ("-1/3", "not of the form I/N"),
        ("", "not of the form I/N"),
        ("0/3", "between 1 and 3 (counting from 1)"),
        ("4/3", "between 1 and 3"),
        ("1/0", "at least 1"),
    ],
)
def test_parse_shard__refuses_bad_values_with_a_clear_message(text, message):
    with pytest.raises(ShardError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_shard(text)


# ------------------------------------------------------------------------------ partition


@pytest.mark.parametrize("cost_set", COST_SETS, ids=str)
@pytest.mark.parametrize("n", range(1, 8))
def test_partition__puts_every_model_in_exactly_one_shard(cost_set, n):
    costs = COST_SETS[cost_set]
    shards = partition(units_for(costs), n, costs)
    assert len(shards) == n
    flat = [name for shard in names(shards) for name in shard]
    assert sorted(flat) == sorted(costs)
    assert len(flat) == len(set(flat))


@pytest.mark.parametrize("cost_set", COST_SETS, ids=str)
@pytest.mark.parametrize("n", range(1, 8))
def test_partition__is_stable_across_runs_and_input_orders(cost_set, n):
    costs = COST_SETS[cost_set]
    expected = names(partition(units_for(costs), n, costs))
    rng = random.Random(n)
    for _ in range(5):
        shuffled = units_for(costs)
        rng.shuffle(shuffled)
        assert names(partition(shuffled, n, costs)) == expected
    assert names(partition(units_for(dict(costs)), n, dict(costs))) == expected  # fresh objects


@pytest.mark.parametrize("cost_set", COST_SETS, ids=str)
@pytest.mark.parametrize("n", range(1, 8))
def test_partition__is_balanced_within_lpt_bounds(cost_set, n):
    costs = COST_SETS[cost_set]
    loads = shard_loads(partition(units_for(costs), n, costs), costs)
    total, biggest = sum(costs.values()), max(costs.values())
    lower = max(biggest, total / n)  # no split can beat this
    # Greedy list scheduling: the last job placed on the longest shard started at or below the
    # average load, so makespan ≤ total/n + (1 - 1/n)·max; and LPT ≤ (4/3 - 1/(3n))·OPT.
    assert max(loads) <= total / n + (1 - 1 / n) * biggest + 1e-9
    optimum = _optimum(list(costs.values()), n)
    if optimum is not None:
        assert max(loads) <= (4 / 3 - 1 / (3 * n)) * optimum + 1e-9
    elif all(c == int(c) for c in costs.values()):
        assert max(loads) <= (4 / 3) * max(lower, -(-total // n)) + 1e-9  # integer OPT ≥ ⌈total/n⌉
    if len(costs) <= n:
        assert max(loads) == biggest  # one model per shard at most


def _optimum(costs: list[float], n: int) -> float | None:
    """Best makespan by exhaustive search (small sets only), else None."""
    if n ** len(costs) > 200_000:
        return None
    best = float("inf")
    for assignment in itertools.product(range(n), repeat=len(costs)):
        loads = [0.0] * n
        for cost, shard in zip(costs, assignment, strict=True):
            loads[shard] += cost
        best = min(best, max(loads))
    return best


def test_partition__graham_worst_case_is_within_four_thirds_of_optimal():
    costs = COST_SETS["graham-worst-case"]
    loads = shard_loads(partition(units_for(costs), 3, costs), costs)
    assert _optimum(list(costs.values()), 3) == 9
    assert max(loads) <= (4 / 3 - 1 / 9) * 9 + 1e-9  # = 11, Graham's tight bound


def test_partition__keeps_a_models_targets_together_and_shards_in_manifest_order():
    units = [unit("a", 0, ("export", "onnx")), unit("b", 1), unit("c", 2), unit("d", 3, ("export", "onnx"))]
    costs = {"a": 2.0, "b": 1.0, "c": 1.0, "d": 2.0}
    shards = partition(units, 2, costs)
    assert names(shards) == [["a", "b"], ["c", "d"]] or names(shards) == [["a", "c"], ["b", "d"]]
    for shard in shards:
        assert [u.order for u in shard] == sorted(u.order for u in shard)
        for u in shard:
            expected = ["export", "onnx"] if u.spec.name in ("a", "d") else ["export"]
            assert u.targets == expected


def test_partition__breaks_ties_by_name_and_lowest_shard_index():
    costs = {"c": 1.0, "a": 1.0, "b": 1.0}
    assert names(partition(units_for(costs), 3, costs)) == [["a"], ["b"], ["c"]]
    assert names(partition(units_for(costs), 2, costs)) == [["c", "a"], ["b"]]  # manifest order in a shard


def test_partition__leaves_extra_shards_empty_when_there_are_fewer_models():
    costs = {"a": 1.0, "b": 1.0}
    assert names(partition(units_for(costs), 4, costs)) == [["a"], ["b"], [], []]


def test_partition__refuses_zero_shards():
    with pytest.raises(ShardError):
        partition(units_for({"a": 1.0}), 0, {"a": 1.0})


def test_select_shard__returns_the_ith_shard_counting_from_one():
    costs = COST_SETS["skewed"]
    units = units_for(costs)
    shards = partition(units, 3, costs)
    for i in (1, 2, 3):
        assert names([select_shard(units, (i, 3), costs)]) == [names(shards)[i - 1]]
    with pytest.raises(ShardError):
        select_shard(units, (0, 3), costs)


def test_longest_first__orders_by_cost_then_manifest_order():
    costs = {"small": 1.0, "big": 9.0, "mid_b": 3.0, "mid_a": 3.0}
    ordered = longest_first(units_for(costs), costs)
    assert [u.spec.name for u in ordered] == ["big", "mid_b", "mid_a", "small"]


def test_longest_first__keeps_manifest_order_without_history():
    units = [unit("z", 0), unit("a", 1, ("export", "onnx")), unit("m", 2)]
    ordered = longest_first(units, estimate_costs(units, None))
    assert [u.spec.name for u in ordered] == ["a", "z", "m"]  # two targets weigh more


# ------------------------------------------------------------------------------ estimate_costs


def test_estimate_costs__without_history_counts_one_per_target():
    units = [unit("a", 0, ("export", "onnx", "export-strict")), unit("b", 1)]
    assert estimate_costs(units, None) == {"a": 3.0, "b": 1.0}


def test_estimate_costs__uses_the_durations_of_a_previous_report():
    previous = Report(
        jobs=[hist_job("a", "export", 4.0), hist_job("a", "onnx", 6.0), hist_job("b", "export", 0.5)]
    )
    units = [unit("a", 0, ("export", "onnx")), unit("b", 1), unit("new", 2, ("export", "onnx"))]
    costs = estimate_costs(units, previous)
    assert costs["a"] == pytest.approx(10.0)
    assert costs["b"] == pytest.approx(0.5)
    assert costs["new"] == pytest.approx(2 * 4.0)  # unknown: the median known per-target time


def test_estimate_costs__prices_a_target_missing_from_history_at_the_models_mean():
    previous = Report(jobs=[hist_job("a", "export", 2.0)])
    assert estimate_costs([unit("a", 0, ("export", "onnx"))], previous) == {"a": pytest.approx(4.0)}


def test_estimate_costs__counts_a_timeout_as_its_timeout_and_ignores_skipped_jobs():
    previous = Report(jobs=[
        hist_job("slow", duration=0.0, verdict=Verdict.TIMEOUT),
        hist_job("skipped", duration=0.0, verdict=Verdict.SKIPPED),
        hist_job("cached", duration=9.0, source=ResultSource.CACHE),  # keeps its sweep's time
        hist_job("ok", duration=1.0),
    ])
    units = [unit("slow", 0, timeout=120.0), unit("skipped", 1), unit("cached", 2), unit("ok", 3)]
    costs = estimate_costs(units, previous)
    assert costs["slow"] == pytest.approx(120.0)
    assert costs["cached"] == pytest.approx(9.0)
    assert costs["skipped"] == pytest.approx(9.0)  # unknown: median of the known (120, 9, 1)
    assert costs["ok"] == pytest.approx(1.0)


def test_estimate_costs__scales_parameter_counts_into_seconds():
    previous = Report(jobs=[
        hist_job("a", duration=2.0, parameters=1_000),
        hist_job("b", duration=4.0, parameters=2_000),
        hist_job("c", duration=0.0, verdict=Verdict.SKIPPED, parameters=10_000),  # size, no time
    ])
    costs = estimate_costs([unit("a", 0), unit("b", 1), unit("c", 2, ("export", "onnx"))], previous)
    assert costs["c"] == pytest.approx(2 * 10_000 * (2 / 1000))  # 2 s per 1000 parameters


def test_estimate_costs__is_always_positive():
    previous = Report(jobs=[hist_job("a", duration=0.0)])
    assert estimate_costs([unit("a", 0)], previous)["a"] > 0


def test_load_history__reads_a_report_or_a_result_cache_directory(tmp_path):
    from exportwatch.baseline.cache import ResultCache
    from exportwatch.report import write_report

    write_report(Report(jobs=[hist_job("a", duration=3.0)]), tmp_path / "report.json")
    assert [j.duration_s for j in load_history(tmp_path / "report.json").jobs] == [3.0]
    cache = ResultCache(tmp_path / "cache")
    assert cache.put(hist_job("a", duration=2.0, content_hash="a" * 64))
    assert cache.put(hist_job("b", duration=5.0, content_hash="b" * 64))
    (tmp_path / "cache" / "junk.json").write_text("{")
    history = load_history(tmp_path / "cache")
    assert sorted((j.model, j.duration_s) for j in history.jobs) == [("a", 2.0), ("b", 5.0)]
    assert estimate_costs([unit("a", 0), unit("b", 1)], history) == {"a": 2.0, "b": 5.0}


def test_load_history__refuses_a_missing_file(tmp_path):
    from exportwatch.report import ReportError

    with pytest.raises(ReportError, match="cannot read report"):
        load_history(tmp_path / "nope.json")
