"""runs.predictions: each task's prediction layout found by its type, and the one prediction writer's exact
files per task."""

from __future__ import annotations

import numpy as np
import pytest

from mer_fastai.data.dataset import ManifestRow
from mer_fastai.data.labelfiles import ClipLabel
from mer_fastai.runs.predictions import (
    LAYOUTS,
    ClassificationLayout,
    PredictionLayout,
    layout_of,
    register_layout,
    write_evaluation_predictions,
    write_split_predictions,
)
from mer_fastai.tasks.classification import Classification
from mer_fastai.tasks.registry import get_task


def row(clip: str, start: float, label: str, **targets: float) -> ManifestRow:
    return ManifestRow(source=f"{clip}.wav", clip_id=clip, segment_start=start, label=label, split="valid",
                       image=f"valid/{label}/{clip.replace('/', '_')}-{start:g}.png", targets=targets)  # fmt: skip


def written(folder, task, rows, outputs, names, aggregate="mean"):
    """The window and track files a run writes of `rows` scored as training scores them."""
    truth = task.split_truth(rows, names)
    _, tracks = task.score(outputs, truth, [r.clip_id for r in rows], names, aggregate)
    windows, track_file = write_split_predictions(folder, "", task, rows, outputs, tracks, names)
    assert (windows.name, track_file.name) == ("valid_predictions.csv", "track_predictions.csv")
    return windows.read_bytes().decode().split("\r\n"), track_file.read_bytes().decode().split("\r\n"), tracks


def test_layouts_are_found_by_the_tasks_type_and_a_subclass_lays_out_as_its_base():
    assert isinstance(layout_of(get_task("classification")), ClassificationLayout)
    assert layout_of(get_task("regression")).prediction_columns(["valence"]) == ["true_valence", "pred_valence"]

    class Ordinal(Classification):
        name = "ordinal"

    assert type(layout_of(Ordinal())) is ClassificationLayout

    class OrdinalLayout(ClassificationLayout):
        pass

    register_layout(Ordinal, OrdinalLayout)
    try:
        assert type(layout_of(Ordinal())) is OrdinalLayout and type(layout_of(Classification())) is ClassificationLayout
    finally:
        del LAYOUTS[Ordinal]


def test_a_task_without_a_layout_is_refused_by_name():
    class Unlaid(type(get_task("regression")).__mro__[1]):  # Task itself
        name = "unlaid"

    with pytest.raises(TypeError, match="unlaid"):
        layout_of(Unlaid())
    assert issubclass(ClassificationLayout, PredictionLayout)


def test_baseline_csv_keeps_each_tasks_column_order():
    assert layout_of(get_task("classification")).baseline_windows() == ["accuracy", "macro_f1", "seconds"]
    assert layout_of(get_task("regression")).baseline_windows()[0] == "seconds"


def test_a_classifiers_files_hold_true_predicted_and_probabilities(tmp_path):
    rows = [row("x/a", 0.0, "happy"), row("x/a", 1.5, "happy"), row("y/b", 0.0, "sad")]
    outputs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])
    windows, tracks, _ = written(tmp_path, get_task("classification"), rows, outputs, ["happy", "sad"])
    assert windows == [
        "image,clip_id,source,segment_start,true,predicted,prob_happy,prob_sad",
        "valid/happy/x_a-0.png,x/a,x/a.wav,0.000,happy,happy,0.900000,0.100000",
        "valid/happy/x_a-1.5.png,x/a,x/a.wav,1.500,happy,sad,0.400000,0.600000",
        "valid/sad/y_b-0.png,y/b,y/b.wav,0.000,sad,sad,0.300000,0.700000",
        "",
    ]
    assert tracks == [
        "clip_id,source,windows,true,predicted,prob_happy,prob_sad",
        "x/a,x/a.wav,2,happy,happy,0.650000,0.350000",
        "y/b,y/b.wav,1,sad,sad,0.300000,0.700000",
        "",
    ]


def test_a_classifiers_track_shows_the_class_its_aggregation_chose(tmp_path):
    rows = [row("x/a", 0.0, "sad"), row("x/a", 1.0, "sad"), row("x/a", 2.0, "sad")]
    outputs = np.array([[0.45, 0.55], [0.45, 0.55], [0.99, 0.01]])  # the mean says happy, the vote sad
    _, tracks, scored = written(tmp_path, get_task("classification"), rows, outputs, ["happy", "sad"], "vote")
    assert tracks[1].split(",")[3:5] == ["sad", "sad"] and scored.probs[0].argmax() == 0


