"""`baseline --features`: linear probes of musicnn's layers, melodic features, their fusion, the linear estimator."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.data.synth import make_demo_audio
from mer_fastai.evaluation.baseline import featuresets, models, probes
from mer_fastai.evaluation.baseline.classic import run_baseline
from mer_fastai.evaluation.baseline.features import HANDCRAFTED, extract_features
from mer_fastai.evaluation.baseline.melodic import MELODIC_NAMES, RATE, melodic_features
from mer_fastai.preparation.prepare import prepare_dataset
from tests.test_cli import run_main

SPEC = SpecConfig(segment_seconds=1.0, n_mels=32)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """4 demo classes × 4 clips of 2 s → 1 s windows; a quarter of the clips validate."""
    root = tmp_path_factory.mktemp("probes")
    audio = make_demo_audio(root / "audio", clips_per_class=4, seconds=2.0, seed=5)
    prepare_dataset(audio, root / "data", "emotions", spec=SPEC, valid_pct=0.25, workers=1, progress=False)
    return root / "data"


def _manifest(data: Path) -> list[dict]:
    with (data / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def _clip(tmp_path: Path, seconds: float, mood: str) -> Path:
    """One demo clip of `seconds` with the cues of `mood`."""
    from mer_fastai.data.synth import DEMO_CLASSES

    audio = make_demo_audio(tmp_path / "audio", clips_per_class=1, seconds=seconds, classes={mood: DEMO_CLASSES[mood]})
    return audio / mood / f"{mood}_00.wav"


def _tone(midi: float, seconds: float, vibrato_cents: float = 0.0, rate: float = 6.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    frequency = 440 * 2 ** ((midi - 69 + vibrato_cents / 100 * np.sin(2 * np.pi * rate * t)) / 12)
    return 0.5 * np.sin(2 * np.pi * np.cumsum(frequency) / RATE)


def test_layers_equal_the_tested_reference_path(musicnn_ready, tmp_path):
    """The probe's forward pass gives what `musicnn_tags` / `musicnn_features` (tested against the original
    package) give for every patch of a clip."""
    from mer_fastai.models.musicnn.preprocessing import audio_patches
    from mer_fastai.models.musicnn.probe import layer_outputs
    from mer_fastai.models.musicnn.tags import musicnn_features, musicnn_tags

    clip = _clip(tmp_path, 7.0, "happy")
    for model in ("msd", "mtt"):
        outputs = layer_outputs(audio_patches(clip), model)
        assert outputs["tags"].shape == (2, 50) and outputs["pooled"].shape == (2, probes.POOLED_UNITS)
        np.testing.assert_allclose(outputs["tags"], musicnn_tags(clip, model), atol=1e-5)
        np.testing.assert_allclose(outputs["penultimate"], musicnn_features(clip, model), atol=1e-4)


def test_a_window_is_the_mean_and_sd_of_its_patches(musicnn_ready, tmp_path):
    """A 6.5 s window from 0.5 s: two 3 s patches, their layer's mean then sd; a 1 s window is one short patch."""
    from mer_fastai.models.musicnn.preprocessing import load_musicnn_audio, log_mel
    from mer_fastai.models.musicnn.tags import musicnn_features
    from mer_fastai.models.musicnn.weights import load_musicnn

    clip = _clip(tmp_path, 8.0, "sad")
    signal = load_musicnn_audio(clip)
    window = signal[8000 : 8000 + 6 * 16000 + 8000]
    soundfile.write(tmp_path / "window.wav", window, 16000, subtype="FLOAT")
    patches = musicnn_features(tmp_path / "window.wav", "msd")
    assert patches.shape == (2, 200)
    rows, error = probes.probe_source(str(clip), [("w", 0.5)], {"segment_seconds": 6.5}, None, model="msd",
                                      layer="penultimate")  # fmt: skip
    assert error is None
    np.testing.assert_allclose(rows["w"], np.concatenate([patches.mean(0), patches.std(0)]), atol=1e-4)
    short, _ = probes.probe_source(str(clip), [("s", 2.0)], {"segment_seconds": 1.0}, None, model="msd",
                                   layer="penultimate")  # fmt: skip
    import torch

    mel = torch.from_numpy(log_mel(signal[32000:48000])[None, None])
    with torch.inference_mode():
        expected = load_musicnn("msd").features(mel).numpy()[0]
    np.testing.assert_allclose(short["s"], np.concatenate([expected, np.zeros(200)]), atol=1e-4)


