"""Batch norms folded into the layers next to them: the same network for inference, fewer passes over memory.

`fold(model)` returns a folded copy in eval mode (the model itself, and so training, never sees it). In eval
mode a batch norm is a fixed per-channel affine map x·s + t, and it is folded wherever that is exact:

- after a convolution or dense layer (`Conv → BN`, `Linear → BN` in a `Sequential`, and the blocks of
  torchvision/timm networks that torch.fx can trace): into that layer's weights and bias;
- before a dense layer (`BN → Dropout → Linear`, as musicnn's `penultimate` and fastai's heads): into the
  following layer, except into the model's last `Linear`, whose input `embed` reads as the features;
- after a ReLU (musicnn's `conv → ReLU → BN`): s·relu(z) = sign(s)·relu(|s|·z), so |s| goes into the
  convolution and only the shift t (and, for channels with s < 0, a sign) is left, applied after musicnn's max
  over frequency (a max of a negated channel is the negated min) on the 96× smaller tensor;

A batch norm before a zero-padded convolution (musicnn's input batch norm: one channel, a negligible cost; folded
with the padding value −b/a it loses digits to cancellation) or behind a nonlinearity other than ReLU stays.
The folded weights are computed in float64 and rounded once.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .musicnn.network import FrequencyMaxBlock, Frontend, Midend

__all__ = ["fold"]

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PASS_THROUGH = (nn.Dropout, nn.Identity)  # identities in eval mode: a batch norm folds across them


def fold(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with its batch norms folded wherever that computes the same outputs."""
    folded = copy.deepcopy(model).eval()
    linears = [m for m in folded.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        _fold_tree(folded, keep=linears[-1] if linears else None)
    return folded


def bn_affine(bn: nn.Module) -> tuple[Tensor, Tensor]:
    """The eval-mode batch norm as per-channel scale and shift, float64: bn(x) = x·scale + shift."""
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale.detach(), shift.detach()


def _foldable(bn: nn.Module) -> bool:
    return isinstance(bn, BATCH_NORMS) and bn.track_running_stats and bn.running_var is not None


def _fold_tree(module: nn.Module, keep: nn.Module | None) -> None:
    for name, child in list(module.named_children()):
        replacement = _replacement(child, keep)
        if replacement is not None:
            setattr(module, name, replacement)
    if isinstance(module, nn.Sequential):
        _fold_sequence(module, keep)


def _replacement(child: nn.Module, keep: nn.Module | None) -> nn.Module | None:
    """A folded stand-in for `child`, or None after folding inside it in place."""
    if isinstance(child, Frontend) and all(_foldable(b.bn) for b in (*child.timbral, *child.temporal)):
        return FoldedFrontend(child)
    if isinstance(child, Midend) and all(_foldable(bn) for bn in child.bns):
        return FoldedMidend(child)
    if not isinstance(child, (nn.Sequential, nn.ModuleList)) and _has_conv_bn_children(child):
        traced = _fx_fuse(child)
        if traced is not None:
            return traced
    _fold_tree(child, keep)
    return None


def _has_conv_bn_children(module: nn.Module) -> bool:
    kinds = [type(m) for m in module.children()]
    return any(issubclass(k, CONVOLUTIONS) for k in kinds) and any(issubclass(k, BATCH_NORMS) for k in kinds)


def _fx_fuse(module: nn.Module) -> nn.Module | None:
    """A block (e.g. a ResNet bottleneck) with its conv → batch norm pairs fused by torch.fx, or None when it
    cannot be traced."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(module.eval(), inplace=True)
    except Exception:  # untraceable Python control flow: the block stays unfolded (and is still exact)
        return None


def _fold_sequence(sequence: nn.Sequential, keep: nn.Module | None) -> None:
    """Fold `Conv/Linear → BN` into the layer and `BN → (Dropout) → Linear` into the Linear, in place; a folded
    batch norm becomes an `nn.Identity`, so indices (and state dict names of the rest) stay as they were."""
    layers = list(sequence)
    for index, layer in enumerate(layers):
        if not _foldable(layer):
            continue
        before = layers[index - 1] if index else None
        if isinstance(before, (*CONVOLUTIONS, nn.Linear)) and _out_features(before) == layer.num_features:
            _scale_outputs(before, *bn_affine(layer))
            sequence[index] = nn.Identity()
            continue
        after = next((m for m in layers[index + 1 :] if not isinstance(m, PASS_THROUGH)), None)
        if isinstance(layer, nn.BatchNorm1d) and isinstance(after, nn.Linear) and after is not keep:
            _scale_inputs(after, *bn_affine(layer))
            sequence[index] = nn.Identity()


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _bias(layer: nn.Module, size: int) -> Tensor:
    """The layer's bias, made a zero parameter first when it has none (fastai's heads, bias-free convolutions)."""
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(size, dtype=layer.weight.dtype, device=layer.weight.device))
    return layer.bias


def _scale_outputs(layer: nn.Module, scale: Tensor, shift: Tensor) -> None:
    """layer(x)·scale + shift as one layer: output channel k's weights and bias times scale_k, plus shift_k."""
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    bias = _bias(layer, layer.weight.shape[0])
    layer.weight.copy_(layer.weight.double() * scale.view(shape))
    bias.copy_(bias.double() * scale + shift)


