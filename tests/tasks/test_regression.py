"""tasks.regression: values as they are, members averaged, CCC as the loss and score define it."""

from __future__ import annotations

import numpy as np
import torch

from mer_fastai.tasks.regression import REGRESSION, ccc


def test_outputs_are_the_values_and_an_ensemble_averages_them():
    values = torch.tensor([[3.0, 5.0]])
    assert torch.equal(REGRESSION.outputs(values), values)
    members = torch.tensor([[[1.0, 2.0]], [[3.0, 6.0]]])
    assert torch.equal(REGRESSION.combine(members), torch.tensor([[2.0, 4.0]]))


def test_a_prediction_is_a_value_per_target_without_label():
    predicted = REGRESSION.prediction(["valence", "energy"], np.array([4.25, 6.5]))
    assert predicted == {"label": "", "probabilities": {}, "values": {"valence": 4.25, "energy": 6.5}}
    assert REGRESSION.describe(["valence", "energy"], np.array([4.25, 6.5])) == "valence=4.250;energy=6.500"


def test_ccc_is_lins_concordance():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    predicted = 0.8 * truth + rng.normal(scale=0.3, size=200) + 0.2
    expected = (
        2
        * np.cov(predicted, truth, bias=True)[0, 1]
        / (predicted.var() + truth.var() + (predicted.mean() - truth.mean()) ** 2)
    )
    assert abs(float(ccc(torch.tensor(predicted), torch.tensor(truth))) - expected) < 1e-5  # float32, as in training
    assert abs(float(ccc(torch.tensor(truth), torch.tensor(truth))) - 1.0) < 1e-6
