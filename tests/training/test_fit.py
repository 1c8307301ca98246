"""lr_find and train: run folder contents, freeze/whole semantics, weight hand-over."""

from __future__ import annotations

import json

import pytest
import torch

from mer_fastai.api.training import find_lr, train
from mer_fastai.errors import MerError
from mer_fastai.models.archs import get_arch
from mer_fastai.models.modelfile import create_model, read_model
from mer_fastai.training.fit import TrainConfig

RUN_FILES = {
    "metrics.json",
    "confusion_matrix.png",
    "curves.png",
    "classification_report.txt",
    "model.safetensors",
    "lr_find.png",
    "history.json",
    "config.json",
    "valid_predictions.csv",
    "track_predictions.csv",
    "track_confusion_matrix.png",
    "report.html",
}


def tiny(**overrides) -> TrainConfig:
    values = {"arch": "squeezenet1_0", "weights": "none", "epochs": 1, "bs": 4, "size": 48, "num_workers": 0}
    return TrainConfig(**{**values, **overrides})


def test_lr_find_saves_plot_and_suggestions(tiny_data, tmp_path):
    result = find_lr(tiny_data, tiny(), tmp_path / "lr")
    assert result.plot.exists() and result.plot.stat().st_size > 5000
    assert set(result.suggestions) == {"valley", "minimum", "steep"}
    assert 1e-7 < result.suggestion < 10
    assert json.loads((tmp_path / "lr" / "lr_find.json").read_text())["suggestions"]["valley"] == result.suggestion
    assert not (tmp_path / "lr" / "models").exists()


@pytest.fixture(scope="module")
def whole_run(tiny_data, tmp_path_factory):
    return train(tiny_data, tiny(mode="whole", epochs=2), tmp_path_factory.mktemp("run"), show=False)


def test_train_writes_the_report(whole_run):
    run = whole_run.run_dir
    assert {p.name for p in run.iterdir()} >= RUN_FILES
    assert not (run / "models").exists()  # no pickled checkpoint left behind
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "classes", "arch", "mode", "feature", "epochs", "lr"):
        assert key in metrics
    assert metrics["classes"] == ["angry", "happy", "sad", "tender"]
    assert set(metrics["per_class"]["sad"]) == {"precision", "recall", "f1", "support"}
    assert metrics["mode"] == "whole" and metrics["feature"] == "emotions" and metrics["epochs_run"] == 2
    assert sum(map(sum, metrics["confusion_matrix"])) == sum(c["support"] for c in metrics["per_class"].values())
    assert "macro avg" in (run / "classification_report.txt").read_text()
    assert metrics["track"]["classes"] == metrics["classes"] and metrics["n_tracks"] <= metrics["n_windows"]
    assert metrics["test"] is None and not (run / "test_predictions.csv").exists()  # no test split here


def test_the_loop_returns_results_and_its_caller_draws_the_pages(whole_run, tiny_data, tmp_path):
    """`training.fit.train` writes the run's results and draws no page; `run_pages` draws the same pages from the
    returned results as `mer_fastai.train` does (the plots and the report of the windows byte for byte: same seed)."""
    from mer_fastai.api.training import run_pages
    from mer_fastai.training import fit

    pages = {"curves.png", "lr_find.png", "report.html", "classification_report.txt", "confusion_matrix.png",
             "track_confusion_matrix.png"}  # fmt: skip
    result = fit.train(tiny_data, tiny(mode="whole", epochs=2), tmp_path / "loop")
    assert {p.name for p in result.run_dir.iterdir()} == {p.name for p in whole_run.run_dir.iterdir()} - pages
    assert [row["epoch"] for row in result.history] == [0, 1] and result.title == "squeezenet1_0 · whole · emotions"
    assert result.lr_find is not None and result.lr_find.plot == result.run_dir / "lr_find.png"
    assert len(result.lr_find.lrs) == len(result.lr_find.losses) > 10 and result.lr == result.lr_find.suggestion
    run_pages(show=False)(result)
    assert {p.name for p in result.run_dir.iterdir()} == {p.name for p in whole_run.run_dir.iterdir()}
    for name in pages - {"report.html"}:
        assert (result.run_dir / name).read_bytes() == (whole_run.run_dir / name).read_bytes(), name
    assert "squeezenet1_0" in (result.run_dir / "report.html").read_text()


