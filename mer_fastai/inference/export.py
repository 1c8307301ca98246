"""`export`: a checked, self-contained model file out of a run folder, optionally also as ONNX."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._plumbing.files import atomic_path
from ..bounds import quote
from ..errors import MerError
from ..models.folding import fold
from ..models.modelfile import CHECKSUM, load_model, model_target, save_model_file
from ..models.modelmeta import ModelMeta
from ..models.preprocessing import native_input
from ..models.windowreads import reads_kind
from ..report.views.registry import views_of
from ..runs.inputs import model_inputs, refuse_overwrite
from ..runs.layout import METADATA_KEY, METRICS_FILE, MODEL_CHECKSUM, model_header, read_metrics
from ..runs.ownership import check_model_out

__all__ = ["export_model", "ExportResult"]

ONNX_OPSET = 17
ONNX_INSTALL = "pip install onnx (or pip install 'mer-fastai[onnx]')"


@dataclass
class ExportResult:
    """Where the model went, and the `ModelMeta` it carries."""

    model_file: Path
    onnx_file: Path | None
    meta: ModelMeta
    note: str | None = None  # why the run's metrics.json was left out, where it was


def export_model(
    source: str | Path, out: str | Path, *, onnx: bool = False, accept_unverified: bool = False
) -> ExportResult:
    """Check the model of a run folder (or model file) and write it to `out`, with the run's metrics.

    `out` may be a folder (the file is then `model.safetensors` inside it). With `onnx`, also write the
    network as `<out>.onnx`: input `image` (N, 3, `input_shape`) normalised like in training, output
    `logits` (the raw head outputs: class logits — softmax gives probabilities —, mood logits — sigmoid gives
    each mood's probability —, or a regression model's values already in their scale), and the same metadata
    as JSON under the ONNX metadata key `mer_fastai`. Every task exports; a mixed-input ensemble (members reading
    different spectrograms) has no single input, so its `onnx` is refused before anything is written.
    The written file carries a checksum; `accept_unverified` lets a source without one (written by an
    older version) through, so that exporting it adds the checksum — only when the user vouches for it.
    An `out` (or its .onnx) that is the source model, its run folder or one of its records is refused first, and so
    is an `out` in another command's output folder or over a file export did not write (`check_model_out`).
    The run's metrics.json is added only when it describes this model file: its `model_checksum` (written by
    train) must be the model's checksum; an older run's metrics.json without one must name the model's task,
    architecture and feature. Otherwise it is left out and `note` says why (never another model's scores).
    """
    source, out = Path(source), Path(out)
    target = model_target(out)
    onnx_file = target.with_suffix(".onnx") if onnx else None
    run_dir = source if source.is_dir() else source.parent
    metrics_path = run_dir / METRICS_FILE
    read = {**model_inputs(source, "the model exported"), metrics_path: "the metrics file of the model exported"}
    refuse_overwrite([path for path in (out, target, onnx_file) if path], read)
    check_model_out(target, "export")
    if onnx_file:
        _require_onnx()
    model, meta = load_model(source, accept_unverified=accept_unverified)
    if onnx_file and meta.is_mixed:
        raise MerError(
            f"{source}: --onnx: a mixed-input ensemble reads {len(meta.input_groups)} different spectrograms, so it "
            "has no single ONNX input; export each member (its run folder) with --onnx, or drop --onnx"
        )
    if onnx_file and meta.window_features:
        raise MerError(f"{source}: --onnx: a {reads_kind(meta.window_features)} model reads feature vectors computed "
                       "from the audio, which ONNX cannot compute; drop --onnx")  # fmt: skip
    if onnx_file and meta.reads_tracks and not meta.is_track:
        raise MerError(
            f"{source}: --onnx: an ensemble with a track head reads a whole clip in some members and single windows "
            "in others, which one ONNX input cannot say; export each member (its run folder) with --onnx, or drop "
            "--onnx"
        )
    note = None
    if metrics_path.is_file():
        metrics = _read_metrics(run_dir)
        note = _unbound(metrics, meta, model_header(source) or {}, metrics_path)
        if note is None:
            meta = dataclasses.replace(meta, metrics={**meta.metrics, **metrics})
    save_model_file(target, model, meta, "export")
    load_model(target)  # what was written reads back
    if onnx_file:
        export_onnx(model, meta, onnx_file)
    return ExportResult(target, onnx_file, meta, note)


def _unbound(metrics: dict, meta: ModelMeta, header: dict, path: Path) -> str | None:
    """Why `metrics` (a run's metrics.json) do not describe the model whose `meta` and header are given; None when
    they do."""
    bound = metrics.get(MODEL_CHECKSUM)
    if bound is not None:
        if bound == header.get(CHECKSUM):
            return None
        return f"{path} describes another model file (its {MODEL_CHECKSUM} differs: the model was replaced)"
    for key in ("task", "arch", "feature"):
        if key in metrics and metrics[key] != getattr(meta, key):
            theirs, ours = quote(metrics[key]), quote(getattr(meta, key))
            return f"{path} describes another model ({key} {theirs}, the model's is {ours})"
    if "task" not in metrics or "arch" not in metrics:
        return f"{path} does not say which model it describes (no {MODEL_CHECKSUM}, task or arch)"
    return None


def _read_metrics(run_dir: Path) -> dict:
    """A run's metrics.json (`runs.layout.read_metrics`), which must hold a table, or one clear error."""
    metrics = read_metrics(run_dir)
    if not isinstance(metrics, dict):
        raise MerError(f"{run_dir / METRICS_FILE}: must hold a table of metrics; fix or delete it")
    return metrics


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise MerError(f"ONNX export needs the onnx package: {ONNX_INSTALL}") from exc


def input_shape(meta: ModelMeta) -> tuple[int, int]:
    """(height, width) of the network's input: a 16-bit spectrogram's own size (musicnn reads its images as they
    are), else the square training size."""
    return native_input(meta.spec) or (meta.input_size, meta.input_size)


def export_onnx(model: nn.Module, meta: ModelMeta, path: Path) -> Path:
    """The network (its batch norms folded, `models.folding`) as ONNX with a dynamic batch axis, its metadata
    stored in the file."""
    import onnx

    height, width = input_shape(meta)
    # a track head reads the windows of one clip and gives each of them the clip's outputs (`TrackModel`)
    example = torch.zeros(2 if meta.is_track else 1, 3, height, width)
    axes = {0: "windows" if meta.is_track else "batch"}
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                fold(model.eval().cpu()),  # batch norms folded: the same outputs, fewer nodes
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": axes, "logits": axes},
                opset_version=ONNX_OPSET,
            )
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta.to_dict())
        kind = f"ensemble of {meta.arch_summary}" if meta.is_ensemble else meta.arch
        graph.doc_string = (
            f"mer-fastai {meta.task} {kind} ({meta.feature}): outputs {list(meta.classes)}; output 'logits': "
            f"{views_of(meta.task).onnx_outputs(meta.scale, meta.is_ensemble)}; input "
            f"(N, 3, {height}, {width}) spectrogram images scaled to [0, 1], then normalised with the mean and std "
            f"{[list(s) for s in meta.stats]}"
            + (
                "; a track head: the N images are all the windows of one clip, and every output row is the clip's"
                if meta.is_track
                else ""
            )
        )
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    return path
