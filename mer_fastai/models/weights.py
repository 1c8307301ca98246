"""Where starting weights come from: the architecture's pretrained weights (ImageNet, cached or downloaded; musicnn's
from the user cache that `mer-fastai weights get musicnn` fills), none, or an earlier run's model file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..bounds import quote
from ..choices import IMAGENET, PRETRAINED, STARTING_WEIGHTS
from ..errors import MerError
from .archs import MUSICNN, ArchSpec, build_full_model

if TYPE_CHECKING:  # torch is imported where a network is built, so settings are checked without it
    from torch import nn


def describe_cache(spec: ArchSpec) -> str:
    """Where the ImageNet weights of `spec` are looked for, to name in errors."""
    if spec.source == MUSICNN:
        from .musicnn.weights import cache_dir

        return f"{cache_dir()} (fill it with `mer-fastai weights get musicnn`)"
    if spec.source == "timm":
        return f"the Hugging Face cache (timm/{spec.model_name})"
    import torch
    import torchvision

    url = torchvision.models.get_model_weights(spec.model_name).DEFAULT.url
    return str(Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name)


def model_factory(spec: ArchSpec, weights: str) -> Callable[..., nn.Module]:
    """The `arch` callable handed to fastai's `vision_learner`; loads the pretrained weights when asked."""
    pretrained = weights in (PRETRAINED, IMAGENET)

    def create(*_args, **_kwargs) -> nn.Module:
        if not pretrained:
            return build_full_model(spec, pretrained=False)
        try:
            return build_full_model(spec, pretrained=True)
        except MerError:
            raise
        except Exception as exc:  # urllib, hub and HTTP errors all mean "could not fetch"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MerError(
                f"cannot load the {spec.pretraining} weights of {spec.name} ({reason}); place them at "
                f"{describe_cache(spec)} or pass --weights none or --weights PATH"
            ) from exc

    create.__name__ = spec.name
    return create


def check_weights(weights: str) -> str:
    """Validate a --weights value: `pretrained`, `imagenet`, `none` or an existing model file / run folder."""
    if weights in STARTING_WEIGHTS:
        return weights
    path = Path(weights)
    if not path.exists():
        raise MerError(
            f"{weights}: --weights must be 'pretrained', 'imagenet', 'none' or a model file / run folder that exists"
        )
    return weights


def transfer_weights(model: nn.Module, path: str | Path, arch: str) -> tuple[int, int]:
    """Copy every same-shaped tensor of an earlier run's model into `model` (body always, head if it fits).

    Returns (tensors copied, tensors in `model`).
    """
    from .modelfile import read_model

    state, meta = read_model(path)
    if meta.is_ensemble:
        raise MerError(
            f"{path}: is an ensemble of {len(meta.members)} models; pass one member's run folder or model file "
            "to --weights"
        )
    if meta.arch != arch:
        raise MerError(f"{path}: holds a {quote(meta.arch)} model, not {quote(arch)}; pick the matching --arch or file")
    target = model.state_dict()
    body = [name for name in target if name.startswith("0.")]
    missing = [name for name in body if name not in state or state[name].shape != target[name].shape]
    if missing:
        raise MerError(f"{path}: its backbone does not fit {arch} (first mismatch: {missing[0]}); check the file")
    fitting = {name: t for name, t in state.items() if name in target and t.shape == target[name].shape}
    model.load_state_dict(fitting, strict=False)
    return len(fitting), len(target)
