"""The command line: help texts, delegation, and one-line errors with a non-zero exit."""

from __future__ import annotations

import errno
import json
import re
import signal
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
    assert "not an audio file" in result.stderr
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


def run_main(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """The CLI's `main()` in this process: (exit code, standard error)."""
    from mer_fastai.cli.main import main

    monkeypatch.setattr(sys, "argv", ["mer-fastai", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/out/x.png"), "free disk space"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/out"), "check its permissions"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/out"), "name a file"),
    ],
)
def test_os_errors_are_one_line_naming_the_file_and_the_fix(error, phrase, capsys, monkeypatch):
    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr("mer_fastai.preparation.prepare.prepare_dataset", fail)
    code, err = run_main(["prepare", "clips", "--feature", "emotions", "--out", "d"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {error.filename}: {error.strerror}; ") and phrase in err
    with pytest.raises(OSError):
        run_main(["--debug", "prepare", "clips", "--feature", "emotions", "--out", "d"], capsys, monkeypatch)


def test_usage_errors_keep_exit_2(capsys, monkeypatch):
    code, err = run_main(["train", "data", "--no-such-option"], capsys, monkeypatch)
    assert code == 2 and "No such option" in err and "Traceback" not in err


def _as_from_a_shell() -> None:
    """In the child before it starts: SIGINT neither ignored nor blocked, as a shell starts a command, whatever
    the test process inherited from the libraries of earlier tests (a blocked mask outlives exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_is_one_line_saying_what_is_kept_and_exit_130(tmp_path):
    code = (
        "import sys, time\n"
        "import mer_fastai.preparation.prepare as core\n"
        "def slow(*args, **kwargs):\n"
        "    print('started', flush=True)\n"
        "    time.sleep(120)\n"
        "core.prepare_dataset = slow\n"
        "from mer_fastai.cli.main import main\n"
        "sys.argv = ['mer-fastai', 'prepare', 'clips', '--feature', 'emotions', '--out', 'd']\n"
        "main()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_as_from_a_shell,
    )  # fmt: skip
    assert process.stdout.readline().strip() == "started"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip() == "interrupted: finished results are kept; rerun the same command to resume"


def test_an_error_line_keeps_brackets_literally(capsys, monkeypatch):
    from mer_fastai.errors import MerError

    def fail(*_args, **_kwargs):
        raise MerError("model.json: 'stats' must be [mean, std] of 3 numbers each; re-export the model")

    monkeypatch.setattr("mer_fastai.preparation.prepare.prepare_dataset", fail)
    code, err = run_main(["prepare", "clips", "--feature", "emotions", "--out", "d"], capsys, monkeypatch)
    assert (
        code == 2
        and err.strip() == "error: model.json: 'stats' must be [mean, std] of 3 numbers each; re-export the model"
    )


def test_an_interrupt_names_what_the_command_kept(capsys, monkeypatch):
    from mer_fastai.errors import Interrupted

    def interrupted(*_args, **_kwargs):
        raise Interrupted("3 finished cell(s) kept in runs/x/results.csv")

    monkeypatch.setattr("mer_fastai.preparation.prepare.prepare_dataset", interrupted)
    code, err = run_main(["prepare", "clips", "--feature", "emotions", "--out", "d"], capsys, monkeypatch)
    assert code == 130
    assert err.strip() == "interrupted: 3 finished cell(s) kept in runs/x/results.csv; rerun the same command to resume"


def test_version_prints_the_package_version():
    from mer_fastai import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"mer-fastai {__version__}\n"
    entry = run_cli("--version")
    assert entry.returncode == 0 and entry.stdout == f"mer-fastai {__version__}\n"
