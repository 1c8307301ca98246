"""`label_source`: a `LabelSource` given whole, or a labels file with the loose label keywords (deprecated); its
rules checked against a task (`LabelSource.check`, `LabelSource.needs`, `check_feature`), each worded once."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from mer_fastai.data.labelsource import LabelSource, check_feature, label_source
from mer_fastai.errors import MerError
from mer_fastai.tasks.registry import get_task


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


CLASSES, VALUES, MOODS = (get_task(name) for name in ("classification", "regression", "multilabel"))


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        (VALUES, {"cuts": [3.0, 6.0]}, "--cuts bins ratings into classes; a regression data set keeps its values"),
        (VALUES, {"label_column": "mood"}, "--label-column names classes; a regression data set reads --target"),
        (CLASSES, {"targets": ["v"]}, "--target names numeric labels columns (regression targets or moods); a "
                                      "classification data set has classes: drop it, or choose a --task"),
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


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        (VALUES, {"targets": ["v"]}, "--labels is missing: a regression data set reads its targets from the columns"),
        (MOODS, {"targets": ["happy"]}, "--labels is missing: a multilabel data set reads its moods from the columns"),
        (VALUES, {"labels": "r.csv"}, "--target is missing: a regression data set learns the numeric labels column"),
        (MOODS, {"labels": "r.csv"}, "--target or --label-column: a multilabel data set reads its moods from --target"),
        (MOODS, {"labels": "r.csv", "targets": ["happy"], "label_column": "moods"},
         "--target or --label-column: a multilabel"),
        (MOODS, {"labels": "r.csv", "label_column": "moods", "threshold": 0.5},
         "--threshold reads the vote shares of --target mood columns; a multilabel data set reading --label-column"),
    ],
)  # fmt: skip
def test_needs_words_each_rule_once_naming_the_option(task, options, message):
    with pytest.raises(MerError, match=f"^{re.escape(message)}"):
        LabelSource(**options).needs(task)
    with pytest.raises(MerError, match=r"^'key:\w+'.* a \w+ recipe "):  # a recipe names its keys
        LabelSource(**options).needs(task, lambda field: f"'key:{field}'", "recipe")


def test_what_each_task_needs_given_passes():
    LabelSource().needs(CLASSES)  # class folders: nothing needed
    LabelSource("r.csv", targets=["v"]).needs(VALUES)
    LabelSource("r.csv", targets=["happy", "sad"], threshold=0.3).needs(MOODS)
    LabelSource("r.csv", label_column="moods").needs(MOODS)


def test_a_model_s_task_is_fixed_so_the_fix_offers_no_other_task():
    with pytest.raises(MerError, match="a classification model has classes: drop it$"):
        LabelSource(targets=["v"]).check(CLASSES, what="model", chosen=False)


def test_a_feature_is_refused_for_a_task_of_values_only():
    for task in (VALUES, MOODS):
        with pytest.raises(MerError, match=f"^--feature names the one label to classify; a {task} model learns all"):
            check_feature(task, "valence", what="model")
    check_feature(CLASSES, "emotions")
    check_feature(VALUES, None)
