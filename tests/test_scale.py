"""Scale-out: the Ray executor gives the local executor's results; MLflow tracking is readable back."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mer_fastai.runner import run_recipe
from mer_fastai.train import TrainConfig, train

from .test_recipes import TINY_RECIPE

COMPARED = ("experiment", "dataset", "feature", "arch", "mode", "weights", "augmentation", "epochs", "lr", "accuracy")


def rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as handle:
        return sorted(({k: r[k] for k in COMPARED} for r in csv.DictReader(handle)), key=lambda r: r["mode"])


def test_ray_grid_matches_the_local_executor(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mer-fastai[ray]'")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    grid = {"archs": ["squeezenet1_0"], "modes": ["freeze", "whole"]}
    local = run_recipe(recipe, tmp_path / "local", show=False, **grid)
    try:
        remote = run_recipe(
            recipe, tmp_path / "ray", show=False, executor="ray", executor_options={"cpus_per_cell": 1}, **grid
        )
    finally:
        ray.shutdown()
    assert len(local.ran) == len(remote.ran) == 2 and not remote.failed
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")
    again = run_recipe(recipe, tmp_path / "ray", show=False, executor="ray", **grid)
    assert not again.ran and len(again.skipped) == 2  # resume works the same


def test_mlflow_tracked_run_is_readable_back(tiny_data, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'mer-fastai[mlflow]'")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = TrainConfig(
        arch="squeezenet1_0",
        mode="whole",
        weights="none",
        epochs=2,
        bs=4,
        size=48,
        num_workers=0,
        lr=1e-3,
        track="mlflow",
        tracking_uri=uri,
    )
    train(tiny_data, config, tmp_path / "run", show=False)
    client = mlflow.tracking.MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["arch"] == "squeezenet1_0" and run.data.params["mode"] == "whole"
    assert len(client.get_metric_history(run.info.run_id, "valid_loss")) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "curves.png", "model.safetensors"} & artifacts
