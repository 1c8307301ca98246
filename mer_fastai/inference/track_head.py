"""What a track-head model (`models.track_head.TrackModel`) computes for `Predictor`: one output row per track.

The body runs over the windows in batches (the encoder folded at fp32, as for a window head); the head pools all
of a track's window features at once. A track head gives no window its own output: each window row carries its
track's outputs, so a track's aggregate (the mean of its windows) is the head's output, and every reader of
window rows (predict's files, evaluate, cv, a run's validation and test scores) shows the head's track outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.audio import SkippedFile
from ..errors import MerError
from ..models.windowreads import reads_kind
from .batching import Decoded
from .tracks import TrackPrediction

if TYPE_CHECKING:
    from ..models.modelmeta import ModelMeta
    from .predict import Predictor

__all__ = [
    "TRACK_LAYER",
    "check_track_precision",
    "track_embedding",
    "track_logits",
    "track_predictions",
    "windows_notes",
]

# What `embed` writes for a track head
TRACK_LAYER = (
    "track head: windows, the body's features; tracks, their mean, std and max over the track's windows (the input "
    "of the head's dense layers)"
)


def windows_notes(predictor: Predictor, window: float | None, hop: float | None) -> list[str]:
    """A note when a track head pooled windows cut otherwise than in training (their mean, std and max then differ
    from what its head learned from); none for any other model or cut, and for a mixed-input ensemble (whose
    inputs are always cut as in training)."""
    if not predictor.meta.reads_tracks or window is None or hop is None:
        return []
    trained = predictor.spec.windowing()
    if (window, hop) == trained:
        return []
    return [
        f"a track head pooled windows of {trained[0]:g} s every {trained[1]:g} s in training; windows of {window:g} s "
        f"every {hop:g} s give it other statistics (mean, std, max) than it learned from, an unmeasured change"
    ]


def check_track_precision(precision: str, meta: ModelMeta) -> str:
    """A track head or a model of window features (`meta`) runs at fp32 (`auto` resolves to it); a lower precision is
    refused in one line."""
    if precision not in ("fp32", "auto"):
        what = "track-head" if meta.reads_tracks else reads_kind(meta.window_features or "")
        raise MerError(f"--precision {precision}: a {what} model runs at fp32 only (its lower precisions are not "
                       "checked against it); drop --precision")  # fmt: skip
    return "fp32"


def window_features(predictor: Predictor, images: Sequence[np.ndarray]) -> torch.Tensor:
    """The body's (windows, F) features of spectrogram images, in batches of the predictor's `bs`."""
    features = []
    for start in range(0, len(images), predictor.bs):
        batch = predictor.preprocess(images[start : start + predictor.bs])
        network = predictor.runner(batch)
        with torch.inference_mode():
            features.append(network(batch).flatten(1).float().cpu())
    return torch.cat(features) if features else torch.empty(0, 0)


def track_rows(predictor: Predictor, features: torch.Tensor) -> torch.Tensor:
    """The head's raw outputs for one track whose windows have `features`, repeated on each of its windows."""
    if len(features) == 0:
        return torch.empty(0, len(predictor.classes))
    with torch.inference_mode():
        track = predictor.model.head(features.to(predictor.device)[None]).float().cpu()
    return track.expand(len(features), -1).clone()


def track_logits(predictor: Predictor, images: Sequence[np.ndarray]) -> torch.Tensor:
    """Raw outputs (windows, outputs) of one track's window images, each window carrying the track's outputs: a
    track head's body in batches, then its head over all of them; an ensemble with a track head in one pass over
    all of them (`TrackModel` reads a batch of windows as one clip)."""
    if predictor.meta.is_track:
        return track_rows(predictor, window_features(predictor, images))
    if not images:
        return torch.empty(0, len(predictor.classes))
    batch = predictor.preprocess(images)
    network = predictor.runner(batch)
    with torch.inference_mode():
        return network(batch).float().cpu()


def track_predictions(
    predictor: Predictor, decoded: Iterable[Decoded], aggregate: str
) -> Iterator[TrackPrediction | SkippedFile]:
    """Each decoded file's track (or why it was skipped), file by file: a track head reads all of a file's windows
    at once."""
    for item in decoded:
        if item.error is not None:
            yield SkippedFile(str(item.file), item.error.removeprefix(f"{item.file}: "))
        else:
            yield predictor._track(str(item.file), item, predictor.logits(item.images), aggregate)


def track_embedding(predictor: Predictor, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One track's pooled vector (mean, std and max of its windows' body features `vectors`, what the head's dense
    layers read) and its outputs on each window."""
    from ..models.track_head import pool

    features = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    outputs = predictor.outputs(track_rows(predictor, features))
    return pool(features[None])[0].numpy(), outputs
