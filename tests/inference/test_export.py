"""`export` and model-file safety: metrics added, ONNX, and damaged or pickled files rejected."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.errors import MerError
from mer_fastai.inference.export import export_model, export_onnx
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.modelfile import MODEL_FORMAT, load_model, read_model_file, save_model_file, write_safetensors
from mer_fastai.models.weights import transfer_weights
from mer_fastai.runs.layout import METADATA_KEY
from tests.inference.test_predict import tiny_run  # noqa: F401  (session fixture: one tiny training shared by the modules)

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:  # noqa: F811
    return export_model(tiny_run, tmp_path_factory.mktemp("export") / "tiny.safetensors").model_file


def test_export_adds_run_metrics_and_keeps_weights(tiny_run, exported):  # noqa: F811
    _, metadata = read_model_file(exported)
    run_metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metadata["metrics"]["confusion_matrix"] == run_metrics["confusion_matrix"]
    assert metadata["metrics"]["per_class"] == run_metrics["per_class"]
    assert metadata["resize"] == "squish" and metadata["arch"] == "squeezenet1_0"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o666 & ~umask  # shareable, unlike safetensors' 0600
    original, _ = load_model(tiny_run)
    copy, _ = load_model(exported)
    for (name, a), (other, b) in zip(original.state_dict().items(), copy.state_dict().items(), strict=True):
        assert name == other and torch.equal(a, b)


def test_export_into_a_folder_and_bad_suffix(tiny_run, tmp_path):  # noqa: F811
    assert export_model(tiny_run, tmp_path).model_file == tmp_path / "model.safetensors"
    with pytest.raises(MerError, match=r"must end in \.safetensors"):
        export_model(tiny_run, tmp_path / "model.pt")


def test_onnx_export_matches_torch_for_any_batch(tiny_run, tmp_path):  # noqa: F811
    onnx = pytest.importorskip("onnx", reason="ONNX export needs `pip install onnx`")
    ort = pytest.importorskip("onnxruntime", reason="checking the ONNX file needs onnxruntime")
    result = export_model(tiny_run, tmp_path / "m.safetensors", onnx=True)
    assert result.onnx_file == tmp_path / "m.onnx"
    stored = {p.key: p.value for p in onnx.load(str(result.onnx_file)).metadata_props}
    assert json.loads(stored["mer_fastai"])["classes"] == ["angry", "happy", "sad", "tender"]
    session = ort.InferenceSession(str(result.onnx_file), providers=["CPUExecutionProvider"])
    model, _ = load_model(tiny_run)
    for batch in (1, 3):
        images = torch.randn(batch, 3, 64, 64)
        (logits,) = session.run(["logits"], {"image": images.numpy()})
        with torch.inference_mode():
            np.testing.assert_allclose(logits, model(images).numpy(), atol=1e-4)


def test_failed_onnx_export_leaves_no_temporary_file(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    onnx = pytest.importorskip("onnx", reason="ONNX export needs `pip install onnx`")

    def refuse(graph):
        raise ValueError("checker refused the graph")

    monkeypatch.setattr(onnx.checker, "check_model", refuse)
    model, meta = load_model(tiny_run)
    with pytest.raises(ValueError, match="checker refused"):
        export_onnx(model, meta, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_missing_names_the_install(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(MerError, match="pip install onnx"):
        export_model(tiny_run, tmp_path / "m.safetensors", onnx=True)
    assert not (tmp_path / "m.safetensors").exists()


def test_flipped_header_bytes_are_rejected(exported, tmp_path):
    data = bytearray(exported.read_bytes())
    for offset in range(8, 24):
        data[offset] ^= 0xFF
    damaged = tmp_path / "flipped.safetensors"
    damaged.write_bytes(bytes(data))
    with pytest.raises(MerError, match="not a readable safetensors model file"):
        Predictor.load(damaged)


def _flip(source: Path, out: Path, offset: int, mask: int = 0xFF) -> Path:
    data = bytearray(source.read_bytes())
    data[offset] ^= mask
    out.write_bytes(bytes(data))
    return out


def _header_length(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def test_a_flipped_byte_anywhere_is_refused_in_one_line(tiny_run, exported, tmp_path):  # noqa: F811
    """Weights, metadata text and header: each refused by load, predict, export and --weights transfer."""
    data_start = 8 + _header_length(exported)
    header = exported.read_bytes()[:data_start]
    damaged = {
        "weights": _flip(exported, tmp_path / "weights.safetensors", (data_start + exported.stat().st_size) // 2),
        # 'happy' -> 'Happy' inside the metadata JSON text: still valid JSON, a class silently renamed
        "metadata": _flip(exported, tmp_path / "metadata.safetensors", header.index(b"happy"), 0x20),
        "header": _flip(exported, tmp_path / "header.safetensors", 8),
    }
    model, _ = load_model(tiny_run)
    for part, path in damaged.items():
        expected = "is damaged \\(checksum mismatch" if part != "header" else "not a readable safetensors model file"
        for load in (
            read_model_file,
            Predictor.load,
            lambda p: export_model(p, tmp_path / "out.safetensors", accept_unverified=True),
            lambda p: transfer_weights(model, p, "squeezenet1_0"),
        ):
            with pytest.raises(MerError, match=expected) as caught:
                load(path)
            message = str(caught.value)
            assert "\n" not in message and message.startswith(f"{path}: ") and "re-export" not in message
            assert message.endswith("retrain or restore it from a copy")
    assert not (tmp_path / "out.safetensors").exists()
    assert read_model_file(exported)[1]["classes"] == ["angry", "happy", "sad", "tender"]  # the original loads


def test_a_file_without_checksum_is_refused_until_export_accepts_it(tiny_run, tmp_path):  # noqa: F811
    from safetensors.torch import save_file

    model, meta = load_model(tiny_run)
    legacy = tmp_path / "legacy.safetensors"
    fields = {"format": MODEL_FORMAT.name, **meta.to_dict()}
    save_file(model.state_dict(), str(legacy), metadata={METADATA_KEY: json.dumps(fields)})  # as older versions
    with pytest.raises(MerError, match="has no checksum") as caught:
        Predictor.load(legacy)
    assert f"mer-fastai export {legacy} --out NEW.safetensors --accept-unverified" in str(caught.value)
    with pytest.raises(MerError, match="has no checksum"):
        export_model(legacy, tmp_path / "fixed.safetensors")
    assert not (tmp_path / "fixed.safetensors").exists()
    fixed = export_model(legacy, tmp_path / "fixed.safetensors", accept_unverified=True).model_file
    _, stored = read_model_file(fixed)
    assert stored["checksum"].startswith("sha256:") and stored["classes"] == list(meta.classes)
    assert Predictor.load(fixed).classes == list(meta.classes)


def test_checksum_of_a_large_model_is_fast(tmp_path):
    """Hashing is whole buffers: ~256 MB of weights verify in well under two seconds."""
    import time

    from mer_fastai.models.modelfile import checksum

    state = {f"layer{i}.weight": torch.ones(16, 1024, 1024) for i in range(4)}
    started = time.perf_counter()
    checksum(state, {"classes": ["a", "b"]})
    assert time.perf_counter() - started < 2.0


def test_truncated_file_is_rejected(exported, tmp_path):
    damaged = tmp_path / "truncated.safetensors"
    damaged.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    with pytest.raises(MerError, match="not a readable safetensors model file"):
        load_model(damaged)


class _Payload:
    """Unpickling this runs code: it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "unpickled"
    renamed = tmp_path / "model.safetensors"
    torch.save({"weights": torch.zeros(2), "payload": _Payload(marker)}, renamed)
    with pytest.raises(MerError, match="not a readable safetensors model file"):
        Predictor.load(tmp_path)  # the run-folder form finds model.safetensors
    assert not marker.exists()


