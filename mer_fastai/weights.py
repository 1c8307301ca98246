"""Where starting weights come from: ImageNet (cached or downloaded), none, or an earlier run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from .archs import ArchSpec, build_full_model
from .errors import MerError

IMAGENET = "imagenet"
NONE = "none"


def describe_cache(spec: ArchSpec) -> str:
    """Where the ImageNet weights of `spec` are looked for, to name in errors."""
    if spec.source == "timm":
        return f"the Hugging Face cache (timm/{spec.model_name})"
    import torch
    import torchvision

    url = torchvision.models.get_model_weights(spec.model_name).DEFAULT.url
    return str(Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name)


def model_factory(spec: ArchSpec, weights: str) -> Callable[..., nn.Module]:
    """The `arch` callable handed to fastai's `vision_learner`; loads ImageNet weights when asked."""
    pretrained = weights == IMAGENET

    def create(*_args, **_kwargs) -> nn.Module:
        if not pretrained:
            return build_full_model(spec, pretrained=False)
        try:
            return build_full_model(spec, pretrained=True)
        except Exception as exc:  # urllib, hub and HTTP errors all mean "could not fetch"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MerError(
                f"cannot load ImageNet weights for {spec.name} ({reason}); place them at "
                f"{describe_cache(spec)} or pass --weights none or --weights PATH"
            ) from exc

    create.__name__ = spec.name
    return create


def check_weights(weights: str) -> str:
    """Validate a --weights value: `imagenet`, `none` or an existing model file / run folder."""
    if weights in (IMAGENET, NONE):
        return weights
    path = Path(weights)
    if not path.exists():
        raise MerError(f"{weights}: --weights must be 'imagenet', 'none' or a model file / run folder that exists")
    return weights
