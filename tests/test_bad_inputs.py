"""Bad inputs and faults, table-driven: each is one clear line with exit 2 (Ctrl-C: 130), and nothing earlier changes.

Every case runs the real CLI entry point (`mer_fastai.cli.main.main`) in a copy of one small finished
workspace (audio, labels files, a prepared data set, a trained run, predictions), then checks
- the exit code,
- that standard error holds exactly one `error:` line, containing the expected phrase, and no traceback,
- that every file of the workspace the case did not deliberately damage is byte for byte unchanged and
  that the failed command left nothing behind (no new file or folder, no `.tmp` file).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mer_fastai.preparation.prepare import prepare_dataset
from tests.conftest import TINY_SPEC
from tests.inference.test_predict import train_run
from tests.test_cli import run_main

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


# issue 20: data side (helpers)
def _clips(root: Path) -> list[str]:
    return sorted(p.relative_to(root / "audio").with_suffix("").as_posix() for p in (root / "audio").rglob("*.wav"))


def _moods_file(odd: str) -> Callable[[Path], None]:
    """moods.csv: each clip's class and 'calm' as its moods, the fourth clip's cell `odd`."""

    def setup(root: Path) -> None:
        cells = [f"{clip.split('/')[0]};calm" for clip in _clips(root)]
        cells[3] = odd
        (root / "moods.csv").write_text("file,moods\n" + "".join(f"{c},{m}\n" for c, m in zip(_clips(root), cells)))

    return setup


def _flags_file(odd: str) -> Callable[[Path], None]:
    """flags.csv: 0/1 columns happy and sad for every clip, the fourth clip's sad flag `odd`."""

    def setup(root: Path) -> None:
        rows = [f"{c},{int(c.startswith('happy'))},{int(not c.startswith('happy'))}" for c in _clips(root)]
        rows[3] = f"{_clips(root)[3]},1,{odd}"
        (root / "flags.csv").write_text("file,happy,sad\n" + "\n".join(rows) + "\n")

    return setup


def _loop(root: Path) -> None:
    """Audio whose sad folder holds a link back to the audio folder."""
    _sine(root / "loop" / "happy" / "a.wav", freq=300)
    _sine(root / "loop" / "sad" / "b.wav", freq=500)
    (root / "loop" / "sad" / "back").symlink_to(root / "loop")


def _twins(root: Path) -> None:
    """One recording in two class folders: byte-identical copies labelled differently."""
    for i, name in enumerate(("happy", "sad")):
        for j in range(2):
            _sine(root / "twins" / name / f"{j}.wav", freq=300 + 100 * i + 30 * j)
    shutil.copy(root / "twins" / "happy" / "0.wav", root / "twins" / "sad" / "copy.wav")


def _accents(folders: tuple[str, ...]) -> Callable[[Path], None]:
    """accents/<folder>/<n>.wav for each folder, and acc.csv labelling only the last folder's clip."""

    def setup(root: Path) -> None:
        for i, folder in enumerate(folders):
            _sine(root / "accents" / folder / f"{i}.wav", freq=300 + 100 * i)
        (root / "acc.csv").write_text(f"file,mood\n{folders[-1]}/{len(folders) - 1},sad\n")

    return setup


def _cv_folds(root: Path) -> None:
    """A cross-validation's output: its fold run folders (each holding the fold's data set) in cv/folds/."""
    shutil.copytree(root / "run", root / "cv" / "folds" / "0")
    shutil.copytree(root / "data", root / "cv" / "folds" / "0" / "data")


def _three_fold_baseline(root: Path) -> None:
    """`baseline --folds 3 --save-model` into b/: three folds, each with its linear model file."""
    from mer_fastai.evaluation.baseline.folds import cross_validate_baseline

    cross_validate_baseline(root / "data", root / "b", 3, classifiers=["linear"], progress=False, save_model=True)


class _Held:
    """A lock held by another command for the duration of the case (`close` releases it)."""

    def __init__(self, context) -> None:
        self.context = context
        context.__enter__()

    def close(self) -> None:
        self.context.__exit__(None, None, None)


def _reading_data(root: Path) -> None:
    """A command (the test's own process) reading the data set, e.g. a `train`."""
    from mer_fastai._plumbing.locks import reading

    _HELD.append(_Held(reading(root / "data")))


