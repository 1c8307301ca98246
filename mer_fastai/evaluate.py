"""`evaluate`: track-level scores of a saved model on labelled audio files.

A classifier is scored as training scores its tracks (`scores.score_windows`); a regression model against
the labels file's target columns (`labels.read_targets`, as `prepare --target` reads them) with
`scores.score_regression`, and a multilabel model against its moods (`labels.read_moods`) with
`scores.score_multilabel`: the same functions, plots and CSV columns as training.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import audio_files
from .errors import MerError
from .files import atomic_path, atomic_write, output_folder
from .labels import ClipLabel, LabelTable, label_table, labelled_files, read_moods, read_targets
from .predict import Predictions, Predictor, SkippedFile
from .report import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    REPORT_FILE,
    circumplex_axes,
    plot_circumplex,
    plot_confusion,
    plot_label_bars,
    plot_scatter,
    scatter_file,
    text_report,
    write_json,
)
from .scores import Tracks, ValueTracks, check_aggregate, score_multilabel, score_regression, score_windows

PREDICTIONS_FILE = "predictions.csv"


@dataclass
class EvaluationResult:
    """Where the report went, its metrics, the predictions and the files left out (with why)."""

    out_dir: Path
    metrics: dict
    predictions: Predictions
    skipped: list[SkippedFile] = field(default_factory=list)


def evaluate(
    model: str | Path | Predictor,
    audio_dir: str | Path,
    out: str | Path,
    *,
    labels: str | Path | None = None,
    feature: str | None = None,
    group_by: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    cuts: list[float] | None = None,
    window: float | None = None,
    hop: float | None = None,
    aggregate: str = "mean",
    skip_unlabeled: bool = False,
    targets: list[str] | None = None,
    threshold: float | None = None,
    bs: int = 32,
    device: str | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Predict every labelled file under `audio_dir` and score the track labels against the truth.

    Labels come from `labels` (any layout `prepare` reads) or, without it, from class folders. Clips the
    feature leaves out (e.g. SURPRISE for emotions) are skipped with a note; a label the model does not
    know is an error. Writes metrics.json, classification_report.txt, confusion_matrix.png and
    predictions.csv to `out`.

    A regression or multilabel model needs `labels`: see `_evaluate_values` (`targets`: the labels file's
    columns for the model's targets or moods, default their names; `threshold`: vote shares, as `prepare`).
    """
    audio_dir, out_dir = Path(audio_dir), Path(out)
    check_aggregate(aggregate)
    with output_folder(out_dir, "--out"):
        predictor = model if isinstance(model, Predictor) else Predictor.load(model, device=device, bs=bs)
        if predictor.task != "classification":
            if feature is not None or cuts is not None:
                raise MerError(
                    f"--{'feature' if feature is not None else 'cuts'}: names a class task; a {predictor.task} "
                    "model is scored against its --target columns: drop it"
                )
            options = {"group_by": group_by, "id_column": id_column, "label_column": label_column,
                       "skip_unlabeled": skip_unlabeled, "targets": targets, "threshold": threshold}  # fmt: skip
            return _evaluate_values(predictor, audio_dir, out_dir, labels, options, window, hop, aggregate, progress)
        _refuse_value_options(targets, threshold)
        feature = feature or predictor.feature or "emotions"
        files = audio_files(audio_dir)
        if labels is not None and cuts is None and feature == predictor.feature:
            cuts = list(predictor.meta.cuts) if predictor.meta.cuts is not None else None  # as training binned
        table = label_table(
            audio_dir,
            files,
            labels,
            feature,
            group_by=group_by,
            id_column=id_column,
            label_column=label_column,
            cuts=cuts,
            skip_unlabeled=skip_unlabeled,
        )
        truth, ids, skipped = _match(audio_dir, files, table, skip_unlabeled)
        _check_classes(truth, predictor, table.source)
        predictions = predictor.predict_many(
            list(truth), window=window, hop=hop, aggregate=aggregate, progress=progress
        )
        skipped += predictions.skipped
        if not predictions.tracks:
            raise MerError(f"{audio_dir}: every labelled file failed to decode; see the skipped files")
        metrics, tracks = _score(predictions, truth, predictor.classes, aggregate)
        metrics.update(
            feature=feature,
            model=str(predictor.source) if predictor.source else None,
            audio_dir=str(audio_dir),
            labels=table.source,
            cuts=table.cuts,
            window=predictions.window,
            hop=predictions.hop,
            aggregate=aggregate,
            n_skipped=len(skipped),
            skipped=[asdict(item) for item in skipped],
            notes=table.notes,
        )
        _write_report(out_dir, metrics, tracks, predictions, truth, ids, predictor)
    return EvaluationResult(out_dir, metrics, predictions, skipped)


