"""The command line: help texts, delegation, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mer_fastai.cli.main import app

runner = CliRunner()
OPTION_ROW = re.compile(r"^│\s+(?:\*\s+)?(?P<name>--[\w-]+)\s+(?:-\w\s+)?<\w+>\s+(?P<help>.*?)\s*│$")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mer_fastai", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["prepare", "lrfind", "train", "demo"])
def test_every_option_is_documented(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    rows = [OPTION_ROW.match(line) for line in result.output.splitlines()]
    documented = {row["name"]: row["help"].strip() for row in rows if row}
    assert len(documented) >= 4, result.output
    assert all(documented.values()), documented


def test_bad_inputs_give_one_line_and_exit_2(tmp_path):
    for label in ("happy", "sad"):
        (tmp_path / "audio" / label).mkdir(parents=True)
        (tmp_path / "audio" / label / f"{label}.wav").write_bytes(b"garbage" * 10)
    result = run_cli("prepare", str(tmp_path / "audio"), "--feature", "emotions", "--out", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "none of the 2 labelled files could be decoded" in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
    assert "Format not recognised" in result.stderr
    result = run_cli("train", str(tmp_path), "--arch", "resnet9000", "--weights", "none")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "unknown architecture 'resnet9000'" in error_lines[0]
    result = run_cli("--debug", "train", str(tmp_path), "--arch", "resnet9000", "--weights", "none")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_missing_label_column_names_the_columns(tmp_path, tiny_audio):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,mood\nhappy_00,happy\n")
    result = runner.invoke(
        app,
        [
            "prepare",
            str(tiny_audio),
            "--labels",
            str(labels),
            "--feature",
            "emotions",
            "--out",
            str(tmp_path / "d"),
            "--id-column",
            "id",
            "--label-column",
            "emotion",
        ],
    )
    assert "no column 'emotion'" in str(result.exception) and "id, mood" in str(result.exception)


def test_prepare_lrfind_train_from_the_command_line(tiny_audio, tmp_path):
    data = tmp_path / "data"
    result = runner.invoke(
        app,
        [
            "prepare",
            str(tiny_audio),
            "--feature",
            "emotions",
            "--out",
            str(data),
            "--segment-seconds",
            "1",
            "--n-mels",
            "32",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (data / "manifest.csv").exists()
    result = runner.invoke(
        app,
        [
            "lrfind",
            str(data),
            "--arch",
            "alexnet",
            "--weights",
            "none",
            "--bs",
            "4",
            "--size",
            "64",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "r1"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r1" / "lr_find.png").exists()
    result = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--arch",
            "alexnet",
            "--mode",
            "whole",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--bs",
            "4",
            "--size",
            "64",
            "--lr",
            "1e-3",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "r2"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert metrics["arch"] == "alexnet" and metrics["lr"] == 1e-3 and metrics["epochs"] == 1
