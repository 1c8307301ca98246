"""`inference.embed_map`: the 2-D map's method by the number of tracks."""

from __future__ import annotations

import numpy as np

from mer_fastai.inference.embed_map import map_2d


def test_map_method_by_size():
    coords, method = map_2d(np.random.default_rng(0).normal(size=(3, 8)))
    assert method == "PCA" and coords.shape == (3, 2)
    coords, method = map_2d(np.random.default_rng(0).normal(size=(12, 8)))
    assert method in ("umap", "t-SNE") and coords.shape == (12, 2)  # umap when umap-learn is installed
