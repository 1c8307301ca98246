"""Every task shape end to end through the CLI: one and several regression targets, two and many classes, one
and several moods, each through prepare, train, cv, a recipe, predict, evaluate, export, ensemble and embed.

One table (`SHAPES`) drives every test; a shape's data set, run and cv are made once (module-scoped) on tiny
generated audio (1 s windows, 32 mel bands, melcnn from scratch at 32 px, one epoch).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.data.dataset import read_info
from mer_fastai.data.synth import make_study_style_set
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.modelfile import load_model

EMOTIONS = ("anger", "fear", "happy", "sad", "tender")
BRIGHT = {"happy", "tender"}  # the two-class column: bright or dark
TINY = ["--arch", "melcnn", "--weights", "none", "--epochs", "1", "--bs", "4", "--size", "32", "--lr", "1e-3"]
SPEC = ["--segment-seconds", "1", "--n-mels", "32", "--workers", "1"]


@dataclass(frozen=True)
class Shape:
    """One task shape: its name, task, outputs, and the label options that read it from `labels.csv`."""

    name: str
    task: str
    outputs: tuple[str, ...]
    score: str  # the score every command reports for it
    labels: tuple[str, ...]  # label options of prepare and evaluate (beside --labels and --id-column)
    prepare: tuple[str, ...] = ()  # prepare's own options for it (--feature, --task)
    recipe: str = ""  # the recipe keys of the task (YAML lines)
    stage_features: str = "[]"


SHAPES = [
    Shape("regression-1", "regression", ("valence",), "ccc", ("--target", "valence"),
          recipe="task: regression\ntargets: [valence]\n"),
    Shape("regression-2", "regression", ("valence", "energy"), "ccc", ("--target", "valence", "--target", "energy"),
          recipe="task: regression\ntargets: [valence, energy]\n"),
    Shape("classes-2", "classification", ("bright", "dark"), "accuracy", ("--label-column", "pair"),
          ("--feature", "pair"), recipe="", stage_features="[pair]"),
    Shape("classes-5", "classification", EMOTIONS, "accuracy", ("--label-column", "emotion"), ("--feature", "emotion"),
          recipe="", stage_features="[emotion]"),
    Shape("moods-1", "multilabel", ("happy",), "macro_f1", ("--target", "happy"), ("--task", "multilabel"),
          recipe="task: multilabel\ntargets: [happy]\n"),
    Shape("moods-3", "multilabel", ("happy", "sad", "fear"), "macro_f1",
          ("--target", "happy", "--target", "sad", "--target", "fear"), ("--task", "multilabel"),
          recipe="task: multilabel\ntargets: [happy, sad, fear]\n"),
]  # fmt: skip
IDS = [shape.name for shape in SHAPES]
pytestmark = pytest.mark.slow  # trains 5 models per shape (about 2.5 minutes on one core)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """5 emotions × 3 numbered 2 s clips, and one labels file holding every shape's columns."""
    root = tmp_path_factory.mktemp("shapes")
    audio, ratings = make_study_style_set(root, clips_per_class=3, seconds=2.0, seed=7)
    with ratings.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    labels = root / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "valence", "energy", "pair", "emotion", "happy", "sad", "fear"])
        for row in rows:
            emotion = EMOTIONS[[row[e] for e in EMOTIONS].index(max((row[e] for e in EMOTIONS), key=float))]
            flags = [
                int(emotion == mood or (mood == "sad" and emotion == "tender")) for mood in ("happy", "sad", "fear")
            ]
            pair = "bright" if emotion in BRIGHT else "dark"
            writer.writerow([row["number"], row["valence"], row["energy"], pair, emotion, *flags])
    return audio, labels


def cli(*args: object) -> None:
    """Run the CLI with `args`; it must succeed."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{' '.join(map(str, args))}\n{result.output}\n{result.exception!r}"


@pytest.fixture(scope="module", params=SHAPES, ids=IDS)
def made(request, corpus, tmp_path_factory) -> dict:
    """One shape's data set, train run and 2-fold cv, made once through the CLI."""
    shape, (audio, labels) = request.param, corpus
    root = tmp_path_factory.mktemp(shape.name)
    label_args = ["--labels", labels, "--id-column", "id", *shape.labels]
    cli("prepare", audio, *label_args, *shape.prepare, *SPEC, "--valid-pct", "0.34", "--out", root / "data")
    cli("train", root / "data", *TINY, "--out", root / "run")
    cli("cv", root / "data", *TINY, "--folds", "2", "--out", root / "cv")
    return {"shape": shape, "root": root, "audio": audio, "labels": labels, "label_args": label_args}


def _outputs(model: torch.nn.Module, size: int = 32) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model(torch.randn(3, 3, size, size))


def test_prepare_records_the_task_and_its_outputs(made):
    shape, info = made["shape"], read_info(made["root"] / "data")
    assert info.task == shape.task
    assert tuple(info.targets if shape.task != "classification" else info.classes) == shape.outputs


def test_train_saves_a_model_that_loads_with_its_outputs(made):
    shape, run = made["shape"], made["root"] / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics.get("task", "classification") == shape.task and np.isfinite(metrics[shape.score])
    model, meta = load_model(run)
    assert (meta.task, meta.classes) == (shape.task, shape.outputs)
    out = _outputs(model)
    assert out.shape == (3, len(shape.outputs)) and torch.isfinite(out).all()
    if shape.task == "regression":  # the head squeezes each target into its recorded scale
        low, high = torch.tensor(meta.scale).T
        assert len(meta.scale) == len(shape.outputs) and ((out > low) & (out < high)).all()


