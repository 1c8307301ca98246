"""Audio folders with entries that are no audio to label: FIFOs, sockets and links to them are skipped unopened;
silent and near-empty recordings are refused per file (prepare skips them, predict/evaluate/embed say why)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mer_fastai.data.audio import MIN_SECONDS, audio_tree, find_audio_files, load_audio, walk_audio
from mer_fastai.data.dataset import read_info
from mer_fastai.errors import AudioError, MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.preparation.prepare import prepare_dataset
from tests.conftest import TINY_SPEC
from tests.inference.test_predict import tiny_run  # noqa: F401  (session fixture shared by the modules)


def finishes(function, seconds: float = 20.0):
    """`function()`'s result, failing the test (instead of hanging it) if it blocks, e.g. on opening a FIFO."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("value", function()))
        except BaseException as exc:  # handed to the test
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"{function} blocked (opened a FIFO?)"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


@pytest.fixture
def specials(tmp_path) -> Path:
    """A folder with a FIFO, a socket and a link to the FIFO, each named like audio, beside one real clip."""
    folder = tmp_path / "audio"
    (folder / "happy").mkdir(parents=True)
    os.mkfifo(folder / "happy" / "pipe.mp3")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "happy" / "sock.wav"))
    server.close()
    (folder / "happy" / "link.flac").symlink_to(folder / "happy" / "pipe.mp3")
    t = np.arange(22050) / 22050
    soundfile.write(folder / "happy" / "real.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 22050)
    return folder


def test_special_files_are_skipped_with_a_reason_and_never_opened(specials):
    tree = finishes(lambda: walk_audio(specials))
    assert [path.name for path in tree.files] == ["real.wav"]
    reasons = {path.name: why for path, why in tree.skipped}
    assert set(reasons) == {"pipe.mp3", "sock.wav", "link.flac"}
    assert "a named pipe (FIFO)" in reasons["pipe.mp3"] and "never read" in reasons["pipe.mp3"]
    assert "a socket" in reasons["sock.wav"] and "(through a link)" in reasons["link.flac"]
    listed = finishes(lambda: find_audio_files(specials))  # predict, evaluate, embed: listed, to report as skipped
    assert {path.name for path in listed} == {"real.wav", "pipe.mp3", "sock.wav", "link.flac"}
    with pytest.raises(AudioError, match=r"pipe.mp3: is a named pipe \(FIFO\), not an audio file"):
        finishes(lambda: load_audio(specials / "happy" / "pipe.mp3", 22050))


def test_a_folder_of_special_files_only_is_refused_naming_one(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(
        MerError, match=r"no audio files, only entries that are no regular file \(e.g. .*pipe.wav: is a"
    ):
        finishes(lambda: audio_tree(tmp_path))


@pytest.mark.parametrize(
    ("samples", "level", "reason"),
    [(1, 0.5, "too short to label"), (int(MIN_SECONDS * 22050) - 1, 0.5, "too short"), (44100, 0.0, "silent")],
)
def test_silent_and_near_empty_recordings_are_refused(tmp_path, samples, level, reason):
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.full(samples, level, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match=rf"clip.wav: {reason}"):
        load_audio(path, 22050)


def test_a_quiet_but_audible_recording_is_kept(tmp_path):
    path = tmp_path / "quiet.wav"
    t = np.arange(22050) / 22050
    soundfile.write(path, 0.001 * np.sin(2 * np.pi * 440 * t), 22050)  # -60 dBFS
    assert load_audio(path, 22050).size == 22050


def test_prepare_skips_special_silent_and_near_empty_files_naming_each(tiny_audio, tmp_path):
    audio = tmp_path / "audio"
    shutil.copytree(tiny_audio, audio)
    os.mkfifo(audio / "happy" / "pipe.mp3")
    soundfile.write(audio / "happy" / "silent.wav", np.zeros(44100, dtype=np.float32), 22050)
    soundfile.write(audio / "sad" / "one.wav", np.array([0.5], dtype=np.float32), 22050)
    result = finishes(
        lambda: prepare_dataset(
            audio, tmp_path / "data", "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=2, progress=False
        )  # fmt: skip
    )
    reasons = {Path(item["file"]).name: item["reason"] for item in result.skipped}
    assert "named pipe" in reasons["pipe.mp3"] and "silent" in reasons["silent.wav"]
    assert "too short" in reasons["one.wav"]
    assert result.clips == 16 and read_info(tmp_path / "data").skipped == result.skipped


def test_predict_and_embed_say_per_file_why_instead_of_labelling(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    predictor = Predictor.load(tiny_run, device="cpu", bs=3)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(tiny_audio / "happy" / "happy_00.wav", folder / "good.wav")
    os.mkfifo(folder / "pipe.mp3")
    soundfile.write(folder / "silent.wav", np.zeros(44100, dtype=np.float32), 22050)
    soundfile.write(folder / "one.wav", np.array([0.5], dtype=np.float32), 22050)
    expected = {"pipe.mp3": "named pipe", "silent.wav": "silent", "one.wav": "too short"}
    for result in (finishes(lambda: predictor.predict_many([folder])), finishes(lambda: predictor.embed([folder]))):
        reasons = {Path(item.file).name: item.reason for item in result.skipped}
        assert set(reasons) == set(expected) and all(expected[name] in reasons[name] for name in expected)
    assert [Path(track.file).name for track in predictor.predict_many([folder])] == ["good.wav"]
