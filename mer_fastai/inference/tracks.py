"""The records `predict` returns: one window type and one track type for every task, and a batch of tracks.

What a window or track predicts is what its task fills in (`Task.prediction`): a classifier's class (`label`)
and class `probabilities`; a multilabel model's `moods` at or above the decision (`label`: them joined by
";") and every mood's `probabilities`; a regression model's `values` per target (`label` "", no
probabilities). Their JSON form shows the task's `prediction_fields`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..data.audio import SkippedFile
from ..tasks.base import Task
from ..tasks.registry import DEFAULT

__all__ = ["TrackPrediction", "WindowPrediction", "Predictions"]

MIXED_NOTE = (
    "a mixed-input ensemble: the members of each input read its own windows (see inputs); a track's outputs are "
    "the mean of its members' track outputs (each the mean of that member's windows); window rows are omitted, "
    "since windows of different lengths do not line up"
)


class _Outputs:
    """What a window and a track share: their outputs by name, and their JSON fields."""

    label: str
    probabilities: dict[str, float]
    moods: tuple[str, ...]
    values: dict[str, float] | None

    @property
    def outputs(self) -> dict[str, float]:
        """Each output's number by name: its value (regression) or its probability."""
        return self.values if self.values is not None else self.probabilities

    def fields(self, task: Task) -> dict:
        """The prediction as `task` shows it in JSON (e.g. `label` and `probabilities`, or `values`)."""
        return {name: _plain(getattr(self, name)) for name in task.facts.prediction_fields}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class WindowPrediction(_Outputs):
    """One window of a track: where it starts (seconds) and what the model predicts there (fields as the module
    says). Unpacks as (start, label, probabilities)."""

    start: float
    label: str
    probabilities: dict[str, float]
    moods: tuple[str, ...] = ()
    values: dict[str, float] | None = None

    def __iter__(self) -> Iterator:
        return iter((self.start, self.label, self.probabilities))


@dataclass(frozen=True)
class TrackPrediction(_Outputs):
    """The label of one audio file, aggregated over its windows (fields as in `WindowPrediction`)."""

    file: str
    label: str
    probabilities: dict[str, float]
    windows: list[WindowPrediction]
    duration: float
    task: Task = DEFAULT
    moods: tuple[str, ...] = ()
    values: dict[str, float] | None = None
    window_counts: tuple[int, ...] = ()  # a mixed-input ensemble's windows per input (its `windows` are empty)

    @property
    def n_windows(self) -> str:
        """How many windows the track has: a count, or a mixed-input ensemble's counts per input joined by ";"."""
        return ";".join(map(str, self.window_counts)) if self.window_counts else str(len(self.windows))

    def to_dict(self, window_seconds: float | None) -> dict:
        """JSON-ready form (a classifier's `label` and `probabilities`, a multilabel model's `moods` and
        `probabilities`, a regression model's `values`); each window also says where it ends. A mixed-input
        ensemble's track has `window_counts` (per input) instead of windows."""
        if self.window_counts:
            counts = list(self.window_counts)
            return {"file": self.file, **self.fields(self.task), "duration": round(self.duration, 3),
                    "window_counts": counts}  # fmt: skip
        return {
            "file": self.file,
            **self.fields(self.task),
            "duration": round(self.duration, 3),
            "windows": [
                {
                    "start": round(w.start, 3),
                    "end": round(min(w.start + window_seconds, self.duration), 3),  # type: ignore[operator]
                    **w.fields(self.task),
                }
                for w in self.windows
            ],
        }


@dataclass
class Predictions:
    """The tracks labelled by `Predictor.predict_many` and the files it skipped; iterates over tracks.

    `window`/`hop`: seconds (None for a mixed-input ensemble, whose `inputs` give each input's)."""

    tracks: list[TrackPrediction]
    skipped: list[SkippedFile] = field(default_factory=list)
    window: float | None = 0.0
    hop: float | None = 0.0
    aggregate: str = "mean"
    inputs: list[dict] = field(default_factory=list)  # `Predictor.inputs` of a mixed-input ensemble

    def __iter__(self) -> Iterator[TrackPrediction]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)

    def windows_text(self) -> str:
        """How the tracks were cut, for titles: "10 s windows, hop 5 s", or a mixed-input ensemble's inputs."""
        if not self.inputs:
            return f"{self.window:g} s windows, hop {self.hop:g} s"
        each = "; ".join(f"{i['arch']}: {i['window']:g} s windows, hop {i['hop']:g} s" for i in self.inputs)
        return f"mixed-input ensemble, mean of its members' tracks ({each})"
