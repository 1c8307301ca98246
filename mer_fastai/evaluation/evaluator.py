"""`evaluate`: track-level scores of a saved model on labelled audio files.

A classifier is scored as training scores its tracks (`scores.score_windows`); a regression model against
the labels file's target columns (`labels.read_targets`, as `prepare --target` reads them) with
`scores.score_regression`, and a multilabel model against its moods (`labels.read_moods`) with
`scores.score_multilabel`: the same functions, plots and CSV columns as training.

A mixed-input ensemble (`predict.Predictor`: members reading different spectrograms, averaged per track) has no
windows that line up: each track is scored as one row, so its scores are the track scores only, with no window
block.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._plumbing.files import atomic_path, atomic_write, output_folder, write_json
from ..data.audio import audio_files
from ..data.labels import ClipLabel, LabelTable, label_table, labelled_files, read_moods, read_targets
from ..errors import MerError
from ..inference.predict import MIXED_NOTE, Predictions, Predictor, SkippedFile
from ..plots.figures import circumplex_axes, plot_circumplex, plot_confusion, plot_label_bars, plot_scatter
from ..runs.inputs import model_inputs, refuse_overwrite
from ..runs.layout import CIRCUMPLEX_FILE, CONFUSION_FILE, LABELS_FILE, METRICS_FILE, REPORT_FILE, scatter_file
from ..scoring.metrics import text_report
from ..scoring.scores import Tracks, ValueTracks, check_aggregate, score_multilabel, score_regression, score_windows

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
    predictions.csv to `out`. An `out` that is the audio folder or the model's run folder, or would write over the
    model, its records or the labels file, is refused before anything is written.

    A regression or multilabel model needs `labels`: see `_evaluate_values` (`targets`: the labels file's
    columns for the model's targets or moods, default their names; `threshold`: vote shares, as `prepare`).
    """
    audio_dir, out_dir = Path(audio_dir), Path(out)
    check_aggregate(aggregate)
    _refuse_inputs(out_dir, model, audio_dir, labels)
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
            **_mixed(predictions),
            n_skipped=len(skipped),
            skipped=[asdict(item) for item in skipped],
            notes=table.notes,
        )
        _write_report(out_dir, metrics, tracks, predictions, truth, ids, predictor)
    return EvaluationResult(out_dir, metrics, predictions, skipped)


def _refuse_inputs(out_dir: Path, model: str | Path | Predictor, audio_dir: Path, labels: str | Path | None) -> None:
    """`--out` (and every file evaluate writes there) must not be the audio folder, the model, its run folder or
    records, or the labels file."""
    source = model.source if isinstance(model, Predictor) else model
    inputs = {audio_dir: "the audio folder", **(model_inputs(source) if source is not None else {})}
    if labels is not None:
        inputs[Path(labels)] = "the labels file"
    names = (METRICS_FILE, REPORT_FILE, CONFUSION_FILE, PREDICTIONS_FILE, LABELS_FILE, CIRCUMPLEX_FILE)
    refuse_overwrite([out_dir, *(out_dir / name for name in names)], inputs)


def _match(
    audio_dir: Path, files: list[Path], table: LabelTable, skip_unlabeled: bool
) -> tuple[dict[str, ClipLabel], dict[str, str], list[SkippedFile]]:
    """Each labelled file's truth and clip id, and the files left out (with why); none labelled is an error."""
    matched, skipped = labelled_files(audio_dir, files, table, skip_unlabeled)
    if not matched:
        raise MerError(f"{audio_dir}: no audio file matches a labelled id in {table.source}; check ids and --feature")
    return {str(file): clip for file, _, clip in matched}, {str(file): name for file, name, _ in matched}, skipped


def _rows(predictions: Predictions) -> list[tuple[str, Any]]:
    """What is scored, with its file: every window of every track, or every track of a mixed-input ensemble
    (its windows do not line up across inputs) as one row."""
    if predictions.inputs:
        return [(track.file, track) for track in predictions]
    return [(track.file, window) for track in predictions for window in track.windows]