def _prepare_changing_data(root: Path) -> None:
    """`prepare` (PID 4242) changing the data set: its lock against readers, its PID in the lock file."""
    from mer_fastai._plumbing.locks import excluding_readers

    _HELD.append(_Held(excluding_readers(root / "data")))
    (root / "data" / LOCK).write_text("4242\n")


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
    # issue 20: data side
    Case("prepare --out the audio folder", [*PREPARE, "--out", f"{W}/audio", "--overwrite"], "is the audio folder"),
    Case("prepare --out a parent of the audio folder", [*PREPARE, "--out", W, "--overwrite"], "holds the audio folder"),
    Case("prepare --out inside the audio folder", [*PREPARE, "--out", f"{W}/audio/d"], "lies inside the audio folder"),
    Case(
        "prepare --overwrite over files it did not write",
        [*PREPARE, "--n-mels", "16", "--overwrite", "--out", f"{W}/data"],
        "photo.png: was not written by prepare",
        setup=_write("data/train/happy/photo.png", "the user's"),
    ),
    Case(
        "prepare --overwrite while a command reads the data set",
        [*PREPARE, "--overwrite", "--out", f"{W}/data"],
        "is reading this data set",
        setup=_reading_data,
    ),
    Case(
        "train while prepare changes the data set",
        [*TRAIN_FAST, "--out", f"{W}/r2"],
        "(PID 4242) is changing this data set",
        setup=_prepare_changing_data,
    ),
    Case(
        "a folder link that loops",
        ["prepare", f"{W}/loop", "--feature", "emotions", "--out", f"{W}/d2"],
        "a folder that contains it",
        setup=_loop,
    ),
    Case(
        "one recording in two classes",
        ["prepare", f"{W}/twins", "--feature", "emotions", "--workers", "1", "--out", f"{W}/d2"],
        "one recording takes one label",
        setup=_twins,
    ),
    Case(
        "class folders differing only in Unicode normalisation",
        ["prepare", f"{W}/accents", "--feature", "emotions", "--out", f"{W}/d2"],
        "Cafe<U+0301> and Caf<U+00E9>",
        setup=_accents(("Cafe\u0301", "Caf\u00e9", "sad")),
    ),
    Case(
        "an accented clip without a labels row",
        [
            *PREPARE[:1],
            f"{W}/accents",
            *PREPARE[2:],
            "--labels",
            f"{W}/acc.csv",
            "--id-column",
            "file",
            "--label-column",
            "mood",
            "--out",
            f"{W}/d2",
        ],
        "id 'Café/0' (Caf<U+00E9>/0) has no row",
        setup=_accents(("Caf\u00e9", "sad")),
    ),  # fmt: skip
    Case(
        "a class label with a slash",
        [*PREPARE, "--labels", f"{W}/slash.csv", "--id-column", "file", "--label-column", "mood", "--out", f"{W}/d2"],
        "row 3: class 'hap/py' is not a safe file name",
        setup=_write("slash.csv", "file,mood\nhappy/happy_00,happy\nhappy/happy_01,hap/py\n"),
    ),
    Case(
        "a regression target of 1e300",
        ["prepare", f"{W}/audio", "--labels", f"{W}/t.csv", "--id-column", "file", "--target", "v", "--out", f"{W}/d2"],
        "row 5 (v = 1e+300) lies far outside the other values",
        setup=_ratings("t.csv", "1e300"),
    ),
    Case(
        "an infinite regression target",
        ["prepare", f"{W}/audio", "--labels", f"{W}/t.csv", "--id-column", "file", "--target", "v", "--out", f"{W}/d2"],
        "row 5 (v = inf) is not finite",
        setup=_ratings("t.csv", "inf"),
    ),
    Case("--allow-outliers for classes", [*PREPARE, "--allow-outliers", "--out", f"{W}/d2"], "--allow-outliers"),
    Case(
        "a moods cell of separators only",
        [
            "prepare",
            f"{W}/audio",
            "--task",
            "multilabel",
            "--labels",
            f"{W}/moods.csv",
            "--id-column",
            "file",
            "--label-column",
            "moods",
            "--out",
            f"{W}/d2",
        ],
        "row 5 has no usable value in column 'moods'",
        setup=_moods_file(" ; ;"),
    ),  # fmt: skip
    Case(
        "a mood flag of -1",
        [
            "prepare",
            f"{W}/audio",
            "--task",
            "multilabel",
            "--labels",
            f"{W}/flags.csv",
            "--id-column",
            "file",
            "--target",
            "happy",
            "--target",
            "sad",
            "--out",
            f"{W}/d2",
        ],
        "row 5 (sad = -1) is negative",
        setup=_flags_file("-1"),
    ),  # fmt: skip
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
        "'targets' names numeric labels columns (regression targets or moods); a classification recipe",
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
        "'features' (or --feature) names the one label to classify; a regression recipe",
    ),  # fmt: skip
    Case(
        "multilabel recipe with the ccc loss",
        ["run", "dimensional", "--set", "task=multilabel", "--out", f"{W}/g"],
        "'loss' ccc: is a regression loss",
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
        "'targets' or 'datasets.soundtracks.label_column': a multilabel recipe reads its moods",
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
        "baseline --seed -1",
        ["baseline", f"{W}/data", "--classifier", "linear", "--seed", "-1", "--out", f"{W}/b"],
        "--seed must be a whole number from 0",
    ),
    Case(
        "baseline --folds --seed -1",
        ["baseline", f"{W}/data", "--classifier", "linear", "--folds", "2", "--seed", "-1", "--out", f"{W}/b"],
        "--seed must be",
    ),
    Case(
        "baseline --folds into cv's folds",
        ["baseline", f"{W}/data", "--classifier", "linear", "--folds", "2", "--out", f"{W}/cv"],
        "holds `mer-fastai cv`'s folds",
        setup=_cv_folds,
    ),
    Case(
        "baseline --folds 2 over a 3-fold baseline",
        ["baseline", f"{W}/data", "--classifier", "linear", "--folds", "2", "--save-model", "--out", f"{W}/b"],
        "holds the folds of another cross-validation (e.g. folds/2)",
        setup=_three_fold_baseline,
    ),
    Case(
        "cv --out a training run",
        ["cv", f"{W}/data", *TRAIN_FAST[2:], "--folds", "2", "--out", f"{W}/run"],
        "/run: holds the output of a training run (train, lrfind or a cv fold), whose report",
    ),
    Case(
        "cv --out baseline's folds",
        ["cv", f"{W}/data", *TRAIN_FAST[2:], "--folds", "3", "--out", f"{W}/b"],
        "holds the folds of `mer-fastai baseline --folds`",
        setup=_three_fold_baseline,
    ),
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
    # issue 20: output side
    Case(
        "an ensemble written over its first member",
        ["ensemble", f"{W}/run", f"{W}/run2", "--out", f"{W}/run/model.safetensors"],
        "is an ensemble member",
        setup=lambda root: shutil.copytree(root / "run", root / "run2"),
    ),
    Case(
        "an ensemble written into a member's run folder",
        ["ensemble", f"{W}/run", f"{W}/run2", "--out", f"{W}/run2"],
        "run folder of an ensemble member",
        setup=lambda root: shutil.copytree(root / "run", root / "run2"),
    ),
    Case("export onto its own model", ["export", f"{W}/run", "--out", f"{W}/run"], "the model exported"),
    Case(
        "predict written over the model",
        ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/run/model.safetensors", "--format", "json"],
        "is the model",
    ),
    Case(
        "predict written over an audio file",
        ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/audio/happy/happy_00.wav", "--format", "csv"],
        "audio file",
    ),
    Case(
        "evaluate written over the labels file",
        [
            "evaluate",
            f"{W}/run",
            f"{W}/audio",
            "--labels",
            f"{W}/labels.csv",
            "--id-column",
            "file",
            "--label-column",
            "mood",
            "--out",
            f"{W}/labels.csv",
        ],
        "the labels file",
    ),
    Case(
        "evaluate into the model's run folder",
        ["evaluate", f"{W}/run", f"{W}/audio", "--out", f"{W}/run"],
        "run folder of the model",
    ),
    Case(
        "embed written through a link to the labels file",
        [
            "embed",
            f"{W}/run",
            f"{W}/audio",
            "--labels",
            f"{W}/labels.csv",
            "--id-column",
            "file",
            "--label-column",
            "mood",
            "--out",
            f"{W}/l.npz",
        ],
        "the labels file",
        setup=lambda root: (root / "l.npz").symlink_to(root / "labels.csv"),
    ),
    Case("train into the data set", [*TRAIN_FAST, "--out", f"{W}/data/r"], "lies inside the data set"),
    Case(
        "train over its --weights run",
        ["train", f"{W}/data", "--arch", "squeezenet1_0", "--weights", f"{W}/run", "--out", f"{W}/run"],
        "the --weights model",
    ),
    Case("report written over a run's metrics", ["report", f"{W}/run", "--out", f"{W}/run/metrics.json"], ".html"),
    Case("demo into a folder of the user's", ["demo", "--out", W], "the demo did not write"),
    Case(
        "a recipe's experiment name climbing out of --out",
        ["run", "demo", "--set", "experiment=x/../../../victim", "--out", f"{W}/a/b/g"],
        "experiment 'x/../../../victim'",
        setup=_write("victim.json", "{}"),
    ),
    Case(
        "a recipe's data-set name climbing out of --out",
        [
            "run",
            "demo",
            "--set",
            'datasets={"../../../escaped": {}}',
            "--set",
            "stages=[{name: a, dataset: ../../../escaped, features: [valence]}]",
            "--out",
            f"{W}/a/b/g",
        ],
        "data set name '../../../escaped'",
    ),
    Case(
        "a recipe's stage name with a separator",
        ["run", "demo", "--set", "stages=[{name: a/b, dataset: small, features: [valence]}]", "--out", f"{W}/g"],
        "stages[0] name 'a/b'",
    ),
    Case(
        "a recipe's feature that is a path",
        ["run", "demo", "--set", "stages=[{name: a, dataset: small, features: [../v]}]", "--out", f"{W}/g"],
        "feature '../v'",
    ),
    Case("a recipe's GAN backend that is a path", ["run", "expC", "--set", "gan.backend=../x"], "gan.backend"),
    Case(
        "run --out inside the recipe's audio folder",
        ["run", "demo", "--set", f"datasets.small.audio={W}/audio", "--out", f"{W}/audio/g"],
        "lies inside the audio folder of data set 'small'",
    ),
    Case(
        "run over its own recipe file",
        ["run", f"{W}/g/recipe-demo.json", "--out", f"{W}/g"],
        "the grid writes here, but it holds the recipe",
        setup=_write("g/recipe-demo.json", (Path(__file__).parents[1] / "recipes" / "demo.yaml").read_text()),
    ),
]


