"""Regression targets and moods: non-finite and outlying values, and how each task chooses its reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_fastai.data.labelsource import LabelSource
from mer_fastai.data.targets import read_targets
from mer_fastai.errors import MerError
from mer_fastai.tasks.registry import get_task


def regression_file(tmp_path: Path, values: list[str]) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("file,v\n" + "".join(f"c{i},{value}\n" for i, value in enumerate(values)))
    return path


@pytest.mark.parametrize(
    ("cell", "message"),
    [("1e300", r"row 5 \(v = 1e\+300\) lies far outside the other values .*--allow-outliers"),
     ("-80", r"row 5 \(v = -80\) lies far outside"), ("inf", r"row 5 \(v = inf\) is not finite"),
     ("-1e999", r"row 5 \(v = -1e999\) is not finite")],
)  # fmt: skip
def test_a_non_finite_or_outlying_target_is_refused_with_its_row(tmp_path, cell, message):
    values = ["3.1", "4.2", "5.0", cell, "6.3", "2.8", "7.4", "4.4"]
    with pytest.raises(MerError, match=message):
        read_targets(regression_file(tmp_path, values), ["v"], id_column="file")


def test_outlying_targets_are_kept_with_allow_outliers_and_a_note(tmp_path):
    values = ["3.1", "4.2", "5.0", "1e300", "6.3", "2.8", "7.4", "4.4"]
    table = read_targets(regression_file(tmp_path, values), ["v"], id_column="file", allow_outliers=True)
    assert table.scale["v"] == [2.8, 1e300]
    assert table.notes == ["note: t.csv: kept 1 outlying value(s) (--allow-outliers): row 5 (v = 1e+300)"]
    with pytest.raises(MerError, match="not finite"):  # an infinite value never is a target
        read_targets(regression_file(tmp_path, [*values[:3], "inf"]), ["v"], id_column="file", allow_outliers=True)


def test_spread_out_or_mostly_equal_targets_are_no_outliers(tmp_path):
    spread = [str(v) for v in (1, 1.5, 2, 3, 5, 8, 13, 21, 34, 55)]
    assert not read_targets(regression_file(tmp_path, spread), ["v"], id_column="file").notes
    flags = ["0"] * 19 + ["1"]  # the middle half all 0: no scale to call 1 far from the others
    assert read_targets(regression_file(tmp_path, flags), ["v"], id_column="file").scale["v"] == [0.0, 1.0]


def test_each_task_reads_a_label_source_with_its_own_reader(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("clip,happy,sad,class\n1,0.9,0.1,a\n2,0.2,0.8,b\n3,0.5,0.5,a\n")
    values = get_task("regression").read_labels(
        LabelSource(path, id_column="clip", targets=["happy"]), None, tmp_path, []
    )
    assert values.targets == ["happy"] and values.labels["1"].values == (0.9,)
    moods = LabelSource(path, id_column="clip", targets=["happy", "sad"])
    sets = get_task("multilabel").read_labels(moods, None, tmp_path, [])
    assert sets.labels["3"].label == "happy+sad" and sets.labels["1"].values == (1.0, 0.0)
    classes = LabelSource(path, id_column="clip", label_column="class")
    assert get_task("classification").read_labels(classes, "class", tmp_path, []).labels["2"].label == "b"
