"""Model-file checksums: any tensor hashes (any stride, any dtype), and files written before still verify."""

from __future__ import annotations

import torch

from mer_fastai.models.modelfile import (
    MODEL_FORMAT,
    TargetRange,
    checksum,
    packed,
    read_safetensors,
    write_safetensors,
)

# A state of ordinary tensors and its checksum as mer-fastai 0.2.0 (before `packed`) computed it: files written
# then must still verify, so the same bytes are hashed for every tensor that hashed before.
STATE = {
    "w": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
    "h": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3),
    "n": torch.tensor([3, -1], dtype=torch.int64),
    "b": torch.tensor([True, False, True]),
    "t": torch.arange(8, dtype=torch.float32).reshape(2, 4).t().contiguous(),
}
METADATA = {"format": "x", "classes": ["a", "b"], "checksum": "ignored"}
CHECKSUM_0_2_0 = "sha256:48a9809327df3e33bdfcf487f0f9761c2cbb07a1425decd2b08d49047b8e9efc"


def test_checksum_of_ordinary_tensors_is_unchanged():
    assert checksum(STATE, METADATA) == CHECKSUM_0_2_0


def test_a_one_target_range_buffer_hashes_as_its_packed_copy():
    head = TargetRange([[1.0, 9.0]])  # one regression target: 1-element buffers sliced with stride 2
    assert head.low.stride() == (2,)
    state = head.state_dict()
    copies = {name: torch.tensor(tensor.tolist()) for name, tensor in state.items()}
    assert checksum(state, {}) == checksum(copies, {})
    assert packed(head.low).stride() == (1,) and torch.equal(packed(head.low), head.low)


def test_strided_views_of_every_dtype_hash_like_their_copies():
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool):
        base = torch.arange(24).reshape(4, 6).to(dtype)
        views = {"col": base[:, 1], "one": base[2:3, 4], "t": base.t(), "empty": base[:0, 1]}
        copies = {name: view.clone(memory_format=torch.contiguous_format) for name, view in views.items()}
        assert checksum(views, {}) == checksum(copies, {}), dtype


def test_a_one_target_head_writes_and_reads_back(tmp_path):
    head = TargetRange([[-1.0, 1.0]])
    path = write_safetensors(tmp_path / "m.safetensors", head.state_dict(), {"classes": ["valence"]}, MODEL_FORMAT)
    state, metadata = read_safetensors(path, MODEL_FORMAT)
    assert state["low"].tolist() == [-1.0] and state["high"].tolist() == [1.0]
    assert metadata["checksum"] == checksum(state, metadata)
