"""The checks of the values a model file's metadata stores, one per kind of value, and the bounds they hold.

Each check returns the value as `ModelMeta` holds it, or raises one `MerError` naming the file and the fix
(`RETRAIN`). Which fields a file holds, and which check reads each, is `models.modelmeta`'s business (its
`ModelMeta.from_dict`). Light on purpose (no torch, no fastai), like the record itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._plumbing.files import check_component
from ..bounds import Bounds, quote
from ..choices import HEADS, TRACK_POOLING
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from ..tasks.base import Task
from .windowreads import KNOWN, readable

RETRAIN = "retrain the model with this version of mer-fastai"
FEATURE_ARCH = "linear"  # the architecture of a model reading window features (`baseline --save-model`)

# Plausible bounds of the fields that size what a reader allocates (the spectrogram's are `SpecConfig`'s own)
INPUT_SIZE = Bounds(1, 4096, whole=True)  # square side in pixels, as `train --size` allows
MAX_CLASSES = 10_000  # classes, targets or moods
MAX_MEMBERS = 1000  # networks of an ensemble

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


def malformed(path: Path, problem: str) -> MerError:
    """The one-line refusal of a model file whose metadata is malformed."""
    return MerError(f"{path}: {problem}; {RETRAIN}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def arch(value: Any, path: Path, reads: str | None = None) -> str:
    """An architecture this version builds; `FEATURE_ARCH` exactly when the model reads window features."""
    from .archs import get_arch

    if not isinstance(value, str) or not value:
        raise malformed(path, f"'arch' must be an architecture name (got {quote(value)})")
    if (reads is not None) != (value == FEATURE_ARCH):  # a model reading window features, and it alone, is linear
        raise malformed(path, f"a model reading window features has arch {quote(FEATURE_ARCH)}, no other one")
    if reads is not None:  # a model of window features: a linear map of them
        return value
    try:
        get_arch(value)
    except MerError as exc:
        raise MerError(f"{path}: {exc}") from exc
    return value


def classes(value: Any, path: Path) -> tuple[str, ...]:
    """Distinct class (target, mood) names, each usable as a file name."""
    if not (isinstance(value, list) and value and all(isinstance(c, str) and c for c in value)):
        raise malformed(path, "'classes' must be a non-empty list of class names")
    if len(value) > MAX_CLASSES:
        raise malformed(path, f"'classes' lists {len(value)} names, over {MAX_CLASSES}")
    if len(set(value)) != len(value):
        raise malformed(path, f"'classes' holds a name twice ({', '.join(value)})")
    for name in value:  # class, mood and target names become file names (a regression target's scatter plot)
        check_component(name, f"{path}: class", RETRAIN)
    return tuple(value)


def spec(value: Any, path: Path) -> SpecConfig:
    """The spectrogram settings, checked by `SpecConfig` itself."""
    if not isinstance(value, Mapping):
        raise malformed(path, "'spectrogram' must be a table of settings")
    try:
        return SpecConfig.from_dict(dict(value))
    except (MerError, TypeError, ValueError) as exc:
        raise malformed(path, f"its spectrogram settings are malformed ({exc})") from exc


def stats(value: Any, path: Path) -> Stats:
    """A mean and a (positive) std per RGB channel."""
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(s, (list, tuple)) and len(s) == 3 and all(map(_is_number, s)) for s in value)
        and all(v > 0 for v in value[1])
    ):
        raise malformed(path, "'stats' must be a mean and a std of 3 numbers each (std > 0)")
    mean, std = (tuple(float(v) for v in s) for s in value)
    return mean, std  # type: ignore[return-value]


def input_size(value: Any, path: Path) -> int:
    """The square input side in pixels (a feature model: its width), within `INPUT_SIZE`."""
    if not (isinstance(value, int) and INPUT_SIZE.holds(value)):
        raise malformed(path, f"'input_size' (pixels) must be {INPUT_SIZE.describe()} (got {quote(value)})")
    return value


def choice(value: Any, key: str, choices: tuple[str, ...], path: Path) -> str:
    """One of `choices`."""
    if value not in choices:
        raise malformed(path, f"{quote(key)} must be one of {', '.join(choices)} (got {quote(value)})")
    return value


def optional_text(value: Any, key: str, path: Path) -> str | None:
    """Text, or None."""
    if value is not None and not isinstance(value, str):
        raise malformed(path, f"{quote(key)} must be text (got {quote(value)})")
    return value


def cuts(value: Any, path: Path) -> tuple[float, ...] | None:
    """Rising rating cut points, or None."""
    if value is None:
        return None
    if not (isinstance(value, list) and all(map(_is_number, value)) and value == sorted(value)):
        raise malformed(path, f"'cuts' must be rising rating cut points (got {quote(value)})")
    return tuple(float(v) for v in value)


def scale(value: Any, task: Task, outputs: int, path: Path) -> tuple[tuple[float, float], ...]:
    """A regression model's [low, high] per output; other models have none."""
    if not task.facts.predicts_values:
        if value:
            raise malformed(path, f"a {task} model has no 'scale'")
        return ()
    pairs = value if isinstance(value, list) else []
    if not (
        len(pairs) == outputs
        and all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) and p[0] < p[1] for p in pairs)
    ):
        raise malformed(path, f"'scale' must give a rising [low, high] for each of its {outputs} targets")
    return tuple((float(low), float(high)) for low, high in pairs)


def metrics(value: Any, path: Path) -> dict:
    """A table of scores (none: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise malformed(path, "'metrics' must be a table of scores")
    return dict(value)


def head(kind: Any, pooling: Any, path: Path) -> dict[str, Any]:
    """The head and its pooling: a window head has none, a track head `TRACK_POOLING`."""
    choice(kind, "head", HEADS, path)
    if pooling != (TRACK_POOLING if kind == HEADS[1] else None):
        raise malformed(path, f"a {kind} head has pooling {quote(TRACK_POOLING if kind == HEADS[1] else None)}, "
                        f"not {quote(pooling)}")  # fmt: skip
    return {"head": kind, "pooling": pooling}


def reads(value: Any, path: Path) -> str | None:
    """What a model of window features reads: features this version computes (`models.windowreads`), or refused."""
    if value is not None and not (isinstance(value, str) and readable(value)):
        raise MerError(f"{path}: reads window features {quote(value)}, which this version does not compute ({KNOWN}); "
                       "refit it with `mer-fastai baseline DATA --classifier linear --save-model`")  # fmt: skip
    return value
