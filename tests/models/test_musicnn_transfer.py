"""musicnn as a table architecture: `prepare --spectrogram musicnn` → train (freeze, whole) → predict from audio.

The port's equality with the original is proved from audio by `test_musicnn.py`; here the same reference outputs
are reached through the toolkit's own path (prepare's 16-bit images, the data loaders' scaling, the transfer body).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mer_fastai.api.training import train
from mer_fastai.data.dataset import read_manifest, read_spec
from mer_fastai.data.png import read_png16
from mer_fastai.data.spectrogram import musicnn_spec
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.musicnn import weights
from mer_fastai.models.musicnn.transfer import transfer_model
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.training.config import TrainConfig
from tests.fixtures.musicnn.clips import write_clips
from tests.test_cli import run_main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "musicnn"
TAG_TOLERANCE = 1e-3  # as test_musicnn.py; the 16-bit images add at most 1.3e-4 to each input value


@pytest.fixture(scope="module")
def pretrained() -> None:
    """The musicnn weights in the user cache, got as a user gets them; skipped only when they cannot be fetched."""
    try:
        weights.get_weights(models=["msd", "mtt"])
    except MerError as exc:
        pytest.skip(f"the musicnn weights cannot be fetched: {exc}")


@pytest.fixture(scope="module")
def clips_data(tmp_path_factory) -> Path:
    """The reference clips, one class folder each, prepared with `--spectrogram musicnn`."""
    root = tmp_path_factory.mktemp("musicnn")
    for name, path in write_clips(root / "flat").items():
        (root / "audio" / name).mkdir(parents=True)
        shutil.move(path, root / "audio" / name / path.name)
    prepare_dataset(root / "audio", root / "data", "emotions", spec=musicnn_spec(), valid_pct=0.34, progress=False)
    return root / "data"


def test_prepared_images_feed_the_port_as_the_original(pretrained, clips_data):
    reference = np.load(FIXTURES / "reference.npz")
    rows = read_manifest(clips_data)
    assert read_spec(clips_data) == musicnn_spec()
    for model in ("msd", "mtt"):
        network = transfer_model(model, pretrained=True).eval()
        for clip in ("chords", "beat", "sweep"):
            mine = sorted((r for r in rows if r.clip_id == f"{clip}/{clip}"), key=lambda r: r.segment_start)
            images = np.stack([read_png16(clips_data / r.image) for r in mine]).astype(np.float32) / 65535
            batch = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1)  # as the loaders feed them
            with torch.no_grad():
                tags = torch.sigmoid(network(batch)).numpy()
            expected = reference[f"{clip}.{model}.tags"]  # the original's full patches (ours may add a last one)
            assert len(tags) >= len(expected) > 0
            np.testing.assert_allclose(tags[: len(expected)], expected, rtol=0, atol=TAG_TOLERANCE, err_msg=clip)
            for ours, theirs in zip(tags, expected):
                assert set(np.argsort(-ours)[:5]) == set(np.argsort(-theirs)[:5]), (clip, model)


@pytest.fixture(scope="module")
def freeze_run(pretrained, clips_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "freeze"
    config = TrainConfig(arch="musicnn-msd", mode="freeze", epochs=1, bs=4, lr=0.01).check()
    train(clips_data, config, out, show=False)
    return out


def test_freeze_trains_the_head_on_cached_features(freeze_run):
    metrics = json.loads((freeze_run / "metrics.json").read_text())
    assert metrics["cached_features"] is True and metrics["weights"] == "pretrained"
    assert metrics["mode"] == "freeze" and 0 <= metrics["accuracy"] <= 1


def test_predict_from_audio_feeds_the_model_as_training_did(freeze_run, clips_data):
    """The windows `predict` cuts from audio are the prepared images, so their outputs are the validation ones."""
    predictor = Predictor.load(freeze_run)
    assert predictor.spec == musicnn_spec()
    rows = [r for r in read_manifest(clips_data) if r.split == "valid"]
    source = Path(rows[0].source)
    mine = sorted((r for r in rows if r.source == rows[0].source), key=lambda r: r.segment_start)
    prepared = predictor.logits([read_png16(clips_data / r.image) for r in mine])
    _, starts, images = predictor.window_images(source, *predictor.window_settings())
    assert starts == pytest.approx([r.segment_start for r in mine], abs=1e-3)
    torch.testing.assert_close(predictor.logits(images), prepared)


def test_whole_mode_trains_every_layer(pretrained, clips_data, tmp_path):
    config = TrainConfig(arch="musicnn-mtt", mode="whole", epochs=1, bs=4, lr=0.001).check()
    result = train(clips_data, config, tmp_path / "whole", show=False)
    assert result.metrics["cached_features"] is False
    before = transfer_model("mtt", pretrained=True)[0].frontend.state_dict()
    after = Predictor.load(tmp_path / "whole").model[0][0].frontend.state_dict()  # fastai's body: Sequential(body)
    changed = [name for name, tensor in before.items() if not torch.equal(tensor, after[name].cpu())]
    assert changed, "whole mode left musicnn's frontend as it was"


@pytest.mark.parametrize("name", ["musicnn-msd", "musicnn-mtt"])
def test_musicnn_trains_one_batch_with_a_body_head_split(clips_data, tmp_path, name):
    """As every table architecture (test_archs.py): two parameter groups (body, head), gradients in both."""
    from mer_fastai.models.archs import get_arch
    from mer_fastai.training.learner import build_learner, set_mode
    from mer_fastai.training.tensor_loaders import memory_dataloaders

    spec = get_arch(name)
    dls = memory_dataloaders(clips_data, size=read_spec(clips_data).native_size, bs=2, stats=spec.stats)
    learn = build_learner(dls, spec, "none", tmp_path)
    set_mode(learn, "whole")
    learn.model.train()
    xb, yb = dls.one_batch()
    assert xb.shape[1:] == (3, 96, 187) and float(xb.max()) <= 1.0
    learn.loss_func(learn.model(xb), yb).backward()
    body, head = learn.model[0], learn.model[1]
    groups = learn.splitter(learn.model)
    assert len(groups) == 2 and {id(p) for p in groups[0]} == {id(p) for p in body.parameters()}
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in body.parameters())
    assert all(p.grad is not None for p in head.parameters())


def test_musicnn_without_weights_is_the_same_net_from_scratch(clips_data, tmp_path):
    config = TrainConfig(arch="musicnn-msd", mode="whole", epochs=1, bs=4, lr=0.001, weights="none").check()
    assert train(clips_data, config, tmp_path / "scratch", show=False).metrics["weights"] == "none"


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--arch", "musicnn-msd", "--size", "96"], "reads its musicnn spectrograms at their own size"),
        (["--arch", "musicnn-msd", "--weights", "imagenet"], "pretrained on the Million Song Dataset, not ImageNet"),
        (["--arch", "musicnn-msd", "--no-cache"], "keep --cache on"),
        (["--arch", "squeezenet1_0", "--weights", "none"], "prepare the data set without --spectrogram"),
    ],
)
def test_train_refuses_what_does_not_fit_in_one_line(clips_data, tmp_path, capsys, monkeypatch, args, phrase):
    command = ["train", str(clips_data), *args, "--epochs", "1", "--out", str(tmp_path / "r")]
    code, err = run_main(command, capsys, monkeypatch)
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (the tiny set also warns)
    assert code == 2 and len(errors) == 1 and phrase in errors[0] and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


def test_a_db_data_set_is_refused_for_musicnn_naming_the_prepare_option(tiny_data, tmp_path, capsys, monkeypatch):
    code, err = run_main(["train", str(tiny_data), "--arch", "musicnn-msd", "--out", str(tmp_path / "r")], capsys,
                         monkeypatch)  # fmt: skip
    assert code == 2 and "--spectrogram musicnn" in err and len(err.strip().splitlines()) == 1, err


def test_prepare_refuses_settings_the_preset_sets(tmp_path, capsys, monkeypatch):
    paths = write_clips(tmp_path / "audio" / "a")
    shutil.copy(paths["beat"], tmp_path / "audio" / "b.wav")
    code, err = run_main(["prepare", str(tmp_path / "audio"), "--feature", "emotions", "--spectrogram", "musicnn",
                          "--n-mels", "128", "--out", str(tmp_path / "d")], capsys, monkeypatch)  # fmt: skip
    assert code == 2 and "drop --n-mels" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


def test_a_test_split_is_scored_through_the_16_bit_images(pretrained, tmp_path):
    """The final model's test scores read the 16-bit images as they are (no 8-bit conversion on the way)."""
    import soundfile as sf

    rate = 16000
    t = np.arange(int(3.2 * rate)) / rate
    for k in range(6):
        label, freq = ("low", 110.0 * (k + 1)) if k % 2 else ("high", 2000.0 + 300 * k)
        path = tmp_path / "audio" / label / f"{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    data = tmp_path / "data"
    prepare_dataset(tmp_path / "audio", data, "emotions", spec=musicnn_spec(), valid_pct=0.34, test_pct=0.34,
                    progress=False)  # fmt: skip
    config = TrainConfig(arch="musicnn-msd", mode="freeze", epochs=1, bs=2, lr=0.01).check()
    result = train(data, config, tmp_path / "run", show=False)
    test = result.metrics["test"]
    assert test["n_tracks"] == 2 and 0 <= test["accuracy"] <= 1
    predictor = Predictor.load(tmp_path / "run")
    rows = [r for r in read_manifest(data) if r.split == "test"]
    probs = torch.softmax(predictor.logits([read_png16(data / r.image) for r in rows]), dim=1).numpy()
    truth = [predictor.classes.index(r.label) for r in rows]
    assert test["accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == truth)))


def test_8_bit_extra_images_are_refused_for_16_bit_data_sets(clips_data, tiny_data):
    """GAN or --augment-dir images are dB images: never mixed, as silent near-zero inputs, into musicnn's."""
    config = TrainConfig(
        arch="musicnn-msd", mode="freeze", epochs=1, bs=2, lr=0.01, extra_train_dirs=[str(tiny_data / "train")]
    )
    with pytest.raises(MerError, match="extra training images are 8-bit dB spectrograms"):
        train(clips_data, config.check(), clips_data.parent / "refused", show=False)
    from mer_fastai.gan.train import train_gan

    with pytest.raises(MerError, match="gan train makes 8-bit dB spectrograms"):
        train_gan(clips_data, clips_data.parent / "gan", steps=1)


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        (["stages=[{name: m, dataset: clips, features: [emotions], augmentations: [dirs]}]", "augment_dirs=[x]"],
         "adds 8-bit dB images, which musicnn-msd does not read"),
        (["norm=dataset"], "keep 'cache' on, 'norm' arch"),
        (["augment=study"], "keep 'cache' on, 'norm' arch"),
    ],
)  # fmt: skip
def test_recipes_refuse_musicnn_settings_that_cannot_work_before_anything_runs(overrides, phrase):
    from mer_fastai.experiments.recipe import load_recipe

    with pytest.raises(MerError, match=phrase):
        load_recipe("musicnn", overrides)