def test_a_regressions_files_pair_true_and_predicted_values_per_target(tmp_path):
    rows = [row("x/a", 0.0, "a", valence=5.0, energy=3.0), row("x/a", 1.0, "a", valence=5.0, energy=3.0)]
    outputs = np.array([[4.0, 2.5], [6.5, 3.25]])
    windows, tracks, _ = written(tmp_path, get_task("regression"), rows, outputs, ["valence", "energy"])
    assert windows == [
        "image,clip_id,source,segment_start,true_valence,pred_valence,true_energy,pred_energy",
        "valid/a/x_a-0.png,x/a,x/a.wav,0.000,5.000000,4.000000,3.000000,2.500000",
        "valid/a/x_a-1.png,x/a,x/a.wav,1.000,5.000000,6.500000,3.000000,3.250000",
        "",
    ]
    assert tracks == [
        "clip_id,source,windows,true_valence,pred_valence,true_energy,pred_energy",
        "x/a,x/a.wav,2,5.000000,5.250000,3.000000,2.875000",
        "",
    ]


def test_a_multilabel_files_hold_true_and_decided_moods_and_probabilities(tmp_path):
    moods = ["calm", "dark", "happy"]
    rows = [row("x/a", 0.0, "calm+happy", calm=1.0, dark=0.0, happy=1.0),
            row("x/a", 1.0, "calm+happy", calm=1.0, dark=0.0, happy=1.0)]  # fmt: skip
    outputs = np.array([[0.9, 0.5, 0.2], [0.7, 0.1, 0.6]])
    windows, tracks, _ = written(tmp_path, get_task("multilabel"), rows, outputs, moods)
    assert windows == [
        "image,clip_id,source,segment_start,true,predicted,prob_calm,prob_dark,prob_happy",
        "valid/calm+happy/x_a-0.png,x/a,x/a.wav,0.000,calm;happy,calm;dark,0.900000,0.500000,0.200000",
        "valid/calm+happy/x_a-1.png,x/a,x/a.wav,1.000,calm;happy,calm;happy,0.700000,0.100000,0.600000",
        "",
    ]
    assert tracks == [
        "clip_id,source,windows,true,predicted,prob_calm,prob_dark,prob_happy",
        "x/a,x/a.wav,2,calm;happy,calm,0.800000,0.300000,0.400000",
        "",
    ]


@pytest.mark.parametrize(
    ("name", "names", "truth", "outputs", "expected"),
    [
        ("classification", ["happy", "sad"], [ClipLabel("sad", "art1"), ClipLabel("happy")],
         [[0.2, 0.8], [0.3, 0.7]],
         ["file,clip_id,group,true,predicted,correct,windows,prob_happy,prob_sad",
          "d/a.wav,d/a,art1,sad,sad,1,3,0.200000,0.800000", "d/b.wav,d/b,,happy,sad,0,3,0.300000,0.700000"]),
        ("regression", ["valence"], [ClipLabel("", "art1", (5.0,)), ClipLabel("", None, (2.0,))], [[4.5], [2.25]],
         ["file,clip_id,group,windows,true_valence,pred_valence",
          "d/a.wav,d/a,art1,3,5.000000,4.500000", "d/b.wav,d/b,,3,2.000000,2.250000"]),
        ("multilabel", ["calm", "dark"], [ClipLabel("", "art1", (1.0, 0.0)), ClipLabel("", None, (1.0, 1.0))],
         [[0.6, 0.7], [0.1, 0.2]],
         ["file,clip_id,group,windows,true,predicted,prob_calm,prob_dark",
          "d/a.wav,d/a,art1,3,calm,calm;dark,0.600000,0.700000", "d/b.wav,d/b,,3,calm;dark,,0.100000,0.200000"]),
    ],
)  # fmt: skip
def test_evaluates_predictions_csv_is_one_row_per_track_in_the_tasks_columns(
    tmp_path, name, names, truth, outputs, expected
):
    task, files = get_task(name), ["d/a.wav", "d/b.wav"]
    clip_ids = [f for f in files for _ in range(3)]  # three windows a track, each the track's outputs
    labels = {f: t for f, t in zip(files, truth)}
    index = {n: i for i, n in enumerate(names)}
    true = [index[labels[f].label] if labels[f].values is None else labels[f].values for f in clip_ids]
    window_outputs = np.array([o for o in outputs for _ in range(3)])
    _, tracks = task.score(window_outputs, np.array(true), clip_ids, names)
    ids = {f: f.removesuffix(".wav") for f in files}
    path = write_evaluation_predictions(tmp_path / "predictions.csv", task, names, tracks, labels, ids,
                                        dict.fromkeys(files, 3))  # fmt: skip
    assert path.read_bytes().decode().split("\r\n") == [*expected, ""]
