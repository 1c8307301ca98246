"""One way to declare an option: every option of a training, spectrogram or label setting is made from its field's
declaration (`settings.setting`), by the one decorator (`settings.with_options`)."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from mer_fastai.cli.main import app
from mer_fastai.data.labelsource import LabelSource
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.errors import MerError
from mer_fastai.settings import check_setting, setting
from mer_fastai.training.config import LRFIND, TRAIN, TrainConfig, command_fields

COMMANDS = typer.main.get_command(app).commands
LABEL_FIELDS = {item.name: item for item in dataclasses.fields(LabelSource)}
SPEC_FIELDS = {item.name: item for item in dataclasses.fields(SpecConfig) if item.metadata.get("flags")}
ALL_LABELS = tuple(LABEL_FIELDS)
# the declared settings each command offers, by name
DECLARED = {
    "train": {item.name: item for item in command_fields(TRAIN)},
    "cv": {item.name: item for item in command_fields(TRAIN)},
    "lrfind": {item.name: item for item in command_fields(LRFIND)},
    "prepare": LABEL_FIELDS,
    "evaluate": {name: LABEL_FIELDS[name] for name in ALL_LABELS if name != "allow_outliers"},
    "embed": {name: LABEL_FIELDS[name] for name in ("labels", "id_column", "label_column", "cuts", "skip_unlabeled")},
}
# a command's own help of a label option (`with_label_options(helps=...)`)
OWN_HELPS = {"prepare": {"group_by", "targets", "threshold"}, "evaluate": {"group_by", "targets", "threshold"}}


def _params(command: str, names) -> dict:
    return {param.name: param for param in COMMANDS[command].params if param.name in names}


@pytest.mark.parametrize("command", sorted(DECLARED))
def test_each_setting_option_is_its_fields_declaration(command):
    declared = DECLARED[command]
    params = _params(command, declared)
    assert set(params) == set(declared)  # none lost, none added
    for name, param in params.items():
        item = declared[name]
        assert [*param.opts, *param.secondary_opts] == [f for flag in item.metadata["flags"] for f in flag.split("/")]
        if name not in OWN_HELPS.get(command, ()):
            assert param.help == item.metadata["help"], name
        assert param.help
        default = None if item.default_factory is not dataclasses.MISSING else item.default
        assert param.default == default or (param.required and default is dataclasses.MISSING), name


@pytest.mark.parametrize(("path", "name"), [(["baseline"], "seed"), (["gan", "train"], "seed"), (["run"], "track"),
                                            (["run"], "tracking_uri")])  # fmt: skip
def test_a_shared_training_option_is_its_fields_declaration(path, name):
    command = COMMANDS[path[0]]
    for part in path[1:]:
        command = command.commands[part]
    param = next(param for param in command.params if param.name == name)
    item = next(item for item in dataclasses.fields(TrainConfig) if item.name == name)
    declared = (list(item.metadata["flags"]), item.metadata["help"], item.default)
    assert (param.opts, param.help, param.default) == declared


def test_prepare_offers_every_flagged_spectrogram_setting_unset():
    params = _params("prepare", {*SPEC_FIELDS, "spectrogram"})
    assert set(params) == {*SPEC_FIELDS, "spectrogram"}
    for name, item in SPEC_FIELDS.items():
        assert params[name].opts == list(item.metadata["flags"]) and params[name].help == item.metadata["help"]
        assert params[name].default is None  # not given: the preset's or the default's value (`spec_settings`)
    assert "(default 22050)" in params["sample_rate"].help  # `{default}` filled in from the field


def test_the_three_configs_declare_their_fields_alike():
    declared = [
        *(item for item in dataclasses.fields(TrainConfig)),
        *(item for item in dataclasses.fields(SpecConfig) if item.metadata),
        *dataclasses.fields(LabelSource),
    ]
    for item in declared:
        assert {"flags", "help", "choices", "bounds"} <= set(item.metadata), item.name
        assert all(flag.startswith("-") for flag in item.metadata["flags"]), item.name


@dataclasses.dataclass
class _Demo:
    level: str = setting("low", flags=("--level",), help="Level.", choices=("low", "high"))


def test_check_setting_refuses_choices_and_numbers_of_a_list_in_one_line():
    level = dataclasses.fields(_Demo)[0]
    check_setting(level, "high", "--level")
    with pytest.raises(MerError, match=r"^unknown --level 'mid'; choose low or high$"):
        check_setting(level, "mid", "--level")
    with pytest.raises(MerError, match=r"^--cuts must be a finite number \(got \[1.0, 'x'\]\)$"):
        LabelSource(cuts=[1.0, "x"])
    with pytest.raises(MerError, match=r"^--threshold must be a number above 0 and at most 1 \(got 2\)$"):
        LabelSource(threshold=2)
    with pytest.raises(MerError, match=r"^n_mels \(--n-mels\) must be a whole number from 1 to 1024 \(got 0\)$"):
        SpecConfig(n_mels=0)
