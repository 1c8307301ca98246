"""`--features`: which feature sets describe the windows, each cached apart in `--out`, concatenated in order.

A value is one set or several joined by `+` (`musicnn-msd+handcrafted+melodic`): `handcrafted` (the 83 classic
descriptors, `features.py`), `melodic` (melody, notes, intervals, vibrato, `melodic.py`), `musicnn-msd` and
`musicnn-mtt` (a linear probe of the frozen network's `--layer`, `probes.py`). Every estimator standardises its
inputs, so the concatenation is standardised column by column. Each set's rows are cached in its own file in
`--out` (`features.npz` for the hand-crafted set, `features-<set>.npz` for the others, e.g.
`features-musicnn-msd.penultimate.npz`), keyed by the set's version, the spectrogram settings and the data
set's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...bounds import quote
from ...choices import FEATURE_SETS
from ...choices import PROBE_LAYERS as LAYERS
from ...errors import MerError
from ...runs.layout import FEATURES_FILE
from ...tasks.opened import Dataset
from .features import HANDCRAFTED, FeatureSet, extract_features, share_features
from .melodic import MELODIC
from .probes import probe_set

__all__ = ["DEFAULT_FEATURES", "Features", "parse_features", "row_name"]

DEFAULT_FEATURES = "handcrafted"


@dataclass(frozen=True)
class Features:
    """The chosen feature sets, in the order their columns are concatenated, and what rows call them."""

    sets: tuple[FeatureSet, ...]
    label: str  # "handcrafted", or e.g. "musicnn-msd.penultimate+handcrafted"

    @property
    def names(self) -> list[str]:
        return [name for kind in self.sets for name in kind.names]


def parse_features(value: str = DEFAULT_FEATURES, layer: str = "penultimate") -> Features:
    """The feature sets of a `--features` value (one clear error naming the option for an unknown part)."""
    if layer not in LAYERS:
        raise MerError(f"unknown --layer {quote(layer)}; choose one of {', '.join(LAYERS)}")
    parts = [part.strip() for part in value.split("+")]
    for part in parts:
        if part not in FEATURE_SETS:
            raise MerError(f"unknown --features part {quote(part)}; join any of {', '.join(FEATURE_SETS)} with '+'")
    if len(set(parts)) < len(parts):
        raise MerError(f"--features {quote(value)} names a feature set twice; name each once")
    sets = tuple(_feature_set(part, layer) for part in parts)
    label = "+".join(f"{part}.{layer}" if part.startswith("musicnn-") else part for part in parts)
    return Features(sets, label)


def row_name(classifier: str, features: Features) -> str:
    """A row's (and its folder's) name: the classifier, and the features' label unless they are hand-crafted."""
    return classifier if features.label == DEFAULT_FEATURES else f"{classifier}-{features.label}"


def _feature_set(part: str, layer: str) -> FeatureSet:
    if part == "handcrafted":
        return HANDCRAFTED
    if part == "melodic":
        return MELODIC
    return probe_set(part.removeprefix("musicnn-"), layer)


def cache_file(out: Path, kind: FeatureSet) -> Path:
    """Where `kind`'s rows are cached in an output folder."""
    if kind is HANDCRAFTED:
        return out / FEATURES_FILE
    return out / f"features-{kind.name}.npz"


def gather(
    dataset: Dataset, features: Features, out: Path, workers: int | None, progress: bool
) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
    """Every window's concatenated features (windows that every set described) and the skipped files."""
    found: dict[str, list[np.ndarray]] = {}
    skipped: list[dict[str, str]] = []
    for index, kind in enumerate(features.sets):
        rows, missed = extract_features(dataset, workers, progress, cache_file(out, kind), kind)
        skipped += [item for item in missed if item not in skipped]
        found = {image: [*found.get(image, []), row] for image, row in rows.items() if index == 0 or image in found}
    return {image: np.concatenate(parts) for image, parts in found.items() if len(parts) == len(features.sets)}, skipped


def share(source: Dataset, dataset: Dataset, features: Features, source_out: Path, out: Path) -> None:
    """Hand the rows of each set cached in `source_out` (for `source`) to a fold's data set `dataset`, cached
    in `out`, so that a fold decodes nothing."""
    for kind in features.sets:
        rows, _ = extract_features(source, 1, False, cache_file(source_out, kind), kind)
        share_features(source, rows, dataset, cache_file(out, kind), kind)
