"""tasks.classification: softmax outputs, one class chosen, members combined as mean probabilities."""

from __future__ import annotations

import numpy as np
import torch

from mer_fastai.tasks.classification import CLASSIFICATION


def test_outputs_are_class_probabilities():
    probs = CLASSIFICATION.outputs(torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]))
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    assert probs[0].argmax() == 0 and torch.allclose(probs[1], torch.full((3,), 1 / 3))


def test_an_ensemble_gives_the_mean_of_its_members_probabilities():
    members = torch.randn(3, 4, 5)
    combined = CLASSIFICATION.outputs(CLASSIFICATION.combine(members))
    assert torch.allclose(combined, members.softmax(dim=2).mean(dim=0), atol=1e-6)


def test_a_prediction_is_the_most_likely_class_unless_one_was_chosen():
    names, outputs = ["calm", "happy", "sad"], np.array([0.2, 0.5, 0.3])
    predicted = CLASSIFICATION.prediction(names, outputs)
    assert predicted["label"] == "happy" and predicted["probabilities"] == {"calm": 0.2, "happy": 0.5, "sad": 0.3}
    assert CLASSIFICATION.prediction(names, outputs, chosen=2)["label"] == "sad"
    assert CLASSIFICATION.describe(names, outputs) == "happy"
