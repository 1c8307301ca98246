"""The architecture table: how each network is built, cut into body and head, sized and normalised.

Adding an architecture is one entry in `ARCHS`; any timm model is reachable as `timm/<name>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .errors import MerError

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
INCEPTION_STATS = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])  # Google's weights expect inputs in [-1, 1]


@dataclass(frozen=True)
class ArchSpec:
    """How one architecture is made and fine-tuned."""

    name: str
    source: str  # "torchvision" or "timm": where `model_name` and its weights come from
    model_name: str
    cut: int | Callable[[nn.Module], nn.Module]  # what of the full model is kept as the body
    input_size: int = 224
    stats: tuple[list[float], list[float]] = IMAGENET_STATS
    min_size: int = 32  # smallest input that survives the body's downsampling

    def check_size(self, size: int | None) -> None:
        """A training resolution this network can take, or one clear error."""
        if size is not None and size < self.min_size:
            raise MerError(f"--size {size} is too small for {self.name}; use at least {self.min_size} px")


def _keep_children(*dropped: str) -> Callable[[nn.Module], nn.Module]:
    """A body made of the model's children minus `dropped` (e.g. Inception's auxiliary classifier)."""

    def cut(model: nn.Module) -> nn.Module:
        return nn.Sequential(*[child for name, child in model.named_children() if name not in dropped])

    return cut


def _densenet_body(model: nn.Module) -> nn.Module:
    """DenseNet's features end in a BatchNorm; its forward applies the ReLU, so the body must too."""
    return nn.Sequential(model.features, nn.ReLU(inplace=True))


def _timm_body(model: nn.Module) -> nn.Module:
    from fastai.vision.learner import TimmBody

    return TimmBody(model, pretrained=False)


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("resnext101_32x8d", "torchvision", "resnext101_32x8d", cut=-2),
        ArchSpec("alexnet", "torchvision", "alexnet", cut=-2, min_size=63),
        ArchSpec("vgg16_bn", "torchvision", "vgg16_bn", cut=-2),
        ArchSpec("squeezenet1_0", "torchvision", "squeezenet1_0", cut=-1),
        ArchSpec("densenet121", "torchvision", "densenet121", cut=_densenet_body),
        ArchSpec(
            "inception_v3",
            "torchvision",
            "inception_v3",
            cut=_keep_children("AuxLogits", "avgpool", "dropout", "fc"),
            input_size=299,
            stats=INCEPTION_STATS,
            min_size=75,
        ),
    )
}
STUDY_ARCHS = tuple(ARCHS)
TIMM_PREFIX = "timm/"


def get_arch(name: str) -> ArchSpec:
    """The table entry for `name`, or a `timm/<model>` entry made from timm's own config."""
    if name in ARCHS:
        return ARCHS[name]
    if name.startswith(TIMM_PREFIX):
        import timm

        model_name = name[len(TIMM_PREFIX) :]
        if not timm.is_model(model_name):
            raise MerError(
                f"unknown timm model {model_name!r}; "
                "list them with `python -c 'import timm; print(timm.list_models())'`"
            )
        cfg = timm.get_pretrained_cfg(model_name)
        size = cfg.input_size[-1] if cfg else 224
        stats = (list(cfg.mean), list(cfg.std)) if cfg else IMAGENET_STATS
        return ArchSpec(name, "timm", model_name, cut=_timm_body, input_size=size, stats=stats)
    raise MerError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHS)} or timm/<model>")


def build_full_model(spec: ArchSpec, pretrained: bool) -> nn.Module:
    """The complete network from its library, with ImageNet weights when `pretrained`."""
    if spec.source == "timm":
        import timm

        return timm.create_model(spec.model_name, pretrained=pretrained, num_classes=0)
    import torchvision

    extra = {"aux_logits": True, "init_weights": False} if spec.model_name == "inception_v3" else {}
    return torchvision.models.get_model(spec.model_name, weights="DEFAULT" if pretrained else None, **extra)
