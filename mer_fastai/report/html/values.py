"""How single values read on the page: numbers parsed from CSV text, scores, settings, anchors, table cells."""

from __future__ import annotations

import math
import re

from ..tables import cell as score_cell_text


def number(text: object) -> float | None:
    """The finite number a CSV or JSON value holds, else None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def score_text(value: object) -> str:
    """A score with 3 decimals, "–" where it is undefined."""
    return score_cell_text(number(value))


def setting_text(value: object) -> str:
    """A recorded setting: small floats in 3 significant digits, lists joined, None as "–"."""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "–"
    return "–" if value is None else str(value)


def slug(text: str) -> str:
    """A name made safe for an HTML id."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def cell(text: str, value: float | None) -> dict:
    """A sortable table cell: its text, and the number it sorts by (numeric cells)."""
    return {"text": text, "sort": "" if value is None else repr(value), "numeric": value is not None}


def score_cell(text: str, sd: str | None) -> dict:
    """A results table's score cell: `mean ± sd` where the spread is known, "–" where the score is not."""
    value = number(text)
    if value is None:
        return cell(text or "–", None) | {"numeric": True}
    spread = number(sd or "")
    shown = f"{value:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
    return {"text": shown, "sort": repr(value), "numeric": True}