# --- #26 C: processes, non-regular files, near-duplicates ----------------------------------------------------------


def _reencoded_twin(root: Path) -> None:
    """echo/: two clips per class, and sad/copy.wav: happy/0.wav low-passed, quieter, noisy, at 44.1 kHz."""
    import scipy.signal
    import soxr

    from mer_fastai.data.synth import DEMO_CLASSES, synthesize_clip

    for i, name in enumerate(("happy", "sad")):
        for j in range(2):
            _sine(root / "echo" / name / f"{j}.wav", freq=300 + 100 * i + 30 * j)
    rate = 22050
    signal = synthesize_clip(DEMO_CLASSES["happy"], 2.0, rate, np.random.default_rng(5))  # music-like, not a sine
    soundfile.write(root / "echo" / "happy" / "0.wav", signal, rate)
    b, a = scipy.signal.butter(6, 5000 / (rate / 2))
    copy = scipy.signal.lfilter(b, a, signal) * 0.7 + np.random.default_rng(0).normal(0, 0.002, len(signal))
    soundfile.write(root / "echo" / "sad" / "copy.wav", soxr.resample(copy, rate, 44100), 44100)


def _hushed(root: Path) -> None:
    """hush/: a silent clip and a one-sample clip, labelled by their folders."""
    (root / "hush" / "happy").mkdir(parents=True)
    (root / "hush" / "sad").mkdir(parents=True)
    soundfile.write(root / "hush" / "happy" / "a.wav", np.zeros(22050, dtype=np.float32), 22050)
    soundfile.write(root / "hush" / "sad" / "b.wav", np.array([0.5], dtype=np.float32), 22050)


def _orphaned_lock(root: Path) -> None:
    """data/.lock held by a live process (the test's own) while it records a PID that has ended, as the workers
    of a killed older version held it."""
    import fcntl

    handle = (root / "data" / LOCK).open("a+")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("999999999\n")
    handle.flush()
    _HELD.append(handle)


CASES += [
    Case(
        "a re-encoded copy of one recording in another class",
        [
            "prepare",
            f"{W}/echo",
            "--feature",
            "emotions",
            "--workers",
            "2",
            "--segment-seconds",
            "1",
            "--out",
            f"{W}/d2",
        ],
        "sounds like the same recording as",
        setup=_reencoded_twin,
    ),  # fmt: skip
    Case(
        "every labelled clip silent or near-empty",
        ["prepare", f"{W}/hush", "--feature", "emotions", "--workers", "1", "--out", f"{W}/d2"],
        "silent",
        setup=_hushed,
    ),
    Case(
        "prepare into a folder whose lock processes of an ended command still hold",
        [*PREPARE, "--out", f"{W}/data", "--overwrite"],
        "(PID 999999999) has ended, but processes it started still hold the lock",
        setup=_orphaned_lock,
    ),
]


