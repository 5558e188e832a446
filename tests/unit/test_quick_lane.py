"""The quick lane (``-m "not slow"``) does not even collect the tiers it can never select: their
imports (transformers, timm, torchvision, selenium) would cost seconds of every run."""

from __future__ import annotations

import pytest

from tests.conftest import ALWAYS_MARKED, TESTS, can_select

ZOO = ALWAYS_MARKED["zoo"]


@pytest.mark.parametrize(
    ("markexpr", "selectable"),
    [
        ("not slow", False),  # the quick lane
        ("not zoo", False),
        ("not slow and not cuda", False),
        ("zoo", True),
        ("slow", True),
        ("cuda", True),  # a zoo test may be marked cuda too
        ("slow and not cuda", True),
        ("not (slow or cuda)", False),
        ("((", True),  # unreadable here: pytest itself reports it; collect
    ],
)
def test_can_select__is_false_only_when_no_test_with_the_tiers_markers_can_match(markexpr, selectable):
    assert can_select(markexpr, ZOO) is selectable


def test_always_marked__every_test_module_of_those_tiers_marks_itself_slow():
    for tier, markers in ALWAYS_MARKED.items():
        for module in (TESTS / tier).glob("test_*.py"):
            text = module.read_text(encoding="utf-8")
            assert "mark.quick" not in text, module
            assert all(f"pytest.mark.{m}" in text for m in markers), module
