"""`TrainConfig`: every training setting, declared once, in a module without heavy imports.

Each field is declared with `settings.setting`: its default and, in its metadata, its CLI flags, help text, choices,
range (`bounds`), the commands that offer it (`commands`, default both) and whether a recipe may set it (`recipe`).
The recipe schema (`recipe_fields`), the options of `train` and `lrfind` (`training.options.with_train_options`),
the runner's cells and the benchmarks derive from here, so adding a setting is one field here (plus its flag in the
metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..bounds import SEED, Bounds, quote
from ..choices import (
    AGGREGATES,
    AUDIO_AUGMENTS,
    AUGMENTS,
    HEADS,
    IMAGENET,
    IN_MEMORY_AUGMENTS,
    KEEPS,
    LAYERS,
    LOSSES,
    MODES,
    MONITORS,
    NONE,
    NORMS,
    PRECISIONS,
    PRETRAINED,
)
from ..errors import MerError
from ..models.archs import ARCHS, MUSICNN, ArchSpec, get_arch, layered
from ..models.preprocessing import input_size, resize_policy
from ..models.weights import check_weights
from ..settings import check_setting, long_flag, setting
from .head_options import check_head

__all__ = ["TrainConfig", "TrainSettings", "setting"]

TRAIN, LRFIND = "train", "lrfind"
# settings added after grids and cv folds were first fingerprinted
LATER_SETTINGS = (
    "mixup",
    "label_smoothing",
    "norm",
    "keep",
    "augment_audio",
    "augment_audio_kinds",
    "layer",
    "precision",
    "head",
)
BOTH = (TRAIN, LRFIND)
AUTO_LR = "auto"  # `--lr auto`: take the lr_find suggestion
ARCH_HELP = f"Architecture: {', '.join(ARCHS)} or timm/<model>."


@dataclass
class TrainConfig:
    """Every setting of one training run (also what a recipe grid cell holds)."""

    arch: str = setting(flags=("--arch", "-a"), help=ARCH_HELP)
    mode: str = setting(
        MODES[0],
        flags=("--mode", "-m"),
        help=f"{MODES[0]}: only the head learns; {MODES[1]}: every layer learns; {MODES[2]}: the body's first layers "
        "stay frozen (musicnn: its front end), their outputs computed once and cached on disk, and the rest learns.",
        choices=MODES,
    )
    layer: str = setting(
        LAYERS[0], flags=("--layer",), recipe=True, choices=LAYERS,
        help="musicnn: the pretrained layer the head learns from, per 3 s patch: penultimate (200 units), pooled (the "
        "mid-end's max and mean over time, 1506), tags (50 tag probabilities) or pooled+penultimate.",
    )  # fmt: skip
    head: str = setting(
        HEADS[0], flags=("--head",), recipe=True, choices=HEADS,
        help="window: the head labels each window and a track is the mean of its windows; track: the head sees all "
        "of a clip's windows at once (mean, std and max of their features) and learns one label per clip. track "
        "needs --mode freeze with the body's features cached.",
    )  # fmt: skip
    epochs: int = setting(
        20, flags=("--epochs", "-e"), help="Maximum epochs (one-cycle schedule).", commands=(TRAIN,), recipe=True,
        bounds=Bounds(1, 100_000, whole=True),
    )  # fmt: skip
    lr: float | str = setting(
        AUTO_LR,
        flags=("--lr",),
        help="Peak learning rate (above 0, at most 10), or 'auto' to take the lr_find suggestion.",
        commands=(TRAIN,),
        recipe=True,
        bounds=Bounds(0, 10, above=True),
    )
    bs: int = setting(
        32, flags=("--bs",), help="Batch size (at least 2: BatchNorm needs two samples; a last training batch of one "
        "sample is dropped).", recipe=True, bounds=Bounds(2, 65_536, whole=True),
    )  # fmt: skip
    size: int | None = setting(
        None, flags=("--size",), help="Training resolution in pixels (default: the architecture's, e.g. 224).",
        recipe=True,
    )  # fmt: skip
    weights: str = setting(
        PRETRAINED,
        flags=("--weights",),
        help="Starting weights: pretrained (the architecture's own: ImageNet for the study's CNNs, the Million Song "
        "Dataset / MagnaTagATune for musicnn-msd / musicnn-mtt), imagenet (the same for the CNNs), none, or an "
        "earlier run's model file / run folder.",
        recipe=True,
    )
    seed: int = setting(42, flags=("--seed",), help="Random seed.", recipe=True, bounds=SEED)
    train_bn: bool = setting(
        False, flags=("--train-bn",), help="In freeze mode, keep BatchNorm layers of the body trainable.", recipe=True
    )
    augment: str = setting(
        AUGMENTS[0],
        flags=("--augment",),
        help=f"Training augmentation: {', '.join(AUGMENTS)}.",
        commands=(TRAIN,),
        recipe=True,
        choices=AUGMENTS,
    )
    mixup: float = setting(
        0.0,
        flags=("--mixup",),
        help="MixUp: train on blends of two images and their labels, blend weights drawn from Beta(α, α); "
        "α (e.g. 0.4), 0 = off. Classification only.",
        commands=(TRAIN,),
        recipe=True,
        bounds=Bounds(0, 100),
    )
    label_smoothing: float = setting(
        0.0,
        flags=("--label-smoothing",),
        help="Label-smoothing cross-entropy: ε of the target mass spread over all classes (e.g. 0.1), 0 = plain "
        "cross-entropy. Classification only.",
        recipe=True,
        bounds=Bounds(0, 1),
    )
    norm: str = setting(
        NORMS[0],
        flags=("--norm",),
        help="Input normalisation: arch (the architecture's statistics, ImageNet's for the study's CNNs) or "
        "dataset (mean and std of the training spectrograms; suits --weights none).",
        recipe=True,
        choices=NORMS,
    )
    balanced: bool = setting(
        False,
        flags=("--balanced",),
        help="Class-balanced weighted sampling of training items.",
        commands=(TRAIN,),
        recipe=True,
    )
    extra_train_dirs: list[str] = setting(
        flags=("--augment-dir",),
        help="Extra training images in <dir>/<class>/ (e.g. GAN output); repeatable.",
        commands=(TRAIN,),
        factory=list,
        cli=list[Path],  # folders
    )
    augment_audio: int = setting(
        0, flags=("--augment-audio",), commands=(TRAIN,), recipe=True, bounds=Bounds(0, 64, whole=True),
        help="Train also on K copies of each training clip augmented on its audio (cached in <out>/audio-augment/).",
    )  # fmt: skip
    augment_audio_kinds: str = setting(
        ",".join(AUDIO_AUGMENTS), flags=("--augment-audio-kinds",), commands=(TRAIN,), recipe=True,
        help="What each --augment-audio copy changes: pitch (±2 semitones), stretch (0.9-1.1× tempo), gain (±6 dB), "
        "noise (20-40 dB SNR); comma-separated.",
    )  # fmt: skip
    keep: str = setting(
        KEEPS[0],
        flags=("--keep",),
        help="Which epoch's weights the run keeps: best (the best --monitor score on validation, which then "
        "flatters the model: score it on a test split) or last (the end of the one-cycle schedule; validation "
        "stays an unbiased score). cv always keeps the last.",
        commands=(TRAIN,),
        recipe=True,
        choices=KEEPS,
    )
    monitor: str = setting(
        MONITORS[0],
        flags=("--monitor",),
        help="Score that picks the kept epoch (--keep best) and stops early (--patience): "
        f"{', '.join(MONITORS)} (auto: accuracy; the mean CCC of a regression data set; the macro-F1 over the "
        "moods of a multilabel one).",
        commands=(TRAIN,),
        recipe=True,
        choices=MONITORS,
    )
    loss: str = setting(
        LOSSES[0],
        flags=("--loss",),
        help="Regression loss: mse, or ccc (1 - mean concordance correlation over the targets); auto: mse. "
        "Classification always uses cross-entropy.",
        recipe=True,
        choices=LOSSES,
    )
    patience: int | None = setting(
        None,
        flags=("--patience",),
        help="Stop after this many epochs without improvement.",
        commands=(TRAIN,),
        recipe=True,
        bounds=Bounds(1, 100_000, whole=True),
    )
    aggregate: str = setting(
        AGGREGATES[0],
        flags=("--aggregate",),
        help="How a clip's windows make its track label in the track scores: mean of probabilities, "
        "vote (most windows' class) or max (highest probability of each class).",
        commands=(TRAIN,),
        recipe=True,
        choices=AGGREGATES,
    )
    test_dir: str | None = setting(
        None,
        flags=("--test",),
        help="Another prepared data set (same classes and spectrogram settings) scored once with the final "
        "model, like a held-out test split (default: the data set's own test split, if any).",
        commands=(TRAIN,),
    )
    num_workers: int | None = setting(
        None,
        flags=("--workers",),
        help="Data-loading processes of the per-image pipeline (--no-cache; default: up to 2).",
        recipe=True,
        bounds=Bounds(0, 256, whole=True),
    )
    cache: bool = setting(
        True,
        flags=("--cache/--no-cache",),
        help="Decode every spectrogram once into memory and normalise per batch; --no-cache re-reads the PNGs "
        "every epoch (always so with --augment study).",
    )
    feature_cache: bool = setting(
        True,
        flags=("--feature-cache/--no-feature-cache",),
        help="Freeze mode without --train-bn or augmentation: run the frozen body once over the images and "
        "train only the head on its cached features (the same training, a fraction of the time).",
    )
    precision: str = setting(
        PRECISIONS[1], flags=("--precision",), recipe=True, choices=PRECISIONS,
        help="Arithmetic of the frozen body when the feature cache computes its features: fp32 (default: exact); bf16 "
        "or int8 (CPU only); auto: the fastest that passed its check against fp32 on the first training windows. "
        "The saved model is the same network either way.",
    )  # fmt: skip
    channels_last: bool = setting(
        True,
        flags=("--channels-last/--no-channels-last",),
        help="Keep convolution weights in channels-last memory format (faster on CPU for the table's CNNs).",
    )  # 7-40% faster convolutions on CPU (BENCHMARKS.md)
    track: str | None = setting(
        None, flags=("--track",), help="Log the run to an experiment tracker: mlflow (needs mer-fastai[mlflow])."
    )
    tracking_uri: str | None = setting(
        None, flags=("--tracking-uri",), help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlruns)."
    )
    tracking_experiment: str | None = setting(None)  # set by the runner; default: the data set's feature

    def check(self, name: Callable[[str], str] | None = None) -> TrainSettings:
        """Every setting checked, as the frozen `TrainSettings` a run reads (`lr` text made a number, the input
        size and resize policy resolved); `name(field)` is how a message names a setting. `self` is left as
        it is."""
        name = name or flag
        spec = get_arch(self.arch)
        for item in fields(self):
            _check_field(item, getattr(self, item.name), name(item.name))
        if self.layer != LAYERS[0]:  # a musicnn body ending at another layer, named e.g. musicnn-msd:pooled
            if spec.source != MUSICNN or spec.layer:
                also = f"drop {name('layer')}, or pass {name('arch')} musicnn-msd or musicnn-mtt"
                raise MerError(f"{name('layer')} {self.layer}: picks a layer of musicnn, not of {self.arch}; {also}")
            spec = get_arch(layered(self.arch, self.layer))
        spec.check_size(self.size)
        check_head(self, name)
        check_weights(self.weights)
        if self.weights in (IMAGENET, PRETRAINED) and spec.pretraining is None:
            raise MerError(f"{name('arch')} {self.arch} has no pretrained weights; pass {name('weights')} none")
        if spec.spectrogram and not (self.cache and self.norm == NORMS[0] and self.augment in IN_MEMORY_AUGMENTS):
            raise MerError(
                f"{name('arch')} {self.arch} reads its {spec.spectrogram} spectrograms as they are, decoded once into "
                f"memory with its own statistics; keep {name('cache')} on, {name('norm')} {NORMS[0]} and "
                f"{name('augment')} {' or '.join(IN_MEMORY_AUGMENTS)}"
            )
        if self.weights == IMAGENET and spec.pretraining != "ImageNet":
            raise MerError(
                f"{name('arch')} {self.arch} is pretrained on {spec.pretraining}, not ImageNet; pass "
                f"{name('weights')} {PRETRAINED} (or {NONE})"
            )
        if not set(kinds := self.augment_audio_kinds.replace(" ", "").split(",")) <= set(AUDIO_AUGMENTS):
            raise MerError(f"{name('augment_audio_kinds')} {','.join(kinds)}: choose from {', '.join(AUDIO_AUGMENTS)}")
        if self.label_smoothing >= 1:
            raise MerError(f"{name('label_smoothing')} must be below 1 (got {quote(self.label_smoothing)})")
        lr = self.lr
        if isinstance(lr, str) and lr != AUTO_LR:
            try:
                lr = float(lr)
            except ValueError as exc:
                raise MerError(f"{name('lr')} must be a number or '{AUTO_LR}' (got {quote(lr)})") from exc
        if lr != AUTO_LR:
            setting_field("lr").metadata["bounds"].check(lr, name("lr"), fix=", e.g. 1e-3, or 'auto'")
        return TrainSettings(
            config=replace(self, lr=lr, extra_train_dirs=list(self.extra_train_dirs)),
            arch=spec,
            lr=None if lr == AUTO_LR else lr,
            input_size=input_size(spec, self.size),
            resize=resize_policy(self.augment),
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (what config.json and MLflow parameters hold)."""
        return asdict(self)

    def fingerprint_settings(self) -> dict[str, Any]:
        """The settings a finished cell or fold was trained with, for telling whether it is still valid: no
        tracking settings (tracking retrains nothing), and settings added later left out while at their
        default, so that cells and folds trained before they existed keep their fingerprints."""
        settings = {
            key: value
            for key, value in self.to_dict().items()
            if not key.startswith("track") and not (key in LATER_SETTINGS and value == setting_field(key).default)
        }
        if settings["weights"] == PRETRAINED and get_arch(self.arch).pretraining == "ImageNet":
            settings["weights"] = IMAGENET  # the same weights, as cells and folds trained before `pretrained` say
        return settings


