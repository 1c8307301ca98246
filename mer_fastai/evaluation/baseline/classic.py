"""`baseline`: hand-crafted audio features and classic classifiers on the data set's own windows and split.

Each spectrogram of a prepared data set has a row in `manifest.csv` (source file, window start, label, split).
The same audio window is decoded again and described by classic music-information-retrieval features (MFCC,
chroma, spectral shape, zero-crossing rate, RMS energy, tempo and beat statistics). Features are cached in
`OUT/features.npz` (never in the data set, which the baseline only reads), standardised on the training split
and fed to an RBF SVM, k-NN, a random forest and extra trees, evaluated on the validation split (and a held-out
test split, when the data set has one): the reference that the CNNs of the study are compared with. Windows and
tracks are scored exactly as a training run scores them (`scores.score_windows`: a window's label is its most
probable class, a track's comes from its windows' `predict_proba` combined by `scores.aggregate`). A regression
data set gets the regressors of the same families (RBF SVR, k-NN, random forest, extra trees regression) on its
targets, scored by `scores.score_regression` (a track's prediction: its windows' mean); a multilabel data set
the same classifiers giving each mood a probability (the SVM one-vs-rest, the others natively multilabel), a
mood predicted at `MOOD_DECISION` as a CNN predicts it, scored by `scores.score_multilabel` (a track's
probabilities: its windows' mean). Each classifier's folder also gets the prediction files of a training run
(`scores.write_predictions`: windows and tracks of validation and test)."""

from __future__ import annotations

import csv
import hashlib
import os
import time
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

from ..._plumbing.files import atomic_path, reads_dataset, write_json
from ..._plumbing.progress import console, progress_bar
from ...choices import CLASSIFIERS
from ...data.audio import load_audio, window_at
from ...data.dataset import MANIFEST_FILE, DatasetInfo, ManifestRow, read_info, read_manifest, read_spec
from ...data.spectrogram import SpecConfig
from ...errors import AudioError, MerError
from ...models.modelmeta import MOOD_DECISION
from ...report.results import RESULT_COLUMNS, SCORE_SETS, SD_SUFFIX, score_columns, write_csv_rows
from ...runs.layout import METRICS_FILE
from ...scoring.scores import (
    MULTILABEL_SCORES,
    REGRESSION_SCORES,
    TEST_PREDICTIONS,
    TEST_PREFIX,
    TEST_TRACK_PREDICTIONS,
    Tracks,
    ValueTracks,
    check_aggregate,
    score_multilabel,
    score_regression,
    score_windows,
    write_predictions,
)

FEATURES_FILE = "features.npz"
FEATURE_VERSION = "mir-83/2"  # change whenever `window_features` changes, so caches are redone
CSV_FILE = "baseline.csv"
# the results table's columns without stage and run_dir, then the track and test scores
CSV_COLUMNS = [*RESULT_COLUMNS[:12], *score_columns({})]


def task_columns(scores: tuple[str, ...]) -> list[str]:
    """A regression or multilabel data set's columns: identity, seconds, then each of `scores` of windows,
    tracks, test windows and test tracks."""
    return [*RESULT_COLUMNS[:9], "seconds"] + [
        prefix + key for prefix in ("", "track_", "test_", "test_track_") for key in scores
    ]


REGRESSION_COLUMNS = task_columns(REGRESSION_SCORES)
MULTILABEL_COLUMNS = task_columns(MULTILABEL_SCORES)
TASK_COLUMNS = {"classification": CSV_COLUMNS, "regression": REGRESSION_COLUMNS, "multilabel": MULTILABEL_COLUMNS}
TABLE_KEYS = {  # the terminal table's scores (a regression's: the means over its targets)
    "classification": ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1"),
    "regression": ("ccc", "rmse", "track_ccc", "track_rmse"),
    "multilabel": ("macro_f1", "map", "track_macro_f1", "track_map"),
}
SPLITS = ("train", "valid", "test")
PREFIXES = (("valid", ""), ("test", TEST_PREFIX))  # the scored splits and the prefix of their prediction files
N_MFCC = 20
CONTRAST_BANDS = 6


