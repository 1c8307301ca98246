"""`predict`: label audio files of any length with a saved model, window by window.

A classifier gives each window and track a class and class probabilities; a multilabel model the moods
whose sigmoid probability reaches its threshold (0.5, as training scores it) with every mood's probability;
a regression model a value per target (the records: `inference.tracks`; what each task fills in:
`Task.prediction`). A track's probabilities or values are the mean of its windows' (`scoring.scores.aggregate`, the
function training uses; classifiers may also vote or take the maximum).

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

import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .._plumbing.memory import reuse_freed_memory
from .._plumbing.progress import progress_bar
from ..data.audio import SkippedFile, audio_files
from ..data.spectrogram import SECONDS, SpecConfig
from ..errors import AudioError, MerError
from ..models.modelfile import load_model
from ..models.modelmeta import ModelMeta
from ..models.precision import check_precision, choose
from ..models.preprocessing import native_input, resize_transform
from ..models.windowreads import read_windows
from ..runs.layout import model_file_path
from ..scoring.scores import aggregate as aggregate_windows
from ..scoring.scores import check_aggregate
from ..tasks.base import Task
from .batching import Decoded, batched, decode, decoded_in_order
from .device import pick_device
from .track_head import check_track_precision, track_logits, track_predictions
from .tracks import Predictions, TrackPrediction, WindowPrediction

if TYPE_CHECKING:
    from .embed import Embeddings

__all__ = ["Predictor"]

VALIDATION = 1  # fastai's split_idx of the validation set: random transforms take their fixed form


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
        precision: str = "fp32",
        workers: int = 1,
    ):
        if bs < 1:
            raise MerError(f"--bs must be at least 1 (got {bs})")
        if workers < 1:
            raise MerError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers  # processes decoding audio while this one runs the network (1: in turn)
        self.device = pick_device(device)
        reuse_freed_memory()  # big activations reuse freed pages instead of faulting in fresh ones every batch
        # channels-last convolutions: faster inference for the table's CNNs on CPU and GPU
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.meta = meta
        self.bs = bs
        self.source = source
        self.precision = check_precision(precision, self.device)  # `auto` until the first batch resolves it
        if meta.reads_tracks or meta.window_features:  # a track head (`inference.track_head`), window features
            self.precision = check_track_precision(self.precision, meta)
        self.network: nn.Module | None = None  # the folded network at that precision (`models.precision.choose`)
        self.resize_transform = resize_transform(meta.input_size, meta.resize)
        mean, std = (torch.tensor(s, dtype=torch.float32).view(1, 3, 1, 1) for s in meta.stats)
        self.mean, self.std = mean.to(self.device), std.to(self.device)
        # a mixed-input ensemble: one predictor per input group (its members, fed that group's windows)
        groups = meta.input_groups if meta.is_mixed else ()
        self.groups = [
            Predictor(model.group(g), meta.group(g), device=str(self.device), bs=bs, source=source, precision=precision)
            for g in range(len(groups))
        ]
        self.group_sizes = [len(group) for group in groups]

    @property
    def classes(self) -> list[str]:
        """The model's class names, in the order of its outputs."""
        return list(self.meta.classes)

    @property
    def task(self) -> Task:
        """classification, regression or multilabel (the `Task`; equal to its name): what the model's outputs
        are."""
        return self.meta.task

    @property
    def rules(self) -> Task:
        """The task object of the model's outputs (`tasks`): its activation, prediction fields and columns."""
        return self.meta.task

    @property
    def threshold(self) -> float | None:
        """The probability at which a multilabel model predicts a mood (None for other tasks)."""
        return self.rules.facts.decision

    @property
    def feature(self) -> str | None:
        """What the model labels (e.g. emotions), as its training data set said."""
        return self.meta.feature

    @property
    def spec(self) -> SpecConfig:
        """The spectrogram settings of the model's training data."""
        return self.meta.spec

    @classmethod
    def load(
        cls, path: str | Path, *, device: str | None = None, bs: int = 32, precision: str = "fp32", workers: int = 1
    ) -> Predictor:
        """A model file or a run folder made by `train`; a damaged file is one clear `MerError`. `workers` > 1:
        `predict_many` and `embed` decode files in that many processes while this one runs the network."""
        model, meta = load_model(path)
        return cls(
            model, meta, device=device, bs=bs, source=model_file_path(path), precision=precision, workers=workers
        )

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Spectrogram images (height, width) → the normalised (N, 3, height, width) batch training saw: 8-bit
        images resized by the validation transform and scaled by 1/255; 16-bit ones (a fixed-size input such as
        musicnn's) at their own size, scaled by 1/65535. A window-feature model's vectors: (N, features)."""
        if self.meta.window_features:
            return torch.from_numpy(np.stack(images).astype(np.float32)).to(self.device)
        if native_input(self.spec):
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
        """Raw model outputs (N, classes) for uint8 spectrogram images, computed in batches of `bs` (a track head's:
        the images are one track's windows, each carrying the track's outputs)."""
        if self.meta.reads_tracks:
            return track_logits(self, images)
        outputs = []
        for start in range(0, len(images), self.bs):
            batch = self.preprocess(images[start : start + self.bs])
            network = self.runner(batch)
            with torch.inference_mode():
                outputs.append(network(batch).float().cpu())
        return torch.cat(outputs) if outputs else torch.empty(0, len(self.classes))

    def runner(self, sample: torch.Tensor) -> nn.Module:
        """The network that computes outputs: the model folded, at its precision (`auto` resolved on `sample`, the
        first batch: the check's windows and int8's calibration)."""
        if self.network is None:
            model = self.model.encoder if self.meta.is_track else self.model  # a track head: the body per window
            self.precision, self.network = choose(model, self.precision, sample, self.rules.outputs, self.device)
        return self.network

    def outputs(self, logits: torch.Tensor) -> np.ndarray:
        """Raw outputs as the task reads them: class probabilities (softmax), mood probabilities (sigmoid) or
        regression values (as they are), float64 (N, outputs)."""
        return self.rules.outputs(logits).numpy().astype(np.float64)

    def describe(self, outputs: np.ndarray) -> str:
        """One window's or track's prediction as text: its class, its moods joined by ";", or
        `target=value` pairs joined by ";"."""
        return self.rules.describe(self.classes, outputs)

    def check_aggregate(self, method: str) -> None:
        """A clear error for an unknown --aggregate, or for vote/max with a model whose tracks are means."""
        check_aggregate(method)
        if not self.rules.facts.chooses_one_label and method != "mean":
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
        seconds, step = self.spec.windowing(window, hop)
        SECONDS.check(seconds, "--window (seconds)")
        SECONDS.check(step, "--hop (seconds)")
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
        decoded = decode(Path(audio), self.spec, seconds, step, self.meta.window_features)
        if decoded.error is not None:
            raise AudioError(decoded.error)
        return self._track(str(audio), decoded, self.logits(decoded.images), aggregate)

    def _track(self, name: str, decoded: Decoded, logits: torch.Tensor, aggregate: str) -> TrackPrediction:
        """A file's prediction from its windows' logits, aggregated as train and evaluate aggregate."""
        outputs = self.outputs(logits)
        track, best = aggregate_windows(outputs, aggregate)
        windows = [
            WindowPrediction(start, **self.rules.prediction(self.classes, p))
            for start, p in zip(decoded.starts, outputs, strict=True)
        ]
        return TrackPrediction(name, windows=windows, duration=decoded.duration, task=self.task,
                               **self.rules.prediction(self.classes, track, best))  # fmt: skip

    def _predict_mixed(self, audio: str | Path, window: float | None, hop: float | None) -> TrackPrediction:
        """A mixed-input ensemble's track: each input group's members on the group's own windows; the track's
        outputs are the mean of the members' track outputs (a group's, the mean over its windows of its members'
        mean, counts once per member)."""
        self._refuse_windows(window, hop)
        total, counts, durations = np.zeros(len(self.classes)), [], []
        for group, size in zip(self.groups, self.group_sizes, strict=True):
            duration, _, images = group.window_images(audio, *group.window_settings())
            total += group.outputs(group.logits(images)).mean(axis=0) * size
            counts.append(len(images))
            durations.append(duration)
        track = total / sum(self.group_sizes)
        return TrackPrediction(str(audio), windows=[], duration=durations[0], task=self.task,
                               window_counts=tuple(counts), **self.rules.prediction(self.classes, track))  # fmt: skip

    def window_images(self, audio: str | Path, seconds: float, step: float) -> tuple[float, list, list]:
        """The duration of one file (seconds), its window starts and their spectrogram images or window vectors
        (`models.windowreads`; `AudioError` if bad)."""
        return read_windows(audio, self.spec, seconds, step, self.meta.window_features)

    def features(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate-layer features (the input of the head's final Linear) and logits of spectrogram images."""
        captured: list[torch.Tensor] = []
        if self.meta.is_track:
            raise MerError("a track-head model has no head per window to take features from; `embed` writes its "
                           "body's window features and pooled track vectors")  # fmt: skip
        penultimate_layer(self.model)  # refuses an ensemble
        if images:
            self.runner(self.preprocess(images[: self.bs]))
        hook = penultimate_layer(self.network or self.model).register_forward_hook(
            lambda _module, inputs, _output: captured.append(inputs[0].detach().float().cpu())
        )
        try:
            logits = self.logits(images)
        finally:
            hook.remove()
        return (torch.cat(captured) if captured else torch.empty(0, 0)), logits

    def embed(self, paths: Iterable[str | Path], **options) -> Embeddings:
        """Deprecated (goes in 0.4): `inference.embed.embed_audio(predictor, paths, ...)` embeds; this calls it."""
        from .embed import embed_audio

        warnings.warn(
            "Predictor.embed is deprecated and goes in 0.4; call "
            "mer_fastai.inference.embed.embed_audio(predictor, paths, ...) instead",
            DeprecationWarning,
            stacklevel=2,
        )
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
        """Label files and folders (searched recursively; no audio file at all is refused); undecodable files are
        skipped with their reason. Each file is decoded once and windows are batched across files (`batching`)."""
        self.check_aggregate(aggregate)
        seconds: float | None
        step: float | None
        if self.groups:
            self._refuse_windows(window, hop)
            seconds = step = None  # each input's own (`inputs`)
        else:
            seconds, step = self.window_settings(window, hop)
        files = audio_files(*paths)  # none: refused in one line, not an empty predictions file
        result = Predictions([], [], seconds, step, aggregate, self.inputs())
        with progress_bar("predicting", total=len(files), enabled=progress) as advance:
            for track in self._tracks(files, seconds, step, aggregate):
                if isinstance(track, SkippedFile):
                    result.skipped.append(track)
                else:
                    result.tracks.append(track)
                advance()
        return result

    def _tracks(
        self, files: list[Path], seconds: float | None, step: float | None, aggregate: str
    ) -> Iterator[TrackPrediction | SkippedFile]:
        """Each file's track (or why it was skipped), in order: one pass per file, windows batched across files
        (`batching`); a mixed-input ensemble file by file."""
        if self.groups:
            for file in files:
                try:
                    yield self._predict_mixed(file, None, None)
                except AudioError as exc:
                    yield SkippedFile(str(file), str(exc).removeprefix(f"{file}: "))
            return
        assert seconds is not None and step is not None

        def compute(images: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
            return (self.logits(images).numpy(),)

        decoded = decoded_in_order(files, self.spec, seconds, step, self.workers, self.meta.window_features)
        if self.meta.reads_tracks:  # a track head reads all of a file's windows at once
            yield from track_predictions(self, decoded, aggregate)
            return
        for item, rows in batched(decoded, compute, self.bs):
            if item.error is not None:
                yield SkippedFile(str(item.file), item.error.removeprefix(f"{item.file}: "))
            else:
                yield self._track(str(item.file), item, torch.from_numpy(rows[0]), aggregate)
