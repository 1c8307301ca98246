"""`export`: a checked, self-contained model file out of a run folder, optionally also as ONNX."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import MerError
from .modelfile import METADATA_KEY, MODEL_FILE, load_model, save_model_file
from .report import METRICS_FILE

ONNX_OPSET = 17
ONNX_INSTALL = "pip install onnx (or pip install 'mer-fastai[onnx]')"


@dataclass
class ExportResult:
    """Where the model went, and the metadata it carries."""

    model_file: Path
    onnx_file: Path | None
    metadata: dict


def export_model(source: str | Path, out: str | Path, *, onnx: bool = False) -> ExportResult:
    """Check the model of a run folder (or model file) and write it to `out`, with the run's metrics.

    `out` may be a folder (the file is then `model.safetensors` inside it). With `onnx`, also write the
    network as `<out>.onnx`: input `image` (N, 3, size, size) normalised like in training, output
    `logits`, and the same metadata as JSON under the ONNX metadata key `mer_fastai`.
    """
    source, out = Path(source), Path(out)
    model, metadata = load_model(source)
    metadata = {key: value for key, value in metadata.items() if key != "format"}
    metrics_path = (source if source.is_dir() else source.parent) / METRICS_FILE
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            raise MerError(f"{metrics_path}: not valid JSON ({exc}); fix or delete it") from exc
        metadata["metrics"] = {**metadata.get("metrics", {}), **metrics}
    target = out / MODEL_FILE if out.is_dir() else out
    if target.suffix != ".safetensors":
        raise MerError(f"{out}: a model file must end in .safetensors (e.g. {target.with_suffix('.safetensors')})")
    onnx_file = target.with_suffix(".onnx") if onnx else None
    if onnx_file:
        _require_onnx()
    target.parent.mkdir(parents=True, exist_ok=True)
    save_model_file(target, model, metadata)
    load_model(target)  # what was written reads back
    if onnx_file:
        export_onnx(model, metadata, onnx_file)
    return ExportResult(target, onnx_file, metadata)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise MerError(f"ONNX export needs the onnx package: {ONNX_INSTALL}") from exc


def export_onnx(model: nn.Module, metadata: dict, path: Path) -> Path:
    """The network as ONNX with a dynamic batch axis, its metadata stored in the file."""
    import onnx

    size = metadata["input_size"]
    example = torch.zeros(1, 3, size, size)
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval().cpu(),
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    graph.doc_string = (
        f"mer-fastai {metadata['arch']} ({metadata.get('feature')}): classes {metadata['classes']}; input "
        f"(N, 3, {size}, {size}) spectrogram images scaled to [0, 1], then normalised with the mean and std "
        f"{metadata['stats']}"
    )
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    tmp.unlink()
    return path