def feature_names() -> list[str]:
    """Names of the columns `window_features` returns, in order."""
    names = [f"mfcc{i}_mean" for i in range(N_MFCC)] + [f"mfcc{i}_std" for i in range(N_MFCC)]
    names += [f"chroma{i}_mean" for i in range(12)]
    for name in ("centroid", "bandwidth", "rolloff", "flatness"):
        names += [f"{name}_mean", f"{name}_std"]
    names += [f"contrast{i}_mean" for i in range(CONTRAST_BANDS + 1)]
    names += [f"contrast{i}_std" for i in range(CONTRAST_BANDS + 1)]
    names += ["zcr_mean", "zcr_std", "rms_mean", "rms_std"]
    names += ["tempo_bpm", "onset_mean", "onset_std", "beats_per_second", "beat_interval_std"]
    return names


def window_features(window: np.ndarray, sample_rate: int, n_fft: int, hop_length: int) -> np.ndarray:
    """The hand-crafted feature vector of one audio window (see `feature_names`)."""
    import librosa

    magnitude = np.abs(librosa.stft(window, n_fft=n_fft, hop_length=hop_length))
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=magnitude**2, sr=sample_rate))
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
    # tuning=0: the 12 chroma bins at standard pitch, no per-window tuning estimate (noisy on short windows)
    chroma = librosa.feature.chroma_stft(S=magnitude**2, sr=sample_rate, n_fft=n_fft, tuning=0.0)
    shape = [
        librosa.feature.spectral_centroid(S=magnitude, sr=sample_rate),
        librosa.feature.spectral_bandwidth(S=magnitude, sr=sample_rate),
        librosa.feature.spectral_rolloff(S=magnitude, sr=sample_rate),
        librosa.feature.spectral_flatness(S=magnitude),
    ]
    # the top contrast band must stay below Nyquist: 200 Hz × 2^6 needs a sample rate of 12.8 kHz or more
    fmin = min(200.0, 0.99 * sample_rate / 2 ** (CONTRAST_BANDS + 1))
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sample_rate, fmin=fmin, n_bands=CONTRAST_BANDS)
    zcr = librosa.feature.zero_crossing_rate(window, frame_length=n_fft, hop_length=hop_length)
    rms = librosa.feature.rms(S=magnitude, frame_length=n_fft)
    onset = librosa.onset.onset_strength(S=mel_db, sr=sample_rate)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=sample_rate, hop_length=hop_length))[0])
    _, beats = librosa.beat.beat_track(
        onset_envelope=onset, sr=sample_rate, hop_length=hop_length, bpm=tempo, units="time"
    )
    duration = len(window) / sample_rate
    intervals = np.diff(beats)
    parts = [
        mfcc.mean(axis=1),
        mfcc.std(axis=1),
        chroma.mean(axis=1),
        *([row.mean(), row.std()] for row in (s[0] for s in shape)),
        contrast.mean(axis=1),
        contrast.std(axis=1),
        [zcr.mean(), zcr.std(), rms.mean(), rms.std()],
        [
            tempo,
            onset.mean(),
            onset.std(),
            len(beats) / duration,
            intervals.std() if len(intervals) > 1 else 0.0,
        ],
    ]
    return np.nan_to_num(np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])).astype(np.float32)


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
    source: str, starts: list[tuple[str, float]], spec_values: dict, audio_dir: str | None
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


def extract_features(
    data_dir: str | Path, workers: int | None = None, progress: bool = True, cache: str | Path | None = None
) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
    """Feature vector of every manifest row (keyed by image), kept in the file `cache` when given (a command's
    `OUT/features.npz`); and skipped files.

    A rerun reuses every cached row and only decodes files whose rows are missing.
    """
    data_dir = Path(data_dir)
    rows = read_manifest(data_dir)
    spec = read_spec(data_dir)
    cache_key = _cache_key(data_dir)
    cached = _read_cache(Path(cache), cache_key) if cache else {}
    todo: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for row in rows:
        if row.image not in cached:
            todo[row.source].append((row.image, row.segment_start))
    if not todo:
        return cached, []
    audio_dir = read_info(data_dir).audio_dir
    found, skipped = dict(cached), []
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    with progress_bar("features", total=len(todo), enabled=progress) as advance:
        if workers == 1:
            for source, windows in todo.items():
                _collect(source, *source_features(source, windows, spec.to_dict(), audio_dir), found, skipped)
                advance()
        else:
            # compile librosa's numba kernels once here, so that the forked workers inherit them
            window_features(np.zeros(spec.n_fft, np.float32), spec.sample_rate, spec.n_fft, spec.hop_length)
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                futures = {
                    pool.submit(source_features, source, windows, spec.to_dict(), audio_dir): source
                    for source, windows in todo.items()
                }
                for future in as_completed(futures):
                    _collect(futures[future], *future.result(), found, skipped)
                    advance()
    if cache:
        known = [row.image for row in rows if row.image in found]
        _write_cache(Path(cache), cache_key, {image: found[image] for image in known})
    return found, skipped


