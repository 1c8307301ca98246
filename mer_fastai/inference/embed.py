"""`embed`: a trained model as a feature extractor, window by window and track by track.

The features are the model's penultimate layer: the input of the head's final `Linear` (fastai's model
is `nn.Sequential(body, head)`; the head pools and flattens the body's output), taken with a forward
hook. Every window of a file gives one vector; a track's vector is the mean of its windows. The features do
not depend on the task; the `predicted` columns do (`Predictor.describe`): a class, the moods joined by ";",
or `target=value` pairs joined by ";" (a track's from the mean of its windows' outputs).

A musicnn model (`musicnn-msd`, `musicnn-mtt`) also gives musicnn's 50 tag probabilities per window and per
track (mean of its windows), computed on the same windows by the ORIGINAL pretrained tagger (its weights from
the user cache, `mer-fastai weights get musicnn`), not by the fine-tuned body: `embed_files.write_embeddings` puts
them in `<out stem>-tags.csv` beside the embeddings. An ensemble has one feature vector per member and is refused.

A track-head model (`train --head track`) has no head per window: its window vectors are the body's features (what
its head pools), its track vector their mean, std and max over the track's windows (what its dense layers read),
and the `predicted` columns its track outputs on every window (`inference.track_head`).

The files written: `inference.embed_files`; the 2-D map of the tracks: `inference.embed_map`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._plumbing.progress import progress_bar
from ..data.audio import SkippedFile, find_audio_files
from ..data.labels import label_table
from ..data.labelsource import LabelSource, label_source
from ..data.matching import clip_id, labelled_files
from ..errors import MerError
from ..models.windowreads import reads_kind
from ..tasks.base import Task
from ..tasks.registry import DEFAULT
from .batching import Decoded, batched, decoded_in_order

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .predict import Predictor

__all__ = ["Embeddings", "embed_audio"]


@dataclass
class Embeddings:
    """Window and track features with where they come from; labels when a labels file was given."""

    classes: list[str]
    window: float
    hop: float
    model: str | None = None
    feature: str | None = None
    task: Task = DEFAULT
    window_features: list[np.ndarray] = field(default_factory=list)
    window_file: list[str] = field(default_factory=list)
    window_clip_id: list[str] = field(default_factory=list)
    window_start: list[float] = field(default_factory=list)
    window_predicted: list[str] = field(default_factory=list)
    window_label: list[str] = field(default_factory=list)
    track_features: list[np.ndarray] = field(default_factory=list)
    track_file: list[str] = field(default_factory=list)
    track_clip_id: list[str] = field(default_factory=list)
    track_windows: list[int] = field(default_factory=list)
    track_predicted: list[str] = field(default_factory=list)
    track_label: list[str] = field(default_factory=list)
    track_outputs: list[np.ndarray] = field(default_factory=list)  # mean window outputs (probabilities or values)
    skipped: list[SkippedFile] = field(default_factory=list)
    # a musicnn model's: the original tagger's name, its tag names and probabilities (windows and track means)
    tagger: str | None = None
    tags: tuple[str, ...] = ()
    window_tags: list[np.ndarray] = field(default_factory=list)
    track_tags: list[np.ndarray] = field(default_factory=list)
    layer: str = "input of the head's final Linear"  # a track head's: `inference.track_head.TRACK_LAYER`

    @property
    def labelled(self) -> bool:
        return any(self.track_label)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every column as a numpy array (features as float32 matrices), the layout of the .npz file."""
        width = self.track_features[0].shape[0] if self.track_features else 0
        return {
            "window_features": np.stack(self.window_features) if self.window_features else np.zeros((0, width)),
            "window_file": np.array(self.window_file, dtype=str),
            "window_clip_id": np.array(self.window_clip_id, dtype=str),
            "window_start": np.array(self.window_start, dtype=np.float64),
            "window_predicted": np.array(self.window_predicted, dtype=str),
            "window_label": np.array(self.window_label, dtype=str),
            "track_features": np.stack(self.track_features) if self.track_features else np.zeros((0, width)),
            "track_file": np.array(self.track_file, dtype=str),
            "track_clip_id": np.array(self.track_clip_id, dtype=str),
            "track_windows": np.array(self.track_windows, dtype=np.int64),
            "track_predicted": np.array(self.track_predicted, dtype=str),
            "track_label": np.array(self.track_label, dtype=str),
            "classes": np.array(self.classes, dtype=str),
        }

    def info(self) -> dict:
        """What made the embeddings (stored as JSON in the output)."""
        return {
            "model": self.model,
            "feature": self.feature,
            "window": self.window,
            "hop": self.hop,
            "layer": self.layer,
            **({"tagger": self.tagger} if self.tagger else {}),
            "skipped": [{"file": s.file, "reason": s.reason} for s in self.skipped],
        }


