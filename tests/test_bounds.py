"""`Bounds` (a numeric setting's range) and `quote` (how a message shows a user's value)."""

from __future__ import annotations

import math

import pytest

from mer_fastai.bounds import QUOTE_LIMIT, Bounds, quote
from mer_fastai.errors import MerError


@pytest.mark.parametrize(
    ("bounds", "good", "bad", "words"),
    [
        (Bounds(0, 10, above=True), [1e-9, 10], [0, -1, 10.5, math.nan, math.inf, "1", True],
         "a number above 0 and at most 10"),
        (Bounds(2, 8, whole=True), [2, 8, 4.0], [1, 9, 2.5, math.nan], "a whole number from 2 to 8"),
        (Bounds(1), [1, 1e300], [0.5, math.inf], "a number of at least 1"),
        (Bounds(), [-1e300, 0], [math.nan, -math.inf], "a finite number"),
    ],
)  # fmt: skip
def test_bounds_hold_and_refuse(bounds, good, bad, words):
    assert bounds.describe() == words
    assert all(bounds.holds(value) for value in good)
    assert not any(bounds.holds(value) for value in bad)
    bounds.check(None, "--x")  # an unset optional setting passes
    with pytest.raises(MerError, match=f"^--x must be {words} \\(got nan\\); fix it$"):
        bounds.check(math.nan, "--x", "; fix it")


def test_quote_is_short_and_never_expands_a_huge_value():
    nested: list = [1] * 9
    for _ in range(12):  # 9**13 values if expanded
        nested = [nested] * 9
    for value in (nested, "x" * 10_000, {i: i for i in range(10_000)}, 7**500):
        assert len(quote(value)) <= QUOTE_LIMIT
    assert quote("auto") == "'auto'" and quote(1e-3) == "0.001"
