"""`predict`: label audio files of any length with a saved model, window by window.

Every window goes through exactly the steps of training: the model's spectrogram settings, the uint8
image opened as RGB, resized by fastai's own validation item transform (`Resize` squish, or the centre
crop `RandomResizedCrop` makes at validation for the "study" augmentation), scaled to [0, 1] and
normalised with the architecture's statistics.
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

from .audio import SkippedFile, find_audio_files, load_audio, windows
from .choices import FORMATS
from .data import resize_transform
from .errors import AudioError, MerError
from .files import atomic_write
from .modelfile import load_model, model_file_path
from .modelmeta import ModelMeta
from .progress import progress_bar
from .scores import aggregate as aggregate_windows
from .scores import check_aggregate
from .spectrogram import SpecConfig, mel_image

if TYPE_CHECKING:
    from .embed import Embeddings

VALIDATION = 1  # fastai's split_idx of the validation set: random transforms take their fixed form


class WindowPrediction(NamedTuple):
    """One window of a track: where it starts, its most likely class and every class's probability."""

    start: float
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class TrackPrediction:
    """The label of one audio file, aggregated over its windows."""

    file: str
    label: str
    probabilities: dict[str, float]
    windows: list[WindowPrediction]
    duration: float

    def to_dict(self, window_seconds: float) -> dict:
        """JSON-ready form; each window also says where it ends."""
        return {
            "file": self.file,
            "label": self.label,
            "probabilities": self.probabilities,
            "duration": round(self.duration, 3),
            "windows": [
                {
                    "start": round(w.start, 3),
                    "end": round(min(w.start + window_seconds, self.duration), 3),
                    "label": w.label,
                    "probabilities": w.probabilities,
                }
                for w in self.windows
            ],
        }


@dataclass
class Predictions:
    """The tracks labelled by `Predictor.predict_many` and the files it skipped; iterates over tracks."""

    tracks: list[TrackPrediction]
    skipped: list[SkippedFile] = field(default_factory=list)
    window: float = 0.0
    hop: float = 0.0
    aggregate: str = "mean"

    def __iter__(self) -> Iterator[TrackPrediction]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)


def penultimate_layer(model: nn.Module) -> nn.Linear:
    """The final `Linear` of the model's head (its last child), whose input is the pooled feature vector."""
    from .modelfile import EnsembleModel

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

    @property
    def classes(self) -> list[str]:
        """The model's class names, in the order of its outputs."""
        return list(self.meta.classes)

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
        """uint8 (height, width) spectrogram images → the normalised (N, 3, size, size) batch training saw."""
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

    def window_settings(self, window: float | None = None, hop: float | None = None) -> tuple[float, float]:
        """Window and hop in seconds: the training window and hop by default; a new window hops by itself."""
        seconds = window if window is not None else self.spec.segment_seconds
        step = hop if hop is not None else (self.spec.hop_seconds if window is None else seconds)
        if not (seconds > 0 and step > 0):
            raise MerError(f"--window and --hop must be positive seconds (got {seconds} and {step})")
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
        check_aggregate(aggregate)
        seconds, step = self.window_settings(window, hop)
        signal, starts, images = self.window_images(audio, seconds, step)
        probs = torch.softmax(self.logits(images), dim=1).numpy().astype(np.float64)
        track, best = aggregate_windows(probs, aggregate)  # the aggregation train and evaluate use
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

    def window_images(self, audio: str | Path, seconds: float, step: float) -> tuple[np.ndarray, list, list]:
        """The decoded signal of one file, its window starts and their spectrogram images (`AudioError` if bad)."""
        spec = dataclasses.replace(self.spec, segment_seconds=seconds, segment_hop_seconds=step)
        signal = load_audio(audio, spec.sample_rate)
        starts, images = [], []
        for start, chunk in windows(signal, spec.sample_rate, seconds, step):
            starts.append(start)
            images.append(mel_image(chunk, spec))
        return signal, starts, images

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
        check_aggregate(aggregate)
        seconds, step = self.window_settings(window, hop)
        files = find_audio_files(*paths)
        result = Predictions([], [], seconds, step, aggregate)
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
    """JSON (every track with its windows) or CSV (one row per track) text of `predictions`."""
    classes = predictor.classes
    if fmt == "json":
        document = {
            "model": str(predictor.source) if predictor.source else None,
            "feature": predictor.feature,
            "classes": classes,
            "window": predictions.window,
            "hop": predictions.hop,
            "aggregate": predictions.aggregate,
            "tracks": [track.to_dict(predictions.window) for track in predictions],
            "skipped": [dataclasses.asdict(item) for item in predictions.skipped],
        }
        return json.dumps(document, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "label", "duration", "windows", *(f"prob_{name}" for name in classes)])
    for track in predictions:
        probs = [f"{track.probabilities[name]:.6f}" for name in classes]
        writer.writerow([track.file, track.label, f"{track.duration:.3f}", len(track.windows), *probs])
    return buffer.getvalue()


def write_predictions(predictions: Predictions, predictor: Predictor, out: Path, fmt: str) -> Path:
    """Write `render_predictions` to `out` atomically (nothing is left behind when writing fails)."""
    text = render_predictions(predictions, predictor, fmt)
    try:
        return atomic_write(out, text)
    except OSError as exc:
        raise MerError(
            f"--out {out}: cannot write ({exc.strerror or exc}); free space or choose another --out"
        ) from exc