@pytest.mark.parametrize("task", ["regression", "multilabel"])
def test_musicnn_learns_ratings_and_moods_too(pretrained, tmp_path, task):
    """Every task goes through the same body: a regression head in the targets' range, a multilabel one per mood."""
    import soundfile as sf

    rate, t = 16000, np.arange(int(3.2 * 16000)) / 16000
    rows = []
    for k in range(6):
        path = tmp_path / "audio" / f"{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * 150.0 * (k + 1) * t)).astype(np.float32), rate)
        rows.append(f"{k},{1 + k},{9 - k},{k % 2},{1 - k % 2}")
    (tmp_path / "labels.csv").write_text("file,valence,energy,calm,tense\n" + "\n".join(rows) + "\n")
    targets = ["valence", "energy"] if task == "regression" else ["calm", "tense"]
    data = tmp_path / "data"
    prepare_dataset(tmp_path / "audio", data, None, tmp_path / "labels.csv", spec=musicnn_spec(), valid_pct=0.34,
                    id_column="file", task=task, targets=targets, progress=False)  # fmt: skip
    config = TrainConfig(arch="musicnn-msd", mode="freeze", epochs=1, bs=2, lr=0.01).check()
    result = train(data, config, tmp_path / "run", show=False)
    assert result.metrics["cached_features"] is True
    predictor = Predictor.load(tmp_path / "run")
    assert predictor.task == task and predictor.classes == targets
    outputs = predictor.outputs(predictor.logits([read_png16(p) for p in sorted((data / "valid").rglob("*.png"))]))
    if task == "regression":  # the head ends in each target's own range
        assert (outputs[:, 0] >= 1 - 1e-6).all() and (outputs[:, 0] <= 6 + 1e-6).all()
    else:
        assert ((outputs >= 0) & (outputs <= 1)).all()


def test_freeze_validation_from_cached_features_equals_the_predictor(freeze_run, clips_data):
    """The run's validation window probabilities (its head on the body's cached features) are what `Predictor`
    computes from the same images through the whole saved network, to 1e-5."""
    import csv

    predictor = Predictor.load(freeze_run, device="cpu")
    with (freeze_run / "valid_predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    images = [read_png16(clips_data / row["image"]) for row in rows]
    expected = predictor.outputs(predictor.logits(images))
    written = np.array([[float(row[f"prob_{name}"]) for name in predictor.classes] for row in rows])
    np.testing.assert_allclose(written, expected, atol=1e-5)  # the file keeps 6 decimals
    metrics = json.loads((freeze_run / "metrics.json").read_text())
    truth = [predictor.classes.index(row["true"]) for row in rows]
    assert metrics["accuracy"] == pytest.approx(float(np.mean(expected.argmax(axis=1) == truth)))
