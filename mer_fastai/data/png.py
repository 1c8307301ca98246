"""A fast, lossless writer of 8- and 16-bit greyscale PNG files (the spectrogram images `prepare` writes)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .._plumbing.diskfull import writing

SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTER_SUB = 1  # each byte minus its left neighbour: neighbouring frames are alike
# Run-length deflate of the filtered rows: files as small as Pillow's fastest level, written 2-3x faster
STRATEGY = zlib.Z_RLE


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 or uint16 (height, width) image: every row 'Sub'-filtered, then run-length deflated."""
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 2:
        raise ValueError(f"expected a uint8 or uint16 (height, width) image, got {image.dtype} {image.shape}")
    height, width = image.shape
    depth = image.dtype.itemsize  # bytes per pixel: 'Sub' subtracts the byte that many places to the left
    data = image.astype(f">u{depth}").view(np.uint8).reshape(height, width * depth)
    rows = np.empty((height, width * depth + 1), dtype=np.uint8)
    rows[:, 0] = FILTER_SUB
    rows[:, 1 : 1 + depth] = data[:, :depth]  # left of the first pixel is zero
    np.subtract(data[:, depth:], data[:, :-depth], out=rows[:, 1 + depth :])  # modulo 256, as PNG's filter defines it
    header = struct.pack(">IIBBBBB", width, height, 8 * depth, 0, 0, 0, 0)  # greyscale, no interlace
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 9, STRATEGY)
    idat = deflate.compress(rows.tobytes()) + deflate.flush()
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def read_png16(path: str | Path) -> np.ndarray:
    """A 16-bit greyscale PNG (as `encode_png` writes) as a uint16 (height, width) array."""
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image, dtype=np.uint16)


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write `image` (uint8 or uint16, height × width) to `path` as a greyscale PNG (on a full disk: one line
    naming it, no half image left)."""
    with writing(path):
        Path(path).write_bytes(encode_png(image))
