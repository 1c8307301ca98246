"""`--augment-audio K`: augmented copies of the training clips, made on the audio, cached by key, training only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mer_fastai.api.training import train
from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.data.png import read_png16
from mer_fastai.errors import MerError
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.tasks.opened import open_dataset
from mer_fastai.training.audio_augment import CACHE_DIR, DONE_FILE, _rng, augment_signal, augmented_data, parse_kinds
from mer_fastai.training.config import TrainConfig
from tests.conftest import TINY_SPEC


def tiny(**overrides) -> TrainConfig:
    values = {"arch": "squeezenet1_0", "weights": "none", "epochs": 1, "bs": 4, "size": 48, "num_workers": 0,
              "lr": 1e-2, "augment_audio": 1}  # fmt: skip
    return TrainConfig(**{**values, **overrides})


def test_each_kind_changes_the_audio_reproducibly():
    rate = 22050
    signal = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    for kind in ("pitch", "stretch", "gain", "noise"):
        once = augment_signal(signal, rate, (kind,), _rng(42, "a/clip", 0))
        again = augment_signal(signal, rate, (kind,), _rng(42, "a/clip", 0))
        other = augment_signal(signal, rate, (kind,), _rng(42, "a/clip", 1))
        np.testing.assert_array_equal(once, again)
        assert once.dtype == np.float32 and not np.array_equal(once[: len(other)], other[: len(once)])
        assert len(once) == len(signal) or kind == "stretch"
    gained = augment_signal(signal, rate, ("gain",), _rng(1, "x", 0))
    ratio = gained[signal != 0] / signal[signal != 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and 10 ** (-6 / 20) <= ratio[0] <= 10 ** (6 / 20)


def test_unknown_kinds_are_one_clear_error():
    assert parse_kinds("noise, pitch,noise") == ("noise", "pitch")
    with pytest.raises(MerError, match="--augment-audio-kinds 'echo': unknown kind echo; choose from pitch"):
        parse_kinds("echo")
    with pytest.raises(MerError, match="--augment-audio-kinds pitch,reverb: choose from"):
        TrainConfig(arch="melcnn", weights="none", augment_audio_kinds="pitch,reverb").check()


def test_the_view_adds_copies_of_training_clips_only(tiny_data, tmp_path):
    rows = read_manifest(tiny_data)
    config = tiny(augment_audio=2, augment_audio_kinds="gain,noise")
    stage = tmp_path / "out" / ".staging"
    view = augmented_data(open_dataset(tiny_data), config, tmp_path / "out", stage)
    listed = read_manifest(view.path)
    assert list(view.rows) == listed and view.info == read_info(view.path)  # the record of what was written
    assert listed[: len(rows)] == rows  # the originals first, in manifest order (validation order unchanged)
    copies = listed[len(rows) :]
    train_windows = [r for r in rows if r.split == "train"]
    assert len(copies) == 2 * len(train_windows) and all(r.split == "train" for r in copies)
    assert {r.clip_id for r in copies} == {r.clip_id for r in train_windows}
    assert all(r.label == next(o.label for o in rows if o.clip_id == r.clip_id) for r in copies)
    assert all((view.path / r.image).exists() for r in listed)
    (folder,) = (tmp_path / "out" / CACHE_DIR).iterdir()
    made = (folder / DONE_FILE).stat().st_mtime_ns
    augmented_data(open_dataset(tiny_data), config, tmp_path / "out", stage)  # same settings: reused
    assert (folder / DONE_FILE).stat().st_mtime_ns == made
    augmented_data(open_dataset(tiny_data), tiny(augment_audio=1), tmp_path / "out", stage)
    (renewed,) = (tmp_path / "out" / CACHE_DIR).iterdir()  # new settings: remade, the old key's copies removed
    assert renewed != folder


def _task_data(tmp_path, task: str):
    rate = 22050
    t = np.arange(int(2.2 * rate)) / rate
    rows = []
    for k in range(8):
        path = tmp_path / "audio" / f"{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * 110.0 * (k + 1) * t)).astype(np.float32), rate)
        rows.append(f"{k},{1 + k},{9 - k},{k % 2},{1 - k % 2}")
    (tmp_path / "labels.csv").write_text("file,valence,energy,calm,tense\n" + "\n".join(rows) + "\n")
    targets = ["valence", "energy"] if task == "regression" else ["calm", "tense"]
    prepare_dataset(tmp_path / "audio", tmp_path / "data", None, tmp_path / "labels.csv", spec=TINY_SPEC,
                    valid_pct=0.25, id_column="file", task=task, targets=targets, progress=False)  # fmt: skip
    return tmp_path / "data"


@pytest.mark.parametrize("task", ["classification", "regression", "multilabel"])
@pytest.mark.parametrize("mode", ["freeze", "partial"])
def test_training_reads_the_copies_through_the_frozen_body_cache(tiny_data, tmp_path, task, mode):
    data = tiny_data if task == "classification" else _task_data(tmp_path, task)
    result = train(data, tiny(mode=mode), tmp_path / "run", show=False)
    assert result.metrics["cached_features"] is True  # the copies went through the cache like the originals
    (folder,) = (tmp_path / "run" / CACHE_DIR).iterdir()
    copies = json.loads((folder / DONE_FILE).read_text())
    assert len(copies) == sum(r.split == "train" for r in read_manifest(data))
    valid = sum(r.split == "valid" for r in read_manifest(data))
    predictions = (tmp_path / "run" / "valid_predictions.csv").read_text().strip().splitlines()
    assert len(predictions) == valid + 1  # scored on the validation windows only, none augmented
    assert not (tmp_path / "run" / ".staging").exists()


def test_16_bit_copies_are_the_data_sets_format(tmp_path):
    from mer_fastai.data.spectrogram import musicnn_spec

    rate = 16000
    t = np.arange(int(6.5 * rate)) / rate
    for k, label in enumerate(["a", "a", "b", "b"]):
        path = tmp_path / "audio" / label / f"{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * 200.0 * (k + 1) * t)).astype(np.float32), rate)
    data = tmp_path / "data"
    prepare_dataset(tmp_path / "audio", data, "x", spec=musicnn_spec(), valid_pct=0.5, progress=False)
    view = augmented_data(open_dataset(data), tiny(), tmp_path / "out", tmp_path / "stage").path
    copy = read_manifest(view)[-1]
    original = read_png16(data / read_manifest(data)[0].image)
    image = read_png16(view / copy.image)
    assert image.dtype == np.uint16 and image.shape == original.shape == (96, 187)


def test_a_clip_changed_since_prepare_is_refused_not_copied_under_its_old_label(tmp_path):
    """A training clip's file replaced by another recording after prepare: its copies would carry the old label."""
    from mer_fastai.data.synth import make_demo_audio

    audio = make_demo_audio(tmp_path / "audio", clips_per_class=2, seconds=1.0, seed=2)
    prepare_dataset(audio, tmp_path / "data", "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=1, progress=False)
    (clip,) = [r for r in read_manifest(tmp_path / "data") if r.split == "train" and r.label == "happy"][:1]
    sad = next(r for r in read_manifest(tmp_path / "data") if r.label == "sad")
    (audio / f"{clip.clip_id}.wav").write_bytes((audio / f"{sad.clip_id}.wav").read_bytes())
    with pytest.raises(MerError, match=f"the audio of training clip {clip.clip_id} changed since prepare read it"):
        augmented_data(open_dataset(tmp_path / "data"), tiny(augment_audio=1), tmp_path / "out", tmp_path / "stage")
