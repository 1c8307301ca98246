"""Scale-out: Ray grids match the local executor, one training over 2 processes, MLflow tracking."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mer_fastai.api.training import train
from mer_fastai.data.synth import make_demo_audio
from mer_fastai.errors import MerError
from mer_fastai.experiments.runner import run_recipe
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.training.fit import TrainConfig
from tests.conftest import TINY_SPEC
from tests.experiments.test_recipe import TINY_RECIPE

COMPARED = ("experiment", "dataset", "feature", "arch", "mode", "weights", "augmentation", "epochs", "lr", "accuracy")
RUN_FILES = {"metrics.json", "config.json", "history.json", "curves.png", "confusion_matrix.png", "model.safetensors"}


def rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as handle:
        return sorted(({k: r[k] for k in COMPARED} for r in csv.DictReader(handle)), key=lambda r: r["mode"])


def test_ray_grid_matches_the_local_executor_and_tracks_each_cell(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mer-fastai[ray]'")
    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'mer-fastai[mlflow]'")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    grid = {"archs": ["squeezenet1_0"], "modes": ["freeze", "whole"]}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = run_recipe(recipe, tmp_path / "local", show=False, **grid)
    try:
        remote = run_recipe(
            recipe, tmp_path / "ray", show=False, executor="ray", executor_options={"cpus_per_cell": 1},
            track="mlflow", tracking_uri=uri, **grid,
        )  # fmt: skip
        again = run_recipe(recipe, tmp_path / "ray", show=False, executor="ray", **grid)
    finally:
        ray.shutdown()
    assert len(local.ran) == len(remote.ran) == 2 and not remote.failed
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")  # seeded: same cells, columns and scores
    assert not again.ran and len(again.skipped) == 2  # resume as before; tracking is no setting of a cell
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(remote.ran)  # one MLflow run per cell, named by it
    assert all(r.info.status == "FINISHED" and len(client.get_metric_history(r.info.run_id, "accuracy")) == 1
               for r in runs)  # fmt: skip


def test_ray_retries_a_lost_worker_and_then_records_the_failure(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mer-fastai[ray]'")
    from mer_fastai.experiments.ray_executor import execute_ray

    def dies(cell) -> dict:
        """Kills its worker on the first attempt ("flaky") or on every attempt ("dead")."""
        import os
        from pathlib import Path

        marker = Path(cell.run_dir) / f"{cell.arch}-tried"
        if cell.arch == "dead" or not marker.exists():
            marker.touch()
            os._exit(1)
        return {"accuracy": 1.0, "macro_f1": 1.0}

    # light stand-ins for Cell: the workers need not import the training stack
    cells = [SimpleNamespace(id=arch, arch=arch, run_dir=str(tmp_path)) for arch in ("flaky", "dead")]
    results = {}
    try:
        execute_ray(cells, lambda cell, row, error: results.update({cell.arch: (row, error)}), max_retries=1, task=dies)
    finally:
        ray.shutdown()
    assert results["flaky"] == ({"accuracy": 1.0, "macro_f1": 1.0}, None)  # retried on a new worker
    row, error = results["dead"]
    assert row is None and error.startswith("lost after 1 retries") and "\n" not in error


def test_missing_extras_are_one_line_errors(monkeypatch):
    from mer_fastai.experiments.ray_executor import connect
    from mer_fastai.training.tracking import check_track

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MerError, match=r"^Ray is not installed; pip install 'mer-fastai\[ray\]'$"):
        connect(None)
    with pytest.raises(MerError, match=r"^MLflow is not installed; pip install 'mer-fastai\[mlflow\]'$"):
        check_track("mlflow")
    with pytest.raises(MerError, match="unknown --track 'wandb'; choose mlflow"):
        check_track("wandb")


def test_launch_command_and_the_single_cpu_process_warning(monkeypatch, capsys):
    from mer_fastai.training import distributed

    argv = ["--debug", "train", "D", "--distributed", "--processes", "3", "--processes=3", "--out", "R"]
    kept = distributed.without_options(argv, flags=("--distributed",), valued=("--processes",))
    assert kept == ["--debug", "train", "D", "--out", "R"]
    command = distributed.launch_command(kept, 3)
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert command[-7:] == ["-m", "mer_fastai", *kept]
    assert command[command.index("--num_processes") + 1] == "3"
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.processes_to_launch(True, 3) == 3
    with pytest.raises(MerError, match="at least 2 processes"):
        distributed.processes_to_launch(True, 1)
    assert distributed.processes_to_launch(False, None) is None  # a plain `mer-fastai train`
    with pytest.raises(MerError, match="--processes is for --distributed"):
        distributed.processes_to_launch(False, 2)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # what `accelerate launch --cpu --num_processes N` leaves
    assert distributed.processes_to_launch(False, None) is None  # pytest's parent is no accelerate launcher
    from fastai.torch_core import defaults

    monkeypatch.setattr(defaults, "use_cuda", None)
    distributed.init_distributed()
    assert "started a single process" in capsys.readouterr().err
    assert defaults.use_cuda is False  # `--cpu`: fastai puts nothing on a GPU, even where there is one
    monkeypatch.setenv("WORLD_SIZE", "2")  # one of the relaunched processes: it trains
    assert distributed.processes_to_launch(True, 2) is None


@pytest.mark.parametrize(
    ("launcher", "expected"),
    [
        (["accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "mer_fastai", "train", "D"], 2),
        (["py", "-m", "accelerate.commands.launch", "--num-processes=3", "--cpu", "x.py", "--num_processes", "9"], 3),
        (["accelerate", "launch", "--cpu", "-m", "mer_fastai", "train", "D"], None),  # one process asked for
        (["/venv/bin/accelerate-launch", "--cpu", "--num_processes", "4", "-m", "mer_fastai"], 4),
        (["accelerate", "launch", "--num_processes", "many", "-m", "mer_fastai"], None),  # argparse gives up
        (["python", "-m", "pytest"], None),
    ],
)
def test_the_cpu_launchers_process_count_is_read_from_its_command_line(monkeypatch, tmp_path, launcher, expected):
    from mer_fastai.training import distributed

    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"\0".join(a.encode() for a in launcher) + b"\0")
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real(cmdline if self.name == "cmdline" else self))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert distributed.cpu_launch_processes() == expected
    monkeypatch.setenv("ACCELERATE_USE_CPU", "False")  # a GPU launch: not ours to widen
    assert distributed.cpu_launch_processes() is None


def test_one_training_over_two_cpu_processes_writes_the_run_folder_once(tiny_data, tmp_path):
    pytest.importorskip("accelerate", reason="Accelerate is an optional extra: pip install 'mer-fastai[distributed]'")
    run = tmp_path / "run"
    args = ["train", str(tiny_data), "--arch", "squeezenet1_0", "--mode", "whole", "--weights", "none", "--epochs",
            "1", "--bs", "4", "--size", "64", "--out", str(run)]  # fmt: skip
    # the command line: Accelerate's --cpu launcher starts one process, which widens itself to two
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "-m", "mer_fastai"]
    result = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "launching: accelerate launch --multi_gpu --num_processes 2" in output
    assert output.count("run folder:") == 1 and output.count("epoch   1 ") == 1  # rank 1 writes and shows nothing
    assert RUN_FILES | {"lr_find.png", "lr_find.json"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["epochs_run"] == 1
    suggestion = json.loads((run / "lr_find.json").read_text())["suggestions"]["valley"]
    assert metrics["lr"] == suggestion  # rank 0's lr_find, used by both processes


def test_data(tmp_path: Path) -> Path:
    """Another prepared data set (other clips, same classes and spectrogram settings as `tiny_data`)."""
    audio = make_demo_audio(tmp_path / "test-audio", clips_per_class=1, seconds=2.0, seed=9)
    return prepare_dataset(audio, tmp_path / "test-data", "emotions", spec=TINY_SPEC, workers=1, progress=False).out_dir


def test_mlflow_tracked_run_is_readable_back(tiny_data, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'mer-fastai[mlflow]'")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = TrainConfig(
        arch="squeezenet1_0", mode="whole", weights="none", epochs=2, bs=4, size=64, num_workers=0, lr="auto",
        track="mlflow", tracking_uri=uri, test_dir=str(test_data(tmp_path)),
    )  # fmt: skip
    result = train(tiny_data, config, tmp_path / "run", show=False)
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("emotions").experiment_id])  # the data set's feature
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    params = run.data.params
    assert params["arch"] == "squeezenet1_0" and params["mode"] == "whole" and params["epochs"] == "2"
    assert json.loads(params["data.classes"]) == ["angry", "happy", "sad", "tender"]
    for name in ("train_loss", "valid_loss", "accuracy", "macro_f1"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [0, 1], name
    assert run.data.metrics["final_accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert run.data.metrics["lr"] == pytest.approx(result.lr)
    test = result.metrics["test"]
    logged = {key: result.metrics[key] for key in ("track_accuracy", "track_macro_f1")}
    logged.update({f"test_{key}": test[key] for key in ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1")})
    assert {key: run.data.metrics[key] for key in logged} == pytest.approx(logged)  # results.csv's column names
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert RUN_FILES | {"lr_find.png"} <= artifacts
