"""`cv`: K-fold cross-validation over the clips of a prepared data set, one ordinary run per fold.

The clips (the test split, if any, stays out) are dealt into K folds, grouped (a split group — e.g. an
artist — never lies on two sides) and stratified as prepare's split is: by class, by the first target's
bin (regression) or per mood (multilabel); each fold's data set is the original images hard-linked into
`OUT/folds/<k>/data`, with fold `k` validating and the others training, and each fold is trained by
`train` into `OUT/folds/<k>/`. Every clip is thus predicted exactly once out of fold (per repeat); the
folds' `valid_predictions.csv`/`track_predictions.csv` are pooled into `oof_predictions.csv` and
`oof_track_predictions.csv`. `cv.json` holds the per-fold scores (the task's own, scored by the functions
training scores with), their mean, standard deviation and 95 % t-interval, the pooled (out-of-fold)
scores and the pooled confusion matrices (classification) or metrics (regression, multilabel), beside
the task's pooled plots. A finished fold whose settings match is skipped on rerun.
Layout: /work/notes/H8-contract.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .._plumbing.files import atomic_path, output_folder, reads_dataset, write_json
from .._plumbing.progress import console
from ..data.dataset import (
    DatasetInfo,
    ManifestRow,
    read_spec,
    write_info,
    write_manifest,
    write_spec,
)
from ..data.split import NO_MOOD, Labels, group_counts, mood_stratum, strata
from ..errors import MerError
from ..models.modelmeta import MOOD_DECISION
from ..plots.figures import plot_confusion, plot_label_bars, plot_value_tracks
from ..runs.layout import CONFUSION_FILE, ENSEMBLE_FILE, LABELS_FILE, METRICS_FILE
from ..scoring.metrics import classification_metrics
from ..scoring.scores import REGRESSION_SCORES, TASK_SCORES, ValueTracks, score_multilabel, score_regression
from ..training.config import TrainConfig
from ..training.fit import TRACK_PREDICTIONS, VALID_PREDICTIONS, task_monitor, train

CV_FILE = "cv.json"
FOLDS_DIR = "folds"
FOLD_DATA = "data"
FOLD_FILE = "fold.json"  # in a fold's run folder: the settings fingerprint it was trained with
OOF_PREDICTIONS = "oof_predictions.csv"
OOF_TRACKS = "oof_track_predictions.csv"
TRACK_CONFUSION_FILE = "track_confusion_matrix.png"
CV_SPLITS = ("train", "valid")  # the clips cross-validated; a held-out test split stays out
INTERVAL = "95 % t-interval over the fold values: mean ± t(0.975, n−1) · sd / √n (sd with n−1)"


@dataclass(frozen=True)
class Fold:
    """One training of the cross-validation: which repeat, which fold, which clips validate."""

    index: int  # position over all repeats; also the run folder's name
    repeat: int
    fold: int
    valid_clips: frozenset[str]

    @property
    def name(self) -> str:
        return str(self.index)


@dataclass
class CVResult:
    """A finished cross-validation: its folder, fold run folders, summary, pooled scores and ensemble."""

    out: Path
    fold_dirs: list[Path]
    summary: dict[str, dict]  # score → mean, sd, values (one per fold), ci95
    pooled: dict[str, float | None]  # score of all out-of-fold predictions together (mean over repeats)
    per_fold: list[dict[str, float | None]]
    per_repeat: list[dict[str, float | None]]  # pooled scores of each repeat
    classes: list[str]  # the classes, or a regression's targets, or the moods
    confusion: dict[str, list[list[int]]]  # classification: "windows"/"tracks" → pooled confusion matrix (rows: true)
    task: str = "classification"
    pooled_metrics: dict = field(default_factory=dict)  # regression/multilabel: the task's metrics of all rows
    ensemble: Path | None = None
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def k_fold_groups(labels: Labels, groups: list[str], k: int, seed: int) -> list[int]:
    """The fold (0..k-1) of each clip: clips of one group share a fold; each fold gets ~1/k of every class
    (a clip labelled with a tuple of moods counts toward each, as in `split.split_groups`).

    Groups are placed largest first (ties in a seeded order that depends on each group's name only), each
    into the fold where it brings the classes' shares closest to 1/k (least squares, as `split_groups`);
    every fold receives at least one group.
    """
    names = sorted(set(groups))
    if k < 2:
        raise MerError(f"--folds must be at least 2 (got {k})")
    if len(names) < k:
        raise MerError(f"--folds {k}: the data set has only {len(names)} clips or groups to deal out; lower --folds")
    classes, counts, totals = group_counts(labels, groups)
    order = sorted(names, key=lambda n: (-counts[n].sum(), hashlib.sha1(f"{seed}:{n}".encode()).hexdigest()))
    folds = np.zeros((k, len(classes)))
    fold_of: dict[str, int] = {}
    for placed, name in enumerate(order):
        empty = [f for f in range(k) if not folds[f].any()]
        candidates = empty if len(empty) >= len(order) - placed else range(k)

        def cost(f: int, name: str = name) -> tuple[float, float, int]:
            error = np.sum(((folds[f] + counts[name]) / totals - 1 / k) ** 2) - np.sum((folds[f] / totals - 1 / k) ** 2)
            return float(error), float(folds[f].sum()), f

        best = min(candidates, key=cost)
        fold_of[name] = best
        folds[best] += counts[name]
    return [fold_of[group] for group in groups]


def clip_groups(data_dir: Path, info: DatasetInfo, rows: list[ManifestRow]) -> tuple[dict[str, str], str]:
    """The split group of every clip and where it came from ("manifest", "labels file" or "clips").

    Without `--group-by` every clip is its own group (as in prepare). With it, the groups come from the
    manifest's `group` column, else are read back from the labels file `dataset.json` records.
    """
    recorded = {row.clip_id: row.group for row in rows}
    if any(recorded.values()):
        return {clip: group or clip for clip, group in recorded.items()}, "manifest"
    group_by = info.settings.get("group_by")
    if not group_by:
        return {clip: clip for clip in recorded}, "clips"
    return _groups_from_labels(data_dir, info, rows, group_by), "labels file"


def _groups_from_labels(data_dir: Path, info: DatasetInfo, rows: list[ManifestRow], group_by: str) -> dict[str, str]:
    from ..data.labels import label_table, match_clips

    labels = info.settings.get("labels")
    files = sorted({Path(row.source) for row in rows})
    try:
        audio_dir = Path(info.audio_dir or "")
        table = label_table(
            audio_dir, files, labels, info.feature, group_by=group_by, cuts=info.settings.get("cuts"),
            skip_unlabeled=True,
        )  # fmt: skip
        matched, _, _ = match_clips(audio_dir, files, table)
    except (MerError, OSError, ValueError) as exc:
        raise MerError(
            f"{data_dir}: was prepared with --group-by {group_by}, but its manifest does not record the groups and "
            f"they cannot be read back from {labels} ({exc}); prepare it again with this version of mer-fastai"
        ) from exc
    groups = {name: clip.group or name for _, name, clip in matched}
    lost = sorted({row.clip_id for row in rows} - set(groups))
    if lost:
        raise MerError(
            f"{data_dir}: the groups of {len(lost)} clip(s) (e.g. {lost[0]}) cannot be read back from {labels}; "
            "prepare the data set again with this version of mer-fastai"
        )
    return groups


Clips = dict[str, tuple[str | tuple[str, ...], str]]  # clip id → (what it is stratified by, its group)


def clip_strata(info: DatasetInfo, row: ManifestRow) -> str | tuple[str, ...]:
    """What a clip's fold is stratified by, as prepare's split: its class (a regression's: the first target's
    bin, its folder), or each of its moods."""
    return mood_stratum(info.targets, row.values) if info.is_multilabel else row.label


def plan_folds(clips: Clips, folds: int, repeats: int, seed: int, learned: str | None = "class") -> list[Fold]:
    """The K·R trainings: for repeat r the clips (id → (label, group)) are dealt with seed `seed + r`.

    `learned` ("class", "mood", or None for a regression) is what every fold's training must hold each of."""
    if repeats < 1:
        raise MerError(f"--repeats must be at least 1 (got {repeats})")
    ids = sorted(clips)
    labels = [clips[clip][0] for clip in ids]
    groups = [clips[clip][1] for clip in ids]
    plan = []
    for repeat in range(repeats):
        assigned = k_fold_groups(labels, groups, folds, seed + repeat)
        for fold in range(folds):
            valid = frozenset(clip for clip, f in zip(ids, assigned, strict=True) if f == fold)
            plan.append(Fold(len(plan), repeat, fold, valid))
    if learned:
        _check_training_classes(clips, plan, learned)
    return plan


def _check_training_classes(clips: Clips, plan: list[Fold], what: str) -> None:
    """Every class (mood) must keep training clips in every fold (one group holding a whole class cannot be
    validated); clips without any mood are no mood to learn."""
    unlearned = {NO_MOOD} if what == "mood" else set()
    everything = {name for label, _ in clips.values() for name in strata(label)} - unlearned
    for fold in plan:
        trained = {name for clip, (label, _) in clips.items() if clip not in fold.valid_clips for name in strata(label)}
        missing = sorted(everything - trained)
        if missing:
            raise MerError(
                f"fold {fold.name}: {what} {missing[0]!r} has all its clips in this fold's validation (its clips share "
                "one group), so no model could learn it; add clips of other groups, or prepare without --group-by"
            )


def build_fold_data(data_dir: Path, info: DatasetInfo, rows: list[ManifestRow], fold: Fold, dest: Path) -> Path:
    """A data set folder for one fold: the images linked in, its manifest, dataset.json and spectrogram.json."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    fold_rows = []
    for row in rows:
        split = "valid" if row.clip_id in fold.valid_clips else "train"
        image = f"{split}/{row.label}/{Path(row.image).name}"
        target = dest / image
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise MerError(f"{data_dir}: two images are named {Path(row.image).name} in class {row.label}; {_REMAKE}")
        _link(row.path(data_dir), target)
        fold_rows.append(replace(row, split=split, image=image))
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in fold_rows:
        counts[row.split][row.label] += 1
    write_manifest(dest, fold_rows)
    write_spec(dest, read_spec(data_dir))
    settings = {**info.settings, "cv": {"repeat": fold.repeat, "fold": fold.fold, "valid_clips": len(fold.valid_clips)}}
    write_info(
        dest,
        replace(
            info,
            clips=len({row.clip_id for row in fold_rows}),
            segments=len(fold_rows),
            counts={split: dict(counts[split]) for split in CV_SPLITS},
            notes=[],
            settings=settings,
            subset_of=str(data_dir),
        ),
    )
    return dest


_REMAKE = "prepare the data set again with `mer-fastai prepare --overwrite`"


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy, no space), else a symbolic link (another file system)."""
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())


