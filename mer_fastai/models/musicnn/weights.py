"""The pretrained musicnn weights: read from the `musicnn` 0.1.0 wheel without TensorFlow, cached as safetensors.

The wheel (Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging", ISMIR
2019 LBD; ISC licence) ships TensorFlow checkpoints of musicnn and VGG taggers trained on the Million Song
Dataset (MSD) and MagnaTagATune (MTT). `mer-fastai weights get musicnn` fetches it with
`pip download --no-deps musicnn==0.1.0` (or takes a wheel file or unpacked folder with `--from`), reads the
checkpoints straight out of it and writes one safetensors file per model, once, to the user cache:
`$MER_FASTAI_CACHE/musicnn/<model>.safetensors`, by default `~/.cache/mer-fastai/musicnn/`.

Each file's tensors have a SHA-256 (over names, dtypes, shapes and bytes, so independent of the safetensors
version that wrote the file) recorded in `DIGESTS`; it is checked when converting and on every load.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..._plumbing.files import atomic_path, is_write_protected
from ...bounds import quote
from ...errors import MerError
from .checkpoint import read_checkpoint

if TYPE_CHECKING:
    import torch
    from torch import nn

PACKAGE = "musicnn==0.1.0"
WHEEL = "musicnn-0.1.0-py3-none-any.whl"
GET = "mer-fastai weights get musicnn"
CACHE_VARIABLE = "MER_FASTAI_CACHE"
MODELS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn", "msd-vgg": "MSD_vgg", "mtt-vgg": "MTT_vgg"}
DIGESTS = {  # state_digest of the converted weights of musicnn 0.1.0
    "msd": "9796f7e4d71f4dd3218e81b8cc54abb9d2d3187122f72968aea52c10a61c5789",
    "mtt": "7a808dce3d81ec188e91ced0e28629769c61fdefc014d0e7dcd2aaf5d72763eb",
    "msd-vgg": "203fc072f734d914c93726b47e9bba5a9e94b3ff15b14e229977d911b772d4e5",
    "mtt-vgg": "94e561a235b25a894fa9cf91705269b21425b2380efcdd8e50c05cd21c8614c2",
}
INDEX, DATA = ".index", ".data-00000-of-00001"
PIP_TIMEOUT = 600


def check_model(model: str) -> str:
    """`model` if it names a musicnn model, else one line listing them."""
    if model not in MODELS:
        raise MerError(f"unknown musicnn model {quote(model)}; choose one of {', '.join(MODELS)}")
    return model


def cache_dir() -> Path:
    """Where the converted weights live: `$MER_FASTAI_CACHE/musicnn`, by default `~/.cache/mer-fastai/musicnn`."""
    root = os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "mer-fastai"
    return Path(root) / "musicnn"


def weights_path(model: str) -> Path:
    return cache_dir() / f"{check_model(model)}.safetensors"


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        array = state[name].detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{list(array.shape)}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def build_network(model: str) -> nn.Module:
    """The network of `model` with random weights (what `--weights none` trains)."""
    from .network import MusicNN, MusicVGG

    return MusicVGG() if check_model(model).endswith("-vgg") else MusicNN()


def _is_weight(name: str) -> bool:
    """A model variable, not an optimiser slot (Adam's m and v, its beta powers) or the step counter."""
    return "Adam" not in name and not name.endswith("_power") and name != "global_step"


def convert(index: bytes, data: bytes, model: str, source: str) -> dict[str, torch.Tensor]:
    """The PyTorch state dict of `model` from its checkpoint's bytes, checked against `DIGESTS`."""
    import numpy as np
    import torch

    from .network import musicnn_state, vgg_state

    tensors = read_checkpoint(index, data, _is_weight, source=source)
    to_state = vgg_state if model.endswith("-vgg") else musicnn_state
    try:
        mapped = to_state(tensors)
    except KeyError as exc:
        raise MerError(f"{source}: has no variable {exc} of {MODELS[model]}; pass the wheel of {PACKAGE}") from exc
    network = build_network(model)
    target = network.state_dict()
    unmapped = [name for name in target if name not in mapped and not name.endswith("num_batches_tracked")]
    if unmapped or any(tuple(array.shape) != tuple(target[name].shape) for name, array in mapped.items()):
        raise MerError(f"{source}: its variables do not fit {MODELS[model]}; pass the wheel of {PACKAGE}")
    network.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mapped.items()}, strict=False)
    state = {name: tensor.contiguous() for name, tensor in network.state_dict().items()}
    if state_digest(state) != DIGESTS[model]:
        raise MerError(f"{source}: the {MODELS[model]} weights differ from those of {PACKAGE}; pass its wheel")
    return state


