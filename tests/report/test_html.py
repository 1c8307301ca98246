"""`write_report` / `mer-fastai report`: run, grid and cross-validation folders as one offline HTML page."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.errors import MerError
from mer_fastai.report.html.page import write_report
from mer_fastai.report.results import write_results
from tests.inference.test_predict import tiny_run  # noqa: F401  (session fixture: one tiny training shared with test_predict)


def make_grid(runs: list[Path], out: Path, extra_columns: bool = False, test_scores: bool = False) -> Path:
    """FIXTURE: a grid folder (results.csv, heatmap, runs/<cell>/) from finished run folders; `test_scores`:
    each row with a held-out test split's scores."""
    rows = []
    for i, run in enumerate(runs):
        cell = out / "runs" / f"demo-main-emotions-squeezenet1_0-whole-{i}"
        shutil.copytree(run, cell)
        metrics = json.loads((run / "metrics.json").read_text())
        row = {
            "experiment": "demo",
            "dataset": "tiny",
            "feature": "emotions",
            "arch": f"squeezenet1_0-{i}",
            "mode": "whole",
            "weights": "none",
            "augmentation": "none",
            "epochs": 1,
            "lr": 1e-3,
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "seconds": metrics["seconds"],
            "stage": "main",
            "run_dir": str(cell),
        }
        if test_scores:
            row.update(test_accuracy=metrics["accuracy"], test_macro_f1=metrics["macro_f1"])
        rows.append(row)
    write_results(out, rows)
    if extra_columns:  # track scores and fold spreads, as newer versions write them
        with (out / "results.csv").open() as handle:
            table = list(csv.DictReader(handle))
        for row in table:
            row.update(track_accuracy="0.5", accuracy_sd="0.05")
        with (out / "results.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return out


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory) -> Path:  # noqa: F811
    """A copy of the tiny run folder as `train` left it (with its prediction files and report.html)."""
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(tiny_run, run)
    return run


def ids_and_links(html: str) -> tuple[set[str], list[str]]:
    ids = set(re.findall(r'id="([^"]+)"', html))
    return ids, re.findall(r'href="([^"]+)"', html)


def test_train_writes_the_report_from_its_own_prediction_files(run_copy):
    html = (run_copy / "report.html").read_text()  # written by `train` itself
    metrics = json.loads((run_copy / "metrics.json").read_text())
    tracks = list(csv.DictReader((run_copy / "track_predictions.csv").open()))
    right = sum(r["true"] == r["predicted"] for r in tracks)
    assert right / len(tracks) == pytest.approx(metrics["track"]["accuracy"])
    assert f"{right} of {len(tracks)} validation tracks right" in html
    assert "Validation scores (tracks)" in html and f"{metrics['track']['macro_f1']:.3f}" in html
    assert "recorded by the run" in html


def test_run_report_is_self_contained(run_copy, tiny_data):
    out = write_report(run_copy)
    html = out.read_text()
    assert out == run_copy / "report.html"
    assert "<img" in html and not re.search(r'<img[^>]+src="(?!data:)', html)  # every image inlined
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for name in ("precision", "row-normalised", "Worst mistakes", "Skipped files", "squeezenet1_0"):
        assert name in html
    metrics = json.loads((run_copy / "metrics.json").read_text())
    counts = metrics["confusion_matrix"]
    assert f">{counts[0][0]}</td>" in html
    ids, links = ids_and_links(html)
    for link in links:
        if link.startswith("#"):
            assert link[1:] in ids, link
        else:
            assert (out.parent / link).resolve().is_file(), link
    wrong = sum(1 for r in csv.DictReader((run_copy / "valid_predictions.csv").open()) if r["true"] != r["predicted"])
    assert f"{wrong} of " in html
    if wrong:
        assert 'class="thumb" src="data:image/png;base64,' in html
        assert any(link.endswith(".wav") for link in links)  # audio linked relative to the page


def test_run_without_prediction_files_says_so(tiny_run, tmp_path):  # noqa: F811
    run = tmp_path / "old-run"
    shutil.copytree(tiny_run, run)
    for name in ("valid_predictions.csv", "track_predictions.csv"):
        (run / name).unlink(missing_ok=True)
    html = write_report(run, tmp_path / "elsewhere" / "r.html").read_text()
    assert "has no valid_predictions.csv or track_predictions.csv" in html
    assert 'class="thumb"' not in html


