"""tasks.multilabel: a sigmoid per mood, moods decided at the threshold, members' probabilities averaged."""

from __future__ import annotations

import numpy as np
import torch

from mer_fastai.tasks.multilabel import MOOD_DECISION, MULTILABEL


def test_outputs_are_one_probability_per_mood():
    assert torch.allclose(MULTILABEL.outputs(torch.tensor([[0.0, 100.0]])), torch.tensor([[0.5, 1.0]]))


def test_an_ensemble_gives_the_mean_of_its_members_mood_probabilities():
    members = torch.randn(4, 3, 6)
    combined = MULTILABEL.outputs(MULTILABEL.combine(members))
    assert torch.allclose(combined, members.sigmoid().mean(dim=0), atol=1e-5)


def test_a_mood_is_predicted_from_the_decision_up():
    assert MULTILABEL.facts.decision == MOOD_DECISION
    names = ["calm", "dark", "joy"]
    predicted = MULTILABEL.prediction(names, np.array([MOOD_DECISION, MOOD_DECISION - 1e-3, 0.9]))
    assert predicted["moods"] == ("calm", "joy") and predicted["label"] == "calm;joy"
    assert MULTILABEL.prediction(names, np.zeros(3))["label"] == ""
