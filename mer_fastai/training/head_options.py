"""`--head`'s checks: which other settings a track head (`models.track_head`) can train with, in a light module.

A track head learns from the frozen body's features of all a clip's windows, computed once and cached; every
setting that makes those features change between epochs, or that weighs or adds windows rather than clips, is
refused in one line naming it and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..choices import HEADS, MODES
from ..errors import MerError

__all__ = ["check_head", "is_track"]


def is_track(config: Any) -> bool:
    """Whether the settings `config` (a `TrainConfig`) train a track head."""
    return getattr(config, "head", HEADS[0]) == HEADS[1]


def check_head(config: Any, name: Callable[[str], str]) -> None:
    """Refuse a track head with settings it cannot train with; `name(field)` is how a message names a setting."""
    if not is_track(config):
        return
    head = f"{name('head')} {HEADS[1]}"
    if config.mode != MODES[0]:
        raise MerError(
            f"{head}: learns from the frozen body's cached features, not in {name('mode')} {config.mode}; pass "
            f"{name('mode')} {MODES[0]} or {name('head')} {HEADS[0]}"
        )
    clashes = (
        (not config.feature_cache, "feature_cache", "the body's features cached once; drop --no-feature-cache"),
        (config.train_bn, "train_bn", "a body that does not change; drop it"),
        (config.augment != "none", "augment", "features that do not change between epochs; drop it"),
        (bool(config.mixup), "mixup", "one clip per example; drop it"),
        (config.balanced, "balanced", "clips, and --balanced weights windows; drop it"),
        (bool(config.extra_train_dirs), "extra_train_dirs", "clips, and --augment-dir images belong to none; drop it"),
        (bool(config.augment_audio), "augment_audio", "the data set's own clips (not yet the copies); drop it"),
    )
    for clash, setting, why in clashes:
        if clash:
            raise MerError(f"{head} with {name(setting)}: a track head needs {why} (or pass {name('head')} window)")
