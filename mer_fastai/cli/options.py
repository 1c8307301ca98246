"""Options shared by several subcommands, defined once: training settings (from `TrainConfig`), label options
(from `LabelSource`) and spectrogram settings (from `SpecConfig`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

import typer

from ..bounds import quote
from ..data.labels import FEATURES
from ..data.labelsource import LabelSource
from ..data.spectrogram import SpecConfig
from ..errors import MerError
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
    chosen = {item.name: item for item in dataclasses.fields(LabelSource) if item.name in names}
    helps = helps or {}
    options = {
        name: (_LABEL_TYPES[name], typer.Option(item.default, *item.metadata["flags"],
                                                 help=helps.get(name, item.metadata["help"])))
        for name, item in chosen.items()
    }  # fmt: skip

    def build(values: dict) -> LabelSource:
        values["cuts"] = parse_cuts(values.get("cuts"))
        values["targets"] = list(values.get("targets") or []) or None
        return LabelSource(**values)

    return _with_options("source", options, build)


# the command-line types of LabelSource's fields (--cuts is text, parsed by `parse_cuts`)
_LABEL_TYPES = {"labels": Path, "id_column": str, "label_column": str, "group_by": str, "cuts": str,
                "skip_unlabeled": bool, "targets": list[str], "threshold": float, "allow_outliers": bool}  # fmt: skip


def with_spec_options(func: Callable) -> Callable:
    """Decorator for a typer command: its `spec` parameter becomes `--spectrogram` (a named preset) and one option
    per `SpecConfig` setting that declares a flag, and the command receives the `SpecConfig` they give."""
    settings = [item for item in dataclasses.fields(SpecConfig) if item.metadata.get("flag")]
    options = {PRESET_OPTION: (str, typer.Option(None, "--spectrogram", help=PRESET_HELP))}
    for item in settings:
        options[item.name] = (
            _CLI_TYPES[item.type],
            typer.Option(None, item.metadata["flag"], help=item.metadata["help"]),
        )
    return _with_options("spec", options, spec_settings)(func)


PRESET_HELP = (
    "A named spectrogram preset: musicnn (the input of the musicnn-msd/musicnn-mtt architectures: 16 kHz, "
    "512-point FFT, hop 256, 96 mel bands, log10(1 + 10000·P) as 16-bit images, 3 s patches of 187 frames). "
    "It sets every setting below but --hop-seconds (patch overlap)."
)
PRESET_OPTION = "spectrogram"
_CLI_TYPES = {"int": int, "float": float, "float | None": float}


def spec_settings(values: dict) -> SpecConfig:
    """The `SpecConfig` of the spectrogram options (None: not given): a named preset's settings (which only the
    window hop may change) or the defaults, changed by the options given."""
    from ..data.spectrogram import preset

    name = values.pop(PRESET_OPTION, None)
    given = {key: value for key, value in values.items() if value is not None}
    if name is None:
        return SpecConfig(**given)
    fixed = {item.name: item.metadata["flag"] for item in dataclasses.fields(SpecConfig) if item.name in given}
    fixed.pop("segment_hop_seconds", None)  # the patch overlap: a preset leaves it free
    if fixed:
        flags = ", ".join(fixed.values())
        raise MerError(f"--spectrogram {name} sets {flags} itself; drop {flags} (or drop --spectrogram)")
    return dataclasses.replace(preset(name), **given)


def _with_options(name: str, options: dict[str, tuple[Any, Any]], build: Callable[[dict], Any]) -> Callable:
    """Decorator: the typer command's parameter `name` becomes the `options` (parameter → (type, typer option)),
    and the command receives `build(their values)` as `name`."""

    def decorate(func: Callable) -> Callable:
        hints = get_type_hints(func)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        parameters = []
        for parameter in inspect.signature(func).parameters.values():
            if parameter.name == name:
                parameters += [inspect.Parameter(key, kind, default=option, annotation=annotation)
                               for key, (annotation, option) in options.items()]  # fmt: skip
            else:
                parameters.append(parameter.replace(annotation=hints[parameter.name]))

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {key: kwargs.pop(key) for key in options}
            return func(**{name: build(values)}, **kwargs)

        wrapper.__signature__ = inspect.Signature(parameters, return_annotation=hints.get("return"))  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


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
