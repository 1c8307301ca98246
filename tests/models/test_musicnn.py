"""The musicnn port: TensorFlow checkpoint reader, weights cache, network, input contract, and equality with the
original (fixtures made by `tests/fixtures/musicnn/make_reference.py` with musicnn 0.1.0 and TensorFlow).

Tests that need the weights get them as a user does (`mer-fastai weights get musicnn`: pip download into the
user cache, once) and skip with the reason only when they cannot be fetched.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mer_fastai.data.spectrogram import SpecConfig, musicnn_spec
from mer_fastai.errors import AudioError, MerError
from mer_fastai.models.musicnn import weights
from mer_fastai.models.musicnn.checkpoint import (
    TABLE_MAGIC,
    crc32c,
    masked_crc32c,
    read_checkpoint,
    read_index,
    read_tensors,
)
from mer_fastai.models.musicnn.network import MusicNN, MusicVGG
from mer_fastai.models.musicnn.preprocessing import audio_patches, patch_frames, patches
from mer_fastai.models.musicnn.tags import MSD_TAGS, MTT_TAGS, TAGS, musicnn_features, musicnn_tags
from tests.fixtures.musicnn.clips import samples_sha256, write_clips
from tests.test_cli import run_main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "musicnn"
MODELS = ("msd", "mtt", "msd-vgg", "mtt-vgg")
TAG_TOLERANCE = 1e-3  # absolute, on probabilities (measured: < 4e-6)
FEATURE_TOLERANCE = 1e-3  # absolute, on penultimate features of magnitude up to ~4 (measured: < 2e-5)
REAL_CLIPS = {"MT0000040632": "Q1", "MT0000088320": "Q3"}


# --- a hand-made tensor bundle -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes, wire: int | None = None) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    if wire == 5:
        return _varint(number << 3 | 5) + struct.pack("<I", value)
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A table block with prefix-compressed keys and a single restart point."""
    body, previous = bytearray(), b""
    for key, value in entries:
        shared = len(next((p for p in (key[:n] for n in range(len(key), -1, -1)) if previous.startswith(p)), b""))
        body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    return bytes(body) + struct.pack("<II", 0, 1)


def _append(table: bytearray, block: bytes) -> bytes:
    """Append `block` with its trailer to `table`; its handle."""
    handle = _varint(len(table)) + _varint(len(block))
    table += block + b"\0" + struct.pack("<I", masked_crc32c(block + b"\0"))
    return handle


