"""Multilabel: a set of moods per clip, each predicted where its sigmoid probability reaches the decision."""

from __future__ import annotations

from .base import Task

MOOD_DECISION = 0.5  # a mood is predicted when its sigmoid probability reaches this


class Multilabel(Task):
    name = "multilabel"
    names_key = "moods"
    learned = "mood"
    column_prefix = "prob"
    label_columns = ("moods",)
    monitors = ("macro_f1", "valid_loss")
    scores = ("micro_f1", "macro_f1", "map")
    table_scores = ("macro_f1", "micro_f1", "map")
    decision = MOOD_DECISION


MULTILABEL = Multilabel()
