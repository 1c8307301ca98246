"""`ModelMeta`: the model contract round-trips, refuses each malformed field in one line, reads older files."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.errors import MerError
from mer_fastai.models.metachecks import RETRAIN
from mer_fastai.models.modelmeta import ModelMeta
from mer_fastai.models.preprocessing import resize_policy

STORED = {
    "arch": "squeezenet1_0",
    "classes": ["angry", "happy", "sad"],
    "feature": "emotions",
    "spectrogram": SpecConfig(segment_seconds=1.0).to_dict(),
    "stats": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]],
    "input_size": 64,
    "mode": "whole",
    "resize": "crop",
    "cuts": [2.5, 3.5],
    "package_version": "0.1.0",
    "metrics": {"accuracy": 0.5, "macro_f1": 0.4},
}


def test_round_trip_and_typed_fields(tmp_path):
    path = tmp_path / "model.safetensors"
    meta = ModelMeta.from_dict(STORED, path)
    assert meta.to_dict() == STORED
    assert ModelMeta.from_dict(meta.to_dict(), path) == meta
    assert meta.spec == SpecConfig(segment_seconds=1.0) and meta.classes == ("angry", "happy", "sad")
    assert meta.stats == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) and meta.cuts == (2.5, 3.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.input_size = 32  # type: ignore[misc]


def test_file_layer_fields_are_left_to_the_file_layer(tmp_path):
    meta = ModelMeta.from_dict({**STORED, "format": "mer-fastai-model/1", "checksum": "sha256:00"}, tmp_path / "m")
    assert "checksum" not in meta.to_dict() and "format" not in meta.to_dict()


def _without(key: str) -> dict:
    return {k: v for k, v in STORED.items() if k != key}


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (_without("arch"), "lacks 'arch'"),
        (_without("classes"), "lacks 'classes'"),
        (_without("spectrogram"), "lacks 'spectrogram'"),
        (_without("stats"), "lacks 'stats'"),
        (_without("input_size"), "lacks 'input_size'"),
        ({**STORED, "arch": 7}, "'arch' must be an architecture name"),
        ({**STORED, "arch": "resnet9000"}, "unknown architecture 'resnet9000'"),
        ({**STORED, "classes": []}, "'classes' must be a non-empty list"),
        ({**STORED, "classes": ["a", ""]}, "'classes' must be a non-empty list"),
        ({**STORED, "classes": ["a", "b", "a"]}, "'classes' holds a name twice"),
        ({**STORED, "spectrogram": [1, 2]}, "'spectrogram' must be a table"),
        ({**STORED, "spectrogram": {"n_mels": -1}}, "spectrogram settings are malformed .*n_mels .*from 1 to 1024"),
        ({**STORED, "spectrogram": {"segment_seconds": 1e9}}, "malformed .*segment_seconds .*at most 3600"),
        ({**STORED, "spectrogram": {"sample_rate": 10**9}}, "malformed .*sample_rate .*from 1000 to 384000"),
        ({**STORED, "spectrogram": {"hop_length": 1, "segment_seconds": 900}}, "malformed .*pixels"),
        ({**STORED, "input_size": 100000}, r"'input_size' \(pixels\) must be a whole number from 1 to 4096"),
        ({**STORED, "classes": [f"c{i}" for i in range(10001)]}, "'classes' lists 10001 names, over 10000"),
        ({**STORED, "spectrogram": {"colour": 1}}, "spectrogram settings are malformed .*unknown"),
        ({**STORED, "stats": [[0.5], [0.2]]}, "'stats' must be a mean and a std"),
        ({**STORED, "stats": [[0.5] * 3, [0.2, 0.0, 0.2]]}, "'stats' must be .*std > 0"),
        ({**STORED, "stats": [[0.5] * 3, [0.2, "x", 0.2]]}, "'stats' must be"),
        ({**STORED, "input_size": 0}, "'input_size' \\(pixels\\) must be a whole number"),
        ({**STORED, "input_size": 64.0}, "'input_size' \\(pixels\\) must be a whole number"),
        ({**STORED, "input_size": True}, "'input_size' \\(pixels\\) must be a whole number"),
        ({**STORED, "resize": "zoom"}, "'resize' must be one of squish, crop"),
        ({**STORED, "feature": 3}, "'feature' must be text"),
        ({**STORED, "mode": ["whole"]}, "'mode' must be text"),
        ({**STORED, "cuts": [3.5, 2.5]}, "'cuts' must be rising"),
        ({**STORED, "cuts": "2.5"}, "'cuts' must be rising"),
        ({**STORED, "metrics": [0.5]}, "'metrics' must be a table"),
        ({**STORED, "colour": "red"}, "unknown field\\(s\\) 'colour'"),
    ],
)
def test_each_malformed_field_is_refused_in_one_line(tmp_path, stored, message):
    path = tmp_path / "model.safetensors"
    with pytest.raises(MerError, match=message) as caught:
        ModelMeta.from_dict(stored, path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and "re-export" not in text
    assert text.endswith(RETRAIN) or "choose one of" in text  # an unknown arch names the known ones


@pytest.mark.parametrize(("augment", "resize"), [("study", "crop"), ("none", "squish"), (None, "squish")])
def test_an_older_file_without_resize_takes_it_from_its_run(tmp_path, augment, resize):
    """Files written before `resize` was recorded: the run's config.json says how validation resized."""
    if augment is not None:
        (tmp_path / "config.json").write_text(json.dumps({"arch": "squeezenet1_0", "augment": augment}))
    older = {k: v for k, v in STORED.items() if k not in ("resize", "cuts", "mode", "package_version")}
    meta = ModelMeta.from_dict(older, tmp_path / "model.safetensors")
    assert meta.resize == resize == resize_policy(augment)
    assert meta.cuts is None and meta.mode is None and meta.arch == "squeezenet1_0"


