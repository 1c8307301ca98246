"""How close generated spectrograms are to real ones: Fréchet distances in a feature space.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to Inception-v3 features of
real and generated images. Its weights cannot be downloaded everywhere, so every run reports
`fd_proxy`: the same Fréchet distance computed on the features of a FIXED, RANDOMLY INITIALISED
three-layer conv net (weights drawn from a seeded NumPy generator, so the score is identical on every
machine). Random conv features track texture and intensity statistics well enough to rank generators
and catch collapse, but the numbers are on their own scale: never compare them with published FIDs.
When the `pytorch-fid` package is installed and its Inception weights are already cached, the real
`fid` is reported as well (on few images it is biased upwards; compare runs of equal size only).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PROXY_SIZE = 64
PROXY_SEED = 20240601
PROXY_CHANNELS = (1, 32, 64, 128)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (n, d) feature sets (n ≥ 2 each)."""
    mean_r, mean_f = real.mean(axis=0), fake.mean(axis=0)
    cov_r = np.atleast_2d(np.cov(real, rowvar=False))
    cov_f = np.atleast_2d(np.cov(fake, rowvar=False))
    values, vectors = np.linalg.eigh(cov_r)
    root_r = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    # tr sqrt(C_r C_f) equals the sum of square roots of the eigenvalues of C_r^½ C_f C_r^½ (symmetric PSD)
    cross = np.sqrt(np.linalg.eigvalsh(root_r @ cov_f @ root_r).clip(min=0)).sum()
    distance = ((mean_r - mean_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2 * cross
    return float(max(distance, 0.0))


def _proxy_layers() -> list[torch.Tensor]:
    """The fixed random conv layers of `fd_proxy`: He-normal weights from a seeded NumPy generator."""
    import torch

    rng = np.random.default_rng(PROXY_SEED)
    layers = []
    for c_in, c_out in pairwise(PROXY_CHANNELS):
        weight = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / (c_in * 9))
        layers.append(torch.from_numpy(weight.astype(np.float32)))
    return layers


def proxy_features(images: np.ndarray) -> np.ndarray:
    """(n, 128) features of uint8 (n, h, w) images: mean ReLU response of each random filter."""
    import torch
    import torch.nn.functional as F

    layers = _proxy_layers()
    features = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            x = torch.from_numpy(np.asarray(images[start : start + 256])).float().unsqueeze(1) / 127.5 - 1
            x = F.interpolate(x, size=(PROXY_SIZE, PROXY_SIZE), mode="bilinear", antialias=True)
            for weight in layers:
                x = F.relu(F.conv2d(x, weight, stride=2, padding=1))
            features.append(x.mean(dim=(2, 3)).double().numpy())
    return np.concatenate(features)


def fd_proxy(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance of uint8 (n, h, w) image sets in the fixed random-conv feature space."""
    return frechet_distance(proxy_features(real), proxy_features(fake))


def inception_available() -> bool:
    """True when `pytorch-fid` is installed and its Inception weights are cached (no download needed)."""
    try:
        from pytorch_fid.inception import FID_WEIGHTS_URL
    except ImportError:
        return False
    import torch

    return (Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]).is_file()


def inception_features(images: np.ndarray) -> np.ndarray:
    """(n, 2048) pool features of the FID Inception-v3 for uint8 (n, h, w) images."""
    import torch
    from pytorch_fid.inception import InceptionV3

    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    features = []
    with torch.no_grad():
        for start in range(0, len(images), 50):
            x = torch.from_numpy(np.asarray(images[start : start + 50])).float().div(255).unsqueeze(1)
            features.append(model(x.repeat(1, 3, 1, 1))[0].flatten(1).double().numpy())
    return np.concatenate(features)


def quality_report(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> dict:
    """`fd_proxy` (always) and `fid` (when possible) over all classes and per class; lower is better."""
    scores = {"fd_proxy": _scores(real, fake, proxy_features)}
    if inception_available():
        scores["fid"] = _scores(real, fake, inception_features)
    scores["n_real"] = {name: len(images) for name, images in real.items()}
    scores["n_generated"] = {name: len(images) for name, images in fake.items()}
    scores["note"] = (
        "fd_proxy: Fréchet distance in the feature space of a fixed random-init conv net, "
        "not comparable with published FID; lower is better"
    )
    return scores


def _scores(
    real: dict[str, np.ndarray], fake: dict[str, np.ndarray], features: Callable[[np.ndarray], np.ndarray]
) -> dict:
    per_real = {name: features(images) for name, images in real.items()}
    per_fake = {name: features(images) for name, images in fake.items()}
    overall = frechet_distance(np.concatenate([*per_real.values()]), np.concatenate([*per_fake.values()]))
    per_class = {
        name: frechet_distance(per_real[name], per_fake[name])
        for name in fake
        if len(per_real[name]) >= 2 and len(per_fake[name]) >= 2
    }
    return {"overall": overall, "per_class": per_class}