def test_mismatched_or_incomplete_files_are_rejected(tiny_run, tmp_path):  # noqa: F811
    """Checksummed files whose metadata does not fit their weights, or is malformed, are refused on load;
    `save_model_file` refuses the malformed records before writing anything."""
    model, meta = load_model(tiny_run)
    stored = meta.to_dict()
    mismatched = {
        "three_classes": ({**stored, "classes": ["a", "b", "c"]}, r"has shape \(4"),
        "other_arch": ({**stored, "arch": "alexnet"}, "do not match a alexnet model"),
    }
    malformed = {
        "unknown_arch": ({**stored, "arch": "resnet9000"}, "unknown architecture"),
        "no_classes": ({k: v for k, v in stored.items() if k != "classes"}, "lacks 'classes'"),
        "bad_stats": ({**stored, "stats": [[0.5], [0.2]]}, "'stats' must be"),
        "bad_spec": ({**stored, "spectrogram": {"n_mels": -1}}, "n_mels .*from 1 to 1024"),
        "bad_resize": ({**stored, "resize": "zoom"}, "'resize' must be one of"),
    }
    for name, (changed, message) in {**mismatched, **malformed}.items():
        path = write_safetensors(tmp_path / f"{name}.safetensors", model.state_dict(), changed, MODEL_FORMAT)
        with pytest.raises(MerError, match=message):
            Predictor.load(path)
    for name, (changed, _) in mismatched.items():
        assert save_model_file(tmp_path / f"{name}-saved.safetensors", model, changed).is_file()
    for name, (changed, message) in malformed.items():
        with pytest.raises(MerError, match=message):
            save_model_file(tmp_path / f"{name}-saved.safetensors", model, changed)
        assert not (tmp_path / f"{name}-saved.safetensors").exists()


def test_cli_export_and_one_line_error_from_main(tiny_run, exported, tmp_path):  # noqa: F811
    result = runner.invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "cli.safetensors")])
    assert result.exit_code == 0, result.output
    assert read_model_file(tmp_path / "cli.safetensors")[1]["metrics"]["per_class"]

    damaged = tmp_path / "short.safetensors"
    damaged.write_bytes(exported.read_bytes()[:100])
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "mer_fastai",
            "export",
            str(damaged),
            "--out",
            str(tmp_path / "x.safetensors"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error:") and "short.safetensors" in lines[0]
