"""A network body cut into a frozen prefix and a trainable rest, for `--mode partial`.

musicnn: the prefix is its input conversion and front end (the timbral and temporal convolutions, about 96 % of
its compute); the rest its mid-end, temporal pooling and dense layers. The study's CNNs and `melcnn`: the body's
nested `Sequential`s flattened into their layers; the rest starts at the last layer holding a convolution (the
last ResNeXt bottleneck, SqueezeNet's last Fire module, DenseNet's last dense block, Inception's Mixed_7c, VGG's
last convolution block). `prefix` then `rest` computes what the body computes, sharing its modules.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import MerError
from .musicnn.transfer import MusicnnBody

__all__ = ["BodySplit", "split_body"]


class BodySplit(nn.Module):
    """The body as `rest(prefix(x))`; the two parts share the body's modules."""

    def __init__(self, prefix: nn.Module, rest: nn.Module) -> None:
        super().__init__()
        self.prefix, self.rest = prefix, rest

    def forward(self, x: Tensor) -> Tensor:
        return self.rest(self.prefix(x))


class MusicnnRest(nn.Module):
    """musicnn's mid-end, pooling and dense layers: front-end output (B, 561, T) → features (B, 200, 1, 1)."""

    def __init__(self, body: MusicnnBody) -> None:
        super().__init__()
        self.midend, self.pool, self.penultimate = body.midend, body.pool, body.penultimate

    def forward(self, x: Tensor) -> Tensor:
        return self.penultimate(self.pool(self.midend(x)))[:, :, None, None]


def _layers(module: nn.Module) -> list[nn.Module]:
    """A `Sequential`'s layers with nested `Sequential`s flattened (the same composition)."""
    if type(module) is not nn.Sequential:
        return [module]
    return [layer for child in module.children() for layer in _layers(child)]


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def split_body(body: nn.Module) -> BodySplit:
    """`body` as a frozen-prefix / trainable-rest split, or one clear error when it cannot be cut."""
    while type(body) is nn.Sequential and len(body) == 1:  # fastai's body wraps the cut network
        body = body[0]
    if isinstance(body, MusicnnBody):
        return BodySplit(nn.Sequential(body.input, body.frontend), MusicnnRest(body))
    layers = _layers(body)
    convs = [i for i, layer in enumerate(layers) if _has_conv(layer)]
    if type(body) is not nn.Sequential or len(convs) < 2:
        raise MerError(
            "--mode partial: this architecture's body has no layer stages to cut (a timm model); use --mode freeze "
            "or whole"
        )
    cut = convs[-1]
    return BodySplit(nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:]))
