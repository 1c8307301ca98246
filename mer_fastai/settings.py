"""How a setting is declared, once: a dataclass field made by `setting`, and the CLI options made of such fields.

`TrainConfig` (training/config.py), `SpecConfig` (data/spectrogram.py) and `LabelSource` (data/labelsource.py)
declare every field with `setting`: its default, CLI flags and help, its `choices` or numeric `bounds`, and any
metadata of the owner's own (`TrainConfig`'s `commands` and `recipe`). `check_setting` is the one check of those
choices and bounds. `with_options` is the one decorator that turns a typer command's parameter into the options of
such fields (`field_options`) and hands the command the value built from them: `with_train_options`,
`with_spec_options` and `with_label_options` are it, over their own fields. Typer is imported only when an option is
made, so this module stays light.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, field
from pathlib import Path
from typing import Any, get_type_hints

from .bounds import Bounds, quote
from .errors import MerError

__all__ = ["check_setting", "field_options", "long_flag", "option", "setting", "with_options"]

# the command-line type of each field type (a field's `cli` metadata overrides it, e.g. folders as paths)
CLI_TYPES = {"str": str, "str | None": str, "float | str": str, "float": float, "float | None": float, "int": int,
             "int | None": int, "bool": bool, "list[str]": list[str], "list[str] | None": list[str],
             "str | Path | None": Path}  # fmt: skip


def setting(
    default: Any = MISSING,
    *,
    flags: tuple[str, ...] = (),
    help: str = "",  # noqa: A002 (typer's word)
    choices: tuple[str, ...] = (),
    bounds: Bounds | None = None,
    factory: Callable[[], Any] | Any = MISSING,
    **extra: Any,
) -> Any:
    """A dataclass field: its default (or `factory`), CLI `flags` (none: not an option) and `help` (`{default}` in
    it: the default), the `choices` of a name or the `bounds` of a number (of each number of a list), and the
    owner's own metadata `extra` (e.g. `cli`: the command-line type, where it is not the field's)."""
    text = help.format(default=default) if "{default" in help else help
    metadata = {"flags": tuple(flags), "help": text, "choices": tuple(choices), "bounds": bounds, **extra}
    return field(default=default, default_factory=factory, metadata=metadata)


def long_flag(item: Field) -> str | None:
    """A field's long CLI flag (`--no-x` variants left out), None when it has none."""
    flags = item.metadata.get("flags")
    return flags[0].split("/")[0] if flags else None


def check_setting(item: Field, value: Any, name: str) -> None:
    """Refuse `value` of field `item` outside its declared choices or bounds: one line naming `name`."""
    choices, bounds = item.metadata.get("choices"), item.metadata.get("bounds")
    if choices and value not in choices:
        raise MerError(f"unknown {name} {quote(value)}; choose {', '.join(choices[:-1])} or {choices[-1]}")
    if bounds is None or value is None:
        return
    for number in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(number, (int, float)):
            raise MerError(f"{name} must be {bounds.describe()} (got {quote(value)})")
        bounds.check(number, name)


def option(item: Field, *, unset: bool = False, help: str | None = None) -> Any:  # noqa: A002 (typer's word)
    """The typer option of field `item`: its flags, help (or `help`) and default (`unset`, or a field made by a
    factory: None, so that an option not given is told apart)."""
    import typer

    default = None if unset or item.default_factory is not MISSING else item.default
    text = item.metadata["help"] if help is None else help
    return typer.Option(... if default is MISSING else default, *item.metadata["flags"], help=text)


def field_options(
    items: Iterable[Field], *, unset: bool = False, helps: dict[str, str] | None = None
) -> dict[str, tuple[Any, Any]]:
    """The options of fields `items` for `with_options`: field name → (command-line type, typer option);
    `helps`: a command's own help of a field; `unset`: every option defaults to None (see `option`)."""
    helps = helps or {}
    options = {}
    for item in items:
        cli_type = item.metadata.get("cli") or CLI_TYPES[item.type]
        options[item.name] = (cli_type, option(item, unset=unset, help=helps.get(item.name)))
    return options


def with_options(
    name: str, options: dict[str, tuple[Any, Any]], build: Callable[[dict], Any]
) -> Callable[[Callable], Callable]:
    """Decorator for a typer command: its parameter `name` becomes the `options` (parameter → (type, typer option),
    e.g. `field_options`), and the command receives `build(their values)` as `name`."""

    def decorate(func: Callable) -> Callable:
        hints = get_type_hints(func)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        parameters = []
        for parameter in inspect.signature(func).parameters.values():
            if parameter.name == name:
                parameters += [inspect.Parameter(key, kind, default=made, annotation=annotation)
                               for key, (annotation, made) in options.items()]  # fmt: skip
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
