"""Integration on the real data beside the checkout (`../shared/data`)."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import pytest

from mer_fastai.api.training import train
from mer_fastai.data.labels import read_labels
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.training.fit import TrainConfig

pytestmark = pytest.mark.integration
QUICK = {"weights": "none", "epochs": 1, "bs": 8, "size": 64, "num_workers": 0, "lr": 1e-3}


def test_4q_subset_grouped_by_artist_then_train(shared_data, tmp_path):
    source = shared_data / "4q-dev"
    audio = tmp_path / "4q"
    for quadrant in ("Q1", "Q2", "Q3", "Q4"):
        (audio / quadrant).mkdir(parents=True)
        for clip in sorted((source / quadrant).glob("*.mp3"))[:6]:
            shutil.copy(clip, audio / quadrant / clip.name)
    data = tmp_path / "data"
    result = prepare_dataset(
        audio,
        data,
        "valence",
        source / "annotations.csv",
        group_by="Artist",
        spec=SpecConfig(),
        progress=False,
    )
    assert result.classes == ["negative", "positive"] and not result.skipped
    assert result.segments == 24 * 3  # 30 s clips → three 10 s windows
    artists = {r["Song"]: r["Artist"] for r in csv.DictReader((source / "annotations.csv").open())}
    sides: dict[str, set] = {}
    for row in csv.DictReader((data / "manifest.csv").open()):
        sides.setdefault(artists[row["clip_id"].rsplit("/", 1)[-1]], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    run = train(data, TrainConfig(arch="squeezenet1_0", mode="whole", **QUICK), tmp_path / "run", show=False)
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert metrics["feature"] == "valence" and 0 <= metrics["accuracy"] <= 1


def test_soundtracks_sample_with_its_real_ratings_file(shared_data, tmp_path):
    sample = shared_data / "soundtracks-set1-sample"
    ratings = sample / "mean_ratings_set1.csv"
    table = read_labels(ratings, "energy")
    assert len(table.labels) == 360
    assert Counter(v.label for v in table.labels.values()) == pytest.approx(
        {"low": 120, "medium": 120, "high": 120}, abs=3
    )
    data = tmp_path / "data"
    result = prepare_dataset(
        sample / "audio", data, "energy", ratings, spec=SpecConfig(segment_seconds=5.0), progress=False
    )
    assert result.clips == 25 and not result.skipped  # mp3 and wav, 44.1 and 48 kHz
    emotions = read_labels(ratings, "emotions")
    assert len(emotions.labels) == 150 and "surprise" not in {v.label for v in emotions.labels.values()}
    run = train(data, TrainConfig(arch="alexnet", mode="freeze", **QUICK), tmp_path / "run", show=False)
    assert (run.run_dir / "model.safetensors").exists()
