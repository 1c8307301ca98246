"""Which torch device a command runs its network on."""

from __future__ import annotations

import torch

from ..bounds import quote
from ..errors import MerError

__all__ = ["pick_device"]


def pick_device(name: str | None) -> torch.device:
    """`auto` or None: the GPU when there is one, else the CPU; otherwise the named torch device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MerError(f"unknown --device {quote(name)}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MerError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    return device
