"""Fixes proven before they are shown (issue 28, items 3 and 5): on a corpus of failing models
(``fix_corpus.py``) and PyTorch's ExportDB, how many blockers draft_export finds per origin
(export itself reports one), which share of them gets a verified fix (by kind), what the proofs
cost per failing model, and how many shown fixes are wrong: every fix shown is applied the way a
user would (the suggested change to a copy of the file, the stub pasted and run) and the module
exported again; a fix is wrong when what it claims ("exports", "gets past this blocker") does not
hold. Run: ``python benchmarks/bench_fixes.py [--json out.json]``."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import torch  # noqa: E402

from exportwatch.diagnose import blockers as draft  # noqa: E402
from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec  # noqa: E402
from exportwatch.report.model import Fix, FixKind, FixProof, SubmoduleResult  # noqa: E402
from exportwatch.sweep.settings import SweepSettings  # noqa: E402
from exportwatch.worker import walk  # noqa: E402
from exportwatch.worker.walk import prepare_model, sweep_target  # noqa: E402

SETTINGS = SweepSettings(manifest_root=HERE, repo_root=REPO)
CORPUS = HERE / "fix_corpus.py"


def _timed_prove() -> list[float]:
    """Wrap the worker's ``fixes.prove`` to time the proofs alone."""
    spent: list[float] = []
    real = walk.fixes.prove

    def prove(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    walk.fixes.prove = prove  # type: ignore[assignment]
    return spent


def _patched_copy(fixes: list[Fix], tmp: Path, name: str) -> tuple[Any, list[int | None]]:
    """The corpus with each fix's suggested change applied (as GitHub would), imported; and
    for each line of the copy, the original line it came from."""
    lines = CORPUS.read_text().splitlines()
    origin: list[int | None] = list(range(1, len(lines) + 1))
    for fix in sorted((f for f in fixes if f.edit), key=lambda f: f.edit.line, reverse=True):  # type: ignore[union-attr]
        edit = fix.edit
        assert edit is not None and lines[edit.line - 1] == edit.original, "stale edit"
        new = edit.replacement.split("\n")
        lines[edit.line - 1 : edit.line] = new
        kept = origin[edit.line - 1]
        origin[edit.line - 1 : edit.line] = [kept if text == edit.original else None for text in new]
    path = tmp / f"{name}.py"
    path.write_text("\n".join(lines) + "\n")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, origin


@contextlib.contextmanager
def _stubs(fixes: list[Fix]) -> Iterator[None]:
    """Each fake-kernel stub pasted and run; unregistered after."""
    from torch._library.custom_ops import _maybe_get_opdef

    ops = []
    for fix in fixes:
        if fix.kind is FixKind.FAKE_KERNEL:
            op = fix.snippet.split('"')[1]
            ops.append(_maybe_get_opdef(op))
            exec(compile(fix.snippet, "<pasted stub>", "exec"), {"torch": torch})
    try:
        yield
    finally:
        for opdef in ops:
            if opdef is not None:
                opdef._abstract_fn = None


def _claim_holds(
    fixes: list[Fix],
    *,
    proof: FixProof,
    addressed: list[draft.Facts],
    cls: str,
    args: tuple[Any, ...],
    tmp: Path,
) -> bool:
    """Applied as shown, the module exports (``exports``), or draft_export no longer meets the
    blockers the fixes address (``past-blocker``)."""
    module, origin = _patched_copy(fixes, tmp, f"patched_{len(list(tmp.iterdir()))}")
    copy = str(tmp / f"{module.__name__}.py")
    model = getattr(module, cls)().eval()
    with _stubs(fixes), torch.no_grad():
        if proof is FixProof.EXPORTS:
            try:
                torch.export.export(model, args, strict=False)
            except Exception as exc:
                print(f"      WRONG: does not export: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                return False
            return True
        program = torch.export.draft_export(model, args)

    def where(file: str, line: int) -> tuple[str, int] | None:
        if file != copy:
            return (file, line)
        source = origin[line - 1] if 0 < line <= len(origin) else None
        return (str(CORPUS), source) if source is not None else None

    left = {f.key(where=where) for f in draft.read_facts(program, interned=walk._interned_strings())}
    wanted = {a.key() for a in addressed}
    if left & wanted:
        print(f"      WRONG: still meets {left & wanted}")
        return False
    return True


def _inputs_of(model: torch.nn.Module, path: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: list[tuple[Any, ...]] = []
    handle = model.get_submodule(path).register_forward_pre_hook(
        lambda m, a: seen.append(a) if not seen else None
    )
    try:
        with torch.no_grad():
            model(*args)
    except Exception:
        pass
    finally:
        handle.remove()
    return seen[0] if seen else args


def corpus(rows: list[dict[str, Any]], spent: list[float]) -> None:
    import fix_corpus

    facts_of: dict[int, list[draft.Facts]] = {}
    real_search = draft.search_with_facts

    def search(*a: Any, **k: Any) -> Any:
        found, facts = real_search(*a, **k)
        facts_of[id(found)] = facts
        return found, facts

    walk.blockers.search_with_facts = search  # type: ignore[assignment]
    for name, shape in fix_corpus.INPUTS.items():
        spec = ModelSpec(
            name=name, factory=f"fix_corpus:{name}", inputs=InputsSpec(args=[TensorSpec(shape=shape)])
        )
        before = len(spent)
        started = time.perf_counter()
        prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
        job = sweep_target(prepared, "export", settings=SETTINGS)
        took = time.perf_counter() - started
        proving = sum(spent[before:])
        origins = [s for s in job.submodules if s.origin]
        print(
            f"{name}: {job.verdict}, {len(origins)} origin(s), {took:.1f} s ({proving:.1f} s proving fixes)"
        )
        for result in origins:
            rows.append(_origin_row(name, result, prepared, facts_of, took=took, proving=proving))


def _origin_row(
    name: str,
    result: SubmoduleResult,
    prepared: Any,
    facts_of: dict[int, list[draft.Facts]],
    *,
    took: float,
    proving: float,
) -> dict[str, Any]:
    found = result.blockers
    row: dict[str, Any] = {
        "model": name,
        "origin": result.path or "(root)",
        "category": result.category,
        "blockers": len(found.found) if found else None,
        "blocker_kinds": [b.kind for b in found.found] if found else [],
        "fixes": [],
        "together": str(found.fixes_together) if found and found.fixes_together else None,
        "dropped": found.fixes_dropped if found else 0,
        "seconds": round(took, 2),
        "proving_seconds": round(proving, 2),
        "wrong": 0,
    }
    if not found or not found.fixes:
        return row
    facts = facts_of.get(id(found), [])
    module = prepared.model.get_submodule(result.path) if result.path else prepared.model
    example_args = _example_args(prepared)
    call = _inputs_of(prepared.model, result.path, example_args) if result.path else example_args
    cls = type(module).__name__
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        for fix in found.fixes:
            addressed = [facts[i] for i in fix.blockers if i < len(facts)]
            ok = _claim_holds([fix], proof=fix.proof, addressed=addressed, cls=cls, args=call, tmp=tmp)
            row["fixes"].append(
                {"kind": str(fix.kind), "proof": str(fix.proof), "holds": ok, "summary": fix.summary}
            )
            row["wrong"] += not ok
            print(f"    {fix.kind} {fix.proof}: {'holds' if ok else 'WRONG'}: {fix.summary[:90]}")
        if found.fixes_together is FixProof.EXPORTS:
            ok = _claim_holds(found.fixes, proof=FixProof.EXPORTS, addressed=[], cls=cls, args=call, tmp=tmp)
            row["wrong"] += not ok
            print(f"    all {len(found.fixes)} together export: {'holds' if ok else 'WRONG'}")
    return row


def _example_args(prepared: Any) -> tuple[Any, ...]:
    from exportwatch.worker.inputs import build_inputs

    args, _ = build_inputs(prepared.spec.inputs, root=HERE, device="cpu", field_path="inputs")
    return tuple(args)


def exportdb(rows: list[dict[str, Any]]) -> None:
    """ExportDB's examples: which fail non-strict export, and what draft_export and the fixes
    make of them (their files are torch's, so a source fix is out of reach: the repository root
    is set to the examples' folder to let the checks be proposed there)."""
    from torch._export.db import examples

    from exportwatch.targets.base import Call
    from exportwatch.worker import fixes

    folder = Path(examples.__file__).resolve().parent
    for name, case in examples.all_examples().items():
        try:
            torch.export.export(
                case.model, case.example_args, case.example_kwargs, dynamic_shapes=case.dynamic_shapes
            )
            continue
        except Exception as exc:
            first = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
        started = time.perf_counter()
        found, facts = draft.search_with_facts(
            lambda case=case: torch.export.draft_export(
                case.model, case.example_args, case.example_kwargs, dynamic_shapes=case.dynamic_shapes
            ),
            repo_root=folder,
            interned=walk._interned_strings,
        )
        searched = time.perf_counter() - started
        found = fixes.prove(
            found,
            facts,
            module=case.model,
            call=Call(args=tuple(case.example_args), kwargs=dict(case.example_kwargs or {})),
            shapes=case.dynamic_shapes,
            repo_root=folder,
            until=time.perf_counter() + 60,
            interned=walk._interned_strings,
        )
        proving = time.perf_counter() - started - searched
        print(
            f"exportdb/{name}: {first}; {found.status}, "
            f"{len(found.found)} blocker(s), {len(found.fixes)} fix(es)"
        )
        rows.append(
            {
                "model": f"exportdb/{name}",
                "origin": "(root)",
                "category": first,
                "blockers": len(found.found) if found.status.value == "found" else 0,
                "blocker_kinds": [b.kind for b in found.found],
                "fixes": [{"kind": str(f.kind), "proof": str(f.proof), "holds": None} for f in found.fixes],
                "together": None,
                "dropped": found.fixes_dropped,
                "seconds": round(searched + proving, 2),
                "proving_seconds": round(proving, 2),
                "wrong": 0,
                "note": found.note,
            }
        )


def summary(rows: list[dict[str, Any]]) -> None:
    searched = [r for r in rows if r["blockers"] is not None]
    blockers = sum(r["blockers"] or 0 for r in searched)
    by_kind = Counter(kind for r in searched for kind in r["blocker_kinds"])
    shown = Counter(fix["kind"] for r in rows for fix in r["fixes"])
    addressed = sum(1 for r in searched if r["fixes"])
    failing = {r["model"] for r in rows}
    print()
    print(f"failing models: {len(failing)}, origins: {len(rows)}, searched by draft_export: {len(searched)}")
    print(
        f"  blockers found: {blockers}, {blockers / max(len(searched), 1):.2f} per origin (export reports 1)"
    )
    print(f"  blockers by kind: {dict(by_kind)}")
    print(f"  fixes shown by kind: {dict(shown)}; origins with at least one: {addressed}")
    print(f"  origins whose fixes together export: {sum(1 for r in rows if r['together'] == 'exports')}")
    print(f"  proposals dropped by their proof: {sum(r['dropped'] for r in rows)}")
    proving = {r["model"]: r["proving_seconds"] for r in rows}  # one per model, not per origin
    print(f"  proving time per failing model: {sum(proving.values()) / max(len(failing), 1):.2f} s")
    print(f"  wrong fixes shown: {sum(r['wrong'] for r in rows)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-exportdb", action="store_true")
    options = parser.parse_args()
    logging.disable(logging.WARNING)
    rows: list[dict[str, Any]] = []
    spent = _timed_prove()
    corpus(rows, spent)
    if not options.no_exportdb:
        exportdb(rows)
    summary(rows)
    if options.json:
        options.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
