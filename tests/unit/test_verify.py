"""The shared eager-vs-exported comparison: tolerances by dtype, which output, why it differs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.export import Dim
from torch.utils import _pytree as pytree

from exportwatch.targets.verify import (
    NumericMismatchError,
    Tolerance,
    compare_flat,
    compare_leaf,
    compare_outputs,
    requested_dynamic_dims,
    slot_tree,
)


def test_compare_outputs__accepts_identical_nested_outputs() -> None:
    out = {"logits": torch.randn(2, 3), "extra": [torch.arange(3), 4, None]}
    assert (
        compare_outputs(
            out, {"logits": out["logits"].clone(), "extra": [torch.arange(3), 4, None]}, input_set="example"
        )
        is None
    )


@pytest.mark.parametrize(
    ("dtype", "within", "beyond"),
    [
        (torch.float32, 5e-6, 1e-3),
        (torch.float16, 5e-4, 5e-2),
        (torch.bfloat16, 5e-4, 1e-1),
        (torch.float64, 5e-10, 1e-6),
    ],
)
def test_compare_leaf__uses_a_default_tolerance_chosen_by_dtype(
    dtype: torch.dtype, within: float, beyond: float
) -> None:
    want = torch.zeros(4, dtype=dtype)
    assert compare_leaf(want, want + within, input_set="s", output="") is None
    mismatch = compare_leaf(want, want + beyond, input_set="s", output="")
    assert mismatch is not None
    assert mismatch.max_abs_error == pytest.approx(float(torch.tensor(beyond, dtype=dtype)), rel=1e-2)


def test_compare_leaf__requires_integers_and_bools_to_match_exactly() -> None:
    mismatch = compare_leaf(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]), input_set="s", output="[0]")
    assert mismatch is not None
    assert mismatch.max_abs_error == 1.0
    assert "1 of 3 torch.int64 values differ" in mismatch.message
    assert compare_leaf(torch.tensor([True]), torch.tensor([False]), input_set="s", output="") is not None


def test_compare_leaf__honours_user_tolerances_over_the_defaults() -> None:
    want = torch.zeros(3)
    loose = Tolerance(rtol=0.0, atol=0.5)
    assert compare_leaf(want, want + 0.25, input_set="s", output="", tolerance=loose) is None
    assert compare_leaf(want, want + 0.75, input_set="s", output="", tolerance=loose) is not None


def test_compare_leaf__reports_max_abs_and_rel_error_of_the_worst_element() -> None:
    want = torch.tensor([1.0, 2.0, 4.0])
    got = torch.tensor([1.0, 2.5, 4.0])
    mismatch = compare_leaf(want, got, input_set="other", output="['out']")
    assert mismatch is not None
    assert mismatch.input_set == "other"
    assert mismatch.output == "['out']"
    assert mismatch.max_abs_error == pytest.approx(0.5)
    assert mismatch.max_rel_error == pytest.approx(0.25)
    assert "1 of 3 values differ" in mismatch.message


def test_compare_leaf__treats_nan_in_the_same_place_as_equal_but_a_new_nan_as_a_difference() -> None:
    want = torch.tensor([float("nan"), 1.0])
    assert compare_leaf(want, want.clone(), input_set="s", output="") is None
    mismatch = compare_leaf(torch.tensor([0.0, 1.0]), want, input_set="s", output="")
    assert mismatch is not None
    assert mismatch.max_abs_error == float("inf")


def test_compare_leaf__reports_a_shape_difference_without_numbers() -> None:
    mismatch = compare_leaf(torch.zeros(2, 3), torch.zeros(3, 2), input_set="s", output="")
    assert mismatch is not None
    assert mismatch.max_abs_error is None
    assert "shape differs: eager [2, 3], exported [3, 2]" in mismatch.message


def test_compare_leaf__reports_a_dtype_difference() -> None:
    mismatch = compare_leaf(torch.zeros(2), torch.zeros(2, dtype=torch.float64), input_set="s", output="")
    assert mismatch is not None
    assert "dtype differs" in mismatch.message


def test_compare_leaf__compares_non_tensor_leaves_by_equality() -> None:
    assert compare_leaf("a", "a", input_set="s", output="") is None
    mismatch = compare_leaf(3, 4, input_set="s", output="[1]")
    assert mismatch is not None
    assert "eager gave 3, the exported program 4" in mismatch.message


def test_compare_leaf__accepts_numpy_arrays_from_onnx_runtime() -> None:
    want = torch.tensor([1.0, 2.0])
    assert compare_leaf(want, np.array([1.0, 2.0], dtype=np.float32), input_set="s", output="") is None
    assert compare_leaf(3, np.array(3, dtype=np.int64), input_set="s", output="") is None


def test_compare_outputs__names_the_pytree_path_of_the_bad_output() -> None:
    want = {"a": torch.zeros(2), "b": [torch.zeros(2), torch.ones(2)]}
    got = {"a": torch.zeros(2), "b": [torch.zeros(2), torch.zeros(2)]}
    mismatch = compare_outputs(want, got, input_set="check")
    assert mismatch is not None
    assert mismatch.output == "['b'][1]"
    assert "input set 'check', output ['b'][1]" in mismatch.message


def test_compare_outputs__reports_a_different_output_structure() -> None:
    mismatch = compare_outputs((torch.zeros(1), torch.zeros(1)), [torch.zeros(1)], input_set="s")
    assert mismatch is not None
    assert "output structure differs" in mismatch.message


def test_compare_flat__reports_a_different_number_of_outputs() -> None:
    mismatch = compare_flat([("[0]", torch.zeros(1))], [], input_set="s")
    assert mismatch is not None
    assert "eager returned 1 outputs, the exported program 0" in mismatch.message


def test_numeric_mismatch_error__carries_the_mismatch_and_its_message() -> None:
    mismatch = compare_leaf(torch.zeros(1), torch.ones(1), input_set="s", output="")
    assert mismatch is not None
    error = NumericMismatchError(mismatch)
    assert error.mismatch is mismatch
    assert str(error) == mismatch.message


class _Model(torch.nn.Module):
    def forward(
        self, x: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor], *, mask: torch.Tensor
    ) -> None:
        return None


def test_requested_dynamic_dims__locates_dims_by_argument_name_and_nested_position() -> None:
    args = (torch.zeros(2, 3), (torch.zeros(2), torch.zeros(4)))
    kwargs = {"mask": torch.zeros(2, 5)}
    slots_args, slots_kwargs = slot_tree(pytree.tree_structure((args, kwargs)))
    batch = Dim("batch")
    spec = {"x": {0: batch}, "pair": (None, [Dim.AUTO]), "mask": {0: batch, 1: Dim.STATIC}}
    dims = requested_dynamic_dims(_Model().forward, slots_args, slots_kwargs, spec, 4)
    assert [(d.label, d.name, d.leaf, d.dim) for d in dims] == [
        ("x.shape[0]", "batch", 0, 0),
        ("pair[1].shape[0]", "AUTO", 2, 0),
        ("mask.shape[0]", "batch", 3, 0),
    ]


def test_requested_dynamic_dims__accepts_a_positional_spec() -> None:
    args = (torch.zeros(2, 3), (torch.zeros(2), torch.zeros(4)))
    kwargs = {"mask": torch.zeros(2)}
    slots_args, slots_kwargs = slot_tree(pytree.tree_structure((args, kwargs)))
    dims = requested_dynamic_dims(_Model().forward, slots_args, slots_kwargs, ({1: Dim("n")}, None), 4)
    assert [(d.label, d.leaf, d.dim) for d in dims] == [("x.shape[1]", 0, 1)]
