"""A grid folder's `state.json`: written at every change, reread on resume, done only with its result files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mer_fastai.errors import MerError
from mer_fastai.experiments.state import State
from mer_fastai.runs.layout import METRICS_FILE, STATE_FILE


def test_state_is_written_at_once_and_reread(tmp_path):
    state = State(tmp_path)
    assert state.cells == {} and state.rows() == []
    state.record("a", {"status": "done", "fingerprint": "f1", "row": {"arch": "alexnet"}})
    state.record("b", {"status": "failed", "fingerprint": "f2", "error": "boom"})
    state.record("m", {"status": "marker", "fingerprint": "f3"})
    assert json.loads((tmp_path / STATE_FILE).read_text())["cells"]["b"]["error"] == "boom"
    again = State(tmp_path)
    assert again.cells == state.cells and again.rows() == [{"arch": "alexnet"}]


def test_a_cell_is_done_with_the_same_fingerprint_and_its_result_files(tmp_path):
    run = tmp_path / "runs" / "a"
    cell = SimpleNamespace(id="a", run_dir=str(run), result_files=(METRICS_FILE,))
    state = State(tmp_path)
    state.record("a", {"status": "done", "fingerprint": "f1", "row": {}})
    assert not state.is_done(cell, "f1")  # its metrics.json is gone
    run.mkdir(parents=True)
    (run / METRICS_FILE).write_text("{}")
    assert state.is_done(cell, "f1") and not state.is_done(cell, "f2")
    state.record("a", {"status": "failed", "fingerprint": "f1", "error": "x"})
    assert not state.is_done(cell, "f1")


@pytest.mark.parametrize("text", ['{"cells": {"a": ', "[]", '{"cells": 3}', "\xff"])
def test_a_damaged_state_file_is_one_clear_line(tmp_path, text):
    (tmp_path / STATE_FILE).write_bytes(text.encode("latin-1"))
    with pytest.raises(MerError) as caught:
        State(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / STATE_FILE}: ") and "\n" not in message
    assert message.endswith("delete it to run every cell of the grid again")
