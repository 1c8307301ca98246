"""The one image resize of the package: bilinear, to an explicit (height, width)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image


def resize(image: np.ndarray | Image.Image, size: tuple[int, int]) -> np.ndarray:
    """`image` (a PIL image, or a uint8 array of shape (h, w) or (h, w, c)) resized bilinearly to `size`
    = (height, width), as a new uint8 array of shape (height, width[, c])."""
    from PIL import Image

    height, width = size
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return np.array(image.resize((width, height), Image.BILINEAR))
