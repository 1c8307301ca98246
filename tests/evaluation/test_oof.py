"""Pooling and summarising the out-of-fold scores of a cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

from mer_fastai.evaluation.oof import describe


def test_describe_gives_mean_sd_and_a_t_interval():
    values = [0.5, 0.6, 0.7]
    result = describe(values)
    assert result["mean"] == pytest.approx(0.6) and result["sd"] == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2)
    assert result["ci95"] == pytest.approx([0.6 - half, 0.6 + half]) and result["values"] == values
