"""`label_source`: a `LabelSource` given whole, or a labels file with the loose label keywords (deprecated)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mer_fastai.data.labelsource import LabelSource, label_source


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
