"""`inference.tracks`: one window record for every task, its fields as the task fills them."""

from __future__ import annotations

import numpy as np
import pytest

from mer_fastai.inference.tracks import Predictions, TrackPrediction, WindowPrediction
from mer_fastai.tasks.registry import get_task

NAMES = ["calm", "happy"]


def _track(task: str, outputs: list[list[float]]) -> TrackPrediction:
    rules = get_task(task)
    windows = [WindowPrediction(float(i), **rules.prediction(NAMES, np.array(o))) for i, o in enumerate(outputs)]
    mean = np.mean(outputs, axis=0)
    return TrackPrediction("a.wav", windows=windows, duration=1.5, task=rules, **rules.prediction(NAMES, mean))


@pytest.mark.parametrize(
    ("task", "fields"),
    [
        ("classification", {"label": "happy", "probabilities": {"calm": 0.3, "happy": 0.7}}),
        ("multilabel", {"moods": ["happy"], "probabilities": {"calm": 0.3, "happy": 0.7}}),
        ("regression", {"values": {"calm": 0.3, "happy": 0.7}}),
    ],
)
def test_windows_and_tracks_show_their_tasks_fields(task, fields):
    track = _track(task, [[0.2, 0.8], [0.4, 0.6]])
    document = track.to_dict(window_seconds=1.0)
    assert {key: document[key] for key in fields} == fields  # rounded to 6 decimals
    assert set(document) == {"file", *fields, "duration", "windows"}
    assert [(w["start"], w["end"]) for w in document["windows"]] == [(0.0, 1.0), (1.0, 1.5)]
    assert set(document["windows"][0]) == {"start", "end", *fields}
    assert track.outputs == {"calm": 0.3, "happy": 0.7}  # the probabilities, or a regression model's values


def test_a_window_unpacks_as_start_label_probabilities():
    start, label, probabilities = _track("classification", [[0.9, 0.1]]).windows[0]
    assert (start, label, probabilities) == (0.0, "calm", {"calm": 0.9, "happy": 0.1})
    window = _track("multilabel", [[0.5, 0.7]]).windows[0]
    assert window.moods == ("calm", "happy") and window.label == "calm;happy"  # the decision is inclusive
    assert _track("regression", [[0.5, 0.7]]).windows[0].label == ""


def test_windows_text_names_the_windows_or_the_inputs():
    assert Predictions([], window=10.0, hop=5.0).windows_text() == "10 s windows, hop 5 s"
    mixed = Predictions([], window=None, hop=None, inputs=[{"arch": "a", "window": 3.0, "hop": 1.5}])
    assert mixed.windows_text() == "mixed-input ensemble, mean of its members' tracks (a: 3 s windows, hop 1.5 s)"
