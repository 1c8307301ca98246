"""The grid page's results table: a column empty in every row (test scores without a test split, fold spreads
without folds) is left out."""

from __future__ import annotations

from mer_fastai.report.html.grid import results_table
from mer_fastai.report.results import result_columns


def rows(**scores: str) -> list[dict]:
    """Two results.csv rows as `load_results` gives them: every column, empty where nothing was scored."""
    return [
        {**dict.fromkeys(result_columns(), ""), "arch": arch, "accuracy": "0.5", "run_dir": f"g/{arch}", **scores}
        for arch in ("alexnet", "resnet18")
    ]


def headings(table: dict) -> list[str]:
    return [column["name"] for column in table["columns"]]


def test_empty_score_columns_are_left_out():
    table = results_table(rows(), lambda row: None)
    assert headings(table) == ["cell", "arch", "accuracy"]
    assert table["sd_columns"] == [] and not table["test"]
    assert all(len(row["cells"]) == 3 for row in table["rows"])


def test_test_scores_and_spreads_are_shown_where_a_row_holds_them():
    table = results_table(rows(test_accuracy="0.25", accuracy_sd="0.1", folds="5"), lambda row: None)
    assert headings(table) == ["cell", "arch", "accuracy", "test accuracy", "folds"]
    assert table["sd_columns"] == ["accuracy"] and table["test"]
    assert [cell["text"] for cell in table["rows"][0]["cells"]] == ["alexnet", "alexnet", "0.500 ± 0.100", "0.250", "5"]