def share_features(source_dir: Path, found: dict[str, np.ndarray], data_dir: Path, cache: Path) -> None:
    """Cache in the file `cache` the features, for `data_dir` (a data set made of `source_dir`'s images, e.g. a cv
    fold), `found` of `source_dir`'s windows, matched by source file and window start, so that they are not
    extracted again."""
    image_of = {(row.source, row.segment_start): row.image for row in read_manifest(source_dir)}
    shared = {}
    for row in read_manifest(data_dir):
        image = image_of.get((row.source, row.segment_start))
        if image in found:
            shared[row.image] = found[image]
    _write_cache(cache, _cache_key(data_dir), shared)


def _cache_key(data_dir: Path) -> str:
    """What the cached features hold: the feature set, the spectrogram settings and the data set's manifest
    (another data set, or one re-prepared from other audio, in the same --out recomputes them)."""
    manifest = hashlib.sha1((Path(data_dir) / MANIFEST_FILE).read_bytes()).hexdigest()[:16]
    return f"{FEATURE_VERSION}:{read_spec(data_dir).digest()}:{manifest}"


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


def _write_cache(path: Path, key: str, rows: dict[str, np.ndarray]) -> None:
    features = np.stack(list(rows.values())) if rows else np.zeros((0, len(feature_names())), np.float32)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:  # a handle: np.savez would add ".npz" to a name
        np.savez(
            handle,
            key=np.array(key),
            images=np.array(list(rows)),
            features=features,
            names=np.array(feature_names()),
        )


def make_classifier(name: str, seed: int, n_train: int, workers: int | None = None) -> Pipeline:
    """A standardise-then-classify pipeline for one of `CLASSIFIERS`; every random choice follows `seed`.

    The SVM's class probabilities are libsvm's (`probability=True`: Platt scaling of the pairwise decisions,
    coupled). scikit-learn 1.9 deprecates that option for `CalibratedClassifierCV(SVC(), ensemble=False)`,
    but on 4q-dev's artist-grouped folds the replacement scored 0.638 ± 0.007 track accuracy against libsvm's
    0.650 ± 0.025 (BENCHMARKS.md): the reference would get weaker and flatter the CNNs, so the option stays
    (its warning silenced in `run_baseline`) and pyproject keeps scikit-learn below 1.11, which removes it."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    jobs = workers or os.cpu_count() or 1
    models = {
        "svm": lambda: SVC(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=seed),
        "knn": lambda: KNeighborsClassifier(n_neighbors=min(5, n_train)),
        "random_forest": lambda: RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=jobs),
        "extra_trees": lambda: ExtraTreesClassifier(n_estimators=300, random_state=seed, n_jobs=jobs),
    }
    return make_pipeline(StandardScaler(), models[name]())


def make_regressor(name: str, seed: int, n_train: int, workers: int | None = None) -> Pipeline:
    """A standardise-then-regress pipeline of the family `name` (one of `CLASSIFIERS`), predicting every target."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    jobs = workers or os.cpu_count() or 1
    models = {
        "svm": lambda: MultiOutputRegressor(SVR(kernel="rbf", C=1.0, gamma="scale")),
        "knn": lambda: KNeighborsRegressor(n_neighbors=min(5, n_train)),
        "random_forest": lambda: RandomForestRegressor(n_estimators=300, random_state=seed, n_jobs=jobs),
        "extra_trees": lambda: ExtraTreesRegressor(n_estimators=300, random_state=seed, n_jobs=jobs),
    }
    return make_pipeline(StandardScaler(), models[name]())


