"""`predict`: label audio files of any length with a saved model, window by window.

A classifier gives each window and track a class and class probabilities; a multilabel model the moods
whose sigmoid probability reaches its threshold (0.5, as training scores it) with every mood's probability;
a regression model a value per target. A track's probabilities or values are the mean of its windows'
(`scores.aggregate`, the function training uses; classifiers may also vote or take the maximum).

Every window goes through exactly the steps of training: the model's spectrogram settings, the uint8
image opened as RGB, resized by fastai's own validation item transform (`Resize` squish, or the centre
crop `RandomResizedCrop` makes at validation for the "study" augmentation), scaled to [0, 1] and
normalised with the architecture's statistics.

A mixed-input ensemble (members that read different spectrograms, `ModelMeta.is_mixed`) is predicted per
input group: each group's members on the group's own windows (one spectrogram computation per group), and a
track's outputs are the mean of its members' track outputs (each the mean of that member's windows). Its
windows do not line up across groups, so it has no window rows: a track gives its window count per input.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import nn

from .._plumbing.files import atomic_write
from .._plumbing.progress import progress_bar
from ..choices import FORMATS
from ..data.audio import SkippedFile, find_audio_files, load_audio
from ..data.spectrogram import SpecConfig, window_images
from ..errors import AudioError, MerError
from ..models.modelfile import load_model
from ..models.modelmeta import MOOD_DECISION, ModelMeta
from ..runs.inputs import refuse_input_out
from ..runs.layout import model_file_path
from ..scoring.scores import aggregate as aggregate_windows
from ..scoring.scores import check_aggregate
from ..training.loaders import resize_transform

if TYPE_CHECKING:
    from .embed import Embeddings

VALIDATION = 1  # fastai's split_idx of the validation set: random transforms take their fixed form
MIXED_NOTE = (
    "a mixed-input ensemble: the members of each input read its own windows (see inputs); a track's outputs are "
    "the mean of its members' track outputs (each the mean of that member's windows); window rows are omitted, "
    "since windows of different lengths do not line up"
)


class WindowPrediction(NamedTuple):
    """One window of a classifier's track: where it starts, its most likely class and every class's probability."""

    start: float
    label: str
    probabilities: dict[str, float]


class TaskWindowPrediction(NamedTuple):
    """One window of a multilabel model's track (`moods` at or above the threshold, `label` them joined by ";",
    `probabilities` per mood) or of a regression model's (`values` per target, `label` "", no probabilities)."""

    start: float
    label: str
    probabilities: dict[str, float]
    moods: tuple[str, ...] = ()
    values: dict[str, float] | None = None


@dataclass(frozen=True)
class TrackPrediction:
    """The label of one audio file, aggregated over its windows (fields by task as in `TaskWindowPrediction`)."""

    file: str
    label: str
    probabilities: dict[str, float]
    windows: list[WindowPrediction] | list[TaskWindowPrediction]
    duration: float
    task: str = "classification"
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
            return {"file": self.file, **_outputs(self, self.task), "duration": round(self.duration, 3),
                    "window_counts": counts}  # fmt: skip
        return {
            "file": self.file,
            **_outputs(self, self.task),
            "duration": round(self.duration, 3),
            "windows": [
                {
                    "start": round(w.start, 3),
                    "end": round(min(w.start + window_seconds, self.duration), 3),  # type: ignore[operator]
                    **_outputs(w, self.task),
                }
                for w in self.windows
            ],
        }


def _outputs(item: TrackPrediction | WindowPrediction | TaskWindowPrediction, task: str) -> dict:
    """What a track or window predicts, by task, for its JSON form."""
    if task == "regression":
        return {"values": item.values}
    if task == "multilabel":
        return {"moods": list(item.moods), "probabilities": item.probabilities}
    return {"label": item.label, "probabilities": item.probabilities}


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