def download_wheel(folder: Path) -> Path:
    """`pip download --no-deps musicnn==0.1.0` into `folder`; the wheel's path, or one line saying what to do."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(folder)]
    try:
        result = subprocess.run([*command, PACKAGE], capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = subprocess.CompletedProcess(command, 1, "", str(exc))
    wheel = folder / WHEEL
    if result.returncode != 0 or not wheel.is_file():
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with status {result.returncode}"
        raise MerError(
            f"cannot download {PACKAGE} with pip ({reason}); on a machine without internet, download "
            f"{WHEEL} elsewhere and run `{GET} --from PATH`"
        )
    return wheel


def _reader(source: Path) -> Callable[[str], tuple[bytes, bytes]]:
    """A function giving the (.index, .data) bytes of a checkpoint folder (e.g. MSD_musicnn) in `source`.

    `source` is the wheel, a folder holding the wheel, an unpacked wheel, or its `musicnn` package folder.
    """
    if source.is_dir() and (source / WHEEL).is_file():
        source = source / WHEEL
    if source.is_file():

        def read_member(folder: str) -> tuple[bytes, bytes]:
            try:
                with zipfile.ZipFile(source) as archive:
                    return archive.read(f"musicnn/{folder}/{INDEX}"), archive.read(f"musicnn/{folder}/{DATA}")
            except (KeyError, zipfile.BadZipFile, OSError) as exc:
                raise MerError(
                    f"{source}: not a readable {WHEEL} ({exc}); pass that wheel or its unpacked folder"
                ) from exc

        return read_member
    package = next((path for path in (source / "musicnn", source) if (path / "MSD_musicnn" / INDEX).is_file()), None)
    if package is None:
        raise MerError(f"{source}: neither {WHEEL} nor a folder holding it or its unpacked files; check --from")

    def read_folder(folder: str) -> tuple[bytes, bytes]:
        paths = [package / folder / part for part in (INDEX, DATA)]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise MerError(f"{missing[0]}: missing; pass the complete {WHEEL} or its unpacked folder")
        return paths[0].read_bytes(), paths[1].read_bytes()

    return read_folder


def cached(model: str) -> bool:
    """Whether `model`'s converted weights are in the cache and intact."""
    try:
        load_state(model)
    except MerError:
        return False
    return True


def get_weights(source: str | Path | None = None, models: list[str] | None = None) -> dict[str, Path]:
    """Fill the cache with the converted weights of `models` (default: all) that are missing or damaged.

    `source` is a wheel or folder (see `_reader`); without it the wheel is fetched with pip, only if needed.
    Returns the cached file of every model.
    """
    models = [check_model(model) for model in (models or list(MODELS))]
    if source is not None and not Path(source).exists():
        raise MerError(f"{source}: not found; pass {WHEEL} or its unpacked folder to --from")
    missing = [model for model in models if not cached(model)]
    for model in missing:
        _check_cache_path(weights_path(model))
    if missing:
        with tempfile.TemporaryDirectory(prefix="mer-fastai-musicnn-") as folder:
            read = _reader(Path(source) if source is not None else download_wheel(Path(folder)))
            for model in missing:
                index, data = read(MODELS[model])
                state = convert(index, data, model, f"{source or WHEEL} ({MODELS[model]})")
                _save(state, weights_path(model))
    return {model: weights_path(model) for model in models}


def _not_a_file(path: Path) -> str:
    return "is a folder, not a file" if path.is_dir() else "is not a regular file (a device or pipe)"


def _check_cache_path(path: Path) -> None:
    """Where `weights get` writes a model's weights: the cache folder, and the file itself if it exists, must be
    what they should; else one line naming the path and the cache variable (weights get has no --out)."""
    fix = f"remove it, or set ${CACHE_VARIABLE} to another folder, then rerun `{GET}`"
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise MerError(f"{folder}: is a file where the musicnn weights cache folder {path.parent} goes; {fix}")
            break
    if path.exists() and not path.is_file():
        raise MerError(f"{path}: the musicnn weights path {_not_a_file(path)}; {fix}")
    if path.is_file() and is_write_protected(path):
        raise MerError(f"{path}: the musicnn weights file is write-protected (and damaged or stale); {fix}")


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path, f"${CACHE_VARIABLE}") as tmp:
        save_file(state, str(tmp), metadata={"source": PACKAGE, "sha256": state_digest(state)})


def load_state(model: str) -> dict[str, torch.Tensor]:
    """The cached, verified state dict of `model`; a missing or damaged file is one line naming the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = weights_path(model)
    if path.exists() and not path.is_file():
        raise MerError(f"{path}: the musicnn weights path {_not_a_file(path)}; remove it, then run `{GET}`")
    if not path.is_file():
        raise MerError(f"musicnn weights not found at {path}; get them with `{GET}`")
    damaged = f"{path}: damaged musicnn weights (checksum mismatch); rerun `{GET}`"
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MerError(damaged) from exc
    if state_digest(state) != DIGESTS[model]:
        raise MerError(damaged)
    return state


def load_musicnn(model: str = "msd") -> nn.Module:
    """The pretrained network of `model` ("msd", "mtt", "msd-vgg", "mtt-vgg"), in eval mode."""
    network = build_network(model)
    network.load_state_dict(load_state(model))
    return network.eval()