def make_mood_classifier(name: str, seed: int, n_train: int, workers: int | None = None) -> Pipeline:
    """A standardise-then-classify pipeline of the family `name` (one of `CLASSIFIERS`) giving every mood a
    probability: the SVM one per mood (one-vs-rest), k-NN and the forests natively multilabel."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_classifier(name, seed, n_train, workers)[-1]
    return make_pipeline(StandardScaler(), OneVsRestClassifier(model) if name == "svm" else model)


MAKERS = {"classification": make_classifier, "regression": make_regressor, "multilabel": make_mood_classifier}


@reads_dataset
def run_baseline(
    data_dir: str | Path,
    out: str | Path,
    classifiers: list[str] | None = None,
    seed: int = 42,
    *,
    aggregate: str = "mean",
    workers: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Fit each classifier on the training windows, score it on the validation (and test) windows and tracks.

    Writes `out/<classifier>/metrics.json` (laid out as a training run's: window scores, the `track` block,
    `valid` and `test`), the classifier's prediction files (those of a training run) and `out/baseline.csv`;
    returns the CSV rows of this run.
    """
    check_aggregate(aggregate)
    data_dir, out = Path(data_dir), Path(out)
    chosen = list(dict.fromkeys(classifiers or CLASSIFIERS))
    unknown = [name for name in chosen if name not in CLASSIFIERS]
    if unknown:
        raise MerError(f"unknown --classifier {unknown[0]!r}; choose from {', '.join(CLASSIFIERS)}")
    info = read_info(data_dir)
    classes = info.classes
    started = time.time()
    found, skipped = extract_features(data_dir, workers, progress, cache=out / FEATURES_FILE)
    feature_seconds = round(time.time() - started, 2)
    for item in skipped:
        console.print(f"[yellow]skipped[/] {item['reason']}", soft_wrap=True, highlight=False)
    splits = _split(read_manifest(data_dir), found, classes, info.task != "classification")
    (x_train, y_train, _), (_, y_valid, _) = splits["train"], splits["valid"]
    if len(y_valid) == 0:
        raise MerError(f"{data_dir}: no validation window has features; prepare with a larger --valid-pct")
    if info.task == "classification" and len(set(y_train.tolist())) < 2:
        raise MerError(f"{data_dir}: the training windows hold fewer than two classes; check the data set")
    dataset = data_dir.resolve().name
    results = []
    for name in chosen:
        begun, folder = time.time(), out / name
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # libsvm's probabilities, kept on purpose (see `make_classifier`)
            warnings.filterwarnings("ignore", "The `probability` parameter was deprecated", FutureWarning)
            model = MAKERS[info.task](name, seed, len(y_train), workers).fit(x_train, y_train)
        scores = {split: _evaluate(model, splits[split], info, aggregate, folder, prefix) for split, prefix in PREFIXES}
        seconds = round(time.time() - begun, 3)
        metrics = {**scores["valid"], "valid": scores["valid"], "test": scores["test"]}
        metrics.update(
            experiment="baseline",
            dataset=dataset,
            arch=name,
            mode="features",
            feature=info.feature,
            seconds=seconds,
            feature_seconds=feature_seconds,
            features=feature_names(),
            n_train=len(y_train),
            n_valid=len(y_valid),
            n_test=len(splits["test"][1]),
            seed=seed,
            skipped=skipped,
        )
        write_json(folder / METRICS_FILE, metrics)
        identity = {"experiment": "baseline", "dataset": dataset, "feature": info.feature, "arch": name,
                    "mode": "features", "weights": "", "augmentation": "none", "epochs": "", "lr": ""}  # fmt: skip
        results.append({**identity, "seconds": seconds, **score_columns(metrics, SCORE_SETS)})
    write_csv(out / CSV_FILE, results, TASK_COLUMNS[info.task])
    return results


def _evaluate(
    model: Pipeline,
    split: tuple[np.ndarray, np.ndarray, list[ManifestRow]],
    info: DatasetInfo,
    aggregate: str,
    folder: Path,
    prefix: str,
) -> dict | None:
    """Window and track scores of one split, its window and track predictions written to `folder` as a training
    run writes them (`prefix` "" or `TEST_PREFIX`); None, and no (stale) test files, when it has no window."""
    x, y, rows = split
    if not len(y):
        for stale in (TEST_PREDICTIONS, TEST_TRACK_PREDICTIONS):
            (folder / stale).unlink(missing_ok=True)
        return None
    outputs = _outputs(model, x, info)
    scores, tracks = _score(outputs, y, [row.clip_id for row in rows], info, aggregate)
    names = list(info.targets) if info.targets else info.classes
    write_predictions(folder, prefix, rows, outputs, tracks, names, info.task)
    return scores


