"""The CLI options of the training settings: one typer option per `TrainConfig` field a command offers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .config import TrainConfig, setting_field

__all__ = ["cli_option", "command_fields", "with_train_options"]


def command_fields(command: str) -> list[Field]:
    """The settings command `command` offers as options, in declaration order."""
    return [item for item in fields(TrainConfig) if command in item.metadata["commands"]]


_CLI_TYPES = {"str": str, "str | None": str, "float | str": str, "float": float, "int": int, "int | None": int,
              "bool": bool, "list[str]": list[Path]}  # fmt: skip


def cli_option(name: str) -> Any:
    """The typer option of setting `name`: its flags, help and default (repeatable options default to none)."""
    import typer

    item = setting_field(name)
    default = None if item.default_factory is not MISSING else item.default
    return typer.Option(... if default is MISSING else default, *item.metadata["flags"], help=item.metadata["help"])


def _cli_parameter(item: Field) -> inspect.Parameter:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Parameter(item.name, kind, default=cli_option(item.name), annotation=_CLI_TYPES[item.type])


def _from_cli(item: Field, value: Any) -> Any:
    return [str(v) for v in value or []] if item.default_factory is list else value


def with_train_options(command: str) -> Callable[[Callable], Callable]:
    """Decorator for a typer command: its `config` parameter becomes one option per setting the command
    offers, and the function receives the `TrainConfig` made of them."""

    def decorate(func: Callable) -> Callable:
        hints = get_type_hints(func)
        offered = command_fields(command)
        parameters = []
        for parameter in inspect.signature(func).parameters.values():
            if parameter.name == "config":
                parameters += [_cli_parameter(item) for item in offered]
            else:
                parameters.append(parameter.replace(annotation=hints[parameter.name]))

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {item.name: _from_cli(item, kwargs.pop(item.name)) for item in offered}
            return func(config=TrainConfig(**values), **kwargs)

        wrapper.__signature__ = inspect.Signature(parameters, return_annotation=hints.get("return"))
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
