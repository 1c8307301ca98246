"""`mer-fastai recipes [show NAME]`: list or print the built-in recipes."""

from __future__ import annotations

import typer
from rich.syntax import Syntax
from rich.table import Table

from .._plumbing.progress import console

recipes_app = typer.Typer(help="List and print the built-in experiment recipes.", invoke_without_command=True)


@recipes_app.callback()
def list_recipes(ctx: typer.Context) -> None:
    """List the built-in recipes with their grids."""
    if ctx.invoked_subcommand:
        return
    from ..experiments.recipe import builtin_names, load_recipe
    from ..experiments.recipe_schema import stage_archs

    table = Table(title="built-in recipes (mer-fastai run NAME)", title_justify="left")
    for column in ("name", "description", "stages", "cells"):
        table.add_column(column)
    for name in builtin_names():
        recipe = load_recipe(name)
        cells = sum(
            len(s.features) * len(s.modes) * len(s.augmentations) * len(stage_archs(recipe, s)) for s in recipe.stages
        )
        table.add_row(name, recipe.description, ", ".join(s.name for s in recipe.stages), str(cells))
    console.print(table)


@recipes_app.command("show")
def show(name: str = typer.Argument(..., help="Built-in recipe name or YAML path.")) -> None:
    """Print a recipe (copy it to edit your own)."""
    from ..experiments.recipe import recipe_text

    text, _ = recipe_text(name)
    typer.echo(text) if not console.is_terminal else console.print(Syntax(text, "yaml"))


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")
