"""`Predictor` and `mer-fastai predict`: training-exact preprocessing, windows, formats, bad files."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from typer.testing import CliRunner

from mer_fastai.api.training import train
from mer_fastai.cli.main import app
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.inference.tracks import TrackPrediction
from mer_fastai.inference.writing import write_predictions
from mer_fastai.models.modelfile import load_model, read_model_file, save_model_file
from mer_fastai.training.fit import TrainConfig

TINY_CONFIG = TrainConfig(
    arch="squeezenet1_0", mode="whole", weights="none", epochs=1, bs=4, size=64, num_workers=0, lr=1e-3
)
_RUNS: dict[str, Path] = {}


def train_run(data: Path, out: Path, config: TrainConfig = TINY_CONFIG) -> Path:
    """Train `config` on a prepared data set; returns the run folder."""
    import fastai.callback.schedule  # noqa: F401  (patches Learner.fit_one_cycle; train needs it with a fixed lr)

    train(data, config, out, show=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_data) -> Path:
    """A run folder: squeezenet trained one epoch on the tiny synthetic data set (4 emotion classes).

    Trained once per session even though the other test modules import this fixture.
    """
    if str(tiny_data) not in _RUNS:
        _RUNS[str(tiny_data)] = train_run(tiny_data, tmp_path_factory.mktemp("run"))
    return _RUNS[str(tiny_data)]


@pytest.fixture(scope="session")
def predictor(tiny_run) -> Predictor:
    return Predictor.load(tiny_run, device="cpu", bs=3)


def test_predictor_matches_the_training_pipeline(tiny_run, tiny_data, predictor):
    """Same normalised batch as fastai's validation DataLoader, and the learner's logits."""
    from mer_fastai.models.archs import get_arch
    from mer_fastai.training.learner import build_learner
    from mer_fastai.training.loaders import load_dataloaders

    meta = predictor.meta
    spec = get_arch(meta.arch)
    dls = load_dataloaders(tiny_data, size=meta.input_size, bs=4, stats=spec.stats, num_workers=0)
    learn = build_learner(dls, spec, "none", tiny_run)
    learn.model.load_state_dict(predictor.model.state_dict())
    pngs = sorted((tiny_data / "valid").rglob("*.png"))[:5]
    test_dl = dls.test_dl(pngs, bs=5)
    images = [np.asarray(Image.open(p)) for p in pngs]
    assert torch.equal(test_dl.one_batch()[0].as_subclass(torch.Tensor), predictor.preprocess(images))
    expected, _ = learn.get_preds(dl=test_dl, act=lambda x: x)
    assert torch.allclose(predictor.logits(images), expected, atol=1e-5)


def test_model_file_round_trip_gives_identical_logits(tiny_run, tmp_path, predictor):
    model, meta = load_model(tiny_run)
    copy = save_model_file(tmp_path / "copy.safetensors", model, meta)
    reloaded, again = load_model(copy)
    assert again == meta and again.classes == ("angry", "happy", "sad", "tender")
    assert again.spec.segment_seconds == 1.0 and again.input_size == 64
    batch = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(batch), reloaded(batch))
    state, _ = read_model_file(copy)
    assert all(torch.equal(state[k], v) for k, v in predictor.model.state_dict().items())


def test_crop_resize_matches_fastai_study_validation(predictor, tiny_data):
    """Models trained with the study augmentation see centre crops at validation; so must prediction."""
    from fastai.vision.augment import RandomResizedCrop
    from fastai.vision.core import PILImage

    crop = Predictor(predictor.model, dataclasses.replace(predictor.meta, resize="crop"), device="cpu")
    png = next((tiny_data / "valid").rglob("*.png"))
    expected = RandomResizedCrop(64)(PILImage.create(png), split_idx=1)
    pixels = torch.from_numpy(np.asarray(expected)).permute(2, 0, 1)[None].float() / 255
    normalised = (pixels - crop.mean) / crop.std
    assert torch.equal(crop.preprocess([np.asarray(Image.open(png))]), normalised)


@pytest.mark.parametrize(
    ("loader", "augment", "resize", "size"),
    [
        ("fastai", "none", "squish", 64),
        ("fastai", "none", "squish", 60),
        ("fastai", "study", "crop", 64),
        ("fastai", "study", "crop", 60),
        ("tensor", "none", "squish", 64),
    ],
)
def test_preprocess_equals_the_training_validation_batches(predictor, tiny_data, loader, augment, resize, size):
    """Prediction's input is the validation batch training saw, for both resize policies and both loaders."""
    from mer_fastai.training.loaders import load_dataloaders
    from mer_fastai.training.tensor_loaders import memory_dataloaders

    stats = predictor.meta.stats
    dls = load_dataloaders(tiny_data, size=size, bs=64, stats=stats, augment=augment, num_workers=0)
    pngs = list(dls.valid_ds.items)  # the validation order: the in-memory loader keeps the same one
    if loader == "tensor":
        dls = memory_dataloaders(tiny_data, size=size, bs=64, stats=stats, augment=augment)
    expected = torch.cat([images.as_subclass(torch.Tensor) for images, _ in dls.valid]).cpu()
    policy = Predictor(
        predictor.model, dataclasses.replace(predictor.meta, input_size=size, resize=resize), device="cpu"
    )
    batch = policy.preprocess([np.asarray(Image.open(png)) for png in pngs])
    assert len(pngs) >= 4 and batch.shape == expected.shape == (len(pngs), 3, size, size)
    assert torch.allclose(batch, expected, rtol=0, atol=1e-6)