def _match(
    audio_dir: Path, files: list[Path], table: LabelTable, skip_unlabeled: bool
) -> tuple[dict[str, ClipLabel], dict[str, str], list[SkippedFile]]:
    """Each labelled file's truth and clip id, and the files left out (with why); none labelled is an error."""
    matched, skipped = labelled_files(audio_dir, files, table, skip_unlabeled)
    if not matched:
        raise MerError(f"{audio_dir}: no audio file matches a labelled id in {table.source}; check ids and --feature")
    return {str(file): clip for file, _, clip in matched}, {str(file): name for file, name, _ in matched}, skipped


def _refuse_value_options(targets: list[str] | None, threshold: float | None) -> None:
    if targets or threshold is not None:
        option = "--target" if targets else "--threshold"
        raise MerError(
            f"{option}: names regression or multilabel columns; a classifier is scored by --feature, drop it"
        )


def _evaluate_values(
    predictor: Predictor,
    audio_dir: Path,
    out_dir: Path,
    labels: str | Path | None,
    options: dict,
    window: float | None,
    hop: float | None,
    aggregate: str,
    progress: bool,
) -> EvaluationResult:
    """Score a regression model (per target CCC, r, R², RMSE, MAE of tracks; scatter and circumplex plots) or a
    multilabel model (micro/macro F1, mAP, per mood; per_label.png) on the labelled files under `audio_dir`.

    The labels file gives the model's targets (or moods) in the columns `targets`, in the model's order
    (default: the columns named as the model's targets); moods may also come from a `label_column` of
    `;`-separated moods. Tracks are the mean of their windows, as in training.
    """
    predictor.check_aggregate(aggregate)
    if labels is None:
        raise MerError(
            f"--labels: a {predictor.task} model is scored against a labels file with its targets "
            f"({', '.join(predictor.classes)}); pass --labels FILE"
        )
    files = audio_files(audio_dir)
    table = _value_table(predictor, labels, options)
    truth, ids, skipped = _match(audio_dir, files, table, options["skip_unlabeled"])
    predictions = predictor.predict_many(list(truth), window=window, hop=hop, aggregate=aggregate, progress=progress)
    skipped += predictions.skipped
    if not predictions.tracks:
        raise MerError(f"{audio_dir}: every labelled file failed to decode; see the skipped files")
    windows = [(track.file, w) for track in predictions for w in track.windows]
    classes, clip_ids = predictor.classes, [file for file, _ in windows]
    order = _order(table, classes, bool(options["label_column"]))
    true = np.array([[truth[file].values[i] if i is not None else 0.0 for i in order] for file in clip_ids])  # type: ignore[index]
    true = true.reshape(-1, len(classes))
    if predictor.task == "regression":
        outputs = np.array([[w.values[n] for n in classes] for _, w in windows])  # type: ignore[index]
        scores, tracks = score_regression(outputs, true, clip_ids, classes)
    else:
        outputs = np.array([[w.probabilities[n] for n in classes] for _, w in windows])
        scores, tracks = score_multilabel(outputs, true, clip_ids, classes, predictor.threshold)  # type: ignore[arg-type]
    metrics = {
        **scores["track"],
        "task": predictor.task,
        "n_tracks": scores["n_tracks"],
        "n_windows": scores["n_windows"],
        "window_scores": {key: scores[key] for key in scores["track"]},
        "feature": predictor.feature,
        "model": str(predictor.source) if predictor.source else None,
        "audio_dir": str(audio_dir),
        "labels": table.source,
        "window": predictions.window,
        "hop": predictions.hop,
        "aggregate": "mean",
        "n_skipped": len(skipped),
        "skipped": [asdict(item) for item in skipped],
        "notes": table.notes,
    }
    _write_values(out_dir, metrics, tracks, truth, ids, predictor)
    return EvaluationResult(out_dir, metrics, predictions, skipped)


