"""The spectrogram PNG writer: lossless, and read back alike by Pillow and fastai's loaders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mer_fastai.data.png import encode_png, save_png


@pytest.mark.parametrize("shape", [(128, 431), (1, 1), (1, 7), (5, 1), (32, 44)])
def test_pillow_reads_back_every_pixel(tmp_path, shape):
    rng = np.random.default_rng(sum(shape))
    smooth = np.cumsum(rng.integers(-3, 4, shape), axis=1) % 256  # wraps around: filter arithmetic is mod 256
    for image in (rng.integers(0, 256, shape), smooth, np.zeros(shape), np.full(shape, 255)):
        image = image.astype(np.uint8)
        path = tmp_path / "image.png"
        save_png(path, image)
        with Image.open(path) as opened:
            assert opened.mode == "L" and opened.size == (shape[1], shape[0])
            assert np.array_equal(np.asarray(opened), image)


def test_only_greyscale_bytes_are_accepted():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="height, width"):
        encode_png(np.zeros((4, 4, 3), dtype=np.uint8))
