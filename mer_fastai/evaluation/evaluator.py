"""`evaluate`: track-level scores of a saved model on labelled audio files.

A model is scored as training scores its task (`Task.score`): a classifier's tracks as
`scoring.scores.score_windows` scores them; a regression model against the labels file's target columns
(`data.targets.read_targets`, as `prepare --target` reads them) with `scoring.scores.score_regression`, and a
multilabel model against its moods (`data.targets.read_moods`) with `scoring.scores.score_multilabel`: the same
functions, plots and CSV columns as training. The task reads the labels (`Task.read_labels` of a
`LabelSource`); the files written: `evaluation.eval_files`. The plots and reports are the caller's pages, drawn
from `EvaluationResult.plots` (`api.evaluation.evaluate`, which the command and `mer_fastai.evaluate` call).

A mixed-input ensemble (`inference.predict.Predictor`: members reading different spectrograms, averaged per
track) has no windows that line up: each track is scored as one row, so its scores are the track scores only,
with no window block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._plumbing.files import output_folder
from ..bounds import quote
from ..data.audio import SkippedFile, audio_files
from ..data.labelfiles import ClipLabel, LabelTable
from ..data.labelsource import LabelSource, check_feature, label_source
from ..data.matching import labelled_files
from ..errors import MerError
from ..inference.predict import Predictor
from ..inference.track_head import windows_notes
from ..inference.tracks import MIXED_NOTE, Predictions
from ..runs.inputs import model_inputs, refuse_overwrite
from ..runs.ownership import check_own_folder, claim_folder
from ..scoring.scores import Tracks, check_aggregate
from .eval_files import FILES, EvaluationPlots, write_evaluation

__all__ = ["evaluate", "EvaluationResult"]


@dataclass
class EvaluationResult:
    """Where the report went, its metrics, the predictions, the files left out (with why) and what the plots and
    reports show (`plots`)."""

    out_dir: Path
    metrics: dict
    predictions: Predictions
    skipped: list[SkippedFile] = field(default_factory=list)
    plots: EvaluationPlots | None = None


def evaluate(
    model: str | Path | Predictor,
    audio_dir: str | Path,
    out: str | Path,
    *,
    labels: LabelSource | str | Path | None = None,
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
    precision: str = "fp32",
    workers: int = 1,
) -> EvaluationResult:
    """Predict every labelled file under `audio_dir` and score the track labels against the truth.

    Labels come from `labels`: a `LabelSource`, or a labels file (any layout `prepare` reads) with the label
    keywords `group_by` ... `threshold` (kept for one release; then `labels` is not a `LabelSource`); without a
    labels file, from class folders. Clips the feature leaves out (e.g. SURPRISE for emotions) are skipped with a
    note; a label the model does not know is an error. Writes predictions.csv and metrics.json to `out` (and its
    caller `api.evaluation.evaluate` classification_report.txt and confusion_matrix.png). An `out` that is the
    audio folder or the model's run folder, or would write over the model, its records or the labels file, is
    refused before anything is written.

    A regression or multilabel model needs a labels file: see `_evaluate_values` (`targets`: the labels file's
    columns for the model's targets or moods, default their names; `threshold`: vote shares, as `prepare`).
    """
    audio_dir, out_dir = Path(audio_dir), Path(out)
    source = label_source(
        "evaluate", labels, group_by=group_by, id_column=id_column, label_column=label_column, cuts=cuts,
        skip_unlabeled=skip_unlabeled, targets=targets, threshold=threshold,
    )  # fmt: skip
    check_aggregate(aggregate)
    _refuse_inputs(out_dir, model, audio_dir, source.labels)
    with output_folder(out_dir, "--out"):
        check_own_folder(out_dir, "evaluate", FILES)  # never over another command's or the user's files
        predictor = (
            model
            if isinstance(model, Predictor)
            else Predictor.load(model, device=device, bs=bs, precision=precision, workers=workers)
        )
        task = predictor.rules
        check_feature(task, feature, what="model")
        source.check(task, what="model", chosen=False)
        if task.facts.takes_targets:
            return _evaluate_values(predictor, audio_dir, out_dir, source, window, hop, aggregate, progress)
        feature = feature or predictor.feature or "emotions"
        files = audio_files(audio_dir)
        if source.labels is not None and source.cuts is None and feature == predictor.feature:
            cuts = list(predictor.meta.cuts) if predictor.meta.cuts is not None else None  # as training binned
            source = replace(source, cuts=cuts)
        table = task.read_labels(source, feature, audio_dir, files)
        truth, ids, skipped = _match(audio_dir, files, table, source.skip_unlabeled)
        _check_classes(truth, predictor, table.source)
        predictions = predictor.predict_many(
            list(truth), window=window, hop=hop, aggregate=aggregate, progress=progress
        )
        skipped += predictions.skipped
        if not predictions.tracks:
            raise MerError(f"{audio_dir}: every labelled file failed to decode; see the skipped files")
        metrics, tracks = _score(predictions, truth, predictor, aggregate)
        metrics.update(
            feature=feature,
            model=str(predictor.source) if predictor.source else None,
            audio_dir=str(audio_dir),
            labels=table.source,
            cuts=table.cuts,
            window=predictions.window,
            hop=predictions.hop,
            aggregate=aggregate,
            precision=predictor.precision,
            **_mixed(predictions),
            n_skipped=len(skipped),
            skipped=[asdict(item) for item in skipped],
            notes=[*table.notes, *windows_notes(predictor, predictions.window, predictions.hop)],
        )
        claim_folder(out_dir, "evaluate")
        counts = {t.file: t.n_windows for t in predictions}
        plots = write_evaluation(out_dir, metrics, tracks, truth, ids, predictor, counts)
    return EvaluationResult(out_dir, metrics, predictions, skipped, plots)


def _refuse_inputs(out_dir: Path, model: str | Path | Predictor, audio_dir: Path, labels: str | Path | None) -> None:
    """`--out` (and every file evaluate writes there) must not be the audio folder, the model, its run folder or
    records, or the labels file."""
    source = model.source if isinstance(model, Predictor) else model
    inputs = {audio_dir: "the audio folder", **(model_inputs(source) if source is not None else {})}
    if labels is not None:
        inputs[Path(labels)] = "the labels file"
    refuse_overwrite([out_dir, *(out_dir / name for name in FILES)], inputs)


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


def _evaluate_values(
    predictor: Predictor,
    audio_dir: Path,
    out_dir: Path,
    source: LabelSource,
    window: float | None,
    hop: float | None,
    aggregate: str,
    progress: bool,
) -> EvaluationResult:
    """Score a regression model (per target CCC, r, R², RMSE, MAE of tracks; scatter and circumplex plots) or a
    multilabel model (micro/macro F1, mAP, per mood; per_label.png) on the labelled files under `audio_dir`.

    The labels file of `source` gives the model's targets (or moods) in the columns `targets`, in the model's order
    (default: the columns named as the model's targets); moods may also come from a `label_column` of
    `;`-separated moods. Tracks are the mean of their windows, as in training.
    """
    predictor.check_aggregate(aggregate)
    files = audio_files(audio_dir)
    table = _value_table(predictor, source, audio_dir, files)
    truth, ids, skipped = _match(audio_dir, files, table, source.skip_unlabeled)
    predictions = predictor.predict_many(list(truth), window=window, hop=hop, aggregate=aggregate, progress=progress)
    skipped += predictions.skipped
    if not predictions.tracks:
        raise MerError(f"{audio_dir}: every labelled file failed to decode; see the skipped files")
    windows = _rows(predictions)
    classes, clip_ids = predictor.classes, [file for file, _ in windows]
    order = _order(table, classes, bool(source.label_column))
    true = np.array([[truth[file].values[i] if i is not None else 0.0 for i in order] for file in clip_ids])  # type: ignore[index]
    true = true.reshape(-1, len(classes))
    notes, out_of_range, task = list(table.notes), {}, predictor.rules
    outputs = np.array([[w.outputs[n] for n in classes] for _, w in windows])
    scores, tracks = task.score(outputs, true, clip_ids, classes)
    if task.facts.predicts_values:  # truth beyond the model's output range is scored, with a note
        out_of_range = outside_range(tracks.targets, classes, predictor.meta.scale)
        notes += [range_note(name, found) for name, found in out_of_range.items()]
    notes += windows_notes(predictor, predictions.window, predictions.hop)
    mixed = _mixed(predictions)
    metrics = {
        **scores["track"],
        "task": predictor.task.name,
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
        "precision": predictor.precision,
        **mixed,
        "n_skipped": len(skipped),
        "skipped": [asdict(item) for item in skipped],
        "notes": notes,
        **({"out_of_range": out_of_range} if task.facts.predicts_values else {}),
    }
    counts = {track.file: track.n_windows for track in predictions}
    claim_folder(out_dir, "evaluate")
    plots = write_evaluation(out_dir, metrics, tracks, truth, ids, predictor, counts)
    return EvaluationResult(out_dir, metrics, predictions, skipped, plots)


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


def _value_table(predictor: Predictor, source: LabelSource, audio_dir: Path, files: list[Path]) -> LabelTable:
    """The labels file read as `prepare` reads regression targets or moods, for the model's outputs."""
    columns = source.targets or ([] if source.label_column else list(predictor.classes))
    task = predictor.rules
    replace(source, targets=columns or None).needs(task, what="model")  # the model's names: the default columns
    if columns and len(columns) != len(predictor.classes):
        raise MerError(
            f"--target {' --target '.join(columns)}: the model predicts {len(predictor.classes)} "
            f"({', '.join(predictor.classes)}); name one labels column for each, in that order"
        )
    # outlying truth is scored, not refused: the out-of-range note (`range_note`) says how far it lies
    table = task.read_labels(replace(source, targets=columns or None, allow_outliers=True), None, audio_dir, files)
    if source.label_column:
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


def _check_classes(truth: dict[str, ClipLabel], predictor: Predictor, source: str) -> None:
    """Refuse true labels that are not classes of the model."""
    unknown = sorted({clip.label for clip in truth.values()} - set(predictor.classes))
    if unknown:
        count = sum(clip.label in unknown for clip in truth.values())
        raise MerError(
            f"{source}: label(s) {', '.join(unknown)} of {count} file(s) are not classes of the model "
            f"({', '.join(predictor.classes)}); evaluate the model's feature {quote(predictor.feature)} "
            "or give --cuts/--label-column that yield its classes"
        )


def _score(
    predictions: Predictions, truth: dict[str, ClipLabel], predictor: Predictor, aggregate: str
) -> tuple[dict, Tracks]:
    """Track-level metrics at the top level (the `track` block of `scoring.scores.score_windows`, the function training
    scores with), `track_accuracy`/`track_macro_f1`, and the window accuracy as `window_accuracy` (none for a
    mixed-input ensemble, scored one row per track)."""
    classes = predictor.classes
    index = {name: i for i, name in enumerate(classes)}
    windows = _rows(predictions)
    probs = np.array([[w.probabilities[name] for name in classes] for _, w in windows]).reshape(-1, len(classes))
    targets = np.array([index[truth[file].label] for file, _ in windows])
    scores, tracks = predictor.rules.score(probs, targets, [file for file, _ in windows], classes, aggregate)
    metrics = {
        **scores["track"],
        "track_accuracy": scores["track_accuracy"],
        "track_macro_f1": scores["track_macro_f1"],
        "n_tracks": scores["n_tracks"],
    }
    if not predictions.inputs:
        metrics.update(n_windows=scores["n_windows"], window_accuracy=scores["accuracy"])
    return metrics, tracks