def fold_fingerprint(data_dir: Path, info: DatasetInfo, config: TrainConfig, fold: Fold) -> str:
    """What a fold's training depends on: the data set, every training setting and its validation clips."""
    body = {
        "data_dir": str(data_dir.resolve()),
        "dataset": info.settings,
        "config": config.fingerprint_settings(),
        "valid": sorted(fold.valid_clips),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _is_done(run_dir: Path, fingerprint: str) -> bool:
    return _fold_record(run_dir).get("fingerprint") == fingerprint and (run_dir / METRICS_FILE).is_file()


def dataset_folds(
    data_dir: Path, folds: int, repeats: int, seed: int
) -> tuple[DatasetInfo, list[ManifestRow], list[Fold], str]:
    """The checked data set's info, the rows cross-validated (train and valid: a test split stays out), the
    K·R folds dealt with `seed` and where the groups came from: the folds `run_cv` trains and
    `cross_validate_baseline` scores, the same for both at the same seed."""
    from ..training.loaders import check_dataset

    info, all_rows = check_dataset(data_dir)
    rows = [row for row in all_rows if row.split in CV_SPLITS]
    groups, group_source = clip_groups(data_dir, info, rows)
    clips = {row.clip_id: (clip_strata(info, row), groups[row.clip_id]) for row in rows}
    learned = {"classification": "class", "multilabel": "mood"}.get(info.task)
    return info, rows, plan_folds(clips, folds, repeats, seed, learned), group_source


def fold_config(config: TrainConfig) -> TrainConfig:
    """The settings each fold trains with: `config` checked, keeping its last epoch. A fold's validation clips
    are its out-of-fold score, so nothing may be chosen on them: neither the kept epoch nor an early stop."""
    config.check()
    if config.patience:
        raise MerError(
            f"--patience {config.patience}: cv scores each fold on its validation clips, so it cannot stop early on "
            "them (that would flatter the score); drop --patience, or set --epochs lower"
        )
    return replace(config, keep="last")


@reads_dataset
def run_cv(
    data_dir: str | Path,
    config: TrainConfig,
    out: str | Path,
    folds: int = 5,
    repeats: int = 1,
    *,
    seed: int | None = None,
    ensemble: bool = True,
    report: bool = True,
    show: bool = True,
) -> CVResult:
    """Cross-validate `config` on the data set `data_dir` into `out` (resumable; `out` is locked meanwhile).

    `seed` deals the folds (default: the training seed; repeat r uses seed + r). With `ensemble`, the fold
    models are also written as one ensemble model file `out/ensemble.safetensors`; with `report`, the
    HTML report `out/report.html`.
    """
    data_dir, out = Path(data_dir), Path(out)
    config = fold_config(config)
    info, rows, plan, group_source = dataset_folds(data_dir, folds, repeats, config.seed if seed is None else seed)
    task_monitor(config, info)  # --loss/--monitor of another task: refused before any fold trains
    with output_folder(out, "--out"):
        _check_other_folds(out, plan, folds, repeats)
        ran, skipped = [], []
        for fold in plan:
            run_dir = out / FOLDS_DIR / fold.name
            fingerprint = fold_fingerprint(data_dir, info, config, fold)
            if _is_done(run_dir, fingerprint):
                skipped.append(fold.name)
                continue
            if show:
                console.print(f"fold {fold.index + 1}/{len(plan)}: {len(fold.valid_clips)} validation clips")
            (run_dir / FOLD_FILE).unlink(missing_ok=True)
            fold_data = build_fold_data(data_dir, info, rows, fold, run_dir / FOLD_DATA)
            train(fold_data, config, run_dir, show=show)
            record = {"fingerprint": fingerprint, "folds": folds, "repeats": repeats, "repeat": fold.repeat}
            write_json(run_dir / FOLD_FILE, {**record, "fold": fold.fold})
            ran.append(fold.name)
        result = _pool(out, plan, rows, info)
        result.ran, result.skipped = ran, skipped
        if ensemble:
            from .ensemble import ensemble_models

            result.ensemble = ensemble_models(result.fold_dirs, out / ENSEMBLE_FILE).model_file
        write_json(out / CV_FILE, _cv_document(data_dir, config, plan, result, info, group_source))
    if show:
        console.print(summary_table(result))
    if report:
        _write_report(out, show)
    return result


def _check_other_folds(out: Path, plan: list[Fold], folds: int, repeats: int) -> None:
    """Refuse an output folder that holds the folds of another cross-validation (another --folds/--repeats)."""
    names = {fold.name for fold in plan}
    for run_dir in sorted((out / FOLDS_DIR).glob("*")):
        recorded = _fold_record(run_dir)
        if run_dir.name not in names or (
            recorded and (recorded.get("folds"), recorded.get("repeats")) != (folds, repeats)
        ):
            raise MerError(
                f"{out}: holds the folds of another cross-validation (e.g. {FOLDS_DIR}/{run_dir.name}); "
                "pass a new --out, or the same --folds and --repeats as before"
            )


def _fold_record(run_dir: Path) -> dict:
    """The fold.json of a finished fold ({} when there is none or it is unreadable)."""
    try:
        record = json.loads((run_dir / FOLD_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise MerError(
            f"{path}: not found; the fold's run was made by a mer-fastai that did not write it: delete "
            f"{path.parent} and rerun the same command"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _names(task: str, columns: list[str], path: Path) -> list[str]:
    """The classes or moods (`prob_<name>` columns), or a regression's targets (`pred_<name>`), in order."""
    prefix = "pred_" if task == "regression" else "prob_"
    names = [name.removeprefix(prefix) for name in columns if name.startswith(prefix)]
    if not names:
        raise MerError(f"{path}: has no {prefix}<name> columns; delete {path.parent} and rerun the same command")
    return names


def _scores(rows: list[dict[str, str]], classes: list[str]) -> dict:
    """classification_metrics of prediction rows (`true`, `predicted`)."""
    index = {name: i for i, name in enumerate(classes)}
    targets = np.array([index[row["true"]] for row in rows])
    predicted = np.array([index[row["predicted"]] for row in rows])
    return classification_metrics(targets, predicted, classes)


@dataclass
class _Scored:
    """The task's metrics of some out-of-fold prediction rows: windows, tracks and (regression, multilabel)
    the tracks' values."""

    window: dict
    track: dict
    values: ValueTracks | None = None


def _score_rows(task: str, names: list[str], windows: list[dict], tracks: list[dict]) -> _Scored:
    """Score prediction rows with the function training scores the task with: `classification_metrics` of the
    window and track rows, `score_regression` or `score_multilabel` of the window rows (a track: the mean of
    its windows, as in training; a clip of several repeats counts once per repeat)."""
    if task == "classification":
        return _Scored(_scores(windows, names), _scores(tracks, names))
    clips = [f"{row['repeat']}/{row['clip_id']}" for row in windows]
    if task == "regression":
        metrics, values = score_regression(_matrix(windows, "pred_", names), _matrix(windows, "true_", names), clips,
                                           names)  # fmt: skip
    else:
        truth = np.array([[float(mood in row["true"].split(";")) for mood in names] for row in windows])
        metrics, values = score_multilabel(_matrix(windows, "prob_", names), truth, clips, names, MOOD_DECISION)
    return _Scored(metrics, metrics["track"], values)


def _matrix(rows: list[dict], prefix: str, names: list[str]) -> np.ndarray:
    """The `<prefix><name>` columns of prediction rows as a (rows, names) array."""
    return np.array([[float(row[prefix + name]) for name in names] for row in rows]).reshape(len(rows), len(names))


def _fold_scores(task: str, names: list[str], scored: _Scored) -> dict[str, float | None]:
    """The scores cv.json summarises: the task's scores (`TASK_SCORES`) of windows, then of tracks (`track_`);
    a regression's also per target (`ccc_valence`, `track_rmse_energy`, ...)."""
    values: dict[str, float | None] = {}
    for prefix, block in (("", scored.window), ("track_", scored.track)):
        values.update({prefix + key: block[key] for key in TASK_SCORES[task]})
        if task == "regression":
            per_target = block["per_target"]
            values.update({f"{prefix}{key}_{t}": per_target[t][key] for t in names for key in REGRESSION_SCORES})
    return values


def _pool(out: Path, plan: list[Fold], rows: list[ManifestRow], info: DatasetInfo) -> CVResult:
    """Per-fold scores, the out-of-fold prediction files, pooled scores and the task's pooled plots."""
    windows, tracks = [], []
    columns: dict[str, list[str]] = {}
    for fold in plan:
        run_dir = out / FOLDS_DIR / fold.name
        for name, pooled in ((VALID_PREDICTIONS, windows), (TRACK_PREDICTIONS, tracks)):
            names, found = _read_csv(run_dir / name)
            if columns.setdefault(name, names) != names:
                raise MerError(f"{run_dir / name}: its columns differ from fold 0's; delete {run_dir} and rerun")
            pooled += [{**row, "repeat": str(fold.repeat), "fold": fold.name} for row in found]
    originals = {f"valid/{row.label}/{Path(row.image).name}": row.image for row in rows}
    for row in windows:  # name each image as the cross-validated data set does (the report shows it from there)
        row["image"] = originals.get(row["image"], row["image"])
    names = _names(info.task, columns[VALID_PREDICTIONS], out / FOLDS_DIR / plan[0].name / VALID_PREDICTIONS)
    _check_coverage(plan, rows, windows, tracks)
    _write_oof(out / OOF_PREDICTIONS, columns[VALID_PREDICTIONS], windows)
    _write_oof(out / OOF_TRACKS, columns[TRACK_PREDICTIONS], tracks)

    def scores_of(key: str, value: str) -> dict[str, float | None]:
        subset = (_where(windows, key, value), _where(tracks, key, value))
        return _fold_scores(info.task, names, _score_rows(info.task, names, *subset))

    per_fold = [scores_of("fold", fold.name) for fold in plan]
    per_repeat = [scores_of("repeat", repeat) for repeat in sorted({str(fold.repeat) for fold in plan})]
    pooled = {name: describe([scores[name] for scores in per_repeat])["mean"] for name in per_fold[0]}
    summary = {name: describe([scores[name] for scores in per_fold]) for name in per_fold[0]}
    scored = _score_rows(info.task, names, windows, tracks)
    _plot_pooled(out, info, names, scored, f"{len(plan)} folds, out of fold")
    classification = info.task == "classification"
    levels = (("windows", scored.window), ("tracks", scored.track)) if classification else ()
    return CVResult(
        out,
        [out / FOLDS_DIR / fold.name for fold in plan],
        summary,
        pooled,
        per_fold,
        per_repeat,
        names,
        {level: block["confusion_matrix"] for level, block in levels},
        info.task,
        {} if classification else scored.window,
    )


def _where(rows: list[dict], key: str, value: str) -> list[dict]:
    return [row for row in rows if row[key] == value]


def _plot_pooled(out: Path, info: DatasetInfo, names: list[str], scored: _Scored, title: str) -> None:
    """The pooled pictures of the task, drawn by the functions a training run draws them with: confusion
    matrices (windows, tracks), a regression's scatters and circumplex of the tracks, a multilabel's per-mood
    bars of the windows."""
    if info.task == "classification":
        plot_confusion(out / CONFUSION_FILE, scored.window["confusion_matrix"], names, f"windows · {title}")
        plot_confusion(out / TRACK_CONFUSION_FILE, scored.track["confusion_matrix"], names, f"tracks · {title}")
    elif info.is_regression and scored.values is not None:
        plot_value_tracks(out, "", scored.values.predicted, scored.values.targets, names, info.scale,
                          f"{len(scored.values.ids)} tracks · {title}")  # fmt: skip
    else:
        plot_label_bars(out / LABELS_FILE, scored.window["per_label"], f"windows · {title}")


def _check_coverage(plan: list[Fold], rows: list[ManifestRow], windows: list[dict], tracks: list[dict]) -> None:
    """Every clip (and window) predicted exactly once out of fold per repeat, and only by the fold that held it out."""
    clips = sorted({row.clip_id for row in rows})
    by_name = {fold.name: fold for fold in plan}
    for repeat in sorted({fold.repeat for fold in plan}):
        predicted = [r["clip_id"] for r in tracks if r["repeat"] == str(repeat)]
        images = [r["image"] for r in windows if r["repeat"] == str(repeat)]
        wrong = [
            r["clip_id"]
            for r in tracks
            if r["repeat"] == str(repeat) and r["clip_id"] not in by_name[r["fold"]].valid_clips
        ]
        if sorted(predicted) != clips or len(images) != len(rows) or wrong:
            raise MerError(
                f"repeat {repeat}: the folds' predictions do not cover every clip exactly once ({len(predicted)} "
                f"track rows for {len(clips)} clips, {len(images)} window rows for {len(rows)} images); delete the "
                "fold folders and rerun"
            )


def _write_oof(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "repeat", "fold"])
        writer.writeheader()
        writer.writerows(rows)


def describe(values: list[float | None]) -> dict:
    """mean, standard deviation (n−1), the values and a 95 % t-interval of the mean, over the values that are
    defined (a score undefined in a fold, e.g. Pearson r of constant predictions, is null and left out)."""
    from scipy import stats

    present = [float(v) for v in values if v is not None]
    n = len(present)
    shown = [None if v is None else float(v) for v in values]
    if not n:
        return {"mean": None, "sd": None, "values": shown, "ci95": [None, None]}
    mean = float(np.mean(present))
    sd = float(np.std(present, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "values": shown, "ci95": [mean - half, mean + half]}


def _cv_document(
    data_dir: Path, config: TrainConfig, plan: list[Fold], result: CVResult, info: DatasetInfo, group_source: str
) -> dict:
    folds = max(fold.fold for fold in plan) + 1
    document = {
        "folds": folds,
        "repeats": len(plan) // folds,
        "data_dir": str(data_dir),
        "feature": info.feature,
        "task": info.task,
        "groups": {"group_by": info.settings.get("group_by"), "from": group_source},
        "config": config.to_dict(),
        "classes" if info.task == "classification" else "targets": result.classes,
        "runs": [
            {
                "name": fold.name,
                "repeat": fold.repeat,
                "fold": fold.fold,
                "valid_clips": len(fold.valid_clips),
                "scores": scores,
            }
            for fold, scores in zip(plan, result.per_fold, strict=True)
        ],  # fmt: skip
        "summary": result.summary,
        "interval": INTERVAL,
        "pooled": result.pooled,
        "pooled_per_repeat": result.per_repeat,
        "ensemble": result.ensemble.name if result.ensemble else None,
    }
    if info.task == "classification":
        document.update(confusion_matrix=result.confusion["windows"], track_confusion_matrix=result.confusion["tracks"])
    else:
        document.update(pooled_metrics=result.pooled_metrics)
    return document


def summary_table(result: CVResult):
    """The terminal table: each of the task's scores (windows, then tracks; a regression's means over its
    targets, the per-target ones are in cv.json) with mean ± sd, 95 % interval, pooled and per-fold values."""
    from rich.table import Table

    table = Table(title=f"cross-validation ({result.task}): {len(result.fold_dirs)} folds — {result.out}")
    for column in ("score", "mean ± sd", "95 % interval", "pooled (out of fold)", "per fold"):
        table.add_column(column)
    for name in (prefix + key for prefix in ("", "track_") for key in TASK_SCORES[result.task]):
        values = result.summary[name]
        low, high = values["ci95"]
        table.add_row(
            name,
            f"{_cell(values['mean'])} ± {_cell(values['sd'])}",
            f"{_cell(low)} – {_cell(high)}",
            _cell(result.pooled[name]),
            " ".join(_cell(v) for v in values["values"]),
        )
    return table


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _write_report(out: Path, show: bool) -> None:
    """The HTML report; a failure is a warning, never the loss of a finished cross-validation."""
    from ..report.html.page import write_report

    try:
        path = write_report(out)
    except (MerError, OSError) as exc:
        console.print(f"[yellow]warning:[/] the HTML report could not be written ({exc})", soft_wrap=True)
        return
    if show:
        console.print(f"report: [bold]{path}")