def test_cv_scores_every_fold_and_keeps_their_models(made):
    cv = made["root"] / "cv"
    folds = sorted(cv.glob("folds/*/model.safetensors"))
    assert len(folds) == 2
    for fold in folds:
        assert load_model(fold)[1].classes == made["shape"].outputs
    summary = json.loads((cv / "cv.json").read_text())
    assert summary["task"] == made["shape"].task and summary["folds"] == 2
    pooled = [value for value in summary["pooled"].values() if isinstance(value, float)]
    assert pooled and all(np.isfinite(pooled))
    assert load_model(cv / summary["ensemble"])[1].classes == made["shape"].outputs


def test_predict_from_the_cli_and_the_python_api_agree(made, tmp_path):
    shape, run, audio = made["shape"], made["root"] / "run", made["audio"]
    cli("predict", run, audio, "--out", tmp_path / "p.json")
    written = json.loads((tmp_path / "p.json").read_text())
    clips = sorted(audio.glob("*.wav"))
    assert (written["task"], tuple(written["classes"])) == (shape.task, shape.outputs)
    assert sorted(Path(track["file"]) for track in written["tracks"]) == clips
    track = next(track for track in written["tracks"] if Path(track["file"]) == clips[0])
    numbers = track.get("values") or track["probabilities"]
    result = Predictor.load(run, device="cpu").predict(clips[0])
    assert result.outputs == pytest.approx(numbers, abs=1e-5) and set(numbers) == set(shape.outputs)


def test_evaluate_scores_the_run_on_labelled_audio(made, tmp_path):
    cli("evaluate", made["root"] / "run", made["audio"], *made["label_args"], "--out", tmp_path / "e")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics.get("task", "classification") == made["shape"].task and np.isfinite(metrics[made["shape"].score])
    assert metrics["n_tracks"] == len(list(made["audio"].glob("*.wav")))


def test_export_computes_what_the_run_computes(made, tmp_path):
    run = made["root"] / "run"
    cli("export", run, "--out", tmp_path / "m.safetensors")
    (original, _), (exported, meta) = load_model(run), load_model(tmp_path / "m.safetensors")
    assert meta.classes == made["shape"].outputs
    assert torch.equal(_outputs(original), _outputs(exported))


def test_an_ensemble_of_the_cv_folds_predicts(made, tmp_path):
    folds = sorted((made["root"] / "cv").glob("folds/*/model.safetensors"))
    cli("ensemble", *folds, "--out", tmp_path / "e.safetensors")
    model, meta = load_model(tmp_path / "e.safetensors")
    assert meta.is_ensemble and meta.classes == made["shape"].outputs
    assert _outputs(model).shape == (3, len(made["shape"].outputs))
    cli("predict", tmp_path / "e.safetensors", made["audio"], "--out", tmp_path / "p.csv")
    with (tmp_path / "p.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(list(made["audio"].glob("*.wav")))


def test_embed_writes_one_vector_per_clip(made, tmp_path):
    cli("embed", made["root"] / "run", made["audio"], "--out", tmp_path / "e.npz")
    with np.load(tmp_path / "e.npz", allow_pickle=False) as saved:
        tracks, windows = saved["track_features"], saved["window_features"]
        assert list(saved["classes"]) == list(made["shape"].outputs)
    clips = len(list(made["audio"].glob("*.wav")))
    assert tracks.shape[0] == clips and windows.shape[0] == 2 * clips  # 2 s clips, 1 s windows
    assert np.isfinite(tracks).all()


def test_a_recipe_trains_the_shape(made, tmp_path):
    shape = made["shape"]
    recipe = tmp_path / "shape.yaml"
    recipe.write_text(
        f"experiment: {shape.name}\ndescription: one task shape\narchs: [melcnn]\nepochs: 1\nbs: 4\nsize: 32\n"
        "lr: 0.001\nweights: none\nvalid_pct: 0.34\nspectrogram: {segment_seconds: 1, n_mels: 32}\n"
        f"{shape.recipe}datasets:\n  d: {{audio: {made['audio']}, labels: {made['labels']}, id_column: id"
        f"{', label_column: ' + shape.stage_features[1:-1] if shape.task == 'classification' else ''}}}\n"
        f"stages:\n  - {{name: s, dataset: d, modes: [whole], features: {shape.stage_features}}}\n"
    )
    cli("run", recipe, "--out", tmp_path / "grid")
    with next((tmp_path / "grid").rglob("results.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["arch"] == "melcnn" and np.isfinite(float(rows[0][shape.score]))


def test_the_python_api_trains_saves_predicts_and_exports(made, tmp_path):
    """The same shape through the public API: train, export, then predict from the exported file."""
    import mer_fastai

    shape, clip = made["shape"], sorted(made["audio"].glob("*.wav"))[0]
    config = mer_fastai.TrainConfig(arch="melcnn", weights="none", epochs=1, bs=4, size=32, lr=1e-3)
    result = mer_fastai.train(made["root"] / "data", config, tmp_path / "run", show=False)
    mer_fastai.export_model(result.run_dir, tmp_path / "m.safetensors")
    from_run = mer_fastai.Predictor.load(result.run_dir, device="cpu").predict(clip)
    from_file = mer_fastai.Predictor.load(tmp_path / "m.safetensors", device="cpu").predict(clip)
    assert set(from_file.outputs) == set(shape.outputs) and from_file.outputs == from_run.outputs