def penultimate_layer(model: nn.Module) -> nn.Linear:
    """The final `Linear` of the model's head (its last child), whose input is the pooled feature vector."""
    from ..models.modelfile import EnsembleModel

    if isinstance(model, EnsembleModel):
        raise MerError(
            "an ensemble has one feature vector per member, not one; embed with one member's run folder instead"
        )
    children = list(model.children())
    for part in (children[-1] if children else model, model):
        linears = [m for m in part.modules() if isinstance(m, nn.Linear)]
        if linears:
            return linears[-1]
    raise MerError("the model has no Linear layer to take features from; embed needs a classifier head")


class Predictor:
    """A saved model ready to label audio: `Predictor.load("run/").predict("song.mp3")`."""

    def __init__(
        self,
        model: nn.Module,
        meta: ModelMeta,
        *,
        device: str | None = None,
        bs: int = 32,
        source: Path | None = None,
    ):
        if bs < 1:
            raise MerError(f"--bs must be at least 1 (got {bs})")
        self.device = pick_device(device)
        # channels-last convolutions: faster inference for the table's CNNs on CPU and GPU
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.meta = meta
        self.bs = bs
        self.source = source
        self.resize_transform = resize_transform(meta.input_size, meta.resize)
        mean, std = (torch.tensor(s, dtype=torch.float32).view(1, 3, 1, 1) for s in meta.stats)
        self.mean, self.std = mean.to(self.device), std.to(self.device)
        # a mixed-input ensemble: one predictor per input group (its members, fed that group's windows)
        groups = meta.input_groups if meta.is_mixed else ()
        self.groups = [
            Predictor(model.group(g), meta.group(g), device=str(self.device), bs=bs, source=source)
            for g in range(len(groups))
        ]
        self.group_sizes = [len(group) for group in groups]

    @property
    def classes(self) -> list[str]:
        """The model's class names, in the order of its outputs."""
        return list(self.meta.classes)

    @property
    def task(self) -> str:
        """classification, regression or multilabel: what the model's outputs are."""
        return self.meta.task

    @property
    def threshold(self) -> float | None:
        """The probability at which a multilabel model predicts a mood (None for other tasks)."""
        return MOOD_DECISION if self.task == "multilabel" else None

    @property
    def feature(self) -> str | None:
        """What the model labels (e.g. emotions), as its training data set said."""
        return self.meta.feature

    @property
    def spec(self) -> SpecConfig:
        """The spectrogram settings of the model's training data."""
        return self.meta.spec

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, bs: int = 32) -> Predictor:
        """A model file or a run folder made by `train`; a damaged file is one clear `MerError`."""
        model, meta = load_model(path)
        return cls(model, meta, device=device, bs=bs, source=model_file_path(path))

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Spectrogram images (height, width) → the normalised (N, 3, height, width) batch training saw: 8-bit
        images resized by the validation transform and scaled by 1/255; 16-bit ones (a fixed-size input such as
        musicnn's) at their own size, scaled by 1/65535."""
        if self.spec.bit_depth == 16:
            batch = torch.from_numpy(np.stack([np.asarray(image, dtype=np.float32) for image in images]))
            batch = batch[:, None].expand(-1, 3, -1, -1).to(self.device).div(65535.0)
            return (batch - self.mean) / self.std
        from PIL import Image

        arrays = []
        for image in images:
            picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
            arrays.append(np.asarray(self.resize_transform(picture, split_idx=VALIDATION)))
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)
        return (batch.float().div_(255.0) - self.mean) / self.std

    def logits(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Raw model outputs (N, classes) for uint8 spectrogram images, computed in batches of `bs`."""
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), self.bs):
                outputs.append(self.model(self.preprocess(images[start : start + self.bs])).float().cpu())
        return torch.cat(outputs) if outputs else torch.empty(0, len(self.classes))

    def outputs(self, logits: torch.Tensor) -> np.ndarray:
        """Raw outputs as the task reads them: class probabilities (softmax), mood probabilities (sigmoid) or
        regression values (as they are), float64 (N, outputs)."""
        if self.task == "regression":
            values = logits
        elif self.task == "multilabel":
            values = torch.sigmoid(logits)
        else:
            values = torch.softmax(logits, dim=1)
        return values.numpy().astype(np.float64)

    def describe(self, outputs: np.ndarray) -> str:
        """One window's or track's prediction as text: its class, its moods joined by ";", or
        `target=value` pairs joined by ";"."""
        if self.task == "regression":
            return ";".join(f"{name}={value:.3f}" for name, value in zip(self.classes, outputs, strict=True))
        if self.task == "multilabel":
            return ";".join(self._moods(outputs))
        return self.classes[int(np.argmax(outputs))]

    def check_aggregate(self, method: str) -> None:
        """A clear error for an unknown --aggregate, or for vote/max with a model whose tracks are means."""
        check_aggregate(method)
        if self.task != "classification" and method != "mean":
            raise MerError(
                f"--aggregate {method}: a {self.task} model's tracks are the mean of their windows; drop --aggregate"
            )
        if self.groups and method != "mean":
            raise MerError(
                f"--aggregate {method}: a mixed-input ensemble's tracks are the mean of its members' tracks (each the "
                "mean of its windows); drop --aggregate"
            )

    def inputs(self) -> list[dict]:
        """A mixed-input ensemble's inputs: the members reading each (indices in the file), their architectures,
        window and hop in seconds and sample rate; empty for any other model."""
        return [
            {
                "members": list(indices),
                "arch": group.meta.arch_summary,
                "window": group.spec.segment_seconds,
                "hop": group.spec.hop_seconds,
                "sample_rate": group.spec.sample_rate,
            }
            for indices, group in zip(self.meta.input_groups if self.groups else (), self.groups, strict=True)
        ]

    def _refuse_windows(self, window: float | None, hop: float | None) -> None:
        """A mixed-input ensemble reads each input's training windows: --window and --hop are refused."""
        if window is not None or hop is not None:
            option = "--window" if window is not None else "--hop"
            each = ", ".join(f"{i['window']:g} s every {i['hop']:g} s ({i['arch']})" for i in self.inputs())
            raise MerError(
                f"{option}: a mixed-input ensemble reads each input's own training windows ({each}); drop {option}"
            )

    def window_settings(self, window: float | None = None, hop: float | None = None) -> tuple[float, float]:
        """Window and hop in seconds: the training window and hop by default; a new window hops by itself."""
        seconds = window if window is not None else self.spec.segment_seconds
        step = hop if hop is not None else (self.spec.hop_seconds if window is None else seconds)
        if not (seconds > 0 and step > 0):
            raise MerError(f"--window and --hop must be positive seconds (got {seconds} and {step})")
        if self.spec.framing == "clip" and seconds != self.spec.segment_seconds:
            raise MerError(
                f"--window {seconds:g}: {self.meta.arch} reads {self.spec.segment_seconds:g} s patches only; "
                "drop --window (--hop sets their overlap)"
            )
        return seconds, step

    def predict(
        self,
        audio: str | Path,
        *,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
    ) -> TrackPrediction:
        """Label one audio file of any length and format; an undecodable file raises `AudioError`."""
        self.check_aggregate(aggregate)
        if self.groups:
            return self._predict_mixed(audio, window, hop)
        seconds, step = self.window_settings(window, hop)
        signal, starts, images = self.window_images(audio, seconds, step)
        probs = self.outputs(self.logits(images))
        track, best = aggregate_windows(probs, aggregate)  # the aggregation train and evaluate use
        duration = len(signal) / self.spec.sample_rate
        if self.task != "classification":
            return self._track(str(audio), track, [self._window(float(s), p) for s, p in zip(starts, probs)], duration)
        return TrackPrediction(
            file=str(audio),
            label=self.classes[best],
            probabilities=self._named(track),
            windows=[
                WindowPrediction(float(start), self.classes[int(np.argmax(p))], self._named(p))
                for start, p in zip(starts, probs, strict=True)
            ],
            duration=len(signal) / self.spec.sample_rate,
        )

    def _predict_mixed(self, audio: str | Path, window: float | None, hop: float | None) -> TrackPrediction:
        """A mixed-input ensemble's track: each input group's members on the group's own windows; the track's
        outputs are the mean of the members' track outputs (a group's, the mean over its windows of its members'
        mean, counts once per member)."""
        self._refuse_windows(window, hop)
        total, counts, durations = np.zeros(len(self.classes)), [], []
        for group, size in zip(self.groups, self.group_sizes, strict=True):
            signal, _, images = group.window_images(audio, *group.window_settings())
            total += group.outputs(group.logits(images)).mean(axis=0) * size
            counts.append(len(images))
            durations.append(len(signal) / group.spec.sample_rate)
        track = total / sum(self.group_sizes)
        if self.task != "classification":
            summary = self._track(str(audio), track, [], durations[0])
            return dataclasses.replace(summary, window_counts=tuple(counts))
        label = self.classes[int(np.argmax(track))]
        return TrackPrediction(str(audio), label, self._named(track), [], durations[0], window_counts=tuple(counts))

    def window_images(self, audio: str | Path, seconds: float, step: float) -> tuple[np.ndarray, list, list]:
        """The decoded signal of one file, its window starts and their spectrogram images (`AudioError` if bad)."""
        signal = load_audio(audio, self.spec.sample_rate)
        pairs = list(window_images(signal, self.spec, seconds, step))
        return signal, [start for start, _ in pairs], [image for _, image in pairs]

    def features(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate-layer features (the input of the head's final Linear) and logits of spectrogram images."""
        captured: list[torch.Tensor] = []
        hook = penultimate_layer(self.model).register_forward_hook(
            lambda _module, inputs, _output: captured.append(inputs[0].detach().float().cpu())
        )
        try:
            logits = self.logits(images)
        finally:
            hook.remove()
        return (torch.cat(captured) if captured else torch.empty(0, 0)), logits

    def embed(self, paths: Iterable[str | Path], **options) -> Embeddings:
        """Pooled penultimate features per window and per track (mean of windows) of audio files and folders;
        see `mer_fastai.embed.embed_audio` for the options (labels file, window, hop, progress)."""
        from .embed import embed_audio

        return embed_audio(self, paths, **options)

    def predict_many(
        self,
        paths: Iterable[str | Path],
        *,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
        progress: bool = False,
    ) -> Predictions:
        """Label files and folders (searched recursively); undecodable files are skipped with their reason."""
        self.check_aggregate(aggregate)
        seconds: float | None
        step: float | None
        if self.groups:
            self._refuse_windows(window, hop)
            seconds = step = None  # each input's own (`inputs`)
        else:
            seconds, step = self.window_settings(window, hop)
        files = find_audio_files(*paths)
        result = Predictions([], [], seconds, step, aggregate, self.inputs())
        with progress_bar("predicting", total=len(files), enabled=progress) as advance:
            for file in files:
                try:
                    result.tracks.append(self.predict(file, window=seconds, hop=step, aggregate=aggregate))
                except AudioError as exc:
                    result.skipped.append(SkippedFile(str(file), str(exc).removeprefix(f"{file}: ")))
                advance()
        return result

    def _named(self, probabilities: np.ndarray) -> dict[str, float]:
        return {name: round(float(p), 6) for name, p in zip(self.classes, probabilities, strict=True)}

    def _moods(self, probabilities: np.ndarray) -> tuple[str, ...]:
        return tuple(name for name, p in zip(self.classes, probabilities, strict=True) if p >= MOOD_DECISION)

    def _window(self, start: float, outputs: np.ndarray) -> TaskWindowPrediction:
        """A regression or multilabel window's prediction."""
        if self.task == "regression":
            return TaskWindowPrediction(start, "", {}, values=self._named(outputs))
        moods = self._moods(outputs)
        return TaskWindowPrediction(start, ";".join(moods), self._named(outputs), moods)

    def _track(self, file: str, outputs: np.ndarray, windows: list[TaskWindowPrediction], duration: float):
        """A regression or multilabel track's prediction from its mean window outputs."""
        summary = self._window(0.0, outputs)
        return TrackPrediction(file, summary.label, summary.probabilities, windows, duration, self.task,
                               summary.moods, summary.values)  # fmt: skip


def pick_device(name: str | None) -> torch.device:
    """`auto` or None: the GPU when there is one, else the CPU; otherwise the named torch device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MerError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MerError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    return device


def output_format(out: Path | None, fmt: str | None) -> str:
    """The format to write: --format, else the --out extension (.json or .csv), else json (standard output).

    `--out` naming a folder, a --format that contradicts a .json/.csv extension, and any other extension
    without --format are refused; an explicit --format may name any other extension (`--out x.txt --format csv`).
    """
    if fmt is not None and fmt not in FORMATS:
        raise MerError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out is None:
        return fmt or "json"
    if out.is_dir():
        raise MerError(f"--out {out}: is a folder; name a file such as {out / 'predictions.json'}")
    suffix = out.suffix.lstrip(".").lower()
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise MerError(
                f"--out {out} --format {fmt}: the extension says {suffix}; drop --format or use "
                f"--out {out.with_suffix('.' + fmt)}"
            )
        return suffix
    if fmt is None:
        raise MerError(f"--out {out}: unknown extension; use .json or .csv, or pass --format")
    return fmt


def render_predictions(predictions: Predictions, predictor: Predictor, fmt: str) -> str:
    """JSON (every track with its windows) or CSV (one row per track) text of `predictions`.

    CSV columns: file, then a classifier's label, a multilabel model's `moods` (";"-joined), nothing for
    regression; duration, windows (a mixed-input ensemble's count per input, ";"-joined); then
    `prob_<class or mood>`, or a regression model's `pred_<target>`."""
    classes = predictor.classes
    if fmt == "json":
        document = {
            "model": str(predictor.source) if predictor.source else None,
            "feature": predictor.feature,
            "task": predictor.task,
            "classes": classes,
            **({"threshold": predictor.threshold} if predictor.threshold is not None else {}),
            **({"scale": [list(pair) for pair in predictor.meta.scale]} if predictor.meta.scale else {}),
            "window": predictions.window,
            "hop": predictions.hop,
            "aggregate": predictions.aggregate,
            **({"inputs": predictions.inputs, "note": MIXED_NOTE} if predictions.inputs else {}),
            "tracks": [track.to_dict(predictions.window) for track in predictions],
            "skipped": [dataclasses.asdict(item) for item in predictions.skipped],
        }
        return json.dumps(document, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    label = {"classification": ["label"], "multilabel": ["moods"]}.get(predictor.task, [])
    prefix = "pred" if predictor.task == "regression" else "prob"
    writer.writerow(["file", *label, "duration", "windows", *(f"{prefix}_{name}" for name in classes)])
    for track in predictions:
        numbers = track.values if predictor.task == "regression" else track.probabilities
        cells = [f"{numbers[name]:.6f}" for name in classes]  # type: ignore[index]
        writer.writerow([track.file, *([track.label] if label else []), f"{track.duration:.3f}", track.n_windows,
                         *cells])  # fmt: skip
    return buffer.getvalue()


def windows_text(predictions: Predictions) -> str:
    """How the tracks were cut, for titles: "10 s windows, hop 5 s", or a mixed-input ensemble's inputs."""
    if not predictions.inputs:
        return f"{predictions.window:g} s windows, hop {predictions.hop:g} s"
    each = "; ".join(f"{i['arch']}: {i['window']:g} s windows, hop {i['hop']:g} s" for i in predictions.inputs)
    return f"mixed-input ensemble, mean of its members' tracks ({each})"


def write_predictions(predictions: Predictions, predictor: Predictor, out: Path, fmt: str) -> Path:
    """Write `render_predictions` to `out` atomically (nothing is left behind when writing fails); an `out` that is
    the model or one of the files predicted is refused."""
    files = [track.file for track in predictions] + [item.file for item in predictions.skipped]
    refuse_input_out([out], predictor.source, files)
    text = render_predictions(predictions, predictor, fmt)
    try:
        return atomic_write(out, text)
    except OSError as exc:
        raise MerError(
            f"--out {out}: cannot write ({exc.strerror or exc}); free space or choose another --out"
        ) from exc
