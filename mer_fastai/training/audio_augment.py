"""`--augment-audio K`: K augmented copies of every training clip, made on the audio and kept as spectrograms.

Each copy of a clip is the clip's audio with every chosen kind applied, each with its own random amount drawn
from a generator seeded by (`--seed`, the clip's id, the copy's number): pitch shifted by up to ±2 semitones,
time-stretched by 0.9-1.1×, its gain changed by up to ±6 dB, white noise added at 20-40 dB signal-to-noise. The
copy is cut into windows and made into images exactly as `prepare` makes the data set's (`window_images`, the
data set's `spectrogram.json`), so the network reads them as it reads the originals, and every frozen-body cache
(freeze mode's features, partial mode's prefix outputs) computes them once like the originals.

The images live in `<out>/audio-augment/<key>/`, where `<key>` digests the spectrogram settings, K, the kinds,
the seed and the training clips (path, id, content hash); they are remade only when one of these changes, and a
folder of an earlier key in the same `<out>` is removed then. Training reads a data set view in the run's
staging folder: the original images and the copies linked in, the copies listed as training rows of their
clips. Validation and test images are never augmented.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..bounds import quote
from ..choices import AUDIO_AUGMENTS
from ..data.audio import content_hash, load_audio
from ..data.dataset import DatasetInfo, ManifestRow
from ..data.png import save_png
from ..data.spectrogram import SpecConfig, window_images
from ..errors import MerError
from ..tasks.opened import Dataset, write_dataset

__all__ = ["augment_signal", "augmented_data", "parse_kinds"]

CACHE_DIR = "audio-augment"  # in the run's --out
DONE_FILE = "rows.json"  # written last: a key folder without it is remade
VIEW_DIR = "augmented-data"  # the data set view, in the run's staging folder
SEMITONES, STRETCH, GAIN_DB, SNR_DB = 2.0, (0.9, 1.1), 6.0, (20.0, 40.0)
VERSION = 1  # of the recipe above: part of the key


def parse_kinds(text: str) -> tuple[str, ...]:
    """`--augment-audio-kinds` ("pitch,noise") as a tuple, or one clear error naming the known kinds."""
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in AUDIO_AUGMENTS]
    if unknown or not kinds:
        raise MerError(
            f"--augment-audio-kinds {quote(text)}: {'unknown kind ' + unknown[0] if unknown else 'no kind'}; "
            f"choose from {', '.join(AUDIO_AUGMENTS)} (comma-separated)"
        )
    return kinds


def _rng(seed: int, clip_id: str, copy: int) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\0{clip_id}\0{copy}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def augment_signal(signal: np.ndarray, rate: int, kinds: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """`signal` with each of `kinds` applied in the order of `AUDIO_AUGMENTS`, amounts drawn from `rng`."""
    import librosa

    out = signal.astype(np.float32, copy=True)
    if "pitch" in kinds:
        out = librosa.effects.pitch_shift(out, sr=rate, n_steps=float(rng.uniform(-SEMITONES, SEMITONES)))
    if "stretch" in kinds:
        out = librosa.effects.time_stretch(out, rate=float(rng.uniform(*STRETCH)))
    if "gain" in kinds:
        out = out * np.float32(10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20))
    if "noise" in kinds:
        power = float(np.mean(out**2)) or 1e-10
        noise_power = power / 10 ** (rng.uniform(*SNR_DB) / 10)
        out = out + rng.normal(0.0, np.sqrt(noise_power), len(out)).astype(np.float32)
    return out.astype(np.float32, copy=False)


def _key(spec: SpecConfig, copies: int, kinds: tuple[str, ...], seed: int, clips: list[ManifestRow]) -> str:
    described = {"version": VERSION, "spec": spec.to_dict(), "copies": copies, "kinds": kinds, "seed": seed,
                 "clips": sorted([row.source, row.clip_id, row.sha256] for row in clips)}  # fmt: skip
    return hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=10).hexdigest()


def _source(row: ManifestRow, info: DatasetInfo) -> Path:
    path = Path(row.source)
    if not path.exists() and info.audio_dir and (Path(info.audio_dir) / path).exists():
        path = Path(info.audio_dir) / path
    if not path.exists():
        raise MerError(
            f"{row.source}: the audio of training clip {row.clip_id} is not there; --augment-audio remakes copies "
            "from the audio prepare read: restore it, or drop --augment-audio"
        )
    if row.sha256 and content_hash(path) != row.sha256:  # copies labelled `row.label` must be of that recording
        raise MerError(
            f"{path}: the audio of training clip {row.clip_id} changed since prepare read it (its SHA-256 differs); "
            "--augment-audio remakes copies from the audio prepare read: restore it, prepare again, or drop "
            "--augment-audio"
        )
    return path


def _make_copies(rows: list[ManifestRow], info: DatasetInfo, spec: SpecConfig, copies: int, kinds, seed, folder):
    """The augmented images of the training clips of `rows` written into `folder`; their manifest rows."""
    made = []
    by_clip: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        by_clip[row.clip_id].append(row)
    for clip_id, clip_rows in sorted(by_clip.items()):
        first = clip_rows[0]
        signal = load_audio(_source(first, info), spec.sample_rate)
        name = hashlib.blake2b(clip_id.encode(), digest_size=6).hexdigest()
        for copy in range(copies):
            augmented = augment_signal(signal, spec.sample_rate, kinds, _rng(seed, clip_id, copy))
            for start, picture in window_images(augmented, spec):
                image = f"{first.label}/{name}_aug{copy}_{int(round(start * 1000)):08d}.png"
                (folder / image).parent.mkdir(parents=True, exist_ok=True)
                save_png(folder / image, picture)
                made.append(replace(first, segment_start=round(start, 3), split="train", image=image))
    return made


def _copies(dataset: Dataset, config, out: Path) -> tuple[Path, list]:
    """The augmented images' folder (made now unless its key's are complete) and their manifest rows."""
    spec, kinds = dataset.spec, parse_kinds(config.augment_audio_kinds)
    train_rows = dataset.split("train")
    clips = list({row.clip_id: row for row in train_rows}.values())
    root = out / CACHE_DIR
    folder = root / _key(spec, config.augment_audio, kinds, config.seed, clips)
    done = folder / DONE_FILE
    if done.exists():
        return folder, [ManifestRow.from_dict(values) for values in json.loads(done.read_text())]
    if root.is_dir():  # copies of earlier settings, written by an earlier run into this --out
        for old in root.iterdir():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    folder.mkdir(parents=True)
    made = _make_copies(train_rows, dataset.info, spec, config.augment_audio, kinds, config.seed, folder)
    partial = done.with_suffix(".part")
    partial.write_text(json.dumps([row.to_dict() for row in made]))
    partial.replace(done)
    return folder, made


def augmented_data(dataset: Dataset, config, out: Path, stage: Path) -> Dataset:
    """A data set view in `stage` holding `dataset`'s images and `config.augment_audio` augmented copies of each
    training clip (made into `out`'s cache unless there already), the copies listed as training rows."""
    data_dir, info, rows = dataset.path, dataset.info, dataset.rows
    folder, made = _copies(dataset, config, out)
    view = stage / VIEW_DIR
    shutil.rmtree(view, ignore_errors=True)
    listed = []
    for row in rows:
        _link(row.path(data_dir), view / row.image)
        listed.append(row)
    for row in made:
        image = f"train/{row.label}/{row.image.split('/', 1)[1]}"
        _link(folder / row.image, view / image)
        listed.append(replace(row, image=image))
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in listed:
        counts[row.split][row.label] += 1
    settings = {**info.settings, "augment_audio": {"copies": config.augment_audio, "kinds": config.augment_audio_kinds}}
    summary = replace(info, segments=len(listed), counts={k: dict(v) for k, v in counts.items()}, settings=settings,
                      subset_of=str(data_dir))  # fmt: skip
    return write_dataset(view, dataset, summary, listed)


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy), else a symbolic link (another file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())
