"""The baseline's features: hand-crafted audio features of every window of a data set, cached per output folder.

Each spectrogram of a prepared data set has a row in `manifest.csv` (source file, window start). The same audio
window is decoded again and described by classic music-information-retrieval features (`data.handcrafted`, the
function a hand-crafted model file computes at prediction too). Features are cached in `OUT/features.npz`
(never in the data set, which the baseline only reads).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._plumbing.files import atomic_path
from ..._plumbing.progress import progress_bar
from ..._plumbing.workers import completed, worker_count
from ...data.audio import load_audio, window_at
from ...data.dataset import MANIFEST_FILE
from ...data.handcrafted import FEATURE_VERSION, feature_names, window_features
from ...data.spectrogram import SpecConfig
from ...errors import AudioError
from ...tasks.opened import Dataset, as_dataset

Windows = list[tuple[str, float]]  # the windows of one source file: (image name, start seconds)
SourceRows = tuple[dict[str, np.ndarray], str | None]  # one file's rows by image, or why it could not be decoded


@dataclass(frozen=True)
class FeatureSet:
    """One family of window features: its `name` (a `--features` part), the `version` its cache is keyed by,
    its column `names`, `describe(source, windows, spec_values, audio_dir)` of one source file, and whether
    files are described in parallel processes (`parallel`; a network runs in this process on its own threads)."""

    name: str
    version: str
    names: tuple[str, ...]
    describe: Callable[[str, Windows, dict, str | None], SourceRows]
    parallel: bool = True


def locate_source(source: str, audio_dir: str | None) -> Path:
    """The audio file of a manifest row; a relative path is also tried below the data set's audio folder."""
    path = Path(source)
    if path.exists() or path.is_absolute() or not audio_dir:
        return path
    for start in range(len(path.parts)):
        candidate = Path(audio_dir).joinpath(*path.parts[start:])
        if candidate.is_file():
            return candidate
    return path


def source_features(
    source: str, starts: Windows, spec_values: dict, audio_dir: str | None
) -> tuple[dict[str, np.ndarray], str | None]:
    """Features of every listed window (image name, start seconds) of one file, decoding it once.

    A file that cannot be decoded gives no rows and the reason instead of raising.
    """
    spec = SpecConfig(**spec_values)
    try:
        signal = load_audio(locate_source(source, audio_dir), spec.sample_rate)
    except AudioError as exc:
        return {}, str(exc)
    rows = {}
    for image, start in starts:
        window = window_at(signal, spec.sample_rate, spec.segment_seconds, start)
        rows[image] = window_features(window, spec.sample_rate, spec.n_fft, spec.hop_length)
    return rows, None


def _file_features(job: tuple[str, Windows], describe: Callable, spec_values: dict, audio_dir: str | None):
    """`describe` of one (source file, its windows) job of the worker pool."""
    return describe(*job, spec_values, audio_dir)


def extract_features(
    data_dir: str | Path | Dataset,
    workers: int | None = None,
    progress: bool = True,
    cache: str | Path | None = None,
    feature_set: FeatureSet | None = None,
) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
    """Feature vector of `feature_set` (default: the hand-crafted `HANDCRAFTED`) of every manifest row of a data
    set (a `Dataset` or its folder; keyed by image), kept in the file `cache` when given (a command's
    `OUT/features.npz`); and skipped files.

    A rerun reuses every cached row and only decodes files whose rows are missing.
    """
    dataset, kind = as_dataset(data_dir), feature_set or HANDCRAFTED
    rows, spec = dataset.rows, dataset.spec
    cache_key = _cache_key(dataset, kind)
    cached = _read_cache(Path(cache), cache_key) if cache else {}
    todo: dict[str, Windows] = defaultdict(list)
    for row in rows:
        if row.image not in cached:
            todo[row.source].append((row.image, row.segment_start))
    if not todo:
        return cached, []
    audio_dir = dataset.info.audio_dir
    found, skipped = dict(cached), []
    workers = worker_count(workers, len(todo)) if kind.parallel else 1
    if workers > 1:  # compile librosa's numba kernels once here, so that the forked workers inherit them
        window_features(np.zeros(spec.n_fft, np.float32), spec.sample_rate, spec.n_fft, spec.hop_length)
    jobs = completed(_file_features, todo.items(), workers, kind.describe, spec.to_dict(), audio_dir)
    with progress_bar(f"{kind.name} features", total=len(todo), enabled=progress) as advance:
        for (source, _), outcome in jobs:
            _collect(source, *outcome, found, skipped)
            advance()
    if cache:
        known = [row.image for row in rows if row.image in found]
        _write_cache(Path(cache), cache_key, {image: found[image] for image in known}, kind)
    return found, skipped


def share_features(
    source: Dataset, found: dict[str, np.ndarray], dataset: Dataset, cache: Path, feature_set: FeatureSet | None = None
) -> None:
    """Cache in the file `cache` the features, for `dataset` (a data set made of `source`'s images, e.g. a cv
    fold), `found` of `source`'s windows, matched by source file and window start, so that they are not
    extracted again."""
    image_of = {(row.source, row.segment_start): row.image for row in source.rows}
    shared = {}
    for row in dataset.rows:
        image = image_of.get((row.source, row.segment_start))
        if image in found:
            shared[row.image] = found[image]
    kind = feature_set or HANDCRAFTED
    _write_cache(cache, _cache_key(dataset, kind), shared, kind)


def _cache_key(dataset: Dataset, kind: FeatureSet) -> str:
    """What the cached features hold: the feature set, the spectrogram settings and the data set's manifest
    (another data set, or one re-prepared from other audio, in the same --out recomputes them)."""
    manifest = hashlib.sha1((dataset.path / MANIFEST_FILE).read_bytes()).hexdigest()[:16]
    return f"{kind.version}:{dataset.spec.digest()}:{manifest}"


def _collect(
    source: str,
    features: dict[str, np.ndarray],
    error: str | None,
    found: dict[str, np.ndarray],
    skipped: list[dict[str, str]],
) -> None:
    """Merge one file's outcome: its rows, or its decoding error."""
    if error:
        skipped.append({"file": source, "reason": error})
    found.update(features)


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray]:
    """Cached rows when the cache was made by this feature version from the same spectrogram settings."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return {}
            return dict(zip(saved["images"].tolist(), saved["features"], strict=True))
    except (OSError, KeyError, ValueError):
        return {}


def _write_cache(path: Path, key: str, rows: dict[str, np.ndarray], kind: FeatureSet) -> None:
    features = np.stack(list(rows.values())) if rows else np.zeros((0, len(kind.names)), np.float32)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:  # a handle: np.savez would add ".npz" to a name
        np.savez(
            handle,
            key=np.array(key),
            images=np.array(list(rows)),
            features=features,
            names=np.array(kind.names),
        )


HANDCRAFTED = FeatureSet("handcrafted", FEATURE_VERSION, tuple(feature_names()), source_features)