def clip(tiny_audio: Path, name: str = "happy/happy_00.wav") -> tuple[np.ndarray, int]:
    signal, rate = soundfile.read(tiny_audio / name, dtype="float32")
    return signal, rate


def test_clip_shorter_than_one_window(predictor, tiny_audio, tmp_path):
    signal, rate = clip(tiny_audio)
    short = tmp_path / "short.wav"
    soundfile.write(short, signal[: int(0.4 * rate)], rate)
    result = predictor.predict(short)
    assert isinstance(result, TrackPrediction)
    assert [w.start for w in result.windows] == [0.0]
    assert result.duration == pytest.approx(0.4, abs=1e-3)
    assert result.label in predictor.classes and result.windows[0].label in predictor.classes
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_long_clip_windows_and_aggregation(predictor, tiny_audio, tmp_path):
    parts = [clip(tiny_audio, f"{name}/{name}_0{i}.wav")[0] for i in range(3) for name in ("sad", "angry")]
    long = tmp_path / "long.flac"
    soundfile.write(long, np.concatenate(parts), 22050)  # 12 s
    result = predictor.predict(long)
    assert [w.start for w in result.windows] == [float(s) for s in range(12)]
    mean = {c: np.mean([w.probabilities[c] for w in result.windows]) for c in predictor.classes}
    assert result.probabilities == pytest.approx(mean, abs=1e-5)
    assert result.label == max(mean, key=mean.get)

    start, label, probabilities = result.windows[3]  # windows unpack as (start, label, probabilities)
    assert start == 3.0 and label == max(probabilities, key=probabilities.get)

    overlapping = predictor.predict(long, window=2.0, hop=0.5)
    assert [w.start for w in overlapping.windows] == [s / 2 for s in range(22)]  # last: 10.5-12 s
    voted = predictor.predict(long, aggregate="vote")
    counts = {c: sum(w.label == c for w in voted.windows) for c in predictor.classes}
    assert counts[voted.label] == max(counts.values())


def test_stereo_48k_wav_and_mp3(predictor, tiny_audio, tmp_path):
    signal, rate = clip(tiny_audio)
    mono = predictor.predict(tiny_audio / "happy/happy_00.wav")
    soundfile.write(tmp_path / "stereo.wav", np.stack([signal, signal], axis=1), rate)
    stereo = predictor.predict(tmp_path / "stereo.wav")
    assert stereo.probabilities == pytest.approx(mono.probabilities, abs=1e-5)  # downmix of equal channels

    import librosa

    high = librosa.resample(signal, orig_sr=rate, target_sr=48000)
    soundfile.write(tmp_path / "hi.wav", np.stack([high, 0.5 * high], axis=1), 48000, subtype="PCM_16")
    soundfile.write(tmp_path / "song.mp3", signal, rate, format="MP3")
    for name in ("hi.wav", "song.mp3"):
        result = predictor.predict(tmp_path / name)
        assert [w.start for w in result.windows] == [0.0, 1.0]
        assert result.duration == pytest.approx(2.0, abs=0.06)  # mp3 adds encoder padding
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_many_skips_bad_files_and_recurses(predictor, tiny_audio, tmp_path):
    nested = tmp_path / "in" / "deeper"
    nested.mkdir(parents=True)
    signal, rate = clip(tiny_audio)
    soundfile.write(nested / "good.wav", signal, rate)
    (tmp_path / "in" / "broken.mp3").write_bytes(b"ID3 this is not audio" * 50)
    (tmp_path / "in" / "empty.wav").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("ignored: not an audio extension")
    result = predictor.predict_many([tmp_path / "in"])
    assert [Path(t.file).name for t in result] == ["good.wav"]
    assert sorted(Path(s.file).name for s in result.skipped) == ["broken.mp3", "empty.wav"]
    assert all("decode" in s.reason or "no audio" in s.reason for s in result.skipped)


