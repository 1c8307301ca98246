"""`TrainConfig` is the one declaration of a training setting: recipes, CLI options and cells derive from it."""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.errors import MerError
from mer_fastai.experiments.recipe_schema import Recipe
from mer_fastai.training.config import LRFIND, TRAIN, TrainConfig, recipe_fields
from mer_fastai.training.options import command_fields, with_train_options

runner = CliRunner()


def help_text(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_setting_is_a_recipe_key_with_its_type_and_default():
    recipe = {f.name: f for f in dataclasses.fields(Recipe)}
    for item in recipe_fields():
        assert (recipe[item.name].type, recipe[item.name].default) == (item.type, item.default)
    assert {"epochs", "bs", "size", "lr", "weights", "monitor"} <= {f.name for f in recipe_fields()}


@pytest.mark.parametrize("command", [TRAIN, LRFIND])
def test_every_offered_setting_is_an_option_of_its_command(command):
    text = help_text(command)
    offered = command_fields(command)
    assert offered and all(item.metadata["help"] for item in offered)
    for item in offered:
        for flag in item.metadata["flags"]:
            assert flag.split("/")[0] in text, f"{flag} missing from `{command} --help`"


def test_the_decorator_makes_one_option_per_setting_and_passes_the_config():
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @with_train_options(TRAIN)
    def command(name: str = typer.Option("x", "--name"), config: TrainConfig = None) -> None:
        seen.update(name=name, config=config)

    args = ["--arch", "alexnet", "-e", "3", "--augment-dir", "a", "--augment-dir", "b", "--no-cache", "--name", "y"]
    result = runner.invoke(demo, args)
    assert result.exit_code == 0, result.output
    expected = TrainConfig(arch="alexnet", epochs=3, extra_train_dirs=["a", "b"], cache=False)
    assert seen == {"name": "y", "config": expected}
    assert runner.invoke(demo, ["--epochs", "3"]).exit_code != 0  # --arch is required, as the field is


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 0}, "--epochs must be a whole number from 1 to 100000 (got 0)"),
        ({"bs": 0}, "--bs must be a whole number from 2 to 65536 (got 0)"),
        ({"bs": 1}, "--bs must be a whole number from 2"),
        ({"lr": "nan"}, "--lr must be a number above 0 and at most 10 (got nan), e.g. 1e-3, or 'auto'"),
        ({"lr": "inf"}, "--lr must be a number above 0 and at most 10 (got inf)"),
        ({"lr": "-1"}, "--lr must be a number above 0 and at most 10 (got -1.0)"),
        ({"lr": "0"}, "--lr must be a number above 0"),
        ({"lr": 0.0}, "--lr must be a number above 0"),
        ({"lr": float("nan")}, "--lr must be a number above 0"),
        ({"mixup": float("nan")}, "--mixup must be a number from 0 to 100 (got nan)"),
        ({"label_smoothing": float("nan")}, "--label-smoothing must be a number from 0 to 1"),
        ({"epochs": 2.5}, "--epochs must be a whole number"),
        ({"patience": 0}, "--patience must be a whole number from 1"),
        ({"num_workers": -1}, "--workers must be a whole number from 0 to 256"),
        ({"seed": -1}, "--seed must be a whole number from 0"),
        ({"monitor": "speed"}, "unknown --monitor 'speed'; choose auto, accuracy, macro_f1, ccc or valid_loss"),
        ({"augment": "zoom"}, "unknown --augment 'zoom'"),
        ({"lr": "fast"}, "--lr must be a number or 'auto'"),
    ],
)
def test_one_check_names_the_option(values, message):
    with pytest.raises(MerError, match=re.escape(message)):
        TrainConfig(arch="alexnet", weights="none", **values).check()
    (key,) = values
    with pytest.raises(MerError, match=f"'{key}'"):  # how a recipe names it
        TrainConfig(arch="alexnet", weights="none", **values).check(name=repr)


def test_check_makes_lr_a_number_and_input_size_defaults_to_the_archs():
    given = TrainConfig(arch="inception_v3", weights="none", lr="1e-3")
    settings = given.check()
    assert settings.lr == settings.config.lr == 1e-3 and settings.input_size == 299 and settings.resize == "squish"
    assert given.lr == "1e-3"  # the user's settings stay as given
    assert TrainConfig(arch="alexnet", weights="none", size=64, augment="study", cache=False).check().input_size == 64
    auto = TrainConfig(arch="alexnet", weights="none").check()
    assert auto.lr is None and auto.config.lr == "auto" and auto.arch.name == "alexnet"


def test_checked_settings_are_frozen_and_checked_once():
    from mer_fastai.training.config import checked

    settings = TrainConfig(arch="alexnet", weights="none").check()
    assert checked(settings) is settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lr = 1.0
    assert TrainConfig(arch="alexnet", weights="none", augment="study", cache=False).check().resize == "crop"


def test_settings_added_later_leave_old_fingerprints_alone_until_used():
    """Grids and cv folds trained before mixup/label smoothing/norm existed stay finished at their defaults."""
    from mer_fastai.training.config import LATER_SETTINGS

    config = TrainConfig(arch="squeezenet1_0", weights="none", track="mlflow")
    left_out = (*LATER_SETTINGS, "track", "tracking_uri", "tracking_experiment")
    settings = config.fingerprint_settings()
    assert settings == {k: v for k, v in config.to_dict().items() if k not in left_out}
    for key, value in (("mixup", 0.4), ("label_smoothing", 0.1), ("norm", "dataset")):
        changed = dataclasses.replace(config, **{key: value}).fingerprint_settings()
        assert changed == {**settings, key: value}