# --- #26 B: ownership, full disk, messages ---
def _another_run(name: str) -> Callable[[Path], None]:
    """A second trained run folder (a copy of the workspace's run: another run's records and model)."""
    return lambda root: shutil.copytree(root / "run", root / name)


def _other_model(root: Path, out: Path) -> None:
    """The run's model with other weights, written as train writes it (a distinct ensemble member)."""
    from mer_fastai.models.modelfile import build_network, read_model, save_model_file

    state, meta = read_model(root / "run")
    model = build_network(meta)
    model.load_state_dict({name: t + 0.01 if t.is_floating_point() else t for name, t in state.items()})
    out.mkdir(parents=True, exist_ok=True)
    save_model_file(out / "model.safetensors", model, meta, "train")


def _protected(relative: str, make: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """`relative` made (by `make`, else a small text file) and then write-protected (mode 444)."""

    def setup(root: Path) -> None:
        (make or _write(relative, "the user's own\n"))(root)
        (root / relative).chmod(0o444)

    return setup


def _own_ensemble(root: Path) -> None:
    """run2 (another model) and an ensemble file `ensemble` wrote of run and run2."""
    from mer_fastai.evaluation.ensemble import ensemble_models

    _other_model(root, root / "run2")
    ensemble_models([root / "run", root / "run2"], root / "e.safetensors")


def _fifo(relative: str) -> Callable[[Path], None]:
    """A named pipe beside the workspace (`{W}/../relative`: the snapshot would block reading one inside it)."""
    return lambda root: os.mkfifo(root.parent / relative)


def _nested_ensemble(root: Path) -> None:
    """run2 (another model) and ens.safetensors, an ensemble of run and run2."""
    _own_ensemble(root)
    (root / "e.safetensors").rename(root / "ens.safetensors")


LABELS_OPTIONS = ["--id-column", "file", "--label-column", "mood"]
CASES += [
    # outputs replace only what the same command wrote
    Case(
        "an ensemble written into another run's folder",
        ["ensemble", f"{W}/run", f"{W}/run2", "--out", f"{W}/r3"],
        "r3 holds the output of a training run",
        setup=lambda root: (_other_model(root, root / "run2"), _another_run("r3")(root)),
    ),
    Case(
        "export over another run's model file",
        ["export", f"{W}/run", "--out", f"{W}/r3/model.safetensors"],
        "r3 holds the output of a training run",
        setup=_another_run("r3"),
    ),
    Case(
        "export over a file of the user's",
        ["export", f"{W}/run", "--out", f"{W}/mine.safetensors"],
        "is not a model file",
        setup=_write("mine.safetensors", "the user's own\n"),
    ),
    Case(
        "export over an ensemble's model file",
        ["export", f"{W}/run", "--out", f"{W}/e.safetensors"],
        "is a model file `mer-fastai ensemble` wrote",
        setup=_own_ensemble,
    ),
    Case(
        "train into a folder holding the user's metrics.json",
        [*TRAIN_FAST, "--out", f"{W}/mine"],
        "metrics.json: mer-fastai did not write it",
        setup=_write("mine/metrics.json", '{"accuracy": 0.99}\n'),
    ),
    Case(
        "train into a folder holding the user's curves.png",
        [*TRAIN_FAST, "--out", f"{W}/mine"],
        "curves.png: mer-fastai did not write it",
        setup=_write("mine/curves.png", "a picture of the user's"),
    ),
    Case(
        "evaluate into a folder holding the user's metrics.json",
        ["evaluate", f"{W}/run", f"{W}/audio", "--out", f"{W}/mine"],
        "metrics.json: mer-fastai did not write it",
        setup=_write("mine/metrics.json", '{"accuracy": 0.99}\n'),
    ),
    Case(
        "evaluate into another run's folder",
        ["evaluate", f"{W}/run", f"{W}/audio", "--out", f"{W}/r3"],
        "holds the output of a training run",
        setup=_another_run("r3"),
    ),
    Case(
        "predict over a write-protected file",
        ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/p.csv"],
        "write-protected",
        setup=_protected("p.csv"),
    ),
    Case(
        "ensemble over its own write-protected file",
        ["ensemble", f"{W}/run", f"{W}/run2", "--out", f"{W}/e.safetensors"],
        "write-protected",
        setup=_protected("e.safetensors", _own_ensemble),
    ),
    Case(
        "prepare --labels a file it writes in --out",
        [
            *PREPARE,
            "--labels",
            f"{W}/data/manifest.csv",
            "--id-column",
            "clip_id",
            "--label-column",
            "label",
            "--out",
            f"{W}/data",
            "--overwrite",
        ],
        "is a file prepare writes in --out",
    ),  # fmt: skip
    # inputs that are folders, devices or pipes
    Case(
        "--labels a folder",
        [*PREPARE, "--labels", f"{W}/audio", *LABELS_OPTIONS, "--out", f"{W}/d2"],
        "the labels file is a folder",
    ),
    Case(
        "--labels /dev/null",
        [*PREPARE, "--labels", "/dev/null", *LABELS_OPTIONS, "--out", f"{W}/d2"],
        "the labels file is not a regular file",
    ),
    Case(
        "--labels a pipe",
        [*PREPARE, "--labels", f"{W}/../pipe.csv", *LABELS_OPTIONS, "--out", f"{W}/d2"],
        "the labels file is not a regular file",
        setup=_fifo("pipe.csv"),
    ),
    Case(
        "a recipe that is a folder",
        ["run", f"{W}/r.yaml", "--out", f"{W}/g"],
        "the recipe is a folder",
        setup=lambda root: (root / "r.yaml").mkdir(),
    ),  # fmt: skip
    Case(
        "a recipe that is a pipe",
        ["run", f"{W}/../r.yaml", "--out", f"{W}/g"],
        "the recipe is not a regular file",
        setup=_fifo("r.yaml"),
    ),  # fmt: skip
    Case(
        "a model that is a folder without a model",
        ["predict", f"{W}/audio", f"{W}/audio/happy"],
        "is a folder without model.safetensors",
    ),
    Case("a model that is /dev/null", ["predict", "/dev/null", f"{W}/audio/happy"], "the model is not a regular file"),
    Case(
        "a model that is a pipe",
        ["predict", f"{W}/../m.safetensors", f"{W}/audio/happy"],
        "the model is not a regular file",
        setup=_fifo("m.safetensors"),
    ),
    Case(
        "a duplicate member inside a nested ensemble",
        ["ensemble", f"{W}/ens.safetensors", f"{W}/run", "--out", f"{W}/e2.safetensors"],
        "run: is the same model as ",
        setup=_nested_ensemble,
    ),
    Case(
        "a duplicate member inside a nested ensemble names the nested member",
        ["ensemble", f"{W}/ens.safetensors", f"{W}/run", "--out", f"{W}/e2.safetensors"],
        "ens.safetensors (its member ",
        setup=_nested_ensemble,
    ),
]


def _task(name: str) -> Callable[[Path], None]:
    """The workspace data set's dataset.json naming task `name` (one the registry may not know)."""

    def setup(root: Path) -> None:
        path = root / "data" / "dataset.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "task": name}))

    return setup


# a data set's task (tasks.opened) and the label rules (data.labelsource), one case per rule and entry point: the
# CLI names flags, a recipe keys
CASES += [
    Case("a dataset.json naming an unknown task", [*TRAIN_FAST, "--out", f"{W}/r2"],
         "data/dataset.json: task 'ordinal' is not one of classification, regression, multilabel",
         setup=_task("ordinal")),
    *[Case(f"label rule: prepare {name}", ["prepare", f"{W}/audio", *args, "--out", f"{W}/d2"], phrase)
      for name, args, phrase in [
          ("--task regression without --labels", ["--task", "regression", "--target", "v"],
           "--labels is missing: a regression data set reads its targets"),
          ("--task regression without --target", ["--task", "regression", "--labels", f"{W}/labels.csv"],
           "--target is missing: a regression data set learns"),
          ("--task multilabel without moods", ["--task", "multilabel", "--labels", f"{W}/labels.csv"],
           "--target or --label-column: a multilabel data set reads its moods"),
          ("--threshold beside a mood --label-column", ["--task", "multilabel", "--labels", f"{W}/labels.csv",
                                                        "--label-column", "mood", "--threshold", "0.5"],
           "--threshold reads the vote shares of --target mood columns"),
          ("--cuts for regression", ["--labels", f"{W}/labels.csv", "--target", "v", "--cuts", "3,6"],
           "--cuts bins ratings into classes; a regression data set"),
          ("--label-column for regression", ["--labels", f"{W}/labels.csv", "--target", "v", "--label-column", "mood"],
           "--label-column names classes; a regression data set"),
          ("--target for classification", ["--feature", "emotions", "--task", "classification", "--labels",
                                           f"{W}/labels.csv", "--target", "v"],
           "a classification data set has classes: drop it, or choose a --task that learns them"),
          ("--threshold for classification", ["--feature", "emotions", "--labels", f"{W}/labels.csv",
                                              "--label-column", "mood", "--threshold", "0.5"],
           "--threshold reads mood columns; a classification data set has no moods"),
      ]],
    Case("label rule: evaluate --target on a classifier",
         ["evaluate", f"{W}/run", f"{W}/audio", "--labels", f"{W}/labels.csv", "--target", "v", "--out", f"{W}/e2"],
         "--target names numeric labels columns (regression targets or moods); a classification model has classes: "
         "drop it"),
    *[Case(f"label rule: recipe {name}", ["run", "dimensional", *[a for pair in sets for a in ("--set", pair)],
                                          "--out", f"{W}/g"], phrase)
      for name, sets, phrase in [
          ("labels missing", [f"datasets.soundtracks.audio={W}/audio"],
           "'datasets.soundtracks.labels' is missing: a regression recipe reads its targets"),
          ("targets missing", ["targets=null"], "'targets' is missing: a regression recipe learns"),
          ("threshold beside a mood label_column", ["task=multilabel", "loss=auto", "targets=null", "threshold=0.5",
                                                    "datasets.soundtracks.label_column=moods"],
           "'threshold' reads the vote shares of 'targets' mood columns"),
          ("cuts for regression", ["datasets.soundtracks.cuts=[3, 6]"],
           "'datasets.soundtracks.cuts' bins ratings into classes; a regression recipe"),
          ("label_column for regression", ["datasets.soundtracks.label_column=mood"],
           "'datasets.soundtracks.label_column' names classes; a regression recipe"),
          ("threshold for regression", ["threshold=0.5"], "'threshold' reads mood columns; a regression recipe"),
          ("allow_outliers for classification", ["task=classification", "targets=null", "loss=auto",
                                                 "datasets.soundtracks.allow_outliers=true"],
           "'datasets.soundtracks.allow_outliers' keeps outlying regression targets; a classification recipe"),
      ]],
]  # fmt: skip


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


def snapshot(root: Path) -> dict[str, str]:
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
    before = snapshot(root)
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
    after = snapshot(root)
    assert after == before, f"the failed command changed or left files: {set(after.items()) ^ set(before.items())}"
    assert not list(tmp_path.glob("runs")), "a failed command created a default output folder"


def test_there_are_at_least_a_hundred_cases():
    assert len(CASES) >= 100 and len({case.name for case in CASES}) == len(CASES)


def _full_temp_files(monkeypatch) -> None:
    """Every atomic write's temporary file is a link to /dev/full: the first write through it fails with ENOSPC,
    as on a full disk (matplotlib, numpy and text writes; safetensors replaces the link, see `_full_safetensors`)."""
    import itertools

    from mer_fastai._plumbing import files

    counter = itertools.count()

    def mkstemp(prefix: str, suffix: str, dir: Path) -> tuple[int, str]:
        name = Path(dir) / f"{prefix}full{next(counter):04d}{suffix}"
        name.symlink_to("/dev/full")
        return os.open(name, os.O_RDWR), str(name)

    monkeypatch.setattr(files, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))


