"""The files each command leaves in its folder, per task shape: `train`, `cv --refit`, `evaluate` (the CLI and the
Python API) and `baseline` on tiny data with a test split. The pages (plots, reports) are drawn by the loops'
callers once the loop returns; every folder must hold exactly the files it held when the loops drew them (the
sets below are those 0.4's code made, printed by `python tests/test_run_files.py`).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_task_shapes import SHAPES, SPEC, TINY, cli, corpus  # noqa: F401  (corpus: the labelled audio)

KINDS = ("regression-2", "classes-5", "moods-3")  # two targets (the circumplex), five classes, three moods
RUN = {".lock", ".written-by", "config.json", "curves.png", "history.json", "metrics.json", "model.safetensors",
       "report.html", "valid_predictions.csv", "track_predictions.csv"}  # fmt: skip
TESTED = {"test_predictions.csv", "test_track_predictions.csv"}  # a run with a test split
PLOTS = {  # the task's pages of the validation split, then of the test split
    "regression-2": ({"scatter_valence.png", "scatter_energy.png", "circumplex.png"},
                     {"test_scatter_valence.png", "test_scatter_energy.png", "test_circumplex.png"}),
    "classes-5": ({"classification_report.txt", "confusion_matrix.png", "track_confusion_matrix.png"},
                  {"test_track_confusion_matrix.png"}),
    "moods-3": ({"per_label.png"}, {"test_per_label.png"}),
}  # fmt: skip
POOLED = {  # a cross-validation's pooled plots
    "regression-2": {"scatter_valence.png", "scatter_energy.png", "circumplex.png"},
    "classes-5": {"confusion_matrix.png", "track_confusion_matrix.png"},
    "moods-3": {"per_label.png"},
}
CV = {".lock", "cv.json", "ensemble.safetensors", "oof_predictions.csv", "oof_track_predictions.csv", "report.html"}
REFIT = {".lock", ".written-by", "config.json", "curves.png", "history.json", "metrics.json", "model.safetensors",
         "refit.json", "report.html"}  # fmt: skip
EVALUATE = {".lock", ".written-by", "metrics.json", "predictions.csv"}
EVALUATED = {  # evaluate's pages
    "regression-2": {"scatter_valence.png", "scatter_energy.png", "circumplex.png"},
    "classes-5": {"classification_report.txt", "confusion_matrix.png"},
    "moods-3": {"per_label.png"},
}
BASELINE = {"baseline.csv", "features.npz", "knn/metrics.json", "knn/valid_predictions.csv",
            "knn/track_predictions.csv", "knn/test_predictions.csv", "knn/test_track_predictions.csv"}  # fmt: skip
pytestmark = pytest.mark.slow  # 4 trainings, 2 evaluations and a baseline per task shape (~15 s each)


def files(folder: Path) -> set[str]:
    """Every file under `folder`, relative to it, leaving out the data sets the folds and the refit train on."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and "data" not in p.parts}


def made_folders(root: Path, audio: Path, labels: Path, name: str) -> dict[str, set[str]]:
    """The files of a shape's train, cv, evaluate (CLI and Python API) and baseline folders, made under `root`."""
    from mer_fastai import evaluate
    from mer_fastai.data.labelsource import LabelSource

    shape = next(shape for shape in SHAPES if shape.name == name)
    label_args = ["--labels", labels, "--id-column", "id", *shape.labels]
    split = ["--valid-pct", "0.34", "--test-pct", "0.2"]
    cli("prepare", audio, *label_args, *shape.prepare, *SPEC, *split, "--out", root / "data")
    cli("train", root / "data", *TINY, "--out", root / "run")
    cli("cv", root / "data", *TINY, "--folds", "2", "--refit", "--out", root / "cv")
    cli("evaluate", root / "run", audio, *label_args, "--out", root / "evaluate")
    options = dict(zip(shape.labels[::2], shape.labels[1::2]))
    targets = [value for flag, value in zip(shape.labels[::2], shape.labels[1::2]) if flag == "--target"]
    source = LabelSource(labels, id_column="id", label_column=options.get("--label-column"), targets=targets or None)
    evaluate(root / "run", audio, root / "evaluate-api", labels=source, progress=False)
    cli("baseline", root / "data", "--classifier", "knn", "--workers", "1", "--out", root / "baseline")
    return {kind: files(root / kind) for kind in ("run", "cv", "evaluate", "evaluate-api", "baseline")}


@pytest.mark.parametrize("name", KINDS)
def test_each_command_leaves_the_files_it_left_when_its_loop_drew_the_pages(name, corpus, tmp_path):  # noqa: F811
    audio, labels = corpus
    found = made_folders(tmp_path, audio, labels, name)
    valid, test = PLOTS[name]
    assert found["run"] == RUN | TESTED | valid | test
    folds = {f"folds/{k}/{file}" for k in (0, 1) for file in RUN | valid | {"fold.json"}}  # the folds: no test split
    refit = {f"refit/{file}" for file in REFIT | TESTED | test}  # no validation split: test pages only
    assert found["cv"] == CV | POOLED[name] | folds | refit
    assert found["evaluate"] == found["evaluate-api"] == EVALUATE | EVALUATED[name]
    assert found["baseline"] == BASELINE
    # the pages are the folders' own files: a rerun in the same folder replaces them
    shape = next(shape for shape in SHAPES if shape.name == name)
    cli("train", tmp_path / "data", *TINY, "--out", tmp_path / "run")
    cli("evaluate", tmp_path / "run", audio, "--labels", labels, "--id-column", "id", *shape.labels, "--out",
        tmp_path / "evaluate")  # fmt: skip
    assert (files(tmp_path / "run"), files(tmp_path / "evaluate")) == (found["run"], found["evaluate"])


if __name__ == "__main__":  # `python tests/test_run_files.py [OUT]`: the files the installed mer_fastai makes
    scratch = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
    factory = type("Factory", (), {"mktemp": staticmethod(lambda n: (scratch / n).mkdir(parents=True) or scratch / n)})
    audio, labels = corpus.__wrapped__(factory)
    for name in KINDS:
        made = made_folders(scratch / name, audio, labels, name)
        print(json.dumps({name: {kind: sorted(names) for kind, names in made.items()}}, indent=1))
