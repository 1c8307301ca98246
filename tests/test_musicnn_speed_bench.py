"""`benchmarks/musicnn_speed.py`'s own arithmetic: skipped rows keep their reason, gains are per round, and the
training cost is extrapolated along the line through two subset sizes."""

from __future__ import annotations

import pytest

from benchmarks.musicnn_speed import at_full_scale, predict_table


def test_predict_table_lists_skipped_rows_and_gains_round_by_round():
    rows = {"original": "no TensorFlow environment at /nowhere", "port": ("python", [], None),
            "one pass": ("python", [], None)}  # fmt: skip
    results = {
        "port": [{"wall": 10.0, "user": 18.0, "sys": 2.0, "audio": 300.0}, {"wall": 20.0, "user": 30, "sys": 0,
                                                                              "audio": 300.0}],
        "one pass": [{"wall": 5.0, "user": 10.0, "sys": 0.0, "audio": 300.0}, {"wall": 8.0, "user": 10, "sys": 0,
                                                                                 "audio": 300.0}],
    }  # fmt: skip
    table, speeds = predict_table(rows, results, "port")
    assert "| original | skipped: no TensorFlow environment at /nowhere |" in table
    assert "2.00× / 2.50×" in table  # round 1: 10 s / 5 s; round 2: 20 s / 8 s
    assert speeds["port"] == pytest.approx((30 + 15) / 2) and speeds["one pass"] == pytest.approx((60 + 37.5) / 2)
    assert "| port | 22× | 12.5 | 5% | – |" in table


def test_training_cost_is_a_line_through_two_sizes():
    cost = {12: {"user": 30.0, "sys": 2.0}, 60: {"user": 126.0, "sys": 2.0}}
    full = at_full_scale(cost, (12, 60))
    assert full["user"] == pytest.approx(30 + 96 * (600 - 12) / 48) and full["sys"] == pytest.approx(2.0)
    assert full["clips"] == 60 and full["measured"] == cost[60]