def test_bad_settings_are_clear_errors(predictor, tiny_audio):
    wav = tiny_audio / "happy/happy_00.wav"
    with pytest.raises(MerError, match=r"--window \(seconds\) must be a number above 0 and at most 3600 \(got 0\)"):
        predictor.predict(wav, window=0)
    with pytest.raises(MerError, match=r"--hop \(seconds\) must be a number above 0"):
        predictor.predict(wav, hop=float("nan"))
    with pytest.raises(MerError, match="unknown aggregation 'median'"):
        predictor.predict(wav, aggregate="median")
    with pytest.raises(MerError, match="no such file"):
        predictor.predict_many([wav.parent / "missing.wav"])


runner = CliRunner()


def test_cli_predict_writes_json_and_csv(tiny_run, tiny_audio, tmp_path):
    out = tmp_path / "p.json"
    result = runner.invoke(app, ["predict", str(tiny_run), str(tiny_audio), "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert len(document["tracks"]) == 16 and document["skipped"] == []
    assert document["classes"] == ["angry", "happy", "sad", "tender"] and document["window"] == 1.0
    for track in document["tracks"]:
        assert set(track) == {"file", "label", "probabilities", "duration", "windows"}
        assert [w["start"] for w in track["windows"]] == [0.0, 1.0]
        assert track["windows"][0]["end"] == 1.0 and set(track["windows"][0]["probabilities"]) == set(
            document["classes"]
        )

    table = tmp_path / "p.csv"
    result = runner.invoke(
        app, ["predict", str(tiny_run / "model.safetensors"), str(tiny_audio / "happy"), "-o", str(table)]
    )
    assert result.exit_code == 0, result.output
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    by_file = {t["file"]: t for t in document["tracks"]}
    assert len(rows) == 4 and all(r["label"] == by_file[r["file"]]["label"] and r["windows"] == "2" for r in rows)
    assert float(rows[0]["prob_sad"]) == pytest.approx(by_file[rows[0]["file"]]["probabilities"]["sad"])

    result = runner.invoke(app, ["predict", str(tiny_run), str(tiny_audio / "sad"), "--format", "json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["tracks"]) == 4


def test_cli_predict_bad_format_is_mer_error(tiny_run, tiny_audio):
    result = runner.invoke(app, ["predict", str(tiny_run), str(tiny_audio / "sad"), "--format", "xml"])
    assert isinstance(result.exception, MerError) and "unknown --format 'xml'" in str(result.exception)


def test_cli_predict_refuses_a_bad_out_before_predicting(tiny_run, tiny_audio, tmp_path):
    for out, extra, message in (
        (tmp_path, [], "is a folder"),
        (tmp_path / "x.csv", ["--format", "json"], "the extension says csv"),
        (tmp_path / "x.xml", [], "unknown extension"),
    ):
        result = runner.invoke(app, ["predict", str(tiny_run), str(tiny_audio / "sad"), "--out", str(out), *extra])
        assert isinstance(result.exception, MerError) and message in str(result.exception)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temporary_file(predictor, tiny_audio, tmp_path, monkeypatch):
    predictions = predictor.predict_many([tiny_audio / "sad" / "sad_00.wav"])
    out = tmp_path / "p.json"
    write_predictions(predictions, predictor, out, "json")
    before = out.read_bytes()

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(MerError, match=r"p.json: could not be written \(the disk is full"):
        write_predictions(predictions, predictor, out, "csv")
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"] and out.read_bytes() == before


def test_cli_predict_table_names_each_track_by_its_path(tiny_run, tiny_audio, tmp_path, monkeypatch):
    """Two clips of one file name in two folders are two rows of the terminal table, each named by its path."""
    signal, rate = clip(tiny_audio)
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        soundfile.write(tmp_path / "in" / folder / "take.wav", signal, rate)
    result = runner.invoke(app, ["predict", str(tiny_run), str(tmp_path / "in")], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"2track(s)in{tmp_path / 'in'}" in "".join(result.stdout.split())  # the title, however it wraps
    for folder in ("a", "b"):
        assert f"{folder}/take.wav" in result.stdout
    # one file named relative to the working folder, the other absolute: one table, both named below their folder
    monkeypatch.chdir(tmp_path / "in")
    mixed = runner.invoke(app, ["predict", str(tiny_run), "a/take.wav", str(tmp_path / "in" / "b" / "take.wav")])
    assert mixed.exit_code == 0, mixed.output
    assert "a/take.wav" in mixed.stdout and "b/take.wav" in mixed.stdout