def test_probe_rows_beside_the_svm_cached_and_reused(musicnn_ready, demo_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    rows = run_baseline(demo_data, out, ["linear", "svm"], seed=0, workers=1, progress=False,
                        features="musicnn-msd", layer="tags")  # fmt: skip
    assert [row["arch"] for row in rows] == ["linear-musicnn-msd.tags", "svm-musicnn-msd.tags"]
    assert rows[0]["accuracy"] >= 0.5, rows[0]  # chance is 0.25; the demo classes differ in timbre and tempo
    with np.load(out / "features-musicnn-msd.tags.npz") as cache:
        assert cache["features"].shape == (len(_manifest(demo_data)), 100)
        assert list(cache["names"][:2]) == ["musicnn_msd_rock_mean", "musicnn_msd_pop_mean"]
    metrics = json.loads((out / "linear-musicnn-msd.tags" / "metrics.json").read_text())
    assert metrics["feature_sets"] == "musicnn-msd.tags" and len(metrics["features"]) == 100
    run_baseline(demo_data, out, ["svm"], seed=0, workers=1, progress=False)  # hand-crafted rows join them
    with (out / "baseline.csv").open() as handle:
        assert [r["arch"] for r in csv.DictReader(handle)] == ["linear-musicnn-msd.tags", "svm-musicnn-msd.tags",
                                                               "svm"]  # fmt: skip

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran again")

    probes._source_layers.cache_clear()
    monkeypatch.setattr(probes, "window_layers", no_network)
    again = run_baseline(demo_data, out, ["linear"], seed=0, workers=1, progress=False,
                         features="musicnn-msd", layer="tags")  # fmt: skip
    assert again[0]["accuracy"] == rows[0]["accuracy"]


def test_fusion_concatenates_each_sets_cached_rows_in_order(musicnn_ready, demo_data, tmp_path):
    out = tmp_path / "out"
    chosen = featuresets.parse_features("musicnn-mtt+handcrafted", "penultimate")
    assert chosen.label == "musicnn-mtt.penultimate+handcrafted" and len(chosen.names) == 400 + 83
    found, skipped = featuresets.gather(demo_data, chosen, out, 1, False)
    assert skipped == [] and len(found) == len(_manifest(demo_data))
    probe, _ = extract_features(demo_data, 1, False, out / "features-musicnn-mtt.penultimate.npz", chosen.sets[0])
    handcrafted, _ = extract_features(demo_data, 1, False, out / "features.npz", HANDCRAFTED)
    for image, row in found.items():
        np.testing.assert_array_equal(row, np.concatenate([probe[image], handcrafted[image]]))
    [row] = run_baseline(demo_data, out, ["linear"], seed=0, workers=1, progress=False,
                         features="musicnn-mtt+handcrafted")  # fmt: skip
    assert row["arch"] == "linear-musicnn-mtt.penultimate+handcrafted"


def test_melodic_features_of_a_known_melody():
    """A4, C5, E5 with a 6 Hz vibrato of ±40 cents, G4, each followed by 0.1 s of silence: four notes, the
    intervals +3, +4, -9 semitones, one vibrato note of four long ones."""
    gap = np.zeros(int(0.1 * RATE))
    parts = [_tone(69, 0.6), gap, _tone(72, 0.6), gap, _tone(76, 1.2, vibrato_cents=40), gap, _tone(67, 0.6), gap]
    melody = np.concatenate(parts).astype(np.float32)
    named = dict(zip(MELODIC_NAMES, melodic_features(melody).tolist(), strict=True))
    seconds = len(melody) / RATE
    assert named["note_density"] == pytest.approx(4 / seconds)
    assert named["interval_mean"] == pytest.approx(-2 / 3, abs=0.2)
    assert named["interval_abs_mean"] == pytest.approx(16 / 3, abs=0.3)
    assert named["leap_fraction"] == pytest.approx(1 / 3) and named["step_fraction"] == 0.0
    assert named["pitch_range"] == pytest.approx(9.0, abs=0.7)
    assert named["vibrato_fraction"] == pytest.approx(0.25) and named["vibrato_rate"] == pytest.approx(6.0, abs=0.8)
    assert 15 <= named["vibrato_extent"] <= 40  # a ±40 cent sine's sd is 28 cents
    shares = [named[f"pitch_class{i}"] for i in range(12)]
    assert sum(shares) == pytest.approx(1.0) and {i for i, s in enumerate(shares) if s > 0.1} == {0, 4, 7, 9}
    silent = melodic_features(np.zeros(RATE, np.float32))
    assert silent.shape == (len(MELODIC_NAMES),) and not silent.any()


def test_linear_estimators_of_every_kind():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))  # C = 0.01 regularises strongly: a few hundred windows, as a fold has
    labels = (x[:, 0] > 0).astype(int)
    classifier = models.make_classifier("linear", 0, 400).fit(x, labels)
    assert classifier[-1].C == models.LINEAR_C and (classifier.predict(x) == labels).mean() >= 0.9
    regressor = models.make_regressor("linear", 0, 400).fit(x, np.column_stack([x[:, 0], -x[:, 1]]))
    assert regressor[-1].alpha == models.RIDGE_ALPHA and regressor.predict(x).shape == (400, 2)
    y = np.column_stack([labels, np.zeros(400, int), np.ones(400, int)])  # mood 2 never holds, mood 3 always
    moods = models.make_mood_classifier("linear", 0, 400).fit(x, y)
    probs = models.mood_probs(moods, x, 3)
    assert probs.shape == (400, 3) and (probs[:, 1] == 0).all() and (probs[:, 2] == 1).all()
    assert ((probs[:, 0] > 0.5) == labels).mean() >= 0.9


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--features", "musicnn-xyz"], "--features part 'musicnn-xyz'"),
        (["--features", "handcrafted+handcrafted"], "names a feature set twice"),
        (["--features", "musicnn-msd", "--layer", "conv"], "--layer 'conv'"),
    ],
)
def test_a_wrong_features_option_is_one_line(demo_data, tmp_path, args, named, capsys, monkeypatch):
    code, err = run_main(["baseline", str(demo_data), "--out", str(tmp_path / "out"), *args], capsys, monkeypatch)
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_probe_benchmark_pairs_every_row_against_the_svm_on_83_features():
    from benchmarks.probes import table

    def scores(values: list[float]) -> dict:
        summary = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)), "values": values}
        return dict.fromkeys(("accuracy", "track_accuracy", "track_macro_f1"), summary)

    done = {
        "handcrafted": {"feature_cpu_minutes": 3.6, "fit_cpu_minutes": 0.01,
                        "estimators": {"svm": scores([0.6, 0.7]), "linear": scores([0.5, 0.7])}},
        "musicnn-msd.tags": {"feature_cpu_minutes": 11.0, "fit_cpu_minutes": 0.02,
                             "estimators": {"linear": scores([0.7, 0.9])}},
    }  # fmt: skip
    lines = table(done, 2).splitlines()[2:]
    assert lines[0].startswith("| handcrafted | svm | 0.650 ± 0.071 | – |")
    assert "| -0.050 ± 0.071 |" in lines[1]  # gains 0.5-0.6 and 0.7-0.7, fold by fold
    assert lines[2].startswith("| musicnn-msd.tags | linear | 0.800 ± 0.141 | +0.150 ± 0.071 |")
    assert lines[2].endswith("| 11.0 | 0.02 |")