def _full_safetensors(monkeypatch) -> None:
    """safetensors' writer fails as it does on a full disk (its own error type, the errno only in its text)."""
    import safetensors.torch
    from safetensors import SafetensorError

    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def _full_images(monkeypatch) -> None:
    """prepare's spectrogram images hit a full disk."""
    from mer_fastai.data import png

    class FullPath(type(Path())):
        def write_bytes(self, data: bytes) -> int:
            self.touch()  # a write that began: the file exists, half made
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(png, "Path", FullPath)


def _full_checkpoints(monkeypatch) -> None:
    """fastai's checkpoint save (torch.save) fails as torch reports a full disk: a RuntimeError without errno."""
    import torch

    def save(obj, file, *args, **kwargs):
        Path(file).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")  # fmt: skip

    monkeypatch.setattr(torch, "save", save)


@dataclass(frozen=True)
class Full:
    """A command whose output hits a full disk (`fault`): one line naming `file`, nothing left behind."""

    name: str
    args: list[str]
    file: str
    fault: Callable = _full_temp_files
    setup: Callable[[Path], None] | None = None


FULL_DISK = [
    Full("predict", ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/p.csv"], "p.csv"),
    Full("export", ["export", f"{W}/run", "--out", f"{W}/m.safetensors"], "m.safetensors", _full_safetensors),
    Full(
        "ensemble",
        ["ensemble", f"{W}/run", f"{W}/run2", "--out", f"{W}/e.safetensors"],
        "e.safetensors",
        _full_safetensors,
        setup=lambda root: _other_model(root, root / "run2"),
    ),
    Full("report", ["report", f"{W}/run", "--out", f"{W}/r.html"], "r.html"),
    Full("embed", ["embed", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/e.npz"], "e.npz"),
    Full("evaluate", ["evaluate", f"{W}/run", f"{W}/audio", "--out", f"{W}/ev"], "ev/"),
    Full("prepare", [*PREPARE, "--out", f"{W}/d2"], ".png", _full_images),
    Full("train", [*TRAIN_FAST, "--keep", "best", "--out", f"{W}/r2"], "best.pth", _full_checkpoints),
    Full("train (model file)", [*TRAIN_FAST, "--out", f"{W}/r2"], "model.safetensors", _full_safetensors),
    Full("train (records)", [*TRAIN_FAST, "--out", f"{W}/r2"], "r2/", _full_temp_files),
]


@pytest.mark.parametrize("case", FULL_DISK, ids=[case.name for case in FULL_DISK])
def test_a_full_disk_is_one_line_naming_the_file(case, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root)
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup(root)
    before = snapshot(root)
    case.fault(monkeypatch)
    code, err = run_main([a.replace(W, str(root)) for a in case.args], capsys, monkeypatch)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert case.file in errors[0] and "could not be written" in errors[0] and "free there" in errors[0], err
    after = snapshot(root)
    assert after == before, f"the failed command changed or left files: {set(after.items()) ^ set(before.items())}"


def test_musicnn_weights_path_that_is_a_folder_speaks_of_the_cache(tmp_path, capsys, monkeypatch):
    """`weights get` has no --out: a weights path that is a folder names the path and $MER_FASTAI_CACHE; loading
    says it is a folder rather than "not found"."""
    from mer_fastai.errors import MerError
    from mer_fastai.models.musicnn.weights import load_state

    (tmp_path / "musicnn" / "msd.safetensors").mkdir(parents=True)
    monkeypatch.setenv("MER_FASTAI_CACHE", str(tmp_path))
    with pytest.raises(MerError, match="is a folder, not a file"):
        load_state("msd")
    code, err = run_main(["weights", "get", "musicnn", "--from", str(tmp_path)], capsys, monkeypatch)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "msd.safetensors" in errors[0] and "MER_FASTAI_CACHE" in errors[0] and "--out" not in errors[0], err
    assert (tmp_path / "musicnn" / "msd.safetensors").is_dir()


# --- #26 A: numbers in range ---------------------------------------------------------------------------------------
# Every numeric option and recipe key within its declared bounds (CLI, recipe --set); model-file fields that size
# what a reader allocates; recipe aliases that would expand without bound; an empty --set value.


def _model_with(**fields: object) -> Callable[[Path], None]:
    """A copy of the run's model file with metadata `fields` changed (spectrogram fields go into its settings),
    written with a valid checksum: only the bounds of `ModelMeta` can refuse it."""

    def setup(root: Path) -> None:
        from mer_fastai.models.modelfile import MODEL_FORMAT, read_safetensors, write_safetensors

        state, metadata = read_safetensors(root / "run" / "model.safetensors", MODEL_FORMAT)
        for key, value in fields.items():
            if key in metadata["spectrogram"] or key == "segment_seconds":
                metadata["spectrogram"][key] = value
            else:
                metadata[key] = value
        write_safetensors(root / "odd.safetensors", state, metadata, MODEL_FORMAT)

    return setup


def _alias_bomb(root: Path) -> None:
    """A recipe whose nine nested aliases expand to 9**9 values under a known key (the "billion laughs")."""
    lines = ["experiment: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    (root / "bomb.yaml").write_text("\n".join(lines).replace("experiment: &l0", "l0: &l0") + "\nexperiment: *l8\n")


NUMBERS = [
    *[Case(f"train --lr {lr}", [*TRAIN, "--epochs", "1", "--lr", lr, "--out", f"{W}/r"],
           "--lr must be a number above 0") for lr in ("nan", "inf", "-1", "0")],
    *[Case(f"recipe lr={lr}", ["run", "demo", "--set", f"lr={lr}", "--out", f"{W}/g"],
           "'lr' must be a number above 0") for lr in (".nan", ".inf", "-1", "0")],
    Case("train --bs 1", [*TRAIN, "--epochs", "1", "--bs", "1", "--out", f"{W}/r"],
         "--bs must be a whole number from 2"),
    Case("recipe bs=1", ["run", "demo", "--set", "bs=1", "--out", f"{W}/g"], "'bs' must be a whole number from 2"),
    Case("cv --bs 1", ["cv", f"{W}/data", "--arch", "squeezenet1_0", "--weights", "none", "--bs", "1", "--out",
                       f"{W}/c"], "--bs must be"),
    Case("train --epochs 0", [*TRAIN, "--epochs", "0", "--out", f"{W}/r"], "--epochs must be a whole number from 1"),
    Case("train --mixup nan", [*TRAIN_FAST, "--mixup", "nan", "--out", f"{W}/r"], "--mixup must be a number from 0"),
    Case("train --label-smoothing -1", [*TRAIN_FAST, "--label-smoothing", "-1", "--out", f"{W}/r"],
         "--label-smoothing must be"),
    Case("train --patience 0", [*TRAIN_FAST, "--patience", "0", "--out", f"{W}/r"], "--patience must be"),
    Case("train --workers -1", [*TRAIN_FAST, "--workers", "-1", "--out", f"{W}/r"], "--workers must be"),
    Case("train --size 100000", [*TRAIN_FAST[:-2], "--size", "100000", "--out", f"{W}/r"],
         "--size 100000 is too large"),
    Case("train --seed -1", [*TRAIN_FAST, "--seed", "-1", "--out", f"{W}/r"], "--seed must be"),
    Case("recipe epochs=0", ["run", "demo", "--set", "epochs=0", "--out", f"{W}/g"], "'epochs' must be"),
    Case("recipe mixup=.nan", ["run", "demo", "--set", "mixup=.nan", "--out", f"{W}/g"], "'mixup' must be"),
    Case("gan train --size 100000", ["gan", "train", f"{W}/data", "--size", "100000", "--out", f"{W}/gan"],
         "--size must be a whole number from 8 to 1024"),
    Case("gan train --seed -1", ["gan", "train", f"{W}/data", "--seed", "-1", "--out", f"{W}/gan"], "--seed must be"),
    Case("recipe gan.size=100000", ["run", "expC", "--set", "gan.size=100000", "--out", f"{W}/g"],
         "'gan.size' must be"),
    Case("recipe gan.steps=0", ["run", "expC", "--set", "gan.steps=0", "--out", f"{W}/g"], "'gan.steps' must be"),
    Case("recipe demo seconds=-1", ["run", "demo", "--set", "datasets.small.demo.seconds=-1", "--out", f"{W}/g"],
         "'datasets.small.demo.seconds' must be"),
    Case("recipe spectrogram window of 1e9 s",
         ["run", "demo", "--set", "spectrogram={segment_seconds: 1.0e9}", "--out", f"{W}/g"], "segment_seconds"),
    Case("recipe threshold=.nan", ["run", "demo", "--set", "task=multilabel", "--set", "targets=[happy, sad]", "--set",
                                   "threshold=.nan", "--set", "stages=[{name: m, dataset: small}]", "--out", f"{W}/g"],
         "'threshold' must be a number above 0 and at most 1 (got nan)"),
    Case("recipe datasets.small.cuts=[.nan, 5]", ["run", "demo", "--set", "datasets.small.cuts=[.nan, 5]", "--out",
                                                  f"{W}/g"], "'datasets.small.cuts' must be"),
    *[Case(f"prepare {flag} {value}", [*PREPARE, flag, value, "--out", f"{W}/d2"], phrase)
      for flag, value, phrase in [
          ("--segment-seconds", "nan", "--segment-seconds"), ("--segment-seconds", "1e9", "--segment-seconds"),
          ("--segment-seconds", "0", "--segment-seconds"), ("--hop-seconds", "-1", "--hop-seconds"),
          ("--hop-seconds", "inf", "--hop-seconds"), ("--n-mels", "0", "--n-mels"), ("--n-mels", "100000", "--n-mels"),
          ("--sample-rate", "1000000000", "--sample-rate"), ("--n-fft", "0", "--n-fft"),
          ("--hop-length", "0", "--hop-length"), ("--valid-pct", "nan", "--valid-pct"),
          ("--test-pct", "2", "--test-pct"), ("--workers", "-1", "--workers"),
      ]],
    Case("prepare a 1 h window of hop 1", [*PREPARE[:-4], "--segment-seconds", "3600", "--hop-length", "1", "--out",
                                           f"{W}/d2"], "pixels"),
    Case("prepare --threshold nan",
         ["prepare", f"{W}/audio", "--task", "multilabel", "--labels", f"{W}/labels.csv", "--id-column", "file",
          "--target", "v", "--threshold", "nan", "--out", f"{W}/d2"], "--threshold"),
    Case("prepare --cuts nan,5", [*PREPARE, "--labels", f"{W}/labels.csv", "--cuts", "nan,5", "--out", f"{W}/d2"],
         "--cuts"),
    Case("predict --window 1e9", ["predict", f"{W}/run", f"{W}/audio", "--window", "1e9", "--out", f"{W}/p.csv"],
         "--window (seconds) must be"),
    Case("predict --hop 0", ["predict", f"{W}/run", f"{W}/audio", "--hop", "0", "--out", f"{W}/p.csv"],
         "--hop (seconds) must be"),
    # --- model-file fields with a valid checksum, refused before anything is allocated
    Case("model file with a 1e9 s window", ["predict", f"{W}/odd.safetensors", f"{W}/audio", "--out", f"{W}/p.csv"],
         "segment_seconds", setup=_model_with(segment_seconds=1e9)),
    Case("model file with input_size 100000",
         ["predict", f"{W}/odd.safetensors", f"{W}/audio", "--out", f"{W}/p.csv"], "'input_size'",
         setup=_model_with(input_size=100000)),
    Case("model file with 10**9 Hz", ["evaluate", f"{W}/odd.safetensors", f"{W}/audio", "--out", f"{W}/e"],
         "sample_rate", setup=_model_with(sample_rate=10**9)),
    Case("model file with 4096 mel bands", ["export", f"{W}/odd.safetensors", "--out", f"{W}/x.safetensors"],
         "n_mels", setup=_model_with(n_mels=4096)),
    # --- recipes that would print or build something huge, or fall back to the demo audio
    Case("recipe alias bomb", ["run", f"{W}/bomb.yaml", "--out", f"{W}/g"], "aliases", setup=_alias_bomb),
    Case("--set alias bomb", ["run", "demo", "--set", "epochs=[&a [1,1,1,1,1,1,1,1,1], [*a,*a,*a,*a,*a,*a,*a,*a]]",
                              "--out", f"{W}/g"], "'epochs' must be a whole number"),
    Case("empty --set audio (an unset shell variable)",
         ["run", "demo", "--set", "datasets.small.audio=", "--out", f"{W}/g"], "datasets.small.audio"),
    Case("empty text for a recipe path", ["run", "demo", "--set", "datasets.small.audio=''", "--out", f"{W}/g"],
         "'datasets.small.audio' must not be empty"),
    Case("recipe labels without audio", ["run", "demo", "--set", f"datasets.small.labels={W}/labels.csv", "--out",
                                         f"{W}/g"], "datasets.small.audio"),
]  # fmt: skip


@pytest.mark.parametrize("case", NUMBERS, ids=[case.name for case in NUMBERS])
def test_a_number_out_of_range_is_one_line_and_changes_nothing(case, workspace, tmp_path, capsys, monkeypatch):
    test_bad_input_is_one_line_and_changes_nothing(case, workspace, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("case", [c for c in NUMBERS if "bomb" in c.name or "1e9" in c.name], ids=lambda c: c.name)
def test_a_huge_value_is_quoted_short(case, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root)
    if case.setup:
        case.setup(root)
    code, err = run_main([a.replace(W, str(root)) for a in case.args], capsys, monkeypatch)
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(line.replace(str(root), "W")) < 400, line


# --- #26 D ---
def _user_npz(root: Path) -> None:
    """An .npz of the user's own (arrays that are not embed's)."""
    np.savez(root / "e.npz", weights=np.arange(3.0))


LONG = "x" * 10_000  # a value pasted by mistake: a message quotes it short
OWN_FILES = [
    # predict, embed and report replace only a file they wrote themselves (or an empty one)
    Case("predict over the user's CSV", ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/p.csv"],
         "predict did not write this file", setup=_write("p.csv", "name,score\nmine,1\n")),
    Case("predict over the user's JSON", ["predict", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/p.json"],
         "predict did not write this file", setup=_write("p.json", '{"tracks": "mine"}\n')),
    Case("predict --format csv over the user's text file",
         ["predict", f"{W}/run", f"{W}/audio/happy", "--format", "csv", "--out", f"{W}/p.txt"],
         "predict did not write this file", setup=_write("p.txt", "notes of the user's\n")),
    Case("embed over the user's .npz", ["embed", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/e.npz"],
         "embed did not write this file", setup=_user_npz),
    Case("embed beside the user's <out>-tags.csv",
         ["embed", f"{W}/run", f"{W}/audio/happy", "--out", f"{W}/e.npz"], "e-tags.csv: embed did not write",
         setup=_write("e-tags.csv", "level,mine\n")),
    Case("embed --map beside the user's <out>-map.png",
         ["embed", f"{W}/run", f"{W}/audio/happy", "--map", "--out", f"{W}/e.npz"], "e-map.png: embed did not write",
         setup=_bytes("e-map.png", b"\x89PNG\r\n\x1a\nthe user's picture")),
    Case("embed --map beside the user's <out>-map.html",
         ["embed", f"{W}/run", f"{W}/audio/happy", "--map", "--out", f"{W}/e.npz"], "e-map.html: embed did not",
         setup=_write("e-map.html", "<html><title>Embedding map of my own</title></html>\n")),
    Case("report over the user's HTML page", ["report", f"{W}/run", "--out", f"{W}/notes.html"],
         "report did not write this file", setup=_write("notes.html", "<html><title>My notes</title></html>\n")),
]  # fmt: skip
LONG_CASES = [  # a huge value is quoted short
    Case("a 10,000-character label cell", [*PREPARE, "--labels", f"{W}/huge.csv", *LABELS_OPTIONS,
                                                    "--skip-unlabeled", "--out", f"{W}/d2"],
         "xxx...", setup=_write("huge.csv", f"file,mood\nhappy/happy_00,{LONG}\n")),
    Case("a 10,000-character --feature", [*PREPARE[:3], LONG, *PREPARE[4:], "--labels", f"{W}/quadrants.csv",
                                         "--out", f"{W}/d2"], "xxx..."),
    Case("a 10,000-character --arch", [*TRAIN_FAST, "--arch", LONG, "--out", f"{W}/t"], "xxx..."),
    Case("a 10,000-character --set value", ["run", "demo", "--set", f"archs=[{LONG}]", "--out", f"{W}/g"], "xxx..."),
]  # fmt: skip


@pytest.mark.parametrize("case", OWN_FILES + LONG_CASES, ids=[case.name for case in OWN_FILES + LONG_CASES])
def test_predict_embed_own_files_and_long_values(case, workspace, tmp_path, capsys, monkeypatch):
    test_bad_input_is_one_line_and_changes_nothing(case, workspace, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("case", LONG_CASES, ids=[case.name for case in LONG_CASES])
def test_a_pasted_value_is_quoted_in_under_300_characters(case, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root)
    if case.setup:
        case.setup(root)
    code, err = run_main([a.replace(W, str(root)) for a in case.args], capsys, monkeypatch)
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(line.replace(str(root), "W")) < 300 and "x" * 100 not in line, line
