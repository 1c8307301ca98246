"""A linear probe's window vector: a frozen musicnn's layer, pooled over the 3 s patches of one audio window.

The one computation behind `baseline --features musicnn-<model>` (which fits on it, `evaluation.baseline.probes`)
and a probe model file (`baseline --save-model`, which `Predictor` feeds with it, `models.windowreads`): the window
is cut from the clip decoded at musicnn's 16 kHz (`load_musicnn_audio`), turned into musicnn's log-mel input,
cut into 3 s patches without overlap (a window shorter than one patch is one patch of its own length) and run
through the network in eval mode. Its vector at a layer is the mean then the standard deviation over the patches.
Layers (see `models.musicnn.network`):
- `penultimate`: the 200 features before the tag layer (batch norm, dense, ReLU, batch norm), 400 numbers;
- `pooled`: the mid-end's max and mean over time before the dense layer (1506 per patch), 3012 numbers;
- `tags`: the 50 tag probabilities (sigmoid), 100 numbers.
"""

from __future__ import annotations

import functools

import numpy as np

from ...choices import PROBE_LAYERS as LAYERS
from ...data.spectrogram import musicnn_spec
from .preprocessing import log_mel, patch_frames, patches

__all__ = ["MODELS", "PROBE_VERSION", "layer_outputs", "probe_reads", "window_layers", "window_patches"]

PROBE_VERSION = "musicnn-probe/1"  # change whenever `layer_outputs` or the pooling changes
MODELS = ("msd", "mtt")  # the musicnn weights a probe reads
BATCH = 64  # patches per forward pass


def probe_reads(model: str, layer: str) -> str:
    """What a probe model file of `model`'s `layer` reads (`ModelMeta.window_features`), e.g.
    `musicnn-msd.pooled@musicnn-probe/1`."""
    return f"musicnn-{model}.{layer}@{PROBE_VERSION}"


def window_layers(window: np.ndarray, model: str) -> dict[str, np.ndarray]:
    """Every probed layer's vector (mean then sd over the patches, float32) of one 16 kHz window."""
    outputs = layer_outputs(window_patches(window), model)
    return {name: np.concatenate([value.mean(axis=0), value.std(axis=0)]).astype(np.float32)
            for name, value in outputs.items()}  # fmt: skip


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
    from .weights import load_musicnn

    return load_musicnn(model)


@functools.lru_cache(maxsize=1)
def _spec():
    return musicnn_spec()
