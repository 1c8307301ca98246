"""Linear-probe features: a frozen pretrained network's layer, pooled over each window, for the classic estimators.

The standard protocol for judging a pretrained embedding (MARBLE, HEAR): the network never trains; a window of
the data set (its manifest row: source file, start, the data set's window length) is decoded at musicnn's rate,
turned into musicnn's log-mel input exactly as `models.musicnn.preprocessing` does for the whole clip, cut into
3 s patches without overlap, and every patch is run through the network up to the chosen layer. The window's
features are the mean and the standard deviation of that layer over its patches. A window shorter than one
patch is one patch of its own length (musicnn reads any number of frames). Layers (see `models.musicnn.network`):
- `penultimate`: the 200 features before the tag layer (batch norm, dense, ReLU, batch norm), 400 numbers;
- `pooled`: the mid-end's max and mean over time before the dense layer (1506 per patch), 3012 numbers;
- `tags`: the 50 tag probabilities (sigmoid), 100 numbers.
"""

from __future__ import annotations

import functools

import numpy as np

from ...bounds import quote
from ...choices import PROBE_LAYERS as LAYERS
from ...data.audio import window_at
from ...errors import AudioError, MerError
from ...models.musicnn.network import BACKEND_UNITS
from ...models.musicnn.preprocessing import load_musicnn_audio, log_mel, patch_frames, patches
from ...models.musicnn.tags import TAGS
from .features import FeatureSet, SourceRows, Windows, locate_source

PROBE_VERSION = "musicnn-probe/1"  # change whenever `_layer_outputs` or the pooling changes
POOLED_UNITS = 1506  # the mid-end's max and mean over time
BATCH = 64  # patches per forward pass


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
    rows = {}
    for image, start in starts:
        window = window_at(signal, _spec().sample_rate, seconds, start)
        outputs = layer_outputs(window_patches(window), model)
        rows[image] = {
            name: np.concatenate([value.mean(axis=0), value.std(axis=0)]).astype(np.float32)
            for name, value in outputs.items()
        }
    return rows


def window_patches(window: np.ndarray) -> np.ndarray:
    """musicnn's input patches (n, 1, 96, frames) of one 16 kHz window: 3 s patches without overlap, or the
    whole window as one patch when it is shorter than 3 s."""
    mel = log_mel(window)
    if mel.shape[1] >= patch_frames(_spec()):
        return patches(mel)
    return np.ascontiguousarray(mel[None, None])


def layer_outputs(batch: np.ndarray, model: str) -> dict[str, np.ndarray]:
    """(patches, units) of every probed layer (see `LAYERS`) for musicnn's input patches, the network in eval
    mode (dropout off)."""
    import torch

    network = _network(model)
    parts: dict[str, list] = {layer: [] for layer in LAYERS}
    with torch.inference_mode():
        for x in torch.from_numpy(batch).split(BATCH):
            pooled = network.pool(network.midend(network.frontend(x)))
            penultimate = network.penultimate(pooled)
            parts["pooled"].append(pooled)
            parts["penultimate"].append(penultimate)
            parts["tags"].append(torch.sigmoid(network.head(penultimate)))
    return {layer: torch.cat(values).numpy() for layer, values in parts.items()}


@functools.lru_cache(maxsize=2)
def _network(model: str):
    from ...models.musicnn.weights import load_musicnn

    return load_musicnn(model)


@functools.lru_cache(maxsize=1)
def _spec():
    from ...data.spectrogram import musicnn_spec

    return musicnn_spec()
