"""Audio decoding and fixed-length windowing."""

from __future__ import annotations

import hashlib
import os
import stat as stat_module
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AudioError, MerError

__all__ = ["load_audio", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff"})
PROBE_BYTES = 1 << 16  # files of one size are told apart by a hash of their first and last 64 KiB, then of all
# How the supported formats begin: RIFF/RF64 (wav), fLaC, OggS (ogg, opus), FORM (aiff), ID3 (mp3 tags).
AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3")
MIN_SECONDS = 0.1  # a decoded clip shorter than this is too short to label (a few frames: nearly empty)
SILENT_PEAK = 1e-4  # a decoded clip whose loudest sample stays below this (-80 dBFS) is silent


@dataclass
class AudioTree:
    """The audio files found under a folder (sorted), every folder walked to find them (resolved), and the
    entries with an audio name left out because they are no regular file (`(path, why)`, never opened)."""

    files: list[Path]
    folders: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def find_audio_files(*roots: str | Path) -> list[Path]:
    """Audio files given directly or found recursively under folders (see `walk_audio`), sorted for
    reproducibility. Entries with an audio name that are no regular file (a FIFO, ...) are listed too, for
    `load_audio` to refuse without opening them, so that they are reported as skipped with their reason."""
    found: list[Path] = []
    for root in map(Path, roots):
        if root.is_dir():
            tree = walk_audio(root)
            found.extend(sorted(tree.files + [path for path, _ in tree.skipped]))
        elif root.exists():
            if root.suffix.lower() not in AUDIO_EXTENSIONS:
                known = " ".join(sorted(AUDIO_EXTENSIONS))
                raise MerError(f"{root}: no audio file (the name does not end in one of {known}); check the path")
            found.append(root)
        else:
            raise MerError(f"{root}: no such file or folder; check the path")
    return found


def walk_audio(root: Path) -> AudioTree:
    """The audio files under the folder `root`, following links to folders as well as to files.

    A link to a folder that contains it (a loop) and a folder that cannot be read are refused in one line:
    nothing below `root` is skipped without a word.
    """
    tree = AudioTree([], [])
    _walk(Path(root), (), tree)
    tree.files.sort()
    return tree


def _walk(folder: Path, above: tuple[tuple[int, int], ...], tree: AudioTree) -> None:
    """Add the audio files of `folder` and its subfolders to `tree`; `above`: the (device, inode) of its parents."""
    try:
        stat = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        raise MerError(f"{folder}: cannot be read ({exc.strerror}); make it readable or move it out") from exc
    here = (stat.st_dev, stat.st_ino)
    if here in above:
        raise MerError(
            f"{folder}: is a link to {folder.resolve()}, a folder that contains it, so the folder tree never ends; "
            "remove the link"
        )
    tree.folders.append(folder.resolve())
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir():  # a link to a folder too
            _walk(path, (*above, here), tree)
        elif path.suffix.lower() in AUDIO_EXTENSIONS:
            why = not_a_regular_file(path)
            if why:
                tree.skipped.append((path, why))
            else:
                tree.files.append(path)


def not_a_regular_file(path: Path) -> str | None:
    """Why `path` (after links) cannot be an audio file to read: a FIFO, socket, device, broken link; or None.

    Only `stat` is asked, so a FIFO is never opened (opening one blocks until someone writes to it).
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror}); a broken link? fix or remove it"
    if stat_module.S_ISREG(mode):
        return None
    kinds = ((stat_module.S_ISFIFO, "a named pipe (FIFO)"), (stat_module.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "a device or other special file")
    link = " (through a link)" if path.is_symlink() else ""
    return f"is {kind}{link}, not an audio file; never read: remove it from the audio folder"


def audio_files(*roots: str | Path) -> list[Path]:
    """`find_audio_files(*roots)`, refusing files and folders that hold none."""
    files = find_audio_files(*roots)
    if not files:
        named = ", ".join(map(str, roots))
        raise MerError(f"{named}: no audio files (.mp3 .wav .flac .ogg ...) found; check the path")
    return files


def audio_tree(audio_dir: str | Path) -> AudioTree:
    """`walk_audio(audio_dir)` of a folder that holds audio; anything else is refused in one line."""
    audio_dir = Path(audio_dir)
    if audio_dir.is_file():
        raise MerError(f"{audio_dir}: is a file; give the folder that holds the audio clips")
    if not audio_dir.is_dir():
        raise MerError(f"{audio_dir}: no such file or folder; check the path")
    tree = walk_audio(audio_dir)
    if not tree.files and tree.skipped:
        path, why = tree.skipped[0]
        raise MerError(f"{audio_dir}: no audio files, only entries that are no regular file (e.g. {path}: {why})")
    if not tree.files:
        raise MerError(f"{audio_dir}: no audio files (.mp3 .wav .flac .ogg ...) found; check the path")
    return tree


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode any supported file to a mono float32 signal at `sample_rate`."""
    path = Path(path)
    special = not_a_regular_file(path)
    if special:
        raise AudioError(f"{path}: {special}")
    try:
        signal = _decode(path, sample_rate)
    except Exception as exc:  # decoders raise many unrelated types
        reason = _what_is_wrong(path, exc)
        raise AudioError(f"{path}: cannot decode audio ({reason}); re-encode, replace or remove the file") from exc
    if signal.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples; remove it")
    if not np.isfinite(signal).all():
        raise AudioError(f"{path}: the decoded audio holds NaN or infinite samples; re-encode the file")
    check_signal(path, signal, sample_rate)
    return signal.astype(np.float32, copy=False)


def check_signal(path: str | Path, signal: np.ndarray, sample_rate: int) -> None:
    """Refuse (`AudioError`) a decoded clip with nothing to label: shorter than `MIN_SECONDS`, or silent (no
    sample reaches `SILENT_PEAK`, -80 dBFS)."""
    seconds = signal.size / sample_rate
    if seconds < MIN_SECONDS:
        raise AudioError(
            f"{path}: too short to label ({seconds:.3g} s of audio, under {MIN_SECONDS} s); remove it or use "
            "the whole recording"
        )
    if float(np.max(np.abs(signal))) < SILENT_PEAK:
        raise AudioError(f"{path}: silent (no sample above -80 dBFS); nothing to label: remove it")


def _decode(path: Path, sample_rate: int) -> np.ndarray:
    """`librosa.load(path, sr=sample_rate, mono=True)`, sample for sample, without its per-call overhead.

    Formats libsndfile reads (wav, flac, ogg, mp3, aiff, ...) are read by soundfile as float32, averaged
    to mono and resampled with soxr's high quality, exactly as librosa does; anything else goes to
    librosa.load itself (its audioread fallback).
    """
    import soundfile

    try:
        with soundfile.SoundFile(path) as audio:
            native = audio.samplerate
            frames = audio.read(dtype="float32", always_2d=True)
    except soundfile.SoundFileRuntimeError:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return librosa.load(path, sr=sample_rate, mono=True)[0]
    signal = frames[:, 0] if frames.shape[1] == 1 else np.mean(frames.T, axis=0)
    if native == sample_rate or signal.size == 0:
        return signal
    import soxr

    resampled = soxr.resample(signal, native, sample_rate, quality="soxr_hq")
    length = int(np.ceil(signal.size * (float(sample_rate) / native)))  # librosa.resample's length, rounded alike
    return resampled[:length] if resampled.size >= length else np.pad(resampled, (0, length - resampled.size))


def _what_is_wrong(path: Path, exc: BaseException) -> str:
    """Why a file failed to decode: empty, not audio at all, or else the decoder's own reason."""
    return _header_problem(path) or _reason(exc)


def _header_problem(path: Path) -> str | None:
    """Why the file cannot be audio (unreadable, empty, no known audio format header), or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(12)
    except OSError as error:
        return f"cannot read the file ({error.strerror})"
    if not head:
        return "the file is empty: 0 bytes"
    mp3_frame = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    if not (head.startswith(AUDIO_MAGIC) or mp3_frame or head[4:8] == b"ftyp"):
        return "not an audio file: no known audio format header"
    return None


def _reason(exc: BaseException) -> str:
    """The most telling message in an exception chain (audioread's fallback error says nothing)."""
    seen = exc
    while seen is not None:
        text = str(seen).strip()
        if text:
            return text.splitlines()[0]
        seen = seen.__context__
    return type(exc).__name__


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of fixed windows; a last partial window is kept if at least half a window long.

    A signal shorter than one window still yields one (zero-padded) window.
    """
    if window <= 0 or hop <= 0:
        raise MerError("window and hop lengths must be positive; check --segment-seconds and --hop")
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    next_start = starts[-1] + hop
    if next_start < n_samples and n_samples - next_start >= window / 2:
        starts.append(next_start)
    return starts


def windows(
    signal: np.ndarray, sample_rate: int, seconds: float, hop_seconds: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield `(start_seconds, window)` pairs; every window has exactly `seconds` of samples."""
    window = int(round(seconds * sample_rate))
    hop = int(round((hop_seconds or seconds) * sample_rate))
    for start in window_starts(len(signal), window, hop):
        yield start / sample_rate, _cut(signal, start, window)


def window_at(signal: np.ndarray, sample_rate: int, seconds: float, start_seconds: float) -> np.ndarray:
    """The window of `seconds` that starts at `start_seconds` (e.g. a manifest row's), cut as `windows` cuts it."""
    return _cut(signal, int(round(start_seconds * sample_rate)), int(round(seconds * sample_rate)))


def _cut(signal: np.ndarray, start: int, length: int) -> np.ndarray:
    """`length` samples from `start`, zero-padded at the end where the signal is shorter."""
    chunk = signal[start : start + length]
    return chunk if len(chunk) == length else np.pad(chunk, (0, length - len(chunk)))


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be labelled, and why."""

    file: str
    reason: str


def content_hash(path: str | Path) -> str:
    """The SHA-256 of the file's bytes (hex): two files with the same hash hold the same recording."""
    try:
        with Path(path).open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise AudioError(f"{path}: cannot be read ({exc.strerror}); make it readable or remove it") from exc


@dataclass(frozen=True)
class SameRecording:
    """Files that hold one recording: names of one file (`linked`: links or hard links), or byte-identical."""

    files: list[Path]
    linked: bool


def same_recordings(files: list[Path]) -> list[SameRecording]:
    """The groups of `files` that hold the same recording, each sorted, in the order of their first file.

    Names of one file are found by (device, inode); byte-identical files among those of one size by a hash of
    their first and last `PROBE_BYTES`, then of all their bytes. Files that cannot be audio (empty, unreadable,
    no audio format header) are left to the decoder to refuse.
    """
    names: dict[tuple[int, int], list[Path]] = defaultdict(list)
    sizes: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        node = (stat.st_dev, stat.st_ino)
        if not names[node] and stat.st_size:
            sizes[stat.st_size].append(node)
        names[node].append(file)
    merged = {node: node for node in names}
    for nodes in sizes.values():  # byte-identical files have one size: only files that share theirs are read
        audio = [node for node in nodes if _header_problem(names[node][0]) is None] if len(nodes) > 1 else []
        for same in _grouped(audio, lambda node: _digest(names[node][0], PROBE_BYTES)):
            for identical in _grouped(same, lambda node: _digest(names[node][0])):
                merged.update(dict.fromkeys(identical, identical[0]))
    groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for node in names:
        groups[merged[node]].append(node)
    found = [
        SameRecording(sorted(file for node in nodes for file in names[node]), linked=len(nodes) == 1)
        for nodes in groups.values()
    ]
    return sorted((group for group in found if len(group.files) > 1), key=lambda group: group.files[0])


def _grouped(items: list, key) -> list[list]:
    """The groups of two or more `items` with the same `key(item)`."""
    by_key: dict[str, list] = defaultdict(list)
    for item in items:
        by_key[key(item)].append(item)
    return [same for same in by_key.values() if len(same) > 1]


def _digest(path: Path, probe: int | None = None) -> str:
    """SHA-256 of the file's bytes, or (`probe`) of its first and last `probe` bytes; an unreadable file gets a
    key of its own."""
    try:
        if probe is None:
            return content_hash(path)
        with path.open("rb") as handle:
            digest = hashlib.sha256(handle.read(probe))
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - probe))
            digest.update(handle.read(probe))
            return digest.hexdigest()
    except (OSError, AudioError):
        return f"unreadable: {path}"
