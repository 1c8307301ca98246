"""Plausible ranges of numeric settings, and how a message quotes a user's value.

A setting declares its `Bounds` once where it is declared (`TrainConfig`, `SpecConfig`, `LabelSource`, model-file
fields); the CLI, recipes and the Python API all meet that one check. `quote` is the one way a message shows a
value the user gave: at most `QUOTE_LIMIT` characters, and a huge or deeply nested value is never expanded whole.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any

from .errors import MerError

QUOTE_LIMIT = 80
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 4, 6, 6, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = QUOTE_LIMIT


def quote(value: Any) -> str:
    """`value` as an error message quotes it: its repr, cut to at most `QUOTE_LIMIT` characters."""
    text = _REPR.repr(value)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 3] + "..."


@dataclass(frozen=True)
class Bounds:
    """A numeric setting's range: a finite number (a whole one if `whole`), at least `low` (above it when
    `above`), at most `high`; `None` passes (an optional setting left unset)."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    whole: bool = False

    def describe(self) -> str:
        """The range in words, e.g. "a number above 0", "a whole number from 2 to 4096"."""
        kind = "a whole number" if self.whole else "a number"
        low = None if self.low is None else f"{self.low:g}"
        high = None if self.high is None else f"{self.high:g}"
        if self.above:
            return f"{kind} above {low}" + (f" and at most {high}" if high else "")
        if low is not None and high is not None:
            return f"{kind} from {low} to {high}"
        if low is not None:
            return f"{kind} of at least {low}"
        return f"{kind} of at most {high}" if high is not None else f"a finite {kind[2:]}"

    def holds(self, value: Any) -> bool:
        """Whether `value` (not None) lies in the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.whole and value != int(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def check(self, value: Any, name: str, fix: str = "") -> None:
        """Refuse `value` outside the range: one line naming `name` (an option, key or field), then `fix`."""
        if value is not None and not self.holds(value):
            raise MerError(f"{name} must be {self.describe()} (got {quote(value)}){fix}")


SEED = Bounds(0, 2**32 - 1, whole=True)  # every --seed: what NumPy's, torch's and scikit-learn's generators all take
