"""Self-describing model files: safetensors weights plus JSON metadata, never pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from .errors import MerError

FORMAT = "mer-fastai-model/1"
METADATA_KEY = "mer_fastai"
MODEL_FILE = "model.safetensors"
RUN_CONFIG = "config.json"
RESIZE_METHODS = ("squish", "crop")  # how training fed validation images: Resize(Squish) or a centre crop


def save_model_file(path: str | Path, model: nn.Module, metadata: dict) -> Path:
    """Write `model`'s weights and `metadata` (arch, classes, spectrogram, ...) to one file."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps({"format": FORMAT, **metadata})})
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # safetensors writes owner-only files; a model file is meant to be shared
    tmp.replace(path)
    return path


def model_file_path(path: str | Path) -> Path:
    """The model file itself, given either the file or the run folder that holds it."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata of a model file; any damage is one clear error."""
    from safetensors import safe_open

    path = model_file_path(path)
    if not path.is_file():
        raise MerError(f"{path}: model file not found; pass a run folder or its {MODEL_FILE}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not iterable)
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


def check_metadata(metadata: dict, path: str | Path) -> dict:
    """`metadata` with every field needed to rebuild and feed the model checked; `resize` filled in.

    Files written before `resize` was recorded take it from the run's config.json (the "study"
    augmentation validates on centre crops), else "squish".
    """
    from .archs import get_arch
    from .spectrogram import SpecConfig

    path = model_file_path(path)
    for key in ("arch", "classes", "spectrogram", "stats", "input_size"):
        if key not in metadata:
            raise MerError(f"{path}: its metadata lacks {key!r}; re-export the model from its run folder")
    classes = metadata["classes"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
        raise MerError(f"{path}: 'classes' must be a non-empty list of class names; re-export the model")
    if len(set(classes)) != len(classes):
        raise MerError(f"{path}: 'classes' holds a name twice ({classes}); re-export the model")
    stats = metadata["stats"]
    if not (
        isinstance(stats, list)
        and len(stats) == 2
        and all(isinstance(s, list) and len(s) == 3 and all(isinstance(v, (int, float)) for v in s) for s in stats)
        and all(v > 0 for v in stats[1])
    ):
        raise MerError(f"{path}: 'stats' must be [mean, std] of 3 numbers each (std > 0); re-export the model")
    size = metadata["input_size"]
    if not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        raise MerError(f"{path}: 'input_size' must be a positive whole number of pixels (got {size!r})")
    if not isinstance(metadata["spectrogram"], dict):
        raise MerError(f"{path}: 'spectrogram' must be a table of settings; re-export the model")
    try:
        SpecConfig.from_dict(metadata["spectrogram"])
    except (MerError, TypeError, ValueError) as exc:
        raise MerError(f"{path}: its spectrogram settings are malformed ({exc}); re-export the model") from exc
    if not isinstance(metadata["arch"], str):
        raise MerError(f"{path}: 'arch' must be an architecture name (got {metadata['arch']!r})")
    try:
        get_arch(metadata["arch"])
    except MerError as exc:
        raise MerError(f"{path}: {exc}") from exc
    resize = metadata.get("resize") or _run_resize(path.parent / RUN_CONFIG)
    if resize not in RESIZE_METHODS:
        raise MerError(f"{path}: 'resize' must be one of {', '.join(RESIZE_METHODS)} (got {resize!r})")
    return {**metadata, "resize": resize}


def _run_resize(config_path: Path) -> str:
    """How the run that wrote a model file resized its validation images, from its config.json."""
    try:
        augment = json.loads(config_path.read_text()).get("augment")
    except (OSError, ValueError, AttributeError):
        return "squish"
    return "crop" if augment == "study" else "squish"


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """The network of a model file or run folder, rebuilt in eval mode, and its checked metadata.

    Nothing is unpickled: the architecture is rebuilt from its name and the weights are safetensors.
    """
    from .archs import get_arch
    from .learner import create_model

    state, metadata = read_model_file(path)
    path = model_file_path(path)
    metadata = check_metadata(metadata, path)
    model = create_model(get_arch(metadata["arch"]), len(metadata["classes"]))
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise MerError(
            f"{path}: its tensors do not match a {metadata['arch']} model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected; first: {first}); the file is damaged or mislabelled"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise MerError(
                f"{path}: tensor {name} has shape {tuple(state[name].shape)}, but a {metadata['arch']} model "
                f"with {len(metadata['classes'])} classes needs {tuple(tensor.shape)}; the file is damaged "
                "or mislabelled"
            )
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise MerError(f"{path}: tensor {name} holds NaN or infinite values; the file is damaged")
    model.load_state_dict(state, strict=True)
    return model.eval(), metadata
