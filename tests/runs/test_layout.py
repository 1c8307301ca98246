"""runs.layout: the result folders' schema and its light reader (no torch for a model header)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from mer_fastai.errors import MerError
from mer_fastai.runs import layout


def test_a_folder_is_known_by_the_file_that_marks_it_finished(tmp_path):
    for kind, marker in (("run", layout.METRICS_FILE), ("grid", layout.RESULTS_CSV), ("cv", layout.CV_FILE)):
        folder = tmp_path / kind
        folder.mkdir()
        (folder / marker).write_text("{}")
        assert layout.folder_kind(folder) == kind
    (tmp_path / "half").mkdir()
    with pytest.raises(MerError, match="did not finish leaves no metrics.json"):
        layout.folder_kind(tmp_path / "half")


def test_fold_dirs_are_in_fold_order(tmp_path):
    for index in (10, 2, 0, 1):
        layout.fold_dir(tmp_path, index).mkdir(parents=True)
    (tmp_path / layout.FOLDS_DIR / "notes").mkdir()
    assert [p.name for p in layout.fold_dirs(tmp_path)] == ["0", "1", "2", "10"]
    assert layout.fold_dirs(tmp_path / "none") == []


def test_a_cv_folder_is_its_ensemble_and_a_run_folder_its_model(tmp_path):
    (tmp_path / layout.ENSEMBLE_FILE).write_bytes(b"")
    assert layout.model_file_path(tmp_path) == tmp_path / layout.ENSEMBLE_FILE
    (tmp_path / layout.MODEL_FILE).write_bytes(b"")
    assert layout.model_file_path(tmp_path) == tmp_path / layout.MODEL_FILE


def test_a_damaged_json_is_one_line(tmp_path):
    (tmp_path / layout.METRICS_FILE).write_text("{not json")
    with pytest.raises(MerError, match="rerun the command that wrote it"):
        layout.read_metrics(tmp_path)
    assert layout.read_config(tmp_path) == {}


def test_a_run_is_finished_once_its_metrics_are_written(tmp_path):
    assert not layout.is_finished(tmp_path)
    (tmp_path / layout.METRICS_FILE).write_text("{}")
    assert layout.is_finished(tmp_path)


def test_an_optional_record_is_empty_when_missing_damaged_or_not_a_table(tmp_path):
    path = tmp_path / layout.FOLD_FILE
    assert layout.read_json_or_empty(path) == {}
    for text in ("{not json", "[1, 2]"):
        path.write_text(text)
        assert layout.read_json_or_empty(path) == {}
    path.write_text('{"fold": 1}')
    assert layout.read_json_or_empty(path) == {"fold": 1}


def test_the_recipe_copy_is_named_by_its_experiment():
    assert layout.recipe_file("exp") == "recipe-exp.json"


def test_a_model_header_is_read_without_torch(tmp_path):
    record = {"arch": "alexnet", "package_version": "0.2.0", "classes": ["a", "b"]}
    path = tmp_path / layout.MODEL_FILE
    save_file({"w": torch.zeros(2)}, str(path), metadata={layout.METADATA_KEY: json.dumps(record)})
    assert layout.model_header(tmp_path) == record
    code = (
        "import sys\nfrom mer_fastai.runs.layout import model_header\n"
        f"print(model_header({str(path)!r})['arch'], 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["alexnet", "False"], result.stderr
    path.write_bytes(b"not a safetensors file")
    assert layout.model_header(path) is None and layout.model_header(tmp_path / "missing.safetensors") is None
