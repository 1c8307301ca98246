"""Audio decoding and windowing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from mer_fastai.data.audio import audio_files, find_audio_files, load_audio, window_starts, windows
from mer_fastai.errors import AudioError, MerError


def tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.mark.parametrize(
    ("suffix", "fmt", "sr", "channels"),
    [
        (".wav", "WAV", 48000, 2),
        (".flac", "FLAC", 44100, 1),
        (".ogg", "OGG", 32000, 2),
        (".mp3", "MP3", 44100, 2),
    ],
)
def test_any_format_rate_and_channels_becomes_mono_at_target_rate(tmp_path, suffix, fmt, sr, channels):
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, tone(1.5, sr, channels), sr, format=fmt)
    signal = load_audio(path, 22050)
    assert signal.ndim == 1 and signal.dtype == np.float32
    assert abs(len(signal) - 1.5 * 22050) < 0.06 * 22050  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(signal))
    assert abs(np.argmax(spectrum) * 22050 / len(signal) - 440) < 5


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"", "empty.mp3", "the file is empty: 0 bytes"),
        (b"this is not audio at all" * 20, "text.mp3", "not an audio file: no known audio format header"),
        (b"RIFF\x00\x00", "corrupt.wav", "cannot decode audio"),
    ],
)
def test_bad_files_raise_one_line_naming_the_file_and_what_is_wrong(tmp_path, content, name, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as error:
        load_audio(path, 22050)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message
    assert "possibly a pipe" not in message and "remove the file" in message


def test_window_rules():
    assert window_starts(100, 40, 40) == [0, 40, 80]  # last 20 samples = half a window: kept
    assert window_starts(99, 40, 40) == [0, 40]  # last 19 < 20: dropped
    assert window_starts(10, 40, 40) == [0]  # shorter than one window: one padded window
    assert window_starts(100, 40, 20) == [0, 20, 40, 60, 80]
    with pytest.raises(MerError):
        window_starts(100, 0, 10)


def test_windows_are_padded_to_full_length():
    signal = np.ones(25, dtype=np.float32)
    chunks = list(windows(signal, sample_rate=10, seconds=1.0))
    assert [start for start, _ in chunks] == [0.0, 1.0, 2.0]
    assert all(len(chunk) == 10 for _, chunk in chunks)
    assert chunks[-1][1][5:].sum() == 0


def test_find_audio_files_recurses_and_rejects_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.wav", "a/b/y.MP3", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_audio_files(tmp_path)] == ["y.MP3", "x.wav"]
    with pytest.raises(MerError, match="no such file"):
        find_audio_files(tmp_path / "missing")
    with pytest.raises(MerError, match="notes.txt: no audio file"):
        find_audio_files(tmp_path / "a" / "notes.txt")
    assert audio_files(tmp_path) == find_audio_files(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MerError, match=r"empty: no audio files \(.mp3 .wav .flac .ogg ...\) found; check the path"):
        audio_files(tmp_path / "empty")
