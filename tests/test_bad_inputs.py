"""Bad inputs and faults, table-driven: each is one clear line with exit 2 (Ctrl-C: 130), and nothing earlier changes.

Every case runs the real CLI entry point (`mer_fastai.cli.main.main`) in a copy of one small finished
workspace (audio, labels files, a prepared data set, a trained run, predictions), then checks
- the exit code,
- that standard error holds exactly one `error:` line, containing the expected phrase, and no traceback,
- that every file of the workspace the case did not deliberately damage is byte for byte unchanged and
  that the failed command left nothing behind (no new file or folder, no `.tmp` file).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mer_fastai.prepare import prepare_dataset

from .conftest import TINY_SPEC
from .test_cli import run_main
from .test_predict import train_run

LOCK = ".lock"  # an output folder's lock file may stay behind (empty), by design


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the command, the exit code and a phrase the error line must hold."""

    name: str
    args: list[str]
    phrase: str
    code: int = 2
    setup: Callable[[Path], None] | None = None


def _sine(path: Path, seconds: float = 1.5, freq: float = 440.0, sr: int = 22050) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)


def _write(relative: str, text: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode(encoding))

    return setup


def _bytes(relative: str, data: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)

    return setup


def _ratings(name: str, blank: str) -> Callable[[Path], None]:
    """A generic ratings file for every clip of the workspace, one of whose cells is `blank`."""

    def setup(root: Path) -> None:
        clips = sorted(
            p.relative_to(root / "audio").with_suffix("").as_posix() for p in (root / "audio").rglob("*.wav")
        )
        values = [f"{1 + 8 * i / len(clips):.2f}" for i in range(len(clips))]
        values[3] = blank
        (root / name).write_text("file,v\n" + "".join(f"{c},{v}\n" for c, v in zip(clips, values)))

    return setup


def _first_image(root: Path, split: str = "train") -> Path:
    return sorted((root / "data" / split).rglob("*.png"))[0]


def _delete_image(root: Path) -> None:
    _first_image(root).unlink()


def _corrupt_image(root: Path) -> None:
    image = _first_image(root)
    image.write_bytes(image.read_bytes()[:40])


def _flip_model_byte(offset_from_end: int) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / "run" / "model.safetensors"
        data = bytearray(path.read_bytes())
        data[len(data) - offset_from_end] ^= 0x01
        path.write_bytes(bytes(data))

    return setup


def _flip_metadata_letter(root: Path) -> None:
    path = root / "run" / "model.safetensors"
    data = path.read_bytes()
    at = data.index(b"happy") + 1  # inside the JSON text of the header
    path.write_bytes(data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :])


def _one_class_audio(root: Path) -> None:
    for i in range(3):
        _sine(root / "one" / "happy" / f"{i}.wav", freq=300 + 50 * i)


def _invalid_yaml(root: Path) -> None:
    (root / "bad.yaml").write_text("experiment: x\nepochs: [1, 2\narchs: alexnet\n")


def _held_lock(root: Path) -> None:
    """A live process holding the data set's lock (the test's own process, through a second handle)."""
    import fcntl

    handle = (root / "data" / LOCK).open("a+")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("4242\n")
    handle.flush()
    _HELD.append(handle)


_HELD: list = []
W = "{W}"  # replaced by the workspace folder
PREPARE = [
    "prepare",
    f"{W}/audio",
    "--feature",
    "emotions",
    "--workers",
    "1",
    "--segment-seconds",
    "1",
    "--n-mels",
    "32",
]
TRAIN = ["train", f"{W}/data", "--arch", "squeezenet1_0", "--mode", "whole", "--weights", "none"]
TRAIN_FAST = [*TRAIN, "--epochs", "1", "--lr", "1e-3", "--bs", "4", "--size", "64"]

