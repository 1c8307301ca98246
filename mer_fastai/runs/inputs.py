"""No output over an input: what a command reads (a model, its run's records, a labels file, a recipe, audio, a
data set) is never what it writes.

Every command that writes calls these checks before it writes anything: a path it would write that names one of
its inputs (compared resolved, and with `os.path.samefile` where both exist, so hard links and symbolic links
count), or an output folder that is an input folder (or lies inside one it must not), is one line naming both and
the fix. Light on purpose (no torch): the CLI checks before it loads a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from .._plumbing.files import is_within
from ..choices import STARTING_WEIGHTS
from ..errors import MerError
from .layout import METRICS_FILE, MODEL_FILE, REPORT_HTML, RUN_CONFIG, model_file_path

# A run folder's records of its model: replacing one would make them describe a model that is not there.
RUN_RECORDS = (METRICS_FILE, RUN_CONFIG, REPORT_HTML)

Inputs = dict[Path, str]  # an input's path → what it is ("the model", "the labels file", ...)


class TrainingInputs(Protocol):
    """What a training reads besides its data set, as `training.config.TrainConfig` holds it."""

    test_dir: str | Path | None
    extra_train_dirs: list
    weights: str


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` name the same file or folder: equal once resolved, or (both existing) one inode."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(outputs: Iterable[str | Path], inputs: Mapping[Path, str], option: str = "--out") -> None:
    """One line when a path this command would write (`outputs`) is one of its `inputs`."""
    for output in outputs:
        for path, what in inputs.items():
            if same_path(output, path):
                raise MerError(
                    f"{output}: is {what} ({path}), which this command reads; {option} must not write over its "
                    f"input: choose another {option}"
                )


def refuse_within(out: str | Path, folders: Mapping[Path, str], option: str = "--out") -> None:
    """One line when the output folder `out` is one of `folders` or lies inside one."""
    for folder, what in folders.items():
        if is_within(out, folder):
            where = "is" if same_path(out, folder) else "lies inside"
            raise MerError(f"{option} {out}: {where} {what} ({folder}); choose a folder outside it")


def model_inputs(model: str | Path, what: str = "the model") -> Inputs:
    """A model argument's inputs: the model file itself and, in its run folder, the folder and its records."""
    model = Path(model)
    folder = model if model.is_dir() else model.parent
    inputs: Inputs = {model_file_path(model): what}
    if model.is_dir() or any((folder / name).is_file() for name in RUN_RECORDS[:2]):
        inputs[folder] = f"the run folder of {what}"
        inputs.update({folder / name: f"a record of {what}" for name in RUN_RECORDS if (folder / name).exists()})
    return inputs


def refuse_audio_overwrite(output: str | Path, audio: Iterable[str | Path], option: str = "--out") -> None:
    """One line when the output file is an audio file given, or an audio file inside a folder given."""
    from ..data.audio import AUDIO_EXTENSIONS

    output = Path(output)
    for path in map(Path, audio):
        hit = same_path(output, path) or (
            output.suffix.lower() in AUDIO_EXTENSIONS and output.exists() and is_within(output, path)
        )
        if hit:
            raise MerError(
                f"{output}: is an audio file this command reads (from {path}); {option} must not write over its "
                f"input: choose another {option}"
            )


def refuse_input_out(
    outputs: Iterable[str | Path],
    model: str | Path | None,
    audio: Iterable[str | Path],
    labels: str | Path | None = None,
) -> None:
    """One line when a file predict or embed would write is the model, its run folder or records, the labels file or
    an audio file it reads (checked before any work, and again before writing)."""
    inputs = model_inputs(model) if model is not None else {}
    if labels is not None:
        inputs[Path(labels)] = "the labels file"
    audio = list(audio)
    for output in outputs:
        refuse_overwrite([output], inputs)
        refuse_audio_overwrite(output, audio)


def refuse_training_out(out: str | Path, data_dir: str | Path, config: TrainingInputs | None = None) -> None:
    """A command that reads a data set (train, lrfind, cv, baseline, gan train): its `--out` is neither inside the
    data set, a `--test` data set or an `--augment-dir` folder, nor over its `--weights` model."""
    folders = {Path(data_dir): "the data set"}
    test_dir = getattr(config, "test_dir", None)
    if test_dir:
        folders[Path(test_dir)] = "the --test data set"
    folders.update({Path(folder): "the --augment-dir folder" for folder in getattr(config, "extra_train_dirs", [])})
    refuse_within(out, folders)
    weights = getattr(config, "weights", None)
    if weights not in (None, *STARTING_WEIGHTS) and Path(weights).exists():
        out = Path(out)
        refuse_overwrite([out, out / MODEL_FILE], model_inputs(weights, "the --weights model"), "--out")
