"""TensorFlow tensor-bundle checkpoints (`.index` + `.data-00000-of-00001`) read with numpy alone.

The `.index` file is a TensorFlow table (LevelDB's SSTable layout): prefix-compressed blocks with restart points,
each followed by a compression byte and a masked CRC-32C, and a 48-byte footer holding the metaindex and index
block handles and the magic number. The index block maps keys to data blocks; in a data block the key ``""``
holds the `BundleHeaderProto` and every other key is a tensor name whose value is a `BundleEntryProto`
(dtype, shape, shard, offset, size, masked CRC-32C of the tensor's bytes). Both protobufs are decoded here by
hand, so neither TensorFlow nor protobuf is needed. Only single-shard, little-endian, uncompressed bundles of
numeric tensors (what `tf.compat.v1.train.Saver` writes) are supported.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ...errors import MerError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_LENGTH = 48
BLOCK_TRAILER = 5  # compression type (1 byte) + masked CRC-32C (4 bytes)
MASK_DELTA = 0xA282EAD8
DTYPES = {  # tensorflow/core/framework/types.proto
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lies in the data file, as its `BundleEntryProto` says."""

    name: str
    dtype: int  # TensorFlow's DataType number (1 = float32)
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # masked, as TensorFlow stores it


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, as TensorFlow's `crc32c::Value`."""
    table = CRC_TABLE
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TensorFlow stores beside blocks and tensors."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varint/fixed fields, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos : pos + length]), pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, value


def _shape(buf: bytes) -> tuple[int, ...]:
    """The dimensions of a `TensorShapeProto` (field 2: repeated Dim, whose field 1 is the size)."""
    dims = []
    for field, value in _proto_fields(buf):
        if field == 2:
            dims.append(next((size for number, size in _proto_fields(value) if number == 1), 0))
    return tuple(dims)


def _entry(name: str, buf: bytes) -> BundleEntry:
    values = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0, "crc32c": 0}
    names = {1: "dtype", 3: "shard", 4: "offset", 5: "size", 6: "crc32c"}
    for field, value in _proto_fields(buf):
        if field == 2:
            values["shape"] = _shape(value)
        elif field in names:
            values[names[field]] = value
        elif field == 7:
            raise ValueError(f"tensor {name!r} is stored in slices (a partitioned variable)")
    return BundleEntry(name=name, **values)


def _block(table: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of the block that `handle` (varint offset, varint size) points to."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    block = table[offset : offset + size]
    trailer = table[offset + size : offset + size + BLOCK_TRAILER]
    if len(block) != size or len(trailer) != BLOCK_TRAILER:
        raise ValueError("a block lies beyond the end of the file")
    if trailer[0] != 0:
        raise ValueError(f"compressed blocks (type {trailer[0]}) are not supported")
    if masked_crc32c(block + trailer[:1]) != int.from_bytes(trailer[1:], "little"):
        raise ValueError("a block's checksum does not match")
    restarts = int.from_bytes(block[-4:], "little")
    end = size - 4 * (restarts + 1)
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def read_index(index: bytes) -> dict[str, BundleEntry]:
    """Every tensor entry of a bundle's `.index` file, by name (the header is checked, not returned)."""
    index = bytes(index)
    if len(index) < FOOTER_LENGTH:
        raise ValueError("too short for a TensorFlow table")
    footer = index[-FOOTER_LENGTH:]
    if struct.unpack("<Q", footer[-8:])[0] != TABLE_MAGIC:
        raise ValueError("not a TensorFlow table (bad magic number)")
    _meta_offset, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    entries: dict[str, BundleEntry] = {}
    for _last_key, handle in _block(index, footer[pos:]):
        for key, value in _block(index, handle):
            if key == b"":
                header = dict(_proto_fields(value))
                if header.get(1, 1) != 1 or header.get(2, 0) != 0:
                    raise ValueError("only single-shard little-endian bundles are supported")
                continue
            name = key.decode("utf-8")
            entries[name] = _entry(name, value)
    return entries


def read_tensors(index: bytes, data: bytes, keep: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The numeric tensors of a bundle (those whose name passes `keep`), given its `.index` and data bytes.

    Each tensor's byte count is checked against its dtype and shape, and its masked CRC-32C against the entry's.
    """
    tensors = {}
    for name, entry in read_index(index).items():
        if entry.dtype not in DTYPES or (keep is not None and not keep(name)):
            continue
        if entry.shard != 0:
            raise ValueError(f"tensor {name!r} lies in shard {entry.shard}; only single-shard bundles are supported")
        dtype = np.dtype(DTYPES[entry.dtype]).newbyteorder("<")
        raw = data[entry.offset : entry.offset + entry.size]
        if len(raw) != entry.size or entry.size != dtype.itemsize * int(np.prod(entry.shape, dtype=np.int64)):
            raise ValueError(f"tensor {name!r}: {entry.size} bytes do not fit {dtype.name}{list(entry.shape)}")
        if masked_crc32c(raw) != entry.crc32c:
            raise ValueError(f"tensor {name!r}: checksum mismatch (a damaged data file)")
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
    return tensors


def read_checkpoint(
    index: bytes, data: bytes, keep: Callable[[str], bool] | None = None, source: str = "checkpoint"
) -> dict[str, np.ndarray]:
    """`read_tensors`, with any format problem as one `MerError` line naming `source`."""
    try:
        return read_tensors(index, data, keep)
    except (ValueError, IndexError, struct.error) as exc:
        raise MerError(f"{source}: not a readable TensorFlow checkpoint ({exc}); get the weights again") from exc
