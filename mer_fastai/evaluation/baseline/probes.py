"""Linear-probe features: a frozen pretrained network's layer, pooled over each window, for the classic estimators.

The standard protocol for judging a pretrained embedding (MARBLE, HEAR): the network never trains; a window of
the data set (its manifest row: source file, start, the data set's window length) is cut from the clip decoded at
musicnn's rate and described by `models.musicnn.probe.window_layers` (the mean and the sd over its 3 s patches of
the chosen layer), the function a probe model file (`--save-model`) computes at prediction too.
"""

from __future__ import annotations

import functools

import numpy as np

from ...bounds import quote
from ...choices import PROBE_LAYERS as LAYERS
from ...data.audio import window_at
from ...data.spectrogram import musicnn_spec
from ...errors import AudioError, MerError
from ...models.musicnn.network import BACKEND_UNITS
from ...models.musicnn.preprocessing import load_musicnn_audio
from ...models.musicnn.probe import PROBE_VERSION, window_layers
from ...models.musicnn.tags import TAGS
from .features import FeatureSet, SourceRows, Windows, locate_source

__all__ = ["POOLED_UNITS", "probe_set", "probe_source"]

POOLED_UNITS = 1506  # the mid-end's max and mean over time


def probe_set(model: str, layer: str) -> FeatureSet:
    """The feature set `musicnn-<model>` at `layer` (one clear error naming --layer for an unknown one)."""
    if layer not in LAYERS:
        raise MerError(f"unknown --layer {quote(layer)}; choose one of {', '.join(LAYERS)}")
    width = {"penultimate": BACKEND_UNITS, "pooled": POOLED_UNITS, "tags": len(TAGS[model])}[layer]
    columns = [f"{layer}{i}" for i in range(width)] if layer != "tags" else list(TAGS[model])
    names = tuple(f"musicnn_{model}_{c}_{stat}" for stat in ("mean", "std") for c in columns)
    describe = functools.partial(probe_source, model=model, layer=layer)
    return FeatureSet(f"musicnn-{model}.{layer}", f"{PROBE_VERSION}:{model}:{layer}", names, describe, parallel=False)


def probe_source(
    source: str, starts: Windows, spec_values: dict, audio_dir: str | None, *, model: str, layer: str
) -> SourceRows:
    """Mean and sd over the patches of `layer`, for every listed window (image, start) of one file, decoding it
    once; a file that cannot be decoded gives no rows and the reason."""
    outcome = _source_layers(source, tuple(starts), float(spec_values["segment_seconds"]), audio_dir, model)
    if isinstance(outcome, str):
        return {}, outcome
    return {image: layers[layer] for image, layers in outcome.items()}, None


@functools.lru_cache(maxsize=2048)
def _source_layers(
    source: str, starts: tuple[tuple[str, float], ...], seconds: float, audio_dir: str | None, model: str
) -> dict[str, dict[str, np.ndarray]] | str:
    """Every layer's pooled vector of every window of one file (one forward pass gives all three, so probing
    another layer of the same windows in this process costs nothing), or why the file cannot be decoded."""
    try:
        signal = load_musicnn_audio(locate_source(source, audio_dir))
    except AudioError as exc:
        return str(exc)
    spec = musicnn_spec()
    return {image: window_layers(window_at(signal, spec.sample_rate, seconds, start), model) for image, start in starts}
