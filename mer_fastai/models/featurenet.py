"""The network of a hand-crafted model file (`baseline --save-model`): a standardise + linear map of each window's
feature vector, whose logits the task's usual activation turns into what the fitted estimator predicts."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureLinear"]


class FeatureLinear(nn.Module):
    """logits = ((x − mean) / scale) · Wᵀ + b for (N, features) window vectors: scikit-learn's `StandardScaler`
    (`mean`, `scale`: saved buffers) followed by a linear model's coefficients (`linear`)."""

    def __init__(self, n_features: int, n_out: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.linear = nn.Linear(n_features, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x.float() - self.mean) / self.scale)
