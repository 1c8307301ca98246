"""A damaged data set or output folder is one clear line before any training, and leaves nothing behind."""

from __future__ import annotations

import csv
import importlib
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mer_fastai._plumbing.files import output_folder
from mer_fastai.api.training import find_lr, train
from mer_fastai.errors import MerError
from mer_fastai.tasks.opened import open_dataset
from mer_fastai.training.fit import TrainConfig
from mer_fastai.training.items import check_dataset
from mer_fastai.training.tensor_loaders import memory_dataloaders

train_module = importlib.import_module("mer_fastai.training.fit")  # the package's `train` attribute is the function
REPAIR = "rerun `mer-fastai prepare` with the same options"


def config() -> TrainConfig:
    return TrainConfig(arch="squeezenet1_0", mode="whole", weights="none", epochs=1, lr=1e-3, bs=4, size=32)


def manifest(data: Path) -> list[dict[str, str]]:
    with (data / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def first_image(data: Path, split: str = "train") -> Path:
    return data / next(row["image"] for row in manifest(data) if row["split"] == split)


def delete_image(data: Path) -> None:
    first_image(data).unlink()


def add_unlisted_image(data: Path) -> None:
    image = first_image(data)
    shutil.copy(image, image.with_name("extra.png"))


def truncate_png(data: Path) -> None:
    image = first_image(data, "valid")
    image.write_bytes(image.read_bytes()[:200])


def text_in_png(data: Path) -> None:
    first_image(data).write_text("not an image\n")


def move_to_other_class(data: Path) -> None:
    image = first_image(data)
    other = next(p for p in image.parent.parent.iterdir() if p != image.parent)
    image.rename(other / image.name)


def edit_manifest_label(data: Path) -> None:
    rows = manifest(data)
    classes = sorted({row["label"] for row in rows})
    rows[0]["label"] = next(c for c in classes if c != rows[0]["label"])
    with (data / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def remove_manifest(data: Path) -> None:
    (data / "manifest.csv").unlink()


def one_class(data: Path) -> None:
    info = json.loads((data / "dataset.json").read_text())
    info["classes"] = info["classes"][:1]
    (data / "dataset.json").write_text(json.dumps(info))


DAMAGES: list[tuple[Callable[[Path], None], tuple[str, ...]]] = [
    (delete_image, ("1 image(s) listed in manifest.csv are missing", "train/", REPAIR)),
    (add_unlisted_image, ("1 image(s) under train/ or valid/ are not in manifest.csv", "extra.png", "delete them")),
    (truncate_png, ("1 image(s) are damaged", "valid/", REPAIR)),
    (text_in_png, ("1 image(s) are damaged", "cannot identify image file", REPAIR)),
    (move_to_other_class, ("1 image(s) lie in another folder than manifest.csv says", "listed as train/", REPAIR)),
    (edit_manifest_label, ("1 manifest.csv row(s) disagree with their image's split/class folder", REPAIR)),
    (remove_manifest, ("manifest.csv: not found", REPAIR)),
    (one_class, ("dataset.json: the data set has 1 class", "at least two")),
]


@pytest.fixture
def no_training(monkeypatch):
    """Building a learner fails the test: every refusal here must come before any training."""

    def trained(*_args, **_kwargs):
        raise AssertionError("training started on a data set that should have been refused")

    monkeypatch.setattr(train_module, "_learner", trained)


@pytest.fixture
def data_copy(tiny_data, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(tiny_data, copy)
    return copy


def test_an_intact_data_set_passes(data_copy):
    checked = check_dataset(open_dataset(data_copy))
    info, rows = checked.info, list(checked.rows)
    assert len(info.classes) == 4 and len(rows) == len(list(data_copy.glob("*/*/*.png")))


@pytest.mark.parametrize(("damage", "phrases"), DAMAGES, ids=[damage.__name__ for damage, _ in DAMAGES])
def test_a_damaged_data_set_is_refused_before_training(data_copy, tmp_path, no_training, damage, phrases):
    damage(data_copy)
    run = tmp_path / "run"
    for command in (lambda: train(data_copy, config(), run, show=False), lambda: find_lr(data_copy, config(), run)):
        with pytest.raises(MerError) as error:
            command()
        message = str(error.value)
        assert "\n" not in message and all(phrase in message for phrase in phrases), message
        assert not run.exists()


def test_out_naming_a_file_is_refused(tiny_data, tmp_path, no_training):
    out = tmp_path / "taken.txt"
    out.write_text("keep me\n")
    with pytest.raises(MerError, match="is a file, not a folder; give --out"):
        train(tiny_data, config(), out, show=False)
    assert out.read_text() == "keep me\n"


def test_a_second_writer_is_refused_naming_the_holder(tiny_data, tmp_path, no_training):
    run = tmp_path / "run"
    with output_folder(run):  # another `train` is writing this folder
        with pytest.raises(MerError, match=r"another mer-fastai process \(PID \d+\) is writing this folder"):
            train(tiny_data, config(), run, show=False)
        assert {p.name for p in run.iterdir()} == {".lock"}


def test_a_failure_after_the_folder_was_made_leaves_no_folder(tiny_data, tmp_path, monkeypatch):
    """lr_find has written its plot into the fresh run folder when training fails: nothing is left."""

    def fails_after_lr_find(data_dir, config, info, run_dir):
        (run_dir / train_module.LR_PLOT).write_bytes(b"plot")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_fit", fails_after_lr_find)
    run = tmp_path / "runs" / "one"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data, config(), run, show=False)
    assert not run.exists()


def test_a_failed_rerun_keeps_the_earlier_run(tiny_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    earlier = {"metrics.json": '{"epochs_run": 1}', "model.safetensors": "weights", "lr_find.png": "plot"}
    for name, text in earlier.items():
        (run / name).write_text(text)

    def fails(data_dir, config, info, run_dir):
        (run_dir / train_module.LR_PLOT).write_bytes(b"new plot")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_module, "_fit", fails)
    with pytest.raises(RuntimeError):
        train(tiny_data, config(), run, show=False)
    assert {p.name: p.read_text() for p in run.iterdir() if p.name != ".lock"} == earlier


def test_the_in_memory_loader_names_an_undecodable_image(data_copy):
    image = first_image(data_copy)
    image.write_bytes(image.read_bytes()[:100])
    with pytest.raises(MerError, match=f"{image.name}: cannot be read as an image .*{REPAIR}"):
        memory_dataloaders(data_copy, size=32, bs=4)


def test_a_damaged_augmentation_image_is_named(tiny_data, tmp_path):
    extra = tmp_path / "gan" / "happy"
    extra.mkdir(parents=True)
    (extra / "fake.png").write_bytes(first_image(tiny_data).read_bytes()[:100])
    with pytest.raises(MerError, match="fake.png: damaged image .*; delete or regenerate it"):
        memory_dataloaders(tiny_data, size=32, bs=4, extra_train_dirs=[tmp_path / "gan"])


def test_loaders_list_the_manifest_in_its_order_and_need_validation_images(data_copy, tmp_path):
    from mer_fastai.data.dataset import read_manifest, write_manifest
    from mer_fastai.training.items import training_items
    from mer_fastai.training.loaders import load_dataloaders

    rows = read_manifest(data_copy)
    extra = tmp_path / "gan" / "happy"
    extra.mkdir(parents=True)
    shutil.copy2(first_image(data_copy), extra / "fake.png")
    train_items, valid_items = training_items(open_dataset(data_copy), [tmp_path / "gan"])
    listed = {split: [row.path(data_copy) for row in rows if row.split == split] for split in ("train", "valid")}
    assert (train_items, valid_items) == (listed["train"] + [extra / "fake.png"], listed["valid"])
    dls = memory_dataloaders(data_copy, size=32, bs=4, extra_train_dirs=[tmp_path / "gan"])
    assert (len(dls.train_ds), len(dls.valid_ds)) == (len(train_items), len(valid_items))

    write_manifest(data_copy, [row for row in rows if row.split == "train"])
    for load in (load_dataloaders, memory_dataloaders):
        with pytest.raises(MerError, match="the valid/ folder holds no image; prepare with a larger --valid-pct"):
            load(data_copy, size=32, bs=4)


def test_commands_reading_a_data_set_wait_for_no_prepare_and_hold_it_meanwhile(data_copy, tmp_path, monkeypatch):
    import fcntl
    import os

    from mer_fastai._plumbing.locks import excluding_readers
    from mer_fastai.api.training import run_cv
    from mer_fastai.evaluation.baseline.classic import run_baseline

    handle = os.open(data_copy, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)  # `prepare --overwrite` (PID 4242) is changing the data set
    (data_copy / ".lock").write_text("4242\n")
    commands = {
        "train": lambda: train(data_copy, config(), tmp_path / "run", show=False),
        "lrfind": lambda: find_lr(data_copy, config(), tmp_path / "run"),
        "cv": lambda: run_cv(data_copy, config(), tmp_path / "cv", folds=2, report=False, show=False),
        "baseline": lambda: run_baseline(data_copy, tmp_path / "b", ["logreg"], progress=False),
    }
    try:
        for name, command in commands.items():
            with pytest.raises(MerError, match=r"prepare` \(PID 4242\) is changing this data set; wait"):
                command()
            assert not (tmp_path / "run").exists(), name
    finally:
        os.close(handle)

    def fit(dataset, *_args):  # while training, prepare is refused
        with (
            pytest.raises(MerError, match=rf"\(PID {os.getpid()}\) is reading this data set"),
            excluding_readers(dataset.path),
        ):
            pass
        raise RuntimeError("checked")

    monkeypatch.setattr(train_module, "_fit", fit)
    with pytest.raises(RuntimeError, match="checked"):
        train(data_copy, config(), tmp_path / "run", show=False)
    with excluding_readers(data_copy):  # and released afterwards
        pass


def test_an_image_lost_while_training_is_one_line(data_copy, tmp_path, monkeypatch):
    build = train_module._learner

    def learner_then_lose_an_image(dataset, config, run_dir):
        learn = build(dataset, config, run_dir)
        first_image(dataset.path, "valid").unlink()  # deleted behind the toolkit's back
        return learn

    monkeypatch.setattr(train_module, "_learner", learner_then_lose_an_image)
    with pytest.raises(MerError) as error:  # images read from disk batch by batch, by a DataLoader worker
        train(data_copy, replace(config(), cache=False, num_workers=1), tmp_path / "run", show=False)
    message = str(error.value)
    assert "\n" not in message and "an image could not be read during training" in message, message
    assert "No such file or directory" in message and REPAIR in message