def make_bundle(tensors: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(.index, .data) bytes of a TensorFlow tensor bundle holding `tensors` (float32 or int64)."""
    dtypes = {np.dtype(np.float32): 1, np.dtype(np.int64): 9}
    data, entries = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))]  # num_shards, version
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name]).tobytes()
        shape = b"".join(_field(2, _field(1, size)) for size in tensors[name].shape)
        entry = _field(1, dtypes[tensors[name].dtype]) + _field(2, shape) + _field(4, len(data))
        entries.append((name.encode(), entry + _field(5, len(raw)) + _field(6, masked_crc32c(raw), wire=5)))
        data += raw
    table = bytearray()
    data_handle = _append(table, _block(entries))
    meta_handle = _append(table, _block([]))
    index_handle = _append(table, _block([(entries[-1][0], data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(table + footer), bytes(data)


BUNDLE = {
    "conv2d/kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 1, 4),
    "conv2d/bias": np.array([0.5, -1.5, 2.0, 3.0], dtype=np.float32),
    "beta1_power": np.array(0.9, dtype=np.float32),
    "global_step": np.array(1234, dtype=np.int64),
}


def test_crc32c_is_castagnoli():
    assert crc32c(b"123456789") == 0xE3069283


def test_reader_reads_names_shapes_and_values_of_a_hand_made_bundle():
    index, data = make_bundle(BUNDLE)
    entries = read_index(index)
    assert {name: entry.shape for name, entry in entries.items()} == {k: v.shape for k, v in BUNDLE.items()}
    tensors = read_tensors(index, data)
    for name, array in BUNDLE.items():
        np.testing.assert_array_equal(tensors[name], array)
        assert tensors[name].dtype == array.dtype
    assert set(read_tensors(index, data, lambda name: name.startswith("conv2d/"))) == {"conv2d/kernel", "conv2d/bias"}


@pytest.mark.parametrize("damage", ["data byte", "truncated data", "magic", "index block"])
def test_reader_refuses_a_damaged_bundle_in_one_line(damage):
    index, data = make_bundle(BUNDLE)
    if damage == "data byte":
        data = data[:5] + bytes([data[5] ^ 1]) + data[6:]
    elif damage == "truncated data":
        data = data[:-4]
    elif damage == "magic":
        index = index[:-1] + b"\0"
    else:
        index = index[:3] + bytes([index[3] ^ 1]) + index[4:]
    with pytest.raises(MerError, match="x.index: not a readable TensorFlow checkpoint") as error:
        read_checkpoint(index, data, source="x.index")
    assert "\n" not in str(error.value)


# --- network and input contract (no weights) ---------------------------------------------------------------------


def test_musicnn_body_head_and_shapes():
    torch.manual_seed(0)
    network = MusicNN().eval()
    x = torch.randn(3, 1, 96, 187)
    with torch.inference_mode():
        logits, features = network(x), network.features(x)
        assert logits.shape == (3, 50) and features.shape == (3, network.feature_dim) == (3, 200)
        torch.testing.assert_close(network.head(features), logits)
        assert network(torch.randn(2, 1, 96, 100)).shape == (2, 50)  # musicnn takes any patch length
    assert [name for name, _ in network.named_children()] == ["frontend", "midend", "pool", "penultimate", "head"]


def test_vgg_body_head_and_shapes():
    network = MusicVGG().eval()
    with torch.inference_mode():
        x = torch.randn(2, 1, 96, 187)
        assert network(x).shape == (2, 50) and network.features(x).shape == (2, network.feature_dim) == (2, 256)


def test_input_contract_travels_as_a_dict():
    import librosa

    contract = musicnn_spec()
    assert SpecConfig.from_dict(contract.to_dict()) == contract == SpecConfig.from_dict({"preset": "musicnn"})
    assert (contract.sample_rate, contract.n_fft, contract.hop_length, contract.n_mels) == (16000, 512, 256, 96)
    assert (contract.compression, contract.framing, contract.fmin, contract.fmax) == ("log10_1p", "clip", 0.0, None)
    assert patch_frames(contract) == librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
    with pytest.raises(MerError, match="unknown spectrogram setting"):
        SpecConfig.from_dict({"preset": "musicnn", "top_dB": 80})
    with pytest.raises(MerError, match="unknown compression"):
        SpecConfig(compression="linear")


def test_patches_do_not_overlap_and_drop_the_tail():
    mel = np.random.default_rng(0).random((96, 2 * 187 + 100), dtype=np.float32)
    batch = patches(mel)
    assert batch.shape == (2, 1, 96, 187)
    np.testing.assert_array_equal(batch[1, 0], mel[:, 187:374])


def test_audio_shorter_than_a_patch_is_one_line(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.zeros(16000 * 2, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="short.wav: 2.0 s is shorter than one 2.99 s musicnn patch"):
        audio_patches(path)


def test_tag_names_per_model():
    assert len(MSD_TAGS) == len(MTT_TAGS) == 50 and len(set(MSD_TAGS)) == len(set(MTT_TAGS)) == 50
    assert {"happy", "sad", "Mellow", "chill", "beautiful"} <= set(MSD_TAGS) and MTT_TAGS[:2] == ("guitar", "classical")
    assert set(TAGS) == set(weights.MODELS)


# --- the weights cache -------------------------------------------------------------------------------------------


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(weights.CACHE_VARIABLE, str(tmp_path / "cache"))
    return tmp_path / "cache" / "musicnn"


def test_missing_weights_are_one_line_naming_the_command(tmp_cache):
    with pytest.raises(MerError) as error:
        weights.load_musicnn("msd")
    message = str(error.value)
    assert str(tmp_cache / "msd.safetensors") in message and "`mer-fastai weights get musicnn`" in message
    assert "\n" not in message


@pytest.mark.parametrize("content", ["other tensors", "garbage"])
def test_damaged_weights_are_one_line_saying_to_get_them_again(tmp_cache, content):
    from safetensors.torch import save_file

    tmp_cache.mkdir(parents=True)
    path = tmp_cache / "mtt.safetensors"
    if content == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00not a safetensors file")
    else:
        save_file({name: torch.zeros_like(t) for name, t in MusicNN().state_dict().items()}, str(path))
    with pytest.raises(
        MerError, match=r"mtt.safetensors: damaged musicnn weights .*rerun `mer-fastai weights get"
    ) as e:
        weights.load_state("mtt")
    assert "\n" not in str(e.value)


def test_unknown_model_is_one_line():
    with pytest.raises(MerError, match="unknown musicnn model 'msd-big'; choose one of msd, mtt, msd-vgg, mtt-vgg"):
        weights.weights_path("msd-big")


def test_failed_download_is_one_line_naming_from(tmp_cache, capsys, monkeypatch):
    import subprocess

    def offline(command, **_kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for musicnn\n")

    monkeypatch.setattr(weights.subprocess, "run", offline)
    code, err = run_main(["weights", "get", "musicnn"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot download musicnn==0.1.0 with pip (ERROR: No matching distribution" in err and "--from" in err


def test_cli_refuses_unknown_weights_and_a_missing_source_in_one_line(tmp_cache, tmp_path, capsys, monkeypatch):
    code, err = run_main(["weights", "get", "vggish"], capsys, monkeypatch)
    assert code == 2 and "unknown weights 'vggish'" in err and len(err.strip().splitlines()) == 1
    code, err = run_main(["weights", "get", "musicnn", "--from", str(tmp_path / "nowhere")], capsys, monkeypatch)
    assert code == 2 and "nowhere: not found" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="session")
def musicnn_wheel(tmp_path_factory) -> Path:
    """The musicnn 0.1.0 wheel, fetched with `pip download` as `weights get` does."""
    try:
        return weights.download_wheel(tmp_path_factory.mktemp("wheel"))
    except MerError as exc:
        pytest.skip(f"the musicnn wheel cannot be fetched: {exc}")


@pytest.fixture(scope="session")
def musicnn_weights() -> dict[str, Path]:
    """Every converted model in the user cache (`$MER_FASTAI_CACHE` or ~/.cache/mer-fastai), got once."""
    try:
        return weights.get_weights()
    except MerError as exc:
        pytest.skip(f"the musicnn weights cannot be fetched: {exc}")


def test_reader_on_the_real_checkpoint(musicnn_wheel):
    with zipfile.ZipFile(musicnn_wheel) as wheel:
        index = wheel.read("musicnn/MSD_musicnn/.index")
    entries = read_index(index)
    assert entries["conv2d/kernel"].shape == (7, 38, 1, 204)  # 7 frames × 38 mel bands, 204 timbral filters
    assert entries["conv2d_5/kernel"].shape == (7, 561, 1, 64)  # the midend's first convolution
    assert entries["dense/kernel"].shape == (1506, 200) and entries["dense_1/kernel"].shape == (200, 50)
    assert all(entry.dtype == 1 for entry in entries.values())


def test_get_from_a_local_wheel_or_unpacked_folder_then_damage(musicnn_wheel, tmp_cache, tmp_path, capsys, monkeypatch):
    code, err = run_main(["weights", "get", "musicnn", "--from", str(musicnn_wheel)], capsys, monkeypatch)
    assert code == 0, err
    assert sorted(path.name for path in tmp_cache.iterdir()) == sorted(f"{m}.safetensors" for m in MODELS)
    assert isinstance(weights.load_musicnn("msd-vgg"), MusicVGG)
    path = tmp_cache / "mtt.safetensors"
    content = bytearray(path.read_bytes())
    content[-10] ^= 0xFF  # a byte of the last tensor
    path.write_bytes(bytes(content))
    with pytest.raises(MerError, match="damaged musicnn weights"):
        weights.load_state("mtt")
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(musicnn_wheel).extractall(folder)
    assert weights.get_weights(folder / "musicnn", ["mtt"])["mtt"] == path  # replaces the damaged file
    assert weights.cached("mtt")


# --- equality with the original ----------------------------------------------------------------------------------


def _assert_equal_to_reference(reference: np.lib.npyio.NpzFile, clip: str, path: Path) -> None:
    for model in MODELS:
        tags, expected = musicnn_tags(path, model), reference[f"{clip}.{model}.tags"]
        assert tags.shape == expected.shape, (clip, model)
        np.testing.assert_allclose(tags, expected, rtol=0, atol=TAG_TOLERANCE, err_msg=f"{clip} {model}")
        for ours, theirs in zip(tags, expected):
            assert set(np.argsort(-ours)[:5]) == set(np.argsort(-theirs)[:5]), (clip, model)
        if "vgg" not in model:
            features, expected = musicnn_features(path, model), reference[f"{clip}.{model}.penultimate"]
            np.testing.assert_allclose(features, expected, rtol=0, atol=FEATURE_TOLERANCE, err_msg=f"{clip} {model}")


def test_port_equals_the_original_from_audio(musicnn_weights, tmp_path):
    reference = np.load(FIXTURES / "reference.npz")
    for clip, path in write_clips(tmp_path).items():
        assert samples_sha256(path) == reference[f"{clip}.samples_sha256"], f"clips.py no longer makes {clip}"
        _assert_equal_to_reference(reference, clip, path)


@pytest.mark.integration
def test_port_equals_the_original_on_real_clips(musicnn_weights, shared_data):
    reference = np.load(FIXTURES / "reference_4q.npz")
    for clip, quadrant in REAL_CLIPS.items():
        path = shared_data / "4q-dev" / quadrant / f"{clip}.mp3"
        if hashlib.sha256(path.read_bytes()).hexdigest() != reference[f"{clip}.file_sha256"]:
            pytest.skip(f"{path} is not the file the reference was made from")
        _assert_equal_to_reference(reference, clip, path)