def _value_table(predictor: Predictor, labels: str | Path, options: dict) -> LabelTable:
    """The labels file read as `prepare` reads regression targets or moods, for the model's outputs."""
    columns = options["targets"] or ([] if options["label_column"] else list(predictor.classes))
    common = {"id_column": options["id_column"], "group_by": options["group_by"],
              "skip_unlabeled": options["skip_unlabeled"]}  # fmt: skip
    if columns and len(columns) != len(predictor.classes):
        raise MerError(
            f"--target {' --target '.join(columns)}: the model predicts {len(predictor.classes)} "
            f"({', '.join(predictor.classes)}); name one labels column for each, in that order"
        )
    if predictor.task == "regression":
        if options["label_column"] or options["threshold"] is not None:
            raise MerError("--label-column/--threshold: a regression model is scored against --target columns; drop it")
        return read_targets(labels, columns, **common)
    table = read_moods(labels, targets=columns or None, label_column=options["label_column"],
                       threshold=options["threshold"], **common)  # fmt: skip
    if options["label_column"]:
        unknown = sorted(set(table.targets) - set(predictor.classes))
        if unknown:
            raise MerError(
                f"{table.source}: mood(s) {', '.join(unknown)} are not moods of the model "
                f"({', '.join(predictor.classes)}); evaluate with labels of its moods"
            )
    return table


def _order(table: LabelTable, classes: list[str], by_name: bool) -> list[int | None]:
    """Where each model output's truth lies among a clip's values: the columns in order, or (moods read from a
    `;` column) the mood of that name (None: never listed, so never true)."""
    if not by_name:
        return list(range(len(classes)))
    return [table.targets.index(mood) if mood in table.targets else None for mood in classes]


def _write_values(
    out_dir: Path,
    metrics: dict,
    tracks: ValueTracks,
    truth: dict[str, ClipLabel],
    ids: dict[str, str],
    predictor: Predictor,
) -> None:
    """metrics.json, predictions.csv (one row per track: true and predicted values, or true and predicted
    moods and the mood probabilities) and the plots of tracks (scatter per target and circumplex, or per_label)."""
    classes = predictor.classes
    write_json(out_dir / METRICS_FILE, metrics)
    title = f"{predictor.meta.arch} · {metrics['feature']} · {metrics['n_tracks']} tracks (mean of windows)"
    regression = predictor.task == "regression"
    heads = [f"{k}_{n}" for n in classes for k in ("true", "pred")] if regression else ["true", "predicted"]
    with atomic_path(out_dir / PREDICTIONS_FILE) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "clip_id", "group", "windows", *heads, *([] if regression else _probs(classes))])
        for file, windows, predicted, true in zip(tracks.ids, tracks.windows, tracks.predicted, tracks.targets):
            if regression:
                cells = [f"{v:.6f}" for pair in zip(true, predicted) for v in pair]
            else:
                chosen = ";".join(m for m, p in zip(classes, predicted) if p >= predictor.threshold)  # type: ignore[operator]
                cells = [";".join(m for m, t in zip(classes, true) if t), chosen, *(f"{p:.6f}" for p in predicted)]
            writer.writerow([file, ids[file], truth[file].group or "", len(windows), *cells])
    if not regression:
        plot_label_bars(out_dir / LABELS_FILE, metrics["per_label"], title)
        return
    scale = {name: list(pair) for name, pair in zip(classes, predictor.meta.scale)}
    for i, name in enumerate(classes):
        plot_scatter(out_dir / scatter_file(name), tracks.predicted[:, i], tracks.targets[:, i], scale[name], name,
                     title)  # fmt: skip
    axes = circumplex_axes(classes)
    if axes:
        plot_circumplex(out_dir / CIRCUMPLEX_FILE, tracks.predicted, tracks.targets, axes, classes, scale, title)


