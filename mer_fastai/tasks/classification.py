"""Classification: one class per clip (emotions, energy/valence/tension bins, quadrants)."""

from __future__ import annotations

from .base import Task


class Classification(Task):
    name = "classification"
    names_key = "classes"
    learned = "class"
    column_prefix = "prob"
    label_columns = ("label",)
    monitors = ("accuracy", "macro_f1", "valid_loss")
    scores = ("accuracy", "macro_f1")
    table_scores = ("accuracy", "macro_f1")
    chooses_one_label = True


CLASSIFICATION = Classification()
