"""Near-duplicate fingerprints on real audio: what matches in a folder, and how far re-encoded copies move.

    python benchmarks/near_duplicates.py ../shared/data/4q-dev            # every clip of the folder
    python benchmarks/near_duplicates.py ../shared/data/4q-dev --copies 40 --workers 1

Prints (Markdown) the pairs of the folder whose fingerprints match (`data.fingerprint.matching_pairs`), the
distribution of each clip's nearest other clip (disagreement, see `data.fingerprint`), and, for `--copies` clips,
the disagreement between each clip and copies of it: resampled to 44.1 kHz and back, low-passed at 5 kHz with
noise and 0.7 gain, saved as mp3 at 44.1 kHz (libsndfile's default bitrate) and decoded again.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mer_fastai._plumbing.workers import completed, worker_count
from mer_fastai.data.audio import find_audio_files, load_audio
from mer_fastai.data.fingerprint import MATCH_SHARE, _compare, _planes, disagreement, fingerprint, matching_pairs

RATE = 22050


def _print(file: Path) -> tuple[str, float, float]:
    """The fingerprint of `file` decoded at 22.05 kHz (as prepare decodes it), and the seconds the decoding and
    the fingerprint took."""
    started = time.perf_counter()
    signal = load_audio(file, RATE)
    decoded = time.perf_counter()
    text = fingerprint(signal, RATE)
    return text, decoded - started, time.perf_counter() - decoded


def copies(file: Path, folder: Path) -> dict[str, str]:
    """Fingerprints of degraded copies of `file`."""
    import scipy.signal
    import soundfile
    import soxr

    signal = load_audio(file, RATE)
    up = soxr.resample(signal, RATE, 44100)
    b, a = scipy.signal.butter(6, 5000 / (RATE / 2))
    noisy = scipy.signal.lfilter(b, a, signal) * 0.7 + np.random.default_rng(0).normal(0, 0.003, len(signal))
    mp3 = folder / "copy.mp3"
    soundfile.write(mp3, up, 44100, format="MP3")
    return {
        "44.1 kHz and back": fingerprint(soxr.resample(up, 44100, RATE), RATE),
        "low-pass + noise + gain": fingerprint(noisy.astype(np.float32), RATE),
        "mp3 at 44.1 kHz": fingerprint(load_audio(mp3, RATE), RATE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", type=Path)
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    files = find_audio_files(args.audio)
    prints, decode, printing = {}, [], []
    for file, (text, decoding, took) in completed(_print, files, worker_count(args.workers, len(files))):
        prints[file.relative_to(args.audio).as_posix()] = text
        decode.append(decoding)
        printing.append(took)
    started = time.perf_counter()
    pairs = matching_pairs(prints)
    matching = time.perf_counter() - started
    print(f"per clip: decoding {np.mean(decode) * 1000:.0f} ms, fingerprint {np.mean(printing) * 1000:.0f} ms (mean)")
    print(f"matching all {len(prints)} fingerprints: {matching:.2f} s\n")
    print(f"{len(prints)} clips, match at disagreement <= {MATCH_SHARE}: {len(pairs)} pair(s)\n")
    for a, b, share in pairs:
        print(f"- {a} ~ {b}: {share:.3f}")
    planes = _planes([prints[name] for name in sorted(prints)])
    share, _ = _compare(planes, planes)
    np.fill_diagonal(share, 1.0)
    print(f"\nnearest other clip (disagreement): {_quantiles(share.min(axis=1))}")
    chosen = files[:: max(1, len(files) // args.copies)][: args.copies]
    moved: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for file in chosen:
            original = prints[file.relative_to(args.audio).as_posix()]
            for how, text in copies(file, Path(folder)).items():
                moved.setdefault(how, []).append(disagreement(original, text))
    print(f"\ncopies of {len(chosen)} clips (disagreement with the original):\n")
    print("| copy | quantiles | matched |\n|---|---|---|")
    for how, values in moved.items():
        hits = sum(value <= MATCH_SHARE for value in values)
        print(f"| {how} | {_quantiles(np.array(values))} | {hits}/{len(values)} |")


def _quantiles(values: np.ndarray) -> str:
    q = np.percentile(values, [0, 5, 50, 95, 100]).round(3)
    return f"min {q[0]}, 5% {q[1]}, median {q[2]}, 95% {q[3]}, max {q[4]}"


if __name__ == "__main__":
    main()
