"""`evaluate`: track-level scores of a saved model on labelled audio files."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import audio_files
from .errors import MerError
from .files import atomic_path, atomic_write, output_folder
from .labels import ClipLabel, label_table, match_clips, unlabeled_error
from .predict import Predictions, Predictor, SkippedFile
from .report import CONFUSION_FILE, METRICS_FILE, REPORT_FILE, plot_confusion, text_report, write_json
from .scores import Tracks, check_aggregate, score_windows

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
    bs: int = 32,
    device: str | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Predict every labelled file under `audio_dir` and score the track labels against the truth.

    Labels come from `labels` (any layout `prepare` reads) or, without it, from class folders. Clips the
    feature leaves out (e.g. SURPRISE for emotions) are skipped with a note; a label the model does not
    know is an error. Writes metrics.json, classification_report.txt, confusion_matrix.png and
    predictions.csv to `out`.
    """
    audio_dir, out_dir = Path(audio_dir), Path(out)
    check_aggregate(aggregate)
    with output_folder(out_dir, "--out"):
        predictor = model if isinstance(model, Predictor) else Predictor.load(model, device=device, bs=bs)
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
        matched, excluded, unlabeled = match_clips(audio_dir, files, table)
        if unlabeled and not skip_unlabeled:
            raise unlabeled_error(audio_dir, unlabeled, table)
        if not matched:
            raise MerError(
                f"{audio_dir}: no audio file matches a labelled id in {table.source}; check ids and --feature"
            )
        truth = {str(file): clip for file, _, clip in matched}
        ids = {str(file): name for file, name, _ in matched}
        skipped = [SkippedFile(str(file), f"{reason} ({table.source})") for file, reason in excluded]
        skipped += [SkippedFile(str(file), f"no row in {table.source}") for file in unlabeled]
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
