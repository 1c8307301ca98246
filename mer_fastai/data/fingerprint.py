"""Near-duplicate recordings: a content fingerprint of decoded audio that survives re-encoding.

The same recording saved again (mp3 at another bitrate, wav, another sample rate, a little louder or quieter)
has other bytes, so its SHA-256 differs, but its fingerprint does not (much). The fingerprint takes the clip's
power between `LOW_HZ` and `HIGH_HZ` (where every usual encoding keeps the sound) in `BANDS` mel bands and
`TIMES` equal slices of its duration; for each pair of neighbouring bands in each pair of neighbouring slices,
the second difference of log power (as audio fingerprints since Haitsma & Kalker 2002) says whether the band
difference grew, fell, or stayed within `STEP` (or under the `FLOOR`): `CELLS` cells of three states, written
as two bit planes in hex. Gain cancels in differences of logarithms; a low-pass or added noise changes few
cells. Two fingerprints match when they disagree in at most `MATCH_SHARE` of the cells where either moves
(cells still in both carry no evidence), and at least `MIN_MOVING` cells move. Matching compares every pair at
once (vectorised on the bit planes), so no clip is decoded twice and thousands of clips take seconds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BANDS = 17  # mel bands → 16 band differences
TIMES = 33  # equal slices of the clip → 32 time differences
CELLS = (BANDS - 1) * (TIMES - 1)  # 512
LOW_HZ, HIGH_HZ = 200.0, 4000.0
MATCH_SHARE = 0.25  # at most this share of the moving cells disagree: the same recording
MIN_MOVING = 32  # fewer moving cells than this: too little to tell (near-constant sound)
N_FFT = 1024
FRAMES_PER_SLICE = 8  # frames analysed per slice at most (a long clip is sampled, so every clip costs alike)
FLOOR = 1e-2  # of the clip's mean band power: cells below it are floor (their bits stay 0 rather than follow noise)
STEP = 0.1  # a second difference (in log power) counts as growth only above this
BLOCK = 1024  # fingerprints compared at once (memory: a few BLOCK × clips float matrices)


def fingerprint(signal: np.ndarray, sample_rate: int) -> str:
    """The fingerprint of a decoded mono signal: `CELLS // 2` hex digits (growth bits, then fall bits)."""
    power = _band_power(signal, sample_rate)  # (frames, BANDS)
    edges = np.linspace(0, len(power), TIMES + 1).round().astype(int)
    sliced = np.stack(
        [power[a:b].mean(axis=0) if b > a else power[min(a, len(power) - 1)] for a, b in zip(edges, edges[1:])]
    )
    level = np.log(sliced + FLOOR * float(sliced.mean()) + 1e-20)
    second = np.diff(np.diff(level, axis=1), axis=0)  # (TIMES - 1, BANDS - 1)
    cells = second.ravel()
    return (np.packbits(cells > STEP).tobytes() + np.packbits(cells < -STEP).tobytes()).hex()


def _band_power(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power per STFT frame in `BANDS` mel bands between `LOW_HZ` and `HIGH_HZ` (capped below Nyquist)."""
    signal = np.asarray(signal, dtype=np.float32)
    if len(signal) < N_FFT:
        signal = np.pad(signal, (0, N_FFT - len(signal)))
    hop = max(N_FFT // 2, len(signal) // (TIMES * FRAMES_PER_SLICE))
    frames = np.lib.stride_tricks.sliding_window_view(signal, N_FFT)[::hop]
    import scipy.fft

    spectrum = scipy.fft.rfft(frames * _window(), axis=1)
    return (spectrum.real**2 + spectrum.imag**2) @ _mel_bands(sample_rate)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(N_FFT).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_bands(sample_rate: int) -> np.ndarray:
    """Triangular mel filters, (N_FFT // 2 + 1, BANDS), contiguous (a transposed view multiplies slowly)."""
    import librosa

    high = min(HIGH_HZ, 0.45 * sample_rate)
    bands = librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=BANDS, fmin=LOW_HZ, fmax=high, htk=True)
    return np.ascontiguousarray(bands.T, dtype=np.float32)


def disagreement(first: str, second: str) -> float:
    """The share of the cells moving in either fingerprint where they disagree (1.0: nothing to compare)."""
    share, _ = _compare(_planes([first]), _planes([second]))
    return float(share[0, 0])


def _planes(prints: list[str]) -> np.ndarray:
    """(n, 2 · CELLS) 0/1 float32: each fingerprint's growth and fall bits."""
    raw = np.stack([np.frombuffer(bytes.fromhex(text), dtype=np.uint8) for text in prints])
    return np.unpackbits(raw, axis=1).astype(np.float32)


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of disagreeing moving cells, moving cells) of every pair of rows of `a` and `b` (see `_planes`)."""
    moving_a, moving_b = a[:, :CELLS] + a[:, CELLS:], b[:, :CELLS] + b[:, CELLS:]  # a cell grows or falls
    union = moving_a.sum(1)[:, None] + moving_b.sum(1)[None, :] - moving_a @ moving_b.T
    agree = a @ b.T  # cells that grow in both plus cells that fall in both
    return 1 - agree / np.maximum(union, 1), union


def matching_pairs(prints: dict[str, str]) -> list[tuple[str, str, float]]:
    """`(a, b, disagreement)` for every pair of names whose fingerprints match (a < b), sorted; empty or
    malformed fingerprints (an older manifest's "") match nothing."""
    names = sorted(name for name, text in prints.items() if len(text) == CELLS // 2)
    if len(names) < 2:
        return []
    planes = _planes([prints[name] for name in names])
    pairs = []
    for start in range(0, len(names), BLOCK):
        share, union = _compare(planes[start : start + BLOCK], planes)
        for i, j in zip(*np.nonzero((share <= MATCH_SHARE) & (union >= MIN_MOVING))):
            if start + i < j:
                pairs.append((names[start + i], names[j], round(float(share[i, j]), 3)))
    return sorted(pairs)


def joined_groups(groups: dict[str, str], pairs: list[tuple[str, str, float]]) -> dict[str, str]:
    """Each name's group once the groups of matching names are joined (union-find): a joined group takes the
    smallest of its groups' names, so groups without a match keep theirs."""
    parent = {group: group for group in groups.values()}

    def root(group: str) -> str:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    for a, b, _ in pairs:
        first, second = sorted((root(groups[a]), root(groups[b])))
        parent[second] = first
    return {name: root(group) for name, group in groups.items()}
