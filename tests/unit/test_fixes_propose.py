"""Fixes proposed from draft_export's facts and the user's source (``diagnose/fixes.py``, pure):
which ``torch._check`` and where, which fake-kernel stub; what gets no proposal at all."""

from __future__ import annotations

import textwrap

import pytest

from exportwatch.diagnose.blockers import Facts
from exportwatch.diagnose.fixes import (
    OpCall,
    OpParam,
    OpSignature,
    TensorMeta,
    check_condition,
    fake_kernel_stub,
    propose_checks,
)
from exportwatch.report import UserFrame
from exportwatch.report.model import Blocker, CreatedAt, FixKind

PATH = "models/net.py"
SOURCE = textwrap.dedent(
    """\
    import torch


    class Net(torch.nn.Module):
        def forward(self, x):
            n = (x > 0).sum().item()  # count
            if n > 2:
                return x[:n]
            a = 1; b = x.max().item()
            return x
    """
)


@pytest.mark.parametrize(
    ("expression", "result", "expected"),
    [
        ("u0 > 2", "True", "n > 2"),
        ("u0 > 2", "False", "n <= 2"),
        ("zuf0 < 1.0", "False", "peak >= 1.0"),
        ("Eq(u0, 1)", "False", "n != 1"),
        ("Ne(u0, 0)", "True", "n != 0"),
        ("2*u0 + 1 >= zuf0", "True", "2 * n + 1 >= peak"),
        ("u0 > 2", "3", None),  # not a truth value
        ("u1 > 2", "True", None),  # no local holds u1
        ("Mod(u0, 2) > 0", "True", None),  # not plain arithmetic
        ("u0", "True", None),
        ("u0 > 2 > 1", "True", None),
        ("__import__('os') > 1", "True", None),
    ],
)
def test_check_condition__writes_what_held_for_the_example_in_the_locals_names(
    expression: str, result: str, expected: str | None
) -> None:
    assert check_condition(expression, result, {"n": "u0", "peak": "zuf0"}) == expected


def _blocker(line: int, *, made: int | None, function: str = "forward", source: str = SOURCE) -> Blocker:
    lines = source.splitlines()
    created = []
    if made is not None:
        frame = UserFrame(path=PATH, line=made, function=function, source=lines[made - 1].strip())
        created = [CreatedAt(symbol="u0", frame=frame)]
    return Blocker(
        kind="data-dependent",
        message="cannot decide",
        expression="u0 > 2",
        user_frame=UserFrame(path=PATH, line=line, function="forward", source=lines[line - 1].strip()),
        created=created,
    )


FACT = Facts(kind="data-dependent", expression="u0 > 2", result="True", names={"n": "u0"})


def test_propose_checks__after_the_line_that_made_the_value_with_its_indentation() -> None:
    (proposal,) = propose_checks([_blocker(7, made=6)], [FACT], read_source=lambda path: SOURCE)
    assert proposal.kind is FixKind.CHECK and proposal.blockers == (0,)
    assert proposal.edit is not None and proposal.edit.line == 6
    assert proposal.edit.original == "        n = (x > 0).sum().item()  # count"
    assert proposal.edit.replacement == proposal.edit.original + "\n        torch._check(n > 2)"
    assert proposal.snippet == "n = (x > 0).sum().item()  # count\ntorch._check(n > 2)"
    assert "after line 6 of models/net.py" in proposal.summary


def test_propose_checks__before_the_failing_statement_when_the_value_was_made_elsewhere() -> None:
    blocker = _blocker(7, made=6, function="helper")
    (proposal,) = propose_checks([blocker], [FACT], read_source=lambda path: SOURCE)
    assert proposal.edit is not None and proposal.edit.line == 7
    assert proposal.edit.replacement == "        torch._check(n > 2)\n        if n > 2:"


def test_propose_checks__two_blockers_on_one_line_are_one_change() -> None:
    other = Facts(kind="data-dependent", expression="u0 >= 0", result="True", names={"n": "u0"})
    found = [_blocker(7, made=6), _blocker(8, made=6)]
    (proposal,) = propose_checks(found, [FACT, other], read_source=lambda path: SOURCE)
    assert proposal.blockers == (0, 1) and proposal.edit is not None
    assert proposal.edit.replacement.endswith("torch._check(n > 2)\n        torch._check(n >= 0)")


def test_propose_checks__nothing_without_torch_a_statement_line_or_the_file() -> None:
    no_torch = SOURCE.replace("import torch\n", "from torch import nn\n")
    assert propose_checks([_blocker(7, made=6)], [FACT], read_source=lambda path: no_torch) == []
    assert propose_checks([_blocker(7, made=6)], [FACT], read_source=lambda path: None) == []
    # made on a line it shares with another statement (no line can follow it), used at an elif
    shared = SOURCE.replace(
        "            return x[:n]\n", "            return x[:n]\n        elif n > 2:\n            pass\n"
    )
    shared = shared.replace("n = (x > 0).sum().item()  # count", "a = 1; n = (x > 0).sum().item()")
    assert propose_checks([_blocker(9, made=6, source=shared)], [FACT], read_source=lambda path: shared) == []
    library = _blocker(7, made=6)
    assert library.user_frame is not None
    library.user_frame.library = "transformers"
    assert propose_checks([library], [FACT], read_source=lambda path: SOURCE) == []


def _meta(*shape: int, dtype: str = "torch.float32") -> TensorMeta:
    return TensorMeta(shape=shape, dtype=dtype, device="cpu")


def _signature(*names: str, outputs: int = 1) -> OpSignature:
    return OpSignature(
        name="mylib::op",
        params=tuple(OpParam(name=n) for n in names),
        outputs=outputs,
        tuple_output=outputs > 1,
    )


def test_fake_kernel_stub__an_output_like_an_input_is_empty_like() -> None:
    stub = fake_kernel_stub(_signature("x"), [OpCall(inputs={"x": _meta(2, 3)}, outputs=(_meta(2, 3),))])
    assert (
        stub == '@torch.library.register_fake("mylib::op")\ndef _op_fake(x):\n    return torch.empty_like(x)'
    )


def test_fake_kernel_stub__sizes_from_inputs_dtype_written_and_unknown_sizes_dynamic() -> None:
    calls = [
        OpCall(
            inputs={"x": _meta(4, 3), "w": _meta(3, 5)}, outputs=(_meta(4, 5), _meta(7, dtype="torch.int64"))
        )
    ]
    stub = fake_kernel_stub(_signature("x", "w", outputs=2), calls)
    assert stub is not None
    namespace: dict[str, object] = {}
    compile(stub, "<stub>", "exec")  # plain Python a user can paste
    assert "x.new_empty((x.shape[0], w.shape[1]))" in stub
    assert "ctx = torch.library.get_ctx()" in stub
    assert "x.new_empty((ctx.new_dynamic_size(),), dtype=torch.int64)" in stub
    assert stub.rstrip().endswith(")") and namespace == {}


def test_fake_kernel_stub__none_without_a_call_or_a_tensor_argument() -> None:
    assert fake_kernel_stub(_signature("x"), []) is None
    assert fake_kernel_stub(_signature("n"), [OpCall(inputs={}, outputs=(_meta(3),))]) is None
    bad = OpSignature(name="mylib::op; import os", params=(OpParam(name="x"),), outputs=1)
    assert fake_kernel_stub(bad, [OpCall(inputs={"x": _meta(3)}, outputs=(_meta(3),))]) is None
