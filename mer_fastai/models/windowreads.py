"""What a model of window features reads, and the one way a file is cut into any model's window inputs.

A model file written by `baseline --save-model` reads one feature vector per window instead of a spectrogram
image (`ModelMeta.window_features`): the hand-crafted descriptors (`data.handcrafted.READS`, computed from the clip
decoded at the data set's sample rate), a musicnn layer's linear-probe vector (`models.musicnn.probe`, e.g.
`musicnn-msd.pooled@musicnn-probe/1`, computed from the clip decoded at musicnn's 16 kHz as `baseline` decodes
it), or several of them joined by `+`, concatenated in that order. Each part names its version: a file of another
version's features is refused when it is read, never fed vectors it was not fitted on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..choices import PROBE_LAYERS
from ..data.audio import check_signal, load_audio, window_at, windows
from ..data.handcrafted import READS, window_features
from ..data.spectrogram import SpecConfig, musicnn_spec, window_images
from .musicnn.preprocessing import load_musicnn_audio
from .musicnn.probe import MODELS, PROBE_VERSION, probe_reads, window_layers

__all__ = ["KNOWN", "READABLE", "forkable", "read_windows", "readable", "reads_kind"]

READABLE = (READS, *(probe_reads(model, layer) for model in MODELS for layer in PROBE_LAYERS))  # the parts
# what an unknown value is told this version computes
KNOWN = f"{READS} or musicnn-<{'|'.join(MODELS)}>.<{'|'.join(PROBE_LAYERS)}>@{PROBE_VERSION}, joined by '+'"


def readable(value: str) -> bool:
    """Whether this version computes what `value` (a model file's `window_features`) names: known parts joined by
    `+`, each once."""
    parts = value.split("+")
    return all(part in READABLE for part in parts) and len(set(parts)) == len(parts)


def forkable(reads: str | None) -> bool:
    """Whether a forked process may compute these inputs: not a musicnn part's (torch, already run by the parent,
    hangs in a forked child), so such windows are computed in the predicting process."""
    return reads is None or all(_decoder(part) == "handcrafted" for part in reads.split("+"))


def reads_kind(reads: str) -> str:
    """How messages name a model reading `reads`: "hand-crafted" or "linear-probe"."""
    return "hand-crafted" if reads == READS else "linear-probe"


def read_windows(
    file: str | Path, spec: SpecConfig, seconds: float, step: float, reads: str | None = None
) -> tuple[float, list[float], list[np.ndarray]]:
    """The duration of `file` (seconds), its windows' starts and inputs: spectrogram images of `spec` (`reads`
    None), or each window's feature vector of `reads` (see the module), every part cut at the same starts from
    its own decode; `AudioError` for a file that cannot be labelled."""
    if reads is None:
        signal = load_audio(file, spec.sample_rate)
        pairs = list(window_images(signal, spec, seconds, step))
        return len(signal) / spec.sample_rate, [float(s) for s, _ in pairs], [image for _, image in pairs]
    parts = reads.split("+")
    decoded = {_decoder(part): _decode(file, part, spec) for part in parts}
    first, rate = decoded[_decoder(parts[0])]
    starts = [float(start) for start, _ in windows(first, rate, seconds, step)]
    columns = [_vectors(part, *decoded[_decoder(part)], spec, seconds, starts) for part in parts]
    return len(first) / rate, starts, [np.concatenate(row) for row in zip(*columns, strict=True)]


def _decoder(part: str) -> str:
    """Which decode a part reads: the data set's (hand-crafted) or musicnn's."""
    return "handcrafted" if part == READS else "musicnn"


def _decode(file: str | Path, part: str, spec: SpecConfig) -> tuple[np.ndarray, int]:
    """The signal a part's features are computed from, and its sample rate."""
    if _decoder(part) == "handcrafted":
        return load_audio(file, spec.sample_rate), spec.sample_rate
    rate = musicnn_spec().sample_rate
    signal = load_musicnn_audio(file)  # as `baseline --features musicnn-*` decodes it
    check_signal(file, signal, rate)
    return signal, rate


def _vectors(
    part: str, signal: np.ndarray, rate: int, spec: SpecConfig, seconds: float, starts: list[float]
) -> list[np.ndarray]:
    """One part's vector of every window (`seconds` long, from each of `starts`)."""
    cut = [window_at(signal, rate, seconds, start) for start in starts]
    if part == READS:
        return [window_features(window, rate, spec.n_fft, spec.hop_length) for window in cut]
    model, layer = part.split("@")[0].removeprefix("musicnn-").split(".")
    return [window_layers(window, model)[layer] for window in cut]