def test_save_and_load_carry_the_record(tmp_path):
    from mer_fastai.models.archs import get_arch
    from mer_fastai.models.modelfile import create_model, load_model, read_model, save_model_file

    meta = ModelMeta.from_dict(STORED, tmp_path)
    model = create_model(get_arch(meta.arch), len(meta.classes))
    path = save_model_file(tmp_path / "model.safetensors", model, meta)
    assert save_model_file(tmp_path / "from-dict.safetensors", model, STORED).is_file()  # the stored form too
    loaded, again = load_model(path)
    assert again == meta == read_model(tmp_path / "from-dict.safetensors")[1]
    assert not loaded.training


def test_the_record_imports_without_torch():
    """The CLI may use `ModelMeta` without paying for torch or fastai."""
    code = "import sys, mer_fastai.models.modelmeta; print(sorted({'torch', 'fastai'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_modelfile_imports_neither_learner_nor_train():
    """No import cycle: reading a model file never needs the training modules, not even lazily."""
    import ast

    import mer_fastai.models.modelfile

    tree = ast.parse(Path(mer_fastai.models.modelfile.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported and not imported & {
        "learner",
        "train",
        "weights",
        "mer_fastai.training.learner",
        "mer_fastai.training.fit",
    }


MEMBERS = [
    {"source": "cv/folds/0/model.safetensors", "checksum": "sha256:aa", "mode": "whole", "metrics": {"accuracy": 0.5}},
    {"source": "cv/folds/1/model.safetensors", "checksum": None, "mode": "whole", "metrics": {}},
]


def test_an_ensemble_record_round_trips_and_a_single_model_stays_as_before(tmp_path):
    path = tmp_path / "ensemble.safetensors"
    meta = ModelMeta.from_dict({**STORED, "members": MEMBERS}, path)
    assert meta.is_ensemble and len(meta.members) == 2
    assert meta.to_dict() == {**STORED, "members": MEMBERS}
    single = ModelMeta.from_dict(STORED, path)
    assert not single.is_ensemble and "members" not in single.to_dict()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (MEMBERS[:1], "'members' must list at least two"),
        ("two", "'members' must list at least two"),
        ([MEMBERS[0], {**MEMBERS[1], "weights": 1}], "unknown field\\(s\\) 'weights'"),
        ([MEMBERS[0], {"checksum": "x"}], "must name its 'source'"),
        ([MEMBERS[0], {**MEMBERS[1], "mode": 3}], "'mode' must be text"),
        ([MEMBERS[0], {**MEMBERS[1], "metrics": [1]}], "'metrics' must be a table"),
    ],
)
def test_a_malformed_member_list_is_refused_in_one_line(tmp_path, members, message):
    path = tmp_path / "ensemble.safetensors"
    with pytest.raises(MerError, match=message) as caught:
        ModelMeta.from_dict({**STORED, "members": members}, path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
