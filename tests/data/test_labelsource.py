"""`label_source`: a `LabelSource` given whole, or a labels file with the loose label keywords (deprecated); its
rules checked against a task (`LabelSource.check`)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from mer_fastai.data.labelsource import LabelSource, label_source
from mer_fastai.errors import MerError


def call_as_a_function_would(labels, **options):
    """Stands for `prepare_dataset`: the warning must point at the line that called this function."""
    return label_source("prepare_dataset", labels, **options)


def test_loose_keywords_warn_once_naming_the_label_source_and_read_the_same():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = call_as_a_function_would("r.csv", group_by="Artist", id_column="id", skip_unlabeled=False)
    assert source == LabelSource("r.csv", group_by="Artist", id_column="id")  # behaviour unchanged
    assert [w.category for w in caught] == [DeprecationWarning]  # one warning per call
    message = str(caught[0].message)
    assert message.startswith("prepare_dataset: the label keyword(s) group_by, id_column are deprecated")
    assert "0.3" in message and "labels=LabelSource('r.csv', group_by='Artist', id_column='id')" in message
    assert Path(caught[0].filename) == Path(__file__)  # the caller's line, not the toolkit's


def test_a_label_source_a_lone_labels_file_or_no_labels_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert call_as_a_function_would(LabelSource("r.csv", cuts=[3.0, 6.0])).cuts == [3.0, 6.0]
        assert call_as_a_function_would("r.csv") == LabelSource("r.csv")
        assert call_as_a_function_would(None, skip_unlabeled=False) == LabelSource()


def test_keywords_beside_a_label_source_are_refused():
    with pytest.raises(TypeError, match="prepare_dataset: threshold given beside a LabelSource"):
        call_as_a_function_would(LabelSource("r.csv"), threshold=0.5)


class _Task:
    """A task's label facts (`Task.facts`), as `LabelSource.check` reads them."""

    def __init__(self, name: str, targets: bool, label_column: bool, threshold: bool, outliers: bool):
        self.name = name
        self.facts = SimpleNamespace(
            takes_targets=targets, reads_label_column=label_column, takes_threshold=threshold, checks_outliers=outliers
        )

    def __str__(self) -> str:
        return self.name


CLASSES = _Task("classification", False, True, False, False)
VALUES = _Task("regression", True, False, False, True)


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        (VALUES, {"cuts": [3.0, 6.0]}, "--cuts bins ratings into classes; a regression data set keeps its values"),
        (VALUES, {"label_column": "mood"}, "--label-column names classes; a regression data set reads --target"),
        (CLASSES, {"targets": ["v"]}, "--target names regression targets or moods; a classification data set"),
        (VALUES, {"threshold": 0.5}, "--threshold reads mood columns; a regression data set has no moods: drop it"),
        (CLASSES, {"allow_outliers": True}, "--allow-outliers keeps outlying regression targets; a classification"),
    ],
)  # fmt: skip
def test_check_words_each_rule_once_naming_the_option(task, options, message):
    with pytest.raises(MerError, match=f"^{re.escape(message)}"):
        LabelSource(**options).check(task)
    with pytest.raises(MerError, match=r"^'key:\w+' .* a \w+ recipe "):  # a recipe names its keys
        LabelSource(**options).check(task, lambda field: f"'key:{field}'", "recipe")
    LabelSource().check(task)  # nothing set: nothing to refuse