def embed_audio(
    predictor: Predictor,
    paths: Iterable[str | Path],
    *,
    labels: LabelSource | str | Path | None = None,
    feature: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    cuts: list[float] | None = None,
    skip_unlabeled: bool = False,
    window: float | None = None,
    hop: float | None = None,
    progress: bool = False,
) -> Embeddings:
    """Features of audio files and folders (searched recursively); clip ids are relative to the folder given.

    With a labels file each clip gets its label, matched as `evaluate` does; a file without a row is an error
    unless `skip_unlabeled` (then it is left out, like clips the feature excludes). `labels`: a `LabelSource`,
    or the labels file (any layout `prepare` reads) with the label keywords `id_column` ... `skip_unlabeled` (kept
    for one release; then `labels` is not a `LabelSource`). Undecodable files are skipped with their reason. A
    musicnn model's tags come with the features (see the module); an ensemble is refused before any work.
    Each file is decoded once (in `predictor.workers` processes) and windows are batched across files.
    """
    source = label_source(
        "embed_audio", labels, id_column=id_column, label_column=label_column, cuts=cuts, skip_unlabeled=skip_unlabeled
    )
    from .track_head import TRACK_LAYER, window_features

    if predictor.meta.window_features:
        raise MerError(f"embed: a {reads_kind(predictor.meta.window_features)} model has no learned features: its "
                       "inputs are the window features `mer-fastai baseline` caches in its --out (features*.npz); "
                       "embed a network instead")  # fmt: skip
    track = predictor.meta.is_track  # a track head: the body's window features, the pooled track vector
    if not track:
        predictor.features([])  # no work: one line for an ensemble or a network without a Linear head
    seconds, step = predictor.window_settings(window, hop)
    files = _files_by_root(paths)
    feature = feature or predictor.feature or "emotions"
    truth, skipped = _labels(predictor, files, source, feature)
    model = str(predictor.source) if predictor.source else None
    result = Embeddings(predictor.classes, seconds, step, model, feature, predictor.task)
    result.skipped = skipped
    result.layer = TRACK_LAYER if track else result.layer
    tagger = _tagger(predictor, result)
    todo = [(file, name) for file, name, _ in files if source.labels is None or file in truth]
    names = dict(todo)

    def compute(images):
        tags = (tag_probabilities(tagger, images, predictor.device, predictor.bs),) if tagger is not None else ()
        if track:  # its outputs come per track (`_add_track`)
            return (window_features(predictor, images).numpy(), np.zeros((len(images), 0)), *tags)
        features, logits = predictor.features(images)
        return (features.numpy().astype(np.float32), predictor.outputs(logits), *tags)

    decoded = decoded_in_order([file for file, _ in todo], predictor.spec, seconds, step, predictor.workers)
    with progress_bar("embedding", total=len(todo), enabled=progress) as advance:
        for item, rows in batched(decoded, compute, predictor.bs):  # one pass per file, windows batched across files
            if item.error is not None:
                result.skipped.append(SkippedFile(str(item.file), item.error.removeprefix(f"{item.file}: ")))
            else:
                _add_track(result, predictor, item, names[item.file], truth.get(item.file, ""), rows)
            advance()
    if not result.track_features:
        raise MerError("no audio file could be embedded; see the skipped files and check the paths")
    return result


def _files_by_root(paths: Iterable[str | Path]) -> list[tuple[Path, str, Path]]:
    """(file, clip id, folder) of every audio file; the id is the path relative to the folder given (a file
    given directly: its name without extension, relative to its own folder)."""
    found = []
    paths = list(paths)
    for root in map(Path, paths):
        base = root if root.is_dir() else root.parent
        found += [(file, clip_id(base, file), base) for file in find_audio_files(root)]
    if not found:
        raise MerError(f"{', '.join(map(str, paths))}: no audio files (.mp3 .wav .flac .ogg ...) found; check the path")
    return found