def test_a_page_that_cannot_be_written_leaves_the_run_published(tiny_data, tmp_path, monkeypatch, capsys):
    """The task's pages are drawn after metrics.json: a plot that cannot be written (a full disk) is a warning
    line; the run stays published and its other pages are drawn."""
    from mer_fastai.report.views.classification import ClassificationViews

    def full_disk(*_args) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(ClassificationViews, "plot_split", full_disk)
    result = train(tiny_data, tiny(mode="whole", lr=1e-3), tmp_path / "run", show=False)
    assert "a plot could not be written: No space left on device" in capsys.readouterr().err
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"metrics.json", "valid_predictions.csv", "curves.png", "report.html"} <= names
    assert "track_confusion_matrix.png" not in names
    assert json.loads((result.run_dir / "metrics.json").read_text())["accuracy"] == result.metrics["accuracy"]


def test_the_kept_epoch_is_the_best_or_the_last(whole_run, tiny_data, tmp_path):
    """--keep best keeps the epoch with the best validation score, --keep last the final one: the run's scores
    are those the kept epoch reached in training."""
    history = json.loads((whole_run.run_dir / "history.json").read_text())["history"]
    best = whole_run.metrics
    assert best["keep"] == "best" and best["kept_epoch"] == best["best_epoch"]
    assert best["accuracy"] == pytest.approx(max(row["accuracy"] for row in history))
    last = train(tiny_data, tiny(mode="whole", epochs=3, keep="last"), tmp_path / "last", show=False).metrics
    history = json.loads((tmp_path / "last" / "history.json").read_text())["history"]
    assert last["keep"] == "last" and last["kept_epoch"] == last["epochs_run"] - 1 == 2
    assert last["accuracy"] == pytest.approx(history[-1]["accuracy"])
    assert last["best_epoch"] == max(range(3), key=lambda i: (history[i]["accuracy"], -i))  # still reported


def valid_accuracy(model, meta, data_dir) -> float:
    """The accuracy of `model` (eval mode) on `data_dir`'s validation images, loaded as `meta`'s input contract."""
    from mer_fastai.training.loaders import load_dataloaders

    model.eval()
    dls = load_dataloaders(data_dir, size=meta.input_size, bs=8, stats=meta.stats, num_workers=0)
    correct = total = 0
    with torch.no_grad():
        for xb, yb in dls.valid:
            correct += int((model(xb).argmax(1) == yb).sum())
            total += len(yb)
    return correct / total


def test_saved_model_reproduces_the_reported_accuracy(whole_run, tiny_data):
    state, meta = read_model(whole_run.run_dir)
    model = create_model(get_arch(meta.arch), len(meta.classes))
    model.load_state_dict(state)
    assert valid_accuracy(model, meta, tiny_data) == pytest.approx(whole_run.metrics["accuracy"])


def test_freeze_leaves_the_body_untouched_and_whole_changes_it(tiny_data, tmp_path, whole_run):
    start = tmp_path / "start"
    frozen = train(tiny_data, tiny(mode="freeze", weights=str(whole_run.run_dir), lr=1e-2), start, show=False)
    assert frozen.metrics["cached_features"]  # the head trained on the body's features computed once
    before, _ = read_model(whole_run.run_dir)
    after, _ = read_model(frozen.run_dir)
    body = [k for k in before if k.startswith("0.")]
    head = [k for k in before if k.startswith("1.") and before[k].dtype.is_floating_point]
    assert all(torch.equal(before[k], after[k]) for k in body)  # incl. BatchNorm statistics
    assert any(not torch.equal(before[k], after[k]) for k in head)
    whole = train(tiny_data, tiny(mode="whole", weights=str(whole_run.run_dir), lr=1e-2), tmp_path / "w", show=False)
    changed, _ = read_model(whole.run_dir)
    assert any(not torch.equal(before[k], changed[k]) for k in body)