def _outputs(model: Pipeline, x: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """The windows' predicted values (regression), mood probabilities (multilabel) or class probabilities: one
    column per data-set class, 0 for a class the classifier never saw trained."""
    if info.is_regression:
        return model.predict(x)
    if info.is_multilabel:
        return _mood_probs(model, x, len(info.targets))
    probs = np.zeros((len(x), len(info.classes)))
    probs[:, model.classes_] = model.predict_proba(x)
    return probs


def _score(
    outputs: np.ndarray, y: np.ndarray, clip_ids: list[str], info: DatasetInfo, aggregate: str
) -> tuple[dict, Tracks | ValueTracks]:
    """Window and track scores and the tracks of one split, by the function training scores the task with:
    `scores.score_windows` of class probabilities, `scores.score_regression` of predicted values,
    `scores.score_multilabel` of mood probabilities at `MOOD_DECISION`."""
    if info.is_regression:
        return score_regression(outputs, y, clip_ids, list(info.targets))
    if info.is_multilabel:
        return score_multilabel(outputs, y, clip_ids, list(info.targets), MOOD_DECISION)
    return score_windows(outputs, y, clip_ids, info.classes, aggregate)


def _mood_probs(model: Pipeline, x: np.ndarray, n_moods: int) -> np.ndarray:
    """(windows, moods) probabilities. One-vs-rest of several moods gives them as they are; a natively
    multilabel estimator one (windows, classes seen) array per mood, and any estimator of one mood (a binary
    classifier) one such array, whose class-1 column is taken (a mood always or never present in the training
    windows: all 1 or all 0)."""
    probs, seen = model.predict_proba(x), model[-1].classes_
    if n_moods > 1 and not isinstance(probs, list):
        return probs
    pairs = zip(probs, seen) if n_moods > 1 else [(probs, seen)]
    return np.column_stack([p[:, list(c).index(1)] if 1 in c else np.zeros(len(x)) for p, c in pairs])


def _split(
    rows: list[ManifestRow], found: dict[str, np.ndarray], classes: list[str], values: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray, list[ManifestRow]]]:
    """(features, class indices or, with `values`, the regression targets or 1/0 per mood, manifest rows) of
    the train, valid and test windows that have features."""
    width = len(feature_names())
    parts: dict[str, tuple[list, list, list]] = {split: ([], [], []) for split in SPLITS}
    for row in rows:
        if row.image in found and row.split in parts:
            parts[row.split][0].append(found[row.image])
            parts[row.split][1].append(list(row.values) if values else classes.index(row.label))
            parts[row.split][2].append(row)
    return {
        split: (
            np.array(x, dtype=np.float32).reshape(-1, width),
            np.array(y, dtype=np.float64 if values else np.int64),
            kept,
        )
        for split, (x, y, kept) in parts.items()
    }


def write_csv(path: Path, rows: list[dict], columns: list[str] = CSV_COLUMNS) -> Path:
    """Write the rows, keeping earlier rows of other (dataset, classifier) pairs already in the file (and its
    columns: a file holding classification and regression rows has both tasks' score columns)."""
    fresh = {(row["dataset"], row["arch"]) for row in rows}
    kept, header = [], []
    if path.is_file():
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            kept = [row for row in reader if (row.get("dataset"), row.get("arch")) not in fresh]
            header = list(reader.fieldnames or [])
    return write_csv_rows(path, list(dict.fromkeys([*header, *columns])), kept + rows)


def baseline_table(rows: list[dict]) -> Table:
    """Rich table of one baseline run: one row per classifier, its `TABLE_KEYS` scores (a regression data set:
    per regressor, the mean over its targets of CCC and RMSE; a multilabel one: macro-F1 and mAP), windows
    and tracks."""
    task = "regression" if "ccc" in rows[0] else "multilabel" if "map" in rows[0] else "classification"
    keys, first = TABLE_KEYS[task], "regressor" if task == "regression" else "classifier"
    folds = f", mean ± sd over {rows[0]['folds']} folds" if rows[0].get("folds") else ""
    title = f"hand-crafted features — {rows[0]['dataset']} ({rows[0]['feature']}){folds}"
    table = Table(title=title, title_justify="left")
    for column in (first, *keys, "seconds"):
        name = column.replace("_", " ").replace("ccc", "CCC").replace("rmse", "RMSE").replace("map", "mAP")
        table.add_column(name, justify="left" if column == first else "right")
    for row in rows:
        scores = [_cell(row[key], row.get(key + SD_SUFFIX)) for key in keys]
        table.add_row(row["arch"], *scores, f"{row['seconds']:.2f}")
    return table


def _cell(value: float | str, sd: float | str | None = None) -> str:
    """A score of the terminal table (with ± its sd over folds, when it has one); – where undefined."""
    if value == "":
        return "–"
    return f"{value:.3f}" if sd in (None, "") else f"{value:.3f} ± {sd:.3f}"
