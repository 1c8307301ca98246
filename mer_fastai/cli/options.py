"""Options shared by several subcommands, defined once: training settings (from `TrainConfig`), label options
(from `LabelSource`) and spectrogram settings (from `SpecConfig`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import typer

from ..bounds import quote
from ..data.labels import FEATURES
from ..data.labelsource import LabelSource
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from ..settings import field_options, long_flag, with_options
from ..training.options import cli_option

# Training settings other commands share: declared once, in TrainConfig (mer_fastai/training/config.py).
Seed = cli_option("seed")
Track = cli_option("track")
TrackingUri = cli_option("tracking_uri")
DataDir = typer.Argument(..., help="A data set folder made by `mer-fastai prepare`.", exists=False)


def out_option(default: str, what: str) -> Path:
    return typer.Option(Path(default), "--out", "-o", help=f"Folder for {what}.")


def with_label_options(*names: str, helps: dict[str, str] | None = None) -> Callable[[Callable], Callable]:
    """Decorator for a typer command: its `source` parameter becomes the options of the `LabelSource` fields
    `names` (flags and help declared in `data.labelsource`; `helps`: a command's own help of a field), and the
    command receives the `LabelSource` made of them."""

    def build(values: dict) -> LabelSource:
        values["cuts"] = parse_cuts(values.get("cuts"))
        values["targets"] = list(values.get("targets") or []) or None
        return LabelSource(**values)

    chosen = [item for item in dataclasses.fields(LabelSource) if item.name in names]
    return with_options("source", field_options(chosen, helps=helps), build)


def with_spec_options(func: Callable) -> Callable:
    """Decorator for a typer command: its `spec` parameter becomes `--spectrogram` (a named preset) and one option
    per `SpecConfig` setting that declares a flag, and the command receives the `SpecConfig` they give."""
    settings = [item for item in dataclasses.fields(SpecConfig) if item.metadata.get("flags")]
    options = {PRESET_OPTION: (str, typer.Option(None, "--spectrogram", help=PRESET_HELP))}
    return with_options("spec", {**options, **field_options(settings, unset=True)}, spec_settings)(func)


PRESET_HELP = (
    "A named spectrogram preset: musicnn (the input of the musicnn-msd/musicnn-mtt architectures: 16 kHz, "
    "512-point FFT, hop 256, 96 mel bands, log10(1 + 10000·P) as 16-bit images, 3 s patches of 187 frames). "
    "It sets every setting below but --hop-seconds (patch overlap)."
)
PRESET_OPTION = "spectrogram"


def spec_settings(values: dict) -> SpecConfig:
    """The `SpecConfig` of the spectrogram options (None: not given): a named preset's settings (which only the
    window hop may change) or the defaults, changed by the options given."""
    from ..data.spectrogram import preset

    name = values.pop(PRESET_OPTION, None)
    given = {key: value for key, value in values.items() if value is not None}
    if name is None:
        return SpecConfig(**given)
    fixed = {item.name: long_flag(item) for item in dataclasses.fields(SpecConfig) if item.name in given}
    fixed.pop("segment_hop_seconds", None)  # the patch overlap: a preset leaves it free
    if fixed:
        flags = ", ".join(fixed.values())
        raise MerError(f"--spectrogram {name} sets {flags} itself; drop {flags} (or drop --spectrogram)")
    return dataclasses.replace(preset(name), **given)


def feature_option(required: bool) -> str:
    """--feature: needed by `prepare` (but for regression); `evaluate` defaults to the model's task."""
    if required:
        return typer.Option(
            None,
            "--feature",
            "-f",
            help=f"Task: {', '.join(FEATURES)} (or any name with --label-column); with --target optional "
            "(default: the targets joined by '+', e.g. valence+energy).",
        )
    return typer.Option(
        None, "--feature", "-f", help=f"Task: {', '.join(FEATURES)} or a --label-column name (default: the model's)."
    )


def parse_cuts(text: str | None) -> list[float] | None:
    """The two sorted cut points of --cuts, or None when it is not given."""
    if not text:
        return None
    try:
        values = sorted(float(part) for part in text.split(","))
    except ValueError as exc:
        raise MerError(f"--cuts must be two comma-separated numbers such as 3.5,6.5 (got {quote(text)})") from exc
    if len(values) != 2:
        raise MerError(f"--cuts needs exactly two cut points for three levels (got {quote(text)})")
    return values
