"""Regression: continuous targets per clip (valence, energy, tension ratings), each on its own scale."""

from __future__ import annotations

from .base import Task


class Regression(Task):
    name = "regression"
    names_key = "targets"
    learned = None
    column_prefix = "pred"
    label_columns = ()
    monitors = ("ccc", "valid_loss")
    scores = ("ccc", "pearson_r", "r2", "rmse", "mae")
    table_scores = ("ccc", "r2", "rmse")
    takes_loss = True


REGRESSION = Regression()
