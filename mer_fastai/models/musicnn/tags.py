"""musicnn's tag probabilities and penultimate features of an audio file, as the original extractor gives them.

`musicnn_tags(path, "msd")` equals the taggram of the original's `extractor(path, model="MSD_musicnn",
input_overlap=False)` (Pons & Serra, ISMIR 2019 LBD; musicnn package, ISC licence): one row of 50 tag
probabilities per 3 s patch without overlap, the clip's tail shorter than a patch dropped.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .preprocessing import audio_patches
from .weights import check_model, load_musicnn

if TYPE_CHECKING:
    from torch import nn

__all__ = ["musicnn_tags", "TAGS"]

MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)  # fmt: skip
TAGS = {"msd": MSD_TAGS, "mtt": MTT_TAGS, "msd-vgg": MSD_TAGS, "mtt-vgg": MTT_TAGS}
BATCH = 64  # patches per forward pass


@functools.lru_cache(maxsize=4)
def _network(model: str) -> nn.Module:
    return load_musicnn(model)


def _run(audio_path: str | Path, model: str, features: bool) -> np.ndarray:
    import torch

    network = _network(check_model(model))
    batch = torch.from_numpy(audio_patches(audio_path))
    with torch.inference_mode():
        outputs = [network.features(part) if features else torch.sigmoid(network(part)) for part in batch.split(BATCH)]
    return torch.cat(outputs).numpy()


def musicnn_tags(audio_path: str | Path, model: str = "msd") -> np.ndarray:
    """Tag probabilities (3 s patches without overlap × 50 tags, named by `TAGS[model]`) of an audio file.

    `model`: "msd" or "mtt" (musicnn trained on the Million Song Dataset or MagnaTagATune), or "msd-vgg" /
    "mtt-vgg" (the package's VGG baselines). The weights come from the cache that `mer-fastai weights get
    musicnn` fills.
    """
    return _run(audio_path, model, features=False)


def musicnn_features(audio_path: str | Path, model: str = "msd") -> np.ndarray:
    """Penultimate features per 3 s patch without overlap: (patches, 200) for musicnn, (patches, 256) for VGG."""
    return _run(audio_path, model, features=True)
