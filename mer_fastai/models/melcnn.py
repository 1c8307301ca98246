"""`melcnn`: a small CNN shaped for mel-spectrograms, trained from scratch (no ImageNet weights exist for it).

Four convolution blocks (3×3 conv, BatchNorm, ReLU, 2×2 max-pool) halve the image four times; then
frequency-aware pooling averages over time only and keeps `FREQUENCY_BANDS` frequency bands, each its own
feature (a note in the bass and the same note in the treble stay apart, where a square CNN's global
pooling mixes them). The body's output is (batch, channels × bands, 1, 1), the same at any input size, so
fastai's head fits it unchanged. Images are (mel bands × time) with low frequencies at the bottom.
"""

from __future__ import annotations

from torch import Tensor, nn

WIDTHS = (16, 32, 64, 128)  # channels of the four blocks
FREQUENCY_BANDS = 8  # frequency rows kept after pooling over time


class FrequencyPool(nn.Module):
    """(B, C, F, T) → (B, C·bands, 1, 1): mean over time, frequency pooled to `bands` rows, rows as channels."""

    def __init__(self, bands: int = FREQUENCY_BANDS) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((bands, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x).flatten(1)[..., None, None]


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def melcnn() -> nn.Sequential:
    """The full network: the blocks, the frequency pooling, and a placeholder classifier that the table's
    cut (-2, with its flatten) drops for fastai's head."""
    widths = (3, *WIDTHS)
    blocks = [_block(a, b) for a, b in zip(widths, widths[1:], strict=False)]
    model = nn.Sequential(*blocks, FrequencyPool(), nn.Flatten(), nn.Linear(WIDTHS[-1] * FREQUENCY_BANDS, 1000))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model
