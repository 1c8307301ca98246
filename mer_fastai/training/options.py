"""The CLI options of the training settings: one typer option per `TrainConfig` field a command offers, made by the
one option decorator (`settings.with_options`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..settings import field_options, option, with_options
from .config import TrainConfig, command_fields, setting_field

__all__ = ["cli_option", "command_fields", "with_train_options"]


def cli_option(name: str) -> Any:
    """The typer option of setting `name`: its flags, help and default (repeatable options default to none)."""
    return option(setting_field(name))


def with_train_options(command: str) -> Callable[[Callable], Callable]:
    """Decorator for a typer command: its `config` parameter becomes one option per setting the command
    offers, and the function receives the `TrainConfig` made of them."""
    offered = command_fields(command)

    def build(values: dict[str, Any]) -> TrainConfig:
        repeated = [item.name for item in offered if item.default_factory is list]  # --augment-dir: folders
        return TrainConfig(**{**values, **{name: [str(v) for v in values[name] or []] for name in repeated}})

    return with_options("config", field_options(offered), build)
