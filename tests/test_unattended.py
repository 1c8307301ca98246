"""Commands run unattended: a terminal or pipe whose reader is gone (a closed tool session, `| head`) silences
their output but never ends them before their files are written (rich, click and fastai's `print` alone would
exit 1 there, silently); `predict` with nothing to label refuses in one line, not with an empty file."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from mer_fastai._plumbing.progress import MessageConsole
from mer_fastai.api.training import train
from mer_fastai.data.audio import find_audio_files
from mer_fastai.errors import MerError
from mer_fastai.runs.layout import MODEL_FILE
from tests.inference.test_predict import TINY_CONFIG, predictor, tiny_run  # noqa: F401  (the session's run)


def closed_pipe() -> int:
    """The writing end of a pipe whose reader has gone: every write to it fails with EPIPE."""
    reader, writer = os.pipe()
    os.close(reader)
    return writer


def test_a_message_console_whose_reader_is_gone_drops_its_output_and_goes_on(tmp_path):
    with os.fdopen(closed_pipe(), "w") as stream:
        console = MessageConsole(file=stream)
        console.print("first")  # rich's own Console raises SystemExit(1) here
        console.print("second")
        assert console.quiet
        stream.write("buffered")
        stream.flush()  # the descriptor now leads to the null device: nothing fails again at exit


@pytest.mark.parametrize("gone", ["stderr", "stdout"])
def test_predict_writes_its_file_when_a_reader_is_gone(tiny_run, tiny_audio, tmp_path, gone):  # noqa: F811
    out = tmp_path / "new folder" / "pred.csv"  # its folder does not exist yet
    kept = tmp_path / "kept.txt"
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    with open(kept, "w") as other:
        streams = {"stdout": other, "stderr": other, gone: closed_pipe()}
        command = [sys.executable, "-m", "mer_fastai", "predict", str(tiny_run), str(tiny_audio), "--out", str(out)]
        process = subprocess.run(command, stdin=subprocess.DEVNULL, env=env, start_new_session=True, timeout=300,
                                 **streams)  # fmt: skip
        os.close(streams[gone])
    assert process.returncode == 0, kept.read_text()
    with open(out, newline="") as handle:
        files = [row["file"] for row in csv.DictReader(handle)]
    assert sorted(files) == sorted(map(str, find_audio_files(tiny_audio)))  # every clip, by its path
    said = kept.read_text()
    if gone == "stdout":
        assert f"{len(files)} track(s) written to {out}" in " ".join(said.split())  # stderr still says so
    else:
        assert said.count("│") > len(files)  # the table still reaches stdout


def test_nothing_to_label_is_refused_not_written_as_an_empty_file(predictor, tmp_path):  # noqa: F811
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(MerError, match=r"empty: no audio files \(.mp3 .wav .flac .ogg ...\) found; check the path$"):
        predictor.predict_many([tmp_path / "empty"])


def test_train_finishes_when_its_stdout_reader_is_gone(tiny_data, tmp_path, monkeypatch, capsys):
    train(tiny_data, TINY_CONFIG, tmp_path / "heard", show=False)
    assert "Better model found at epoch 0" in capsys.readouterr().out  # fastai's note, on stdout as before
    with os.fdopen(closed_pipe(), "w") as gone:
        monkeypatch.setattr(sys, "stdout", gone)
        result = train(tiny_data, TINY_CONFIG, tmp_path / "unheard", show=False)  # its note fails to reach anyone
    assert (result.run_dir / MODEL_FILE).is_file() and result.metrics["accuracy"] is not None
