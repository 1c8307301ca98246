"""Track-level scores: one aggregation, the same numbers from `train` and from `evaluate`, in every output."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_fastai.api.evaluation import evaluate
from mer_fastai.api.training import train
from mer_fastai.data.dataset import read_manifest
from mer_fastai.errors import MerError
from mer_fastai.report.results import result_columns, results_markdown, results_tables
from mer_fastai.report.tables import summary_table
from mer_fastai.scoring.columns import score_columns
from mer_fastai.scoring.scores import aggregate, score_windows
from mer_fastai.training.fit import TrainConfig

TINY = {"arch": "squeezenet1_0", "mode": "whole", "weights": "none", "epochs": 1, "bs": 4, "size": 64,
        "num_workers": 0, "lr": 1e-3}  # fmt: skip
SCORE_KEYS = ("accuracy", "macro_f1", "per_class", "confusion_matrix", "absent_classes", "classes")


def table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_aggregate_mean_vote_and_max():
    windows = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9]])
    probs, best = aggregate(windows, "mean")
    assert best == 0 and probs == pytest.approx([0.4, 0.3, 0.3])
    probs, best = aggregate(windows, "vote")
    assert best == 0 and probs == pytest.approx([0.4, 0.3, 0.3])  # vote keeps the mean probabilities
    probs, best = aggregate(windows, "max")
    assert best == 2 and probs == pytest.approx(np.array([0.6, 0.4, 0.9]) / 1.9)
    tie = np.array([[0.9, 0.1], [0.4, 0.6]])  # one vote each: the higher mean probability wins
    assert aggregate(tie, "vote")[1] == 0
    with pytest.raises(MerError, match="choose one of mean, vote, max"):
        aggregate(windows, "median")


def test_score_windows_groups_windows_by_clip():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    metrics, tracks = score_windows(probs, np.array([0, 0, 1, 1]), ["a", "a", "b", "b"], ["x", "y"])
    assert metrics["accuracy"] == 0.5 and metrics["n_windows"] == 4 and metrics["n_tracks"] == 2
    assert tracks.ids == ["a", "b"] and tracks.predicted.tolist() == [0, 1] and tracks.windows == [[0, 1], [2, 3]]
    assert metrics["track_accuracy"] == metrics["track"]["accuracy"] == 1.0
    assert metrics["track"]["confusion_matrix"] == [[1, 0], [0, 1]]
    with pytest.raises(MerError, match="different labels"):
        score_windows(probs, np.array([0, 1, 1, 1]), ["a", "a", "b", "b"], ["x", "y"])


@pytest.fixture(scope="module", params=["mean", "max"])
def scored_run(request, tiny_data, tmp_path_factory):
    """A tiny run and `evaluate` of its model on the clips of its validation split (copied, same relative paths)."""
    root = tmp_path_factory.mktemp(f"track-{request.param}")
    result = train(tiny_data, TrainConfig(**TINY, aggregate=request.param), root / "run", show=False)
    audio = root / "valid-audio"
    for row in read_manifest(tiny_data):
        if row.split == "valid":
            target = audio / f"{row.clip_id}{Path(row.source).suffix}"  # the clip id: its path in the audio folder
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(row.source, target)
    evaluation = evaluate(result.run_dir, audio, root / "eval", aggregate=request.param, progress=False)
    return result, evaluation


def test_train_and_evaluate_give_the_same_track_scores(scored_run):
    run, evaluation = scored_run
    saved = json.loads((run.run_dir / "metrics.json").read_text())
    assert saved["aggregate"] == evaluation.metrics["aggregate"]
    assert {k: saved["track"][k] for k in SCORE_KEYS} == {k: evaluation.metrics[k] for k in SCORE_KEYS}
    assert saved["track_accuracy"] == evaluation.metrics["track_accuracy"]
    assert saved["n_windows"] == evaluation.metrics["n_windows"] and saved["n_tracks"] == evaluation.metrics["n_tracks"]
    trained = {row["clip_id"]: row["predicted"] for row in table(run.run_dir / "track_predictions.csv")}
    evaluated = {row["clip_id"]: row["predicted"] for row in table(evaluation.out_dir / "predictions.csv")}
    assert trained == evaluated


def test_the_run_folder_holds_window_and_track_predictions(scored_run, tiny_data):
    run, _ = scored_run
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    valid = [row for row in read_manifest(tiny_data) if row.split == "valid"]
    windows = table(run.run_dir / "valid_predictions.csv")
    heads = [f"prob_{name}" for name in metrics["classes"]]
    assert list(windows[0]) == ["image", "clip_id", "source", "segment_start", "true", "predicted", *heads]
    assert [row["image"] for row in windows] == [row.image for row in valid]  # manifest order
    assert sum(row["true"] == row["predicted"] for row in windows) / len(windows) == pytest.approx(metrics["accuracy"])
    tracks = table(run.run_dir / "track_predictions.csv")
    assert list(tracks[0]) == ["clip_id", "source", "windows", "true", "predicted", *heads]
    assert len(tracks) == metrics["n_tracks"] == len({row.clip_id for row in valid})
    assert sum(int(row["windows"]) for row in tracks) == metrics["n_windows"] == len(valid)
    right = sum(row["true"] == row["predicted"] for row in tracks)
    assert right / len(tracks) == pytest.approx(metrics["track"]["accuracy"])
    assert metrics["valid"]["track"] == metrics["track"] and metrics["test"] is None
    assert set(metrics["versions"]) == {"mer-fastai", "torch", "fastai"}
    assert (run.run_dir / "track_confusion_matrix.png").stat().st_size > 1000
    assert "tracks" in (run.run_dir / "classification_report.txt").read_text()
    html = (run.run_dir / "report.html").read_text()
    assert "Validation scores (tracks)" in html and f"{metrics['track']['accuracy']:.3f}" in html


def test_terminal_table_and_results_show_track_scores(scored_run):
    from rich.console import Console

    run, _ = scored_run
    console = Console(record=True, width=120)
    console.print(summary_table(run.metrics, "t"))
    text = console.export_text()
    assert f"track accuracy │           │        │ {run.metrics['track_accuracy']:.3f}" in text
    columns = score_columns(run.metrics, ("accuracy", "macro_f1"))
    row = {"experiment": "e", "dataset": "d", "feature": "f", "arch": "a", "mode": "whole", "weights": "none",
           "augmentation": "none", "accuracy": 0.5, "macro_f1": 0.4, **columns}  # fmt: skip
    assert {"track_accuracy", "track_macro_f1", "test_track_accuracy"} <= set(result_columns())
    assert row["track_accuracy"] == round(run.metrics["track_accuracy"], 4) and row["test_accuracy"] == ""
    markdown = results_markdown([row])
    assert "validation tracks" in markdown and "test tracks" not in markdown
    assert f"{row['track_accuracy']:.3f} / {row['track_macro_f1']:.3f}" in markdown
    folded = {**row, "arch": "b", "accuracy_sd": 0.05, "macro_f1_sd": 0.04, "folds": 5}  # a cross-validated cell
    wide = Console(record=True, width=160)
    for table in results_tables([row, folded]):
        wide.print(table)
    text = wide.export_text()
    assert "0.500 ± 0.050 / 0.400 ± 0.040" in text and "0.500 / 0.400" in text  # only it shows a spread
    assert "(5 fold trainings): mean ± standard deviation" in results_markdown([row, folded])