def test_grid_report_links_every_cell(run_copy, tmp_path):
    grid = make_grid([run_copy, run_copy], tmp_path / "grid", extra_columns=True)
    html = write_report(grid).read_text()
    body = html.split('id="results-table"')[1].split("</table>")[0]
    assert body.count("<tr>") == 3  # heading + two cells
    ids, links = ids_and_links(html)
    cells = [link for link in links if link.startswith("#cell-")]
    assert len(set(cells)) == 2 and all(link[1:] in ids for link in cells)
    assert "track accuracy" in html and " ± 0.050" in html
    assert "validation accuracy per cell" in html


@pytest.mark.parametrize("test_split", [False, True])
def test_grid_table_shows_test_columns_only_with_a_test_split(run_copy, tmp_path, test_split):
    grid = make_grid([run_copy, run_copy], tmp_path / "grid", test_scores=test_split)
    html = write_report(grid).read_text()
    heading = html.split('id="results-table"')[1].split("</thead>")[0]
    assert ('<th class="num">test accuracy</th>' in heading) == test_split
    assert "test track accuracy" not in heading  # no row has test tracks
    assert ">folds</th>" not in heading and "mean ± sd over folds" not in html  # no cross-validated cell
    intro = html.split('<section id="results">')[1].split("</p>")[0]
    assert ("held-out test split" in intro) == test_split


def test_run_shows_test_scores_only_with_a_test_split(run_copy, tmp_path):
    assert "Test scores" not in write_report(run_copy, tmp_path / "plain.html").read_text()
    run = tmp_path / "tested"
    shutil.copytree(run_copy, run)
    metrics = json.loads((run / "metrics.json").read_text())
    keys = ("accuracy", "macro_f1", "classes", "per_class", "confusion_matrix")
    metrics["test"] = {**{k: metrics[k] for k in keys}, "data_dir": "held-out", "track": metrics["track"]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = write_report(run, tmp_path / "tested.html").read_text()
    assert "Test scores (windows)" in html and "Test scores (tracks)" in html
    assert "Held-out test set held-out" in html


def test_cv_report_reads_the_contract(run_copy, tmp_path):
    cv = tmp_path / "cv"
    for fold in ("0", "1"):
        shutil.copytree(run_copy, cv / "folds" / fold)
    shutil.copy(run_copy / "valid_predictions.csv", cv / "oof_predictions.csv")
    summary = {"accuracy": {"mean": 0.5, "sd": 0.1, "values": [0.4, 0.6]}}
    (cv / "cv.json").write_text(json.dumps({"folds": 2, "data_dir": None, "summary": summary}))
    html = write_report(cv).read_text()
    assert "0.500 ± 0.100" in html and 'href="#fold-0"' in html and 'id="fold-1"' in html


def test_not_a_result_folder_is_one_clear_error(tmp_path):
    with pytest.raises(MerError, match="holds no metrics.json"):
        write_report(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code != 0


def test_cli_report(run_copy, tmp_path):
    out = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["report", str(run_copy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "page.html" in result.output


def test_report_replaces_only_its_own_page(run_copy, tmp_path):
    """An empty file or a page `report` wrote before is replaced; a user's HTML page is refused and kept (the CLI
    case, exit 2 and the file's hash, is in tests/test_bad_inputs.py)."""
    theirs = tmp_path / "notes.html"
    theirs.write_text("<html><head><title>My notes</title></head><body>mine</body></html>")
    with pytest.raises(MerError, match="report did not write this file"):
        write_report(run_copy, theirs)
    assert "mine" in theirs.read_text()
    page = tmp_path / "empty.html"
    page.touch()
    assert write_report(run_copy, page) == page and "<title>Run " in page.read_text()
    page.write_text(page.read_text().replace("<body>", "<body><!-- an older page -->", 1))
    write_report(run_copy, page)  # its own earlier page: replaced
    assert "an older page" not in page.read_text()