def _probs(classes: list[str]) -> list[str]:
    return [f"prob_{name}" for name in classes]


def _check_classes(truth: dict[str, ClipLabel], predictor: Predictor, source: str) -> None:
    """Refuse true labels that are not classes of the model."""
    unknown = sorted({clip.label for clip in truth.values()} - set(predictor.classes))
    if unknown:
        count = sum(clip.label in unknown for clip in truth.values())
        raise MerError(
            f"{source}: label(s) {', '.join(unknown)} of {count} file(s) are not classes of the model "
            f"({', '.join(predictor.classes)}); evaluate the model's feature {predictor.feature!r} "
            "or give --cuts/--label-column that yield its classes"
        )


def _score(
    predictions: Predictions, truth: dict[str, ClipLabel], classes: list[str], aggregate: str
) -> tuple[dict, Tracks]:
    """Track-level metrics at the top level (the `track` block of `scores.score_windows`, the function training
    scores with), `track_accuracy`/`track_macro_f1`, and the window scores as `window_accuracy` and `window`."""
    index = {name: i for i, name in enumerate(classes)}
    windows = [(track.file, w) for track in predictions for w in track.windows]
    probs = np.array([[w.probabilities[name] for name in classes] for _, w in windows]).reshape(-1, len(classes))
    targets = np.array([index[truth[file].label] for file, _ in windows])
    scores, tracks = score_windows(probs, targets, [file for file, _ in windows], classes, aggregate)
    window = {key: scores[key] for key in scores["track"]}
    metrics = {
        **scores["track"],
        "track_accuracy": scores["track_accuracy"],
        "track_macro_f1": scores["track_macro_f1"],
        "n_tracks": scores["n_tracks"],
        "n_windows": scores["n_windows"],
        "window_accuracy": scores["accuracy"],
        "window": window,
    }
    return metrics, tracks


def _write_report(
    out_dir: Path,
    metrics: dict,
    tracks: Tracks,
    predictions: Predictions,
    truth: dict[str, ClipLabel],
    ids: dict[str, str],
    predictor: Predictor,
) -> None:
    """The report, metrics, confusion matrix and predictions.csv (one row per track, as scored)."""
    classes = predictor.classes
    atomic_write(out_dir / REPORT_FILE, text_report(tracks.targets, tracks.predicted, classes))
    write_json(out_dir / METRICS_FILE, metrics)
    title = f"{predictor.meta.arch} · {metrics['feature']} · {metrics['n_tracks']} tracks"
    plot_confusion(out_dir / CONFUSION_FILE, metrics["confusion_matrix"], predictor.classes, title)
    columns = ["file", "clip_id", "group", "true", "predicted", "correct", "windows"]
    with atomic_path(out_dir / PREDICTIONS_FILE) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns + [f"prob_{name}" for name in predictor.classes])
        scored = {
            file: (probs, classes[int(best)]) for file, probs, best in zip(tracks.ids, tracks.probs, tracks.predicted)
        }
        for track in predictions:
            clip = truth[track.file]
            probs, label = scored[track.file]
            writer.writerow(
                [
                    track.file,
                    ids[track.file],
                    clip.group or "",
                    clip.label,
                    label,
                    int(label == clip.label),
                    len(track.windows),
                    *(f"{p:.6f}" for p in probs),
                ]
            )