def _labels(
    predictor: Predictor,
    files: list[tuple[Path, str, Path]],
    source: LabelSource,
    feature: str,
) -> tuple[dict[Path, str], list[SkippedFile]]:
    """Each file's label from the labels file, matched per folder given as `evaluate` matches them (none
    without a labels file)."""
    if source.labels is None:
        return {}, []
    cuts = source.cuts
    if cuts is None and feature == predictor.feature and predictor.meta.cuts is not None:
        cuts = list(predictor.meta.cuts)  # as training binned the ratings
    by_base: dict[Path, list[Path]] = {}
    for file, _, base in files:
        by_base.setdefault(base, []).append(file)
    truth: dict[Path, str] = {}
    skipped: list[SkippedFile] = []
    for base, group in by_base.items():
        table = label_table(
            base, group, source.labels, feature, id_column=source.id_column, label_column=source.label_column,
            cuts=cuts, skip_unlabeled=source.skip_unlabeled,
        )  # fmt: skip
        matched, left_out = labelled_files(base, group, table, source.skip_unlabeled)
        truth.update({file: clip.label for file, _, clip in matched})
        skipped += left_out
    if not truth:
        raise MerError(f"{source.labels}: no audio file matches a labelled id; check ids and --feature")
    return truth, skipped


def _tagger(predictor: Predictor, result: Embeddings) -> nn.Module | None:
    """The original pretrained musicnn tagger of a musicnn model (its name and tags noted in `result`), else None;
    missing weights are one line naming `mer-fastai weights get musicnn`."""
    from ..models.archs import MUSICNN, get_arch

    spec = get_arch(predictor.meta.arch)
    if spec.source != MUSICNN:
        return None
    from ..models.musicnn.tags import TAGS
    from ..models.musicnn.weights import MODELS, load_musicnn

    result.tagger, result.tags = MODELS[spec.model_name], TAGS[spec.model_name]
    return load_musicnn(spec.model_name).to(predictor.device)


def tag_probabilities(tagger: nn.Module, images: list[np.ndarray], device: torch.device, bs: int) -> np.ndarray:
    """musicnn's tag probabilities (windows × tags): its 16-bit window images scaled as the loaders scale them,
    turned into musicnn's log-mel input by `models.musicnn.transfer.SpectrogramInput`, through the tagger and a
    sigmoid."""
    import torch

    from ..models.musicnn.transfer import PIXEL_SCALE, SpectrogramInput

    to_input, outputs = SpectrogramInput(), []
    with torch.inference_mode():
        for start in range(0, len(images), bs):
            pixels = torch.from_numpy(np.stack(images[start : start + bs]).astype(np.float32))[:, None]
            outputs.append(torch.sigmoid(tagger(to_input(pixels.to(device) / PIXEL_SCALE))).float().cpu())
    return torch.cat(outputs).numpy()


def _add_track(
    result: Embeddings, predictor: Predictor, item: Decoded, name: str, label: str, rows: tuple[np.ndarray, ...]
) -> None:
    """One file's windows and track: `rows` are its windows' features, outputs and (musicnn) tags."""
    vectors, probs, *tags = rows
    file, starts = item.file, item.starts
    pooled = vectors.mean(axis=0)
    if predictor.meta.is_track:
        from .track_head import track_embedding

        pooled, probs = track_embedding(predictor, vectors)
    if tags:
        result.window_tags += list(tags[0])
        result.track_tags.append(tags[0].mean(axis=0))
    for start, vector, p in zip(starts, vectors, probs, strict=True):
        result.window_features.append(vector)
        result.window_file.append(str(file))
        result.window_clip_id.append(name)
        result.window_start.append(float(start))
        result.window_predicted.append(predictor.describe(p))
        result.window_label.append(label)
    result.track_features.append(pooled)
    result.track_file.append(str(file))
    result.track_clip_id.append(name)
    result.track_windows.append(len(starts))
    result.track_predicted.append(predictor.describe(probs.mean(axis=0)))
    result.track_outputs.append(probs.mean(axis=0))
    result.track_label.append(label)