def _mixed(predictions: Predictions) -> dict:
    """A mixed-input ensemble's inputs and how its tracks were made, for metrics.json (nothing for other models)."""
    return {"inputs": predictions.inputs, "note": MIXED_NOTE} if predictions.inputs else {}


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
    windows = _rows(predictions)
    classes, clip_ids = predictor.classes, [file for file, _ in windows]
    order = _order(table, classes, bool(options["label_column"]))
    true = np.array([[truth[file].values[i] if i is not None else 0.0 for i in order] for file in clip_ids])  # type: ignore[index]
    true = true.reshape(-1, len(classes))
    notes, out_of_range = list(table.notes), {}
    if predictor.task == "regression":
        outputs = np.array([[w.values[n] for n in classes] for _, w in windows])  # type: ignore[index]
        scores, tracks = score_regression(outputs, true, clip_ids, classes)
        out_of_range = outside_range(tracks.targets, classes, predictor.meta.scale)
        notes += [range_note(name, found) for name, found in out_of_range.items()]
    else:
        outputs = np.array([[w.probabilities[n] for n in classes] for _, w in windows])
        scores, tracks = score_multilabel(outputs, true, clip_ids, classes, predictor.threshold)  # type: ignore[arg-type]
    mixed = _mixed(predictions)
    metrics = {
        **scores["track"],
        "task": predictor.task,
        "n_tracks": scores["n_tracks"],
        **({} if mixed else {"n_windows": scores["n_windows"]}),
        **({} if mixed else {"window_scores": {key: scores[key] for key in scores["track"]}}),
        "feature": predictor.feature,
        "model": str(predictor.source) if predictor.source else None,
        "audio_dir": str(audio_dir),
        "labels": table.source,
        "window": predictions.window,
        "hop": predictions.hop,
        "aggregate": "mean",
        **mixed,
        "n_skipped": len(skipped),
        "skipped": [asdict(item) for item in skipped],
        "notes": notes,
        **({"out_of_range": out_of_range} if predictor.task == "regression" else {}),
    }
    counts = {track.file: track.n_windows for track in predictions}
    _write_values(out_dir, metrics, tracks, truth, ids, predictor, counts)
    return EvaluationResult(out_dir, metrics, predictions, skipped)


def outside_range(targets: np.ndarray, names: list[str], scale: tuple[tuple[float, float], ...]) -> dict[str, dict]:
    """Per target whose true track values leave the model's output range (its recorded `scale`, which its head
    cannot leave): how many clips, and the farthest distance beyond the range."""
    found = {}
    for i, (name, (low, high)) in enumerate(zip(names, scale, strict=True)):
        beyond = np.maximum(low - targets[:, i], targets[:, i] - high)
        outside = beyond > 0
        if outside.any():
            found[name] = {
                "clips": int(outside.sum()),
                "of": len(targets),
                "max_beyond": float(beyond.max()),
                "range": [low, high],
                "truth_range": [float(targets[:, i].min()), float(targets[:, i].max())],
            }
    return found


def range_note(name: str, found: dict) -> str:
    """One line on truth outside the model's output range."""
    (low, high), (lo, hi) = found["range"], found["truth_range"]
    return (
        f"{name}: the truth of {found['clips']} of {found['of']} clip(s) lies outside the model's output range "
        f"[{low:g}, {high:g}] (truth spans [{lo:g}, {hi:g}], up to {found['max_beyond']:.3g} beyond it); the model "
        "cannot predict such values, so its scores there measure the scale mismatch: check that the labels use "
        "the scale the model was trained on"
    )


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
        # outlying truth is scored, not refused: the out-of-range note (`range_note`) says how far it lies
        return read_targets(labels, columns, **common, allow_outliers=True)
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
    windows: dict[str, str],
) -> None:
    """metrics.json, predictions.csv (one row per track: true and predicted values, or true and predicted
    moods and the mood probabilities; `windows`: each file's window count) and the plots of tracks (scatter per
    target and circumplex, or per_label)."""
    classes = predictor.classes
    write_json(out_dir / METRICS_FILE, metrics)
    title = f"{predictor.meta.arch_summary} · {metrics['feature']} · {metrics['n_tracks']} tracks (mean of windows)"
    regression = predictor.task == "regression"
    heads = [f"{k}_{n}" for n in classes for k in ("true", "pred")] if regression else ["true", "predicted"]
    with atomic_path(out_dir / PREDICTIONS_FILE) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "clip_id", "group", "windows", *heads, *([] if regression else _probs(classes))])
        for file, predicted, true in zip(tracks.ids, tracks.predicted, tracks.targets):
            if regression:
                cells = [f"{v:.6f}" for pair in zip(true, predicted) for v in pair]
            else:
                chosen = ";".join(m for m, p in zip(classes, predicted) if p >= predictor.threshold)  # type: ignore[operator]
                cells = [";".join(m for m, t in zip(classes, true) if t), chosen, *(f"{p:.6f}" for p in predicted)]
            writer.writerow([file, ids[file], truth[file].group or "", windows[file], *cells])
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
    scores with), `track_accuracy`/`track_macro_f1`, and the window accuracy as `window_accuracy` (none for a
    mixed-input ensemble, scored one row per track)."""
    index = {name: i for i, name in enumerate(classes)}
    windows = _rows(predictions)
    probs = np.array([[w.probabilities[name] for name in classes] for _, w in windows]).reshape(-1, len(classes))
    targets = np.array([index[truth[file].label] for file, _ in windows])
    scores, tracks = score_windows(probs, targets, [file for file, _ in windows], classes, aggregate)
    metrics = {
        **scores["track"],
        "track_accuracy": scores["track_accuracy"],
        "track_macro_f1": scores["track_macro_f1"],
        "n_tracks": scores["n_tracks"],
    }
    if not predictions.inputs:
        metrics.update(n_windows=scores["n_windows"], window_accuracy=scores["accuracy"])
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
    title = f"{predictor.meta.arch_summary} · {metrics['feature']} · {metrics['n_tracks']} tracks"
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
                    track.n_windows,
                    *(f"{p:.6f}" for p in probs),
                ]
            )