def _scale_inputs(linear: nn.Linear, scale: Tensor, shift: Tensor) -> None:
    """linear(x·scale + shift) as one layer: W·diag(scale), bias + W·shift."""
    bias = _bias(linear, linear.out_features)
    bias.copy_(bias.double() + linear.weight.double() @ shift)
    linear.weight.copy_(linear.weight.double() * scale[None, :])


class _ShiftedReLU(nn.Module):
    """The part of `conv → ReLU → BN` left after folding |scale| into the convolution: sign and shift."""

    def _set_affine(self, scale: Tensor, shift: Tensor, dtype: torch.dtype) -> None:
        negative = scale < 0
        self.signed = bool(negative.any())
        self.register_buffer("sign", torch.where(negative, -1.0, 1.0).to(dtype))
        self.register_buffer("shift", shift.to(dtype))


class FoldedFrequencyMax(nn.Module):
    """musicnn's `FrequencyMaxBlock` with its batch norm folded.

    |scale| goes into the convolution; as ReLU and the max over frequency commute, both run on the reduced
    (B, C, T) tensor: channels are reordered so that those with scale ≥ 0 (a max) come before those with
    scale < 0 (a min, then negated), and put back in their order after the reduction.
    """

    def __init__(self, block: FrequencyMaxBlock) -> None:
        super().__init__()
        scale, shift = bn_affine(block.bn)
        order = torch.argsort((scale < 0).to(torch.int8), stable=True)
        self.pad, self.positive = block.pad, int((scale >= 0).sum())
        self.conv = copy.deepcopy(block.conv)
        weight, bias = self.conv.weight.double(), _bias(self.conv, self.conv.out_channels).double()
        bias, weight = bias * scale.abs(), weight * scale.abs().view(-1, 1, 1, 1)
        dtype = self.conv.weight.dtype
        self.conv.weight.data, self.conv.bias.data = weight[order].to(dtype), bias[order].to(dtype)
        self.register_buffer("restore", torch.argsort(order))
        self.register_buffer("sign", torch.where(scale < 0, -1.0, 1.0).to(dtype)[:, None])
        self.register_buffer("shift", shift.to(dtype)[:, None])

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.pad(x, self.pad))
        cut = self.positive
        if cut == self.conv.out_channels:
            top = y.amax(dim=2)
        else:
            top = torch.cat([y[:, :cut].amax(dim=2), y[:, cut:].amin(dim=2)], dim=1)[:, self.restore]
        return torch.addcmul(self.shift, torch.relu(top), self.sign)


class FoldedFrontend(nn.Module):
    """musicnn's `Frontend` with the batch norms of its blocks folded (the input batch norm stays)."""

    def __init__(self, frontend: Frontend) -> None:
        super().__init__()
        self.input_bn = frontend.input_bn
        blocks = (*frontend.timbral, *frontend.temporal)
        self.blocks = nn.ModuleList(FoldedFrequencyMax(block) for block in blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_bn(x)
        return torch.cat([block(x) for block in self.blocks], dim=1)


class FoldedMidend(nn.Module):
    """musicnn's `Midend` with each `conv → ReLU → BN` folded to `conv → ReLU → (sign) + shift`."""

    def __init__(self, midend: Midend) -> None:
        super().__init__()
        self.convs = copy.deepcopy(midend.convs)
        self.affines = nn.ModuleList()
        for conv, bn in zip(self.convs, midend.bns, strict=True):
            scale, shift = bn_affine(bn)
            _scale_outputs(conv, scale.abs(), torch.zeros_like(shift))
            affine = _ShiftedReLU()
            affine._set_affine(scale, shift, conv.weight.dtype)
            self.affines.append(affine)

    def forward(self, x: Tensor) -> Tensor:
        outputs = [x]
        for index, (conv, affine) in enumerate(zip(self.convs, self.affines)):
            y = torch.relu(conv(outputs[-1]))
            y = (
                torch.addcmul(affine.shift[:, None], y, affine.sign[:, None])
                if affine.signed
                else y + affine.shift[:, None]
            )
            outputs.append(y if index == 0 else y + outputs[-1])
        return torch.cat(outputs, dim=1)