def test_cached_features_train_the_same_model_as_a_frozen_body(tiny_data, tmp_path, whole_run):
    """Head-only training on cached body features gives the full model with the start body, like plain freeze.

    (Not bit-identical: dropout draws its random numbers in a different order.)
    """
    settings = {"mode": "freeze", "weights": str(whole_run.run_dir), "lr": 1e-2, "epochs": 2}
    cached = train(tiny_data, tiny(**settings), tmp_path / "cached", show=False)
    plain = train(tiny_data, tiny(**settings, feature_cache=False), tmp_path / "plain", show=False)
    assert cached.metrics["cached_features"] and not plain.metrics["cached_features"]
    start, _ = read_model(whole_run.run_dir)
    fast, _ = read_model(cached.run_dir)
    slow, _ = read_model(plain.run_dir)
    assert fast.keys() == slow.keys() == start.keys()
    body = [k for k in start if k.startswith("0.")]
    assert all(torch.equal(fast[k], start[k]) and torch.equal(slow[k], start[k]) for k in body)
    head = [k for k in start if k.startswith("1.") and start[k].dtype.is_floating_point]
    assert any(not torch.equal(fast[k], start[k]) for k in head)


def test_weights_from_another_arch_are_refused(tiny_data, tmp_path, whole_run):
    with pytest.raises(MerError, match="holds a 'squeezenet1_0' model"):
        train(
            tiny_data,
            tiny(arch="alexnet", size=64, weights=str(whole_run.run_dir)),
            tmp_path / "x",
            show=False,
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "--epochs"),
        ({"lr": "fast"}, "--lr"),
        ({"weights": "/no/such/model"}, "--weights"),
        ({"monitor": "speed"}, "--monitor"),
        ({"mode": "half"}, "unknown --mode .half.; choose freeze, whole or partial"),
        ({"arch": "inception_v3", "size": 64}, "too small for inception_v3; use 75 to"),
        ({"size": 100000}, "--size 100000 is too large"),
    ],
)
def test_bad_settings_are_clear_errors(tiny_data, tmp_path, overrides, message):
    with pytest.raises(MerError, match=message):
        train(tiny_data, tiny(**overrides), tmp_path / "bad", show=False)


def test_not_a_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(MerError, match="mer-fastai prepare"):
        train(tmp_path, tiny(), tmp_path / "run", show=False)


def test_a_class_without_validation_images_is_warned_and_reported(tiny_data, tmp_path, capsys):
    import csv
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / "valid" / "tender")  # a consistent data set whose 'tender' clips all train
    with (data / "manifest.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if not (r["split"] == "valid" and r["label"] == "tender")]
    with (data / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = train(data, tiny(mode="whole", size=32, lr=1e-3), tmp_path / "run", show=False)
    assert "class(es) tender have training images but none in validation" in " ".join(capsys.readouterr().err.split())
    metrics = result.metrics
    assert metrics["per_class"]["tender"]["support"] == 0 and metrics["absent_classes"] == ["tender"]
    assert sum(c["support"] for c in metrics["per_class"].values()) == len([r for r in rows if r["split"] == "valid"])
    tender_predicted = sum(row[-1] for row in metrics["confusion_matrix"])  # classes are sorted: tender last
    scored = [c for c in metrics["classes"] if c != "tender" or tender_predicted]
    assert metrics["macro_f1"] == pytest.approx(sum(metrics["per_class"][c]["f1"] for c in scored) / len(scored))


def test_macro_f1_leaves_out_a_class_with_no_item_and_no_prediction():
    import numpy as np

    from mer_fastai.scoring.metrics import classification_metrics, text_report

    classes = ["a", "b", "c"]
    targets, predicted = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    metrics = classification_metrics(targets, predicted, classes)
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2) and metrics["absent_classes"] == ["c"]
    assert "left out of the averages): c" in text_report(targets, predicted, classes)
    predicted_c = classification_metrics(targets, np.array([0, 2, 1, 1]), classes)
    assert predicted_c["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)  # a wrong guess of 'c' counts
