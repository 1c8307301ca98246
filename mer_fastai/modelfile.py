"""Self-describing model files: safetensors weights plus JSON metadata, never pickle."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .errors import MerError

FORMAT = "mer-fastai-model/1"
METADATA_KEY = "mer_fastai"
MODEL_FILE = "model.safetensors"


def save_model_file(path: str | Path, model: nn.Module, metadata: dict) -> Path:
    """Write `model`'s weights and `metadata` (arch, classes, spectrogram, ...) to one file."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps({"format": FORMAT, **metadata})})
    tmp.replace(path)
    return path


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata of a model file; any damage is one clear error."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise MerError(f"{path}: model file not found; pass a run folder or its {MODEL_FILE}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise MerError(
            f"{path}: not a readable safetensors model file ({str(exc).splitlines()[0]}); "
            "re-export it with `mer-fastai export`"
        ) from exc
    if raw is None:
        raise MerError(f"{path}: has no mer-fastai metadata; export it with `mer-fastai export`")
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MerError(f"{path}: its metadata is not valid JSON; re-export it") from exc
    if metadata.get("format") != FORMAT:
        raise MerError(f"{path}: model format {metadata.get('format')!r} is not {FORMAT!r}; re-export it")
    return state, metadata


def transfer_weights(model: nn.Module, path: str | Path, arch: str) -> tuple[int, int]:
    """Copy every same-shaped tensor of an earlier run's model into `model` (body always, head if it fits).

    Returns (tensors copied, tensors in `model`).
    """
    state, metadata = read_model_file(path)
    if metadata.get("arch") != arch:
        raise MerError(
            f"{path}: holds a {metadata.get('arch')!r} model, not {arch!r}; pick the matching --arch or file"
        )
    target = model.state_dict()
    body = [name for name in target if name.startswith("0.")]
    missing = [name for name in body if name not in state or state[name].shape != target[name].shape]
    if missing:
        raise MerError(f"{path}: its backbone does not fit {arch} (first mismatch: {missing[0]}); check the file")
    fitting = {name: t for name, t in state.items() if name in target and t.shape == target[name].shape}
    model.load_state_dict(fitting, strict=False)
    return len(fitting), len(target)