CASES = [
    # --- labels: right or refused -------------------------------------------------------------------
    Case(
        "conflicting duplicate ids",
        [*PREPARE, "--labels", f"{W}/dup.csv", "--id-column", "file", "--label-column", "mood", "--out", f"{W}/d2"],
        "conflict",
        setup=_write("dup.csv", "file,mood\nhappy/happy_00,happy\nhappy/happy_00,sad\n"),
    ),
    Case(
        "NaN in a ratings column",
        [*PREPARE, "--labels", f"{W}/nan.csv", "--id-column", "file", "--label-column", "v", "--out", f"{W}/d2"],
        "row",
        setup=_ratings("nan.csv", blank="NaN"),
    ),
    Case(
        "blank cell in a ratings column",
        [*PREPARE, "--labels", f"{W}/blank.csv", "--id-column", "file", "--label-column", "v", "--out", f"{W}/d2"],
        "row",
        setup=_ratings("blank.csv", blank=""),
    ),
    Case(
        "a single class",
        ["prepare", f"{W}/one", "--feature", "emotions", "--workers", "1", "--out", f"{W}/d2"],
        "class",
        setup=_one_class_audio,
    ),
    Case(
        "labels file not UTF-8",
        [
            *PREPARE,
            "--labels",
            f"{W}/latin.csv",
            "--id-column",
            "fichier",
            "--label-column",
            "humeur",
            "--out",
            f"{W}/d2",
        ],
        "UTF-8",
        setup=_write("latin.csv", "fichier,humeur\nhappy/happy_00,gaieté\n", "latin-1"),
    ),
    Case("labels file missing", [*PREPARE, "--labels", f"{W}/none.csv", "--out", f"{W}/d2"], "none.csv"),
    Case(
        "labels file empty",
        [*PREPARE, "--labels", f"{W}/empty.csv", "--out", f"{W}/d2"],
        "empty",
        setup=_write("empty.csv", ""),
    ),
    Case(
        "unknown label column",
        [
            *PREPARE,
            "--labels",
            f"{W}/labels.csv",
            "--id-column",
            "file",
            "--label-column",
            "emotion",
            "--out",
            f"{W}/d2",
        ],
        "no column 'emotion'",
    ),
    Case(
        "an audio file without a labels row",
        [*PREPARE, "--labels", f"{W}/partial.csv", "--id-column", "file", "--label-column", "mood", "--out", f"{W}/d2"],
        "--skip-unlabeled",
        setup=_write("partial.csv", "file,mood\nhappy/happy_00,happy\nsad/sad_00,sad\n"),
    ),
    Case(
        "a stem id matching clips in two folders",
        [
            "prepare",
            f"{W}/stems",
            "--labels",
            f"{W}/stems.csv",
            "--id-column",
            "id",
            "--label-column",
            "mood",
            "--feature",
            "mood",
            "--workers",
            "1",
            "--out",
            f"{W}/d2",
        ],
        "relative",
        setup=lambda root: (
            [_sine(root / "stems" / folder / "1.wav", freq=f) for folder, f in (("a", 300), ("b", 500))],
            _write("stems.csv", "id,mood\n1,happy\n")(root),
        ),
    ),
    Case(
        "quadrants cannot give tension",
        [*PREPARE[:3], "tension", *PREPARE[4:], "--labels", f"{W}/quadrants.csv", "--out", f"{W}/d2"],
        "tension",
    ),
    Case(
        "--cuts not two numbers",
        [
            *PREPARE,
            "--labels",
            f"{W}/labels.csv",
            "--id-column",
            "file",
            "--label-column",
            "mood",
            "--cuts",
            "3",
            "--out",
            f"{W}/d2",
        ],
        "--cuts",
    ),
    Case("--valid-pct out of range", [*PREPARE, "--valid-pct", "1.5", "--out", f"{W}/d2"], "--valid-pct"),
    # --- audio ---------------------------------------------------------------------------------------
    Case("audio folder missing", ["prepare", f"{W}/nowhere", "--feature", "emotions", "--out", f"{W}/d2"], "nowhere"),
    Case(
        "audio folder without audio",
        ["prepare", f"{W}/text", "--feature", "emotions", "--out", f"{W}/d2"],
        "no audio",
        setup=_write("text/readme.txt", "hi"),
    ),
    Case(
        "every file undecodable",
        ["prepare", f"{W}/junk", "--feature", "emotions", "--workers", "1", "--out", f"{W}/d2"],
        "could be decoded",
        setup=lambda root: (_bytes("junk/happy/a.mp3", b"")(root), _bytes("junk/sad/b.mp3", b"not audio at all")(root)),
    ),
    # --- output folders ------------------------------------------------------------------------------
    Case("prepare --out is a file", [*PREPARE, "--out", f"{W}/file.txt"], "file.txt", setup=_write("file.txt", "x")),
    Case(
        "prepare into a folder made with other settings",
        [*PREPARE, "--out", f"{W}/data", "--n-mels", "16"],
        "--overwrite",
    ),
    Case(
        "prepare while another writer holds the folder",
        [*PREPARE, "--out", f"{W}/data", "--overwrite"],
        "PID 4242",
        setup=_held_lock,
    ),
    Case("train --out is a file", [*TRAIN_FAST, "--out", f"{W}/file.txt"], "file.txt", setup=_write("file.txt", "x")),
    Case(
        "run --out is a file",
        ["run", "demo", "--set", "epochs=1", "--out", f"{W}/file.txt"],
        "file.txt",
        setup=_write("file.txt", "x"),
    ),
    Case(
        "evaluate --out is a file",
        ["evaluate", f"{W}/run", f"{W}/audio", "--out", f"{W}/file.txt"],
        "file.txt",
        setup=_write("file.txt", "x"),
    ),
    Case("predict --out is a folder", ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/data"], "folder"),
    Case(
        "predict --out with an unknown extension",
        ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/p.xml"],
        "xml",
    ),
    Case(
        "predict --format against the --out extension",
        ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/p.csv", "--format", "json"],
        "csv",
    ),
    # --- data set integrity at training time ----------------------------------------------------------
    Case(
        "train on a folder that is no data set",
        [*TRAIN_FAST, "--out", f"{W}/r2"],
        "prepare",
        setup=lambda root: shutil.rmtree(root / "data"),
    ),
    Case("an image deleted after prepare", [*TRAIN_FAST, "--out", f"{W}/r2"], "prepare", setup=_delete_image),
    Case("a corrupt image", [*TRAIN_FAST, "--out", f"{W}/r2"], "prepare", setup=_corrupt_image),
    # --- training options ----------------------------------------------------------------------------
    Case("--size far too large", [*TRAIN, "--size", "100000", "--out", f"{W}/r2"], "--size"),
    Case("--size too small for the architecture", [*TRAIN, "--size", "8", "--out", f"{W}/r2"], "--size"),
    Case(
        "unknown architecture",
        ["train", f"{W}/data", "--arch", "resnet9000", "--weights", "none", "--out", f"{W}/r2"],
        "resnet9000",
    ),
    Case("--epochs 0", [*TRAIN, "--epochs", "0", "--out", f"{W}/r2"], "--epochs"),
    Case("--bs 0", [*TRAIN, "--bs", "0", "--out", f"{W}/r2"], "--bs"),
    Case("--lr not a number", [*TRAIN, "--lr", "fast", "--out", f"{W}/r2"], "--lr"),
    Case("unknown --monitor", [*TRAIN, "--monitor", "loss", "--out", f"{W}/r2"], "--monitor"),
    Case("unknown --augment", [*TRAIN, "--augment", "flip", "--out", f"{W}/r2"], "flip"),
    Case(
        "--weights file missing",
        ["train", f"{W}/data", "--arch", "squeezenet1_0", "--weights", f"{W}/nothing.safetensors", "--out", f"{W}/r2"],
        "nothing.safetensors",
    ),
    Case(
        "lrfind --out is a file",
        ["lrfind", f"{W}/data", "--arch", "squeezenet1_0", "--weights", "none", "--out", f"{W}/file.txt"],
        "file.txt",
        setup=_write("file.txt", "x"),
    ),
    # --- model files ---------------------------------------------------------------------------------
    Case("predict with no model", ["predict", f"{W}/nomodel", f"{W}/audio"], "nomodel"),
    Case(
        "a flipped byte in the weights",
        ["predict", f"{W}/run", f"{W}/audio/happy"],
        "damaged",
        setup=_flip_model_byte(100),
    ),
    Case(
        "a flipped letter in the metadata",
        ["predict", f"{W}/run", f"{W}/audio/happy"],
        "damaged",
        setup=_flip_metadata_letter,
    ),
    Case(
        "export of a damaged model",
        ["export", f"{W}/run", "--out", f"{W}/m.safetensors"],
        "damaged",
        setup=_flip_model_byte(100),
    ),
    Case(
        "predict on a file that is not audio",
        ["predict", f"{W}/run", f"{W}/file.txt"],
        "no audio",
        setup=_write("file.txt", "x"),
    ),
    Case(
        "evaluate labels that are not the model's classes",
        [
            "evaluate",
            f"{W}/run",
            f"{W}/audio",
            "--labels",
            f"{W}/other.csv",
            "--id-column",
            "file",
            "--label-column",
            "mood",
            "--out",
            f"{W}/e2",
        ],
        "not classes of the model",
        setup=_write(
            "other.csv",
            "file,mood\n"
            + "".join(f"{c}/{c}_0{i},calm\n" for c in ("happy", "sad", "angry", "tender") for i in range(4)),
        ),
    ),
    # --- recipes and results -------------------------------------------------------------------------
    Case("unknown recipe", ["run", "expZ"], "expZ"),
    Case("invalid YAML", ["run", f"{W}/bad.yaml", "--out", f"{W}/g"], "bad.yaml", setup=_invalid_yaml),
    Case("misspelt recipe key", ["run", "demo", "--set", "epoch=1", "--out", f"{W}/g"], "did you mean"),
    Case("unknown demo task", ["demo", "--task", "moods", "--out", f"{W}/demo"], "--task moods"),
    Case("results of a folder without results", ["results", f"{W}/data"], "results"),
    Case(
        "recipe targets without a task",
        ["run", "demo", "--set", "targets=[valence]", "--out", f"{W}/g"],
        "'targets' is for 'task: regression'",
    ),  # fmt: skip
    Case("recipe with an unknown task", ["run", "dimensional", "--set", "task=ordinal", "--out", f"{W}/g"], "'task'"),
    Case(
        "regression recipe with features",
        [
            "run",
            "dimensional",
            "--set",
            "stages=[{name: a, dataset: soundtracks, features: [valence]}]",
            "--out",
            f"{W}/g",
        ],
        "'features' are classification labels",
    ),  # fmt: skip
    Case(
        "multilabel recipe with the ccc loss",
        ["run", "dimensional", "--set", "task=multilabel", "--out", f"{W}/g"],
        "'loss: ccc'",
    ),  # fmt: skip
    Case(
        "multilabel recipe without moods",
        [
            "run",
            "dimensional",
            "--set",
            "task=multilabel",
            "--set",
            "loss=auto",
            "--set",
            "targets=null",
            "--out",
            f"{W}/g",
        ],
        "a multilabel recipe reads the moods",
    ),  # fmt: skip
    # --- held-out test, cross-validation, ensembles, reports, embeddings ------------------------------
    Case("--test-pct out of range", [*PREPARE, "--test-pct", "1.2", "--out", f"{W}/d2"], "--test-pct"),
    Case("unknown --aggregate", [*TRAIN, "--aggregate", "median", "--out", f"{W}/r2"], "median"),
    Case("cv with one fold", ["cv", f"{W}/data", *TRAIN_FAST[2:], "--folds", "1", "--out", f"{W}/cv"], "--folds"),
    Case(
        "cv with a regression loss on classes",
        ["cv", f"{W}/data", *TRAIN_FAST[2:], "--loss", "ccc", "--folds", "2", "--out", f"{W}/cv"],
        "--loss ccc",
    ),
    Case(
        "cv stopping early on its held-out folds",
        ["cv", f"{W}/data", *TRAIN_FAST[2:], "--patience", "2", "--folds", "2", "--out", f"{W}/cv"],
        "--patience 2",
    ),
    Case(
        "baseline --repeats without --folds", ["baseline", f"{W}/data", "--repeats", "2", "--out", f"{W}/b"], "--folds"
    ),
    Case("baseline with more folds than clips", ["baseline", f"{W}/data", "--folds", "99", "--out", f"{W}/b"], "99"),
    Case(
        "cv with more folds than clips", ["cv", f"{W}/data", *TRAIN_FAST[2:], "--folds", "99", "--out", f"{W}/cv"], "99"
    ),
    Case("an ensemble of one model", ["ensemble", f"{W}/run", "--out", f"{W}/e.safetensors"], "two"),
    Case(
        "an ensemble of a model with itself",
        ["ensemble", f"{W}/run", f"{W}/run", "--out", f"{W}/e.safetensors"],
        "same model",
    ),
    Case("report of a folder that is no run", ["report", f"{W}/audio"], "audio"),
    Case(
        "embed --out with an unknown extension",
        ["embed", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/e.txt"],
        "e.txt",
    ),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_audio) -> Path:
    """Audio in class folders, labels files in three layouts, a data set, a trained run."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(tiny_audio, root / "audio")
    clips = sorted(p.relative_to(root / "audio").with_suffix("").as_posix() for p in (root / "audio").rglob("*.wav"))
    (root / "labels.csv").write_text("file,mood\n" + "".join(f"{c},{c.split('/')[0]}\n" for c in clips))
    quadrant = {"happy": "Q1", "angry": "Q2", "sad": "Q3", "tender": "Q4"}
    (root / "quadrants.csv").write_text(
        "Song,Quadrant\n" + "".join(f"{c},{quadrant[c.split('/')[0]]}\n" for c in clips)
    )
    prepare_dataset(
        root / "audio", root / "data", "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=1, progress=False
    )
    train_run(root / "data", root / "run")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file (by relative path) and folder under `root` with a digest of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.name == LOCK:
            continue
        key = path.relative_to(root).as_posix()
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root)
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup(root)
    before = _snapshot(root)
    try:
        code, err = run_main([a.replace(W, str(root)) for a in case.args], capsys, monkeypatch)
    finally:
        while _HELD:
            _HELD.pop().close()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == case.code, err
    assert len(errors) == 1, err
    assert case.phrase.lower() in errors[0].lower(), err
    assert "Traceback" not in err
    after = _snapshot(root)
    assert after == before, f"the failed command changed or left files: {set(after.items()) ^ set(before.items())}"
    assert not list(tmp_path.glob("runs")), "a failed command created a default output folder"


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40 and len({case.name for case in CASES}) == len(CASES)
