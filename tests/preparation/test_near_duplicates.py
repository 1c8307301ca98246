"""prepare keeps recordings that sound alike (re-encoded copies) on one side of every split, or refuses them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile
import soxr

from mer_fastai.data.audio import audio_tree
from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.data.fingerprint import CELLS
from mer_fastai.data.labelsource import label_source
from mer_fastai.errors import MerError
from mer_fastai.evaluation.folds import clip_groups
from mer_fastai.preparation.clips import plan_clips
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.tasks.registry import get_task
from tests.conftest import TINY_SPEC

COPY = "zz_copy.wav"


def reencode(source: Path, target: Path) -> None:
    """`source` low-passed at 5 kHz, quieter, with noise, saved at 44.1 kHz: another file, the same recording."""
    signal, rate = soundfile.read(source)
    b, a = scipy.signal.butter(6, 5000 / (rate / 2))
    degraded = scipy.signal.lfilter(b, a, signal) * 0.7 + np.random.default_rng(1).normal(0, 0.003, len(signal))
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(target, soxr.resample(degraded, rate, 44100), 44100)


def initial_sides(audio: Path, seed: int, copy_key: str) -> tuple[str, str]:
    """The sides the original and its copy get when their fingerprints are not known yet."""
    files = audio_tree(audio).files
    task = get_task("classification")
    table = task.read_labels(label_source("test", None), "emotions", audio, files)
    sides = {job.key: job.split for job in plan_clips(audio, task, table, files, 0.25, seed, False).jobs}
    return sides["happy__happy_00"], sides[copy_key]


@pytest.fixture
def audio(tiny_audio, tmp_path) -> Path:
    shutil.copytree(tiny_audio, tmp_path / "audio")
    reencode(tmp_path / "audio" / "happy" / "happy_00.wav", tmp_path / "audio" / "happy" / COPY)
    return tmp_path / "audio"


def test_a_copy_split_apart_at_first_is_moved_to_its_original_and_grouped(audio, tmp_path):
    seed = next(s for s in range(200) if len(set(initial_sides(audio, s, "happy__zz_copy"))) == 2)
    out = tmp_path / "data"
    result = prepare_dataset(audio, out, "emotions", spec=TINY_SPEC, valid_pct=0.25, seed=seed, workers=2,
                             progress=False)  # fmt: skip
    rows = read_manifest(out)
    pair = [row for row in rows if row.clip_id in ("happy/happy_00", "happy/zz_copy")]
    assert len({row.split for row in pair}) == 1 and len({row.group for row in pair}) == 1
    assert all(len(row.fingerprint) == CELLS // 2 for row in rows)
    assert any("'happy/zz_copy' sounds like the same recording as 'happy/happy_00'" in n for n in result.notes)
    assert read_info(out).notes == result.notes
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert on_disk == sorted(row.image for row in rows)  # moved, nothing left behind
    groups, source = clip_groups(out, read_info(out), rows)  # cross-validation deals them into one fold
    assert source == "manifest" and groups["happy/happy_00"] == groups["happy/zz_copy"]
    again = prepare_dataset(audio, out, "emotions", spec=TINY_SPEC, valid_pct=0.25, seed=seed, workers=1,
                            progress=False)  # fmt: skip
    assert again.reused == result.clips and read_manifest(out) == rows


def test_a_copy_stays_with_its_original_in_the_test_split_too(audio, tmp_path):
    for seed in range(6):
        out = tmp_path / f"data{seed}"
        prepare_dataset(audio, out, "emotions", spec=TINY_SPEC, valid_pct=0.25, test_pct=0.25, seed=seed,
                        workers=1, progress=False)  # fmt: skip
        sides = {row.split for row in read_manifest(out) if row.clip_id in ("happy/happy_00", "happy/zz_copy")}
        assert len(sides) == 1


def test_a_copy_labelled_otherwise_is_refused_naming_both_files(audio, tmp_path):
    (audio / "happy" / COPY).rename(audio / "sad" / COPY)
    with pytest.raises(MerError, match=r"sad/zz_copy.wav: sounds like the same recording as .*happy/happy_00.wav"):
        prepare_dataset(audio, tmp_path / "data", "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=1,
                        progress=False)  # fmt: skip
    assert not (tmp_path / "data").exists()