@dataclass(frozen=True)
class TrainSettings:
    """One run's settings, checked once (`TrainConfig.check`): what training, `lrfind` and tracking read.

    `config` is a private copy of the user's settings with `lr` a number (or "auto"), as config.json and the
    tracker record them; the values derived from it are resolved here once.
    """

    config: TrainConfig
    arch: ArchSpec  # the architecture's table entry (a musicnn entry ending at `--layer`: `arch.name` records it)
    lr: float | None  # the peak learning rate; None: take the lr_find suggestion (`--lr auto`)
    input_size: int  # the training resolution: `--size`, else the architecture's (`models.preprocessing.input_size`)
    resize: str  # how validation images are resized (`models.preprocessing.resize_policy`), as predict will


def checked(config: TrainConfig | TrainSettings) -> TrainSettings:
    """The checked settings of `config` (checked settings as they are)."""
    return config if isinstance(config, TrainSettings) else config.check()


def _check_field(item: Field, value: Any, name: str) -> None:
    """A field's declared checks (`settings.check_setting`); `lr` text is checked once made a number (`check`)."""
    if "str" in str(item.type) and item.metadata["bounds"] is not None:
        return
    check_setting(item, value, name)


def setting_field(name: str) -> Field:
    """The `TrainConfig` field of setting `name`."""
    return next(item for item in fields(TrainConfig) if item.name == name)


def flag(name: str) -> str:
    """The long CLI flag of a setting (`--no-x` variants left out), for messages."""
    return long_flag(setting_field(name)) or name


def recipe_fields() -> list[Field]:
    """The settings a recipe may set at its top level."""
    return [item for item in fields(TrainConfig) if item.metadata.get("recipe")]


def command_fields(command: str) -> list[Field]:
    """The settings command `command` offers as options (every command that has options: `BOTH`), in declaration
    order."""
    offered = [item for item in fields(TrainConfig) if item.metadata["flags"]]
    return [item for item in offered if command in item.metadata.get("commands", BOTH)]
