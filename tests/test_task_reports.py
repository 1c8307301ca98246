"""The HTML report and MLflow tracking of regression and multilabel runs (tiny trainings, 1 epoch, 64 px)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from mer_fastai.api.training import train
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.report.html.page import write_report
from tests.conftest import TINY_SPEC
from tests.test_multilabel import mood_data, shares_file, study_audio  # noqa: F401  (module fixtures)
from tests.test_regression import TARGETS, study_set, tiny  # noqa: F401  (module fixtures)

IMG = re.compile(r'<img[^>]+src="([^"]+)"[^>]*alt="([^"]+)"')


@pytest.fixture(scope="module")
def va_test_data(study_set, tmp_path_factory):  # noqa: F811
    """Valence and energy of 15 synthetic clips, with validation and test splits."""
    audio, ratings = study_set
    out = tmp_path_factory.mktemp("va")
    prepare_dataset(audio, out, None, ratings, spec=TINY_SPEC, valid_pct=0.25, test_pct=0.25, targets=TARGETS,
                    workers=1, progress=False)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def va_run(va_test_data, tmp_path_factory) -> Path:
    return train(va_test_data, tiny(), tmp_path_factory.mktemp("run") / "run", show=False).run_dir


@pytest.fixture(scope="module")
def mood_run(mood_data, tmp_path_factory) -> Path:  # noqa: F811
    return train(mood_data, tiny(), tmp_path_factory.mktemp("run") / "run", show=False).run_dir


def _check_page(html: str, page: Path) -> dict[str, str]:
    """Every image inlined, nothing from the network, every link resolving; returns the images by caption."""
    assert not re.search(r'<img[^>]+src="(?!data:image/png;base64,)', html)
    assert "http://" not in html and "https://" not in html
    ids = set(re.findall(r'id="([^"]+)"', html))
    for link in re.findall(r'href="([^"]+)"', html):
        assert link[1:] in ids if link.startswith("#") else (page.parent / link).resolve().is_file(), link
    return {alt: src for src, alt in IMG.findall(html)}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _worst_clips(html: str) -> list[str]:
    body = html.split("<h3>Worst tracks</h3>")[1].split("</table>")[0]
    return re.findall(r"<td><code>([^<]+)</code></td>", body)


def test_train_writes_the_regression_report(va_run):
    page = va_run / "report.html"
    html = page.read_text()  # written by `train` itself
    metrics = json.loads((va_run / "metrics.json").read_text())
    for title in ("Validation scores (windows)", "Validation scores (tracks)", "Test scores (windows)",
                  "Test scores (tracks)"):  # fmt: skip
        assert f"<h3>{title}</h3>" in html
    assert '<th class="num">CCC</th>' in html and "confusion" not in html.lower()
    for block in (metrics, metrics["track"], metrics["test"], metrics["test"]["track"]):
        for target, scores in block["per_target"].items():
            cells = "".join(f'<td class="num">{"–" if v is None else f"{v:.3f}"}</td>' for v in scores.values())
            assert f"<tr><td>{target}</td>{cells}</tr>" in html
    images = _check_page(html, page)
    for caption in (
        "predicted against true valence (tracks)",
        "predicted against true energy (tracks)",
        "test split: predicted against true valence (tracks)",
        "loss and validation scores per epoch",
    ):
        assert caption in images, caption
    assert any(alt.startswith("valence–arousal plane") for alt in images)
    assert any(alt.startswith("test split: valence–arousal plane") for alt in images)
    assert "regression" in html and "valence, energy" in html  # the data set's task and targets


def test_the_worst_regression_tracks_have_the_largest_error(va_run):
    html = (va_run / "report.html").read_text()
    tracks = _rows(va_run / "track_predictions.csv")

    def error(row: dict) -> float:
        return sum(abs(float(row[f"pred_{t}"]) - float(row[f"true_{t}"])) for t in TARGETS) / len(TARGETS)

    expected = [row["clip_id"] for row in sorted(tracks, key=error, reverse=True)]
    assert _worst_clips(html) == expected[:12]
    worst = max(tracks, key=error)
    assert f"<td>{error(worst):.3f}</td>" in html
    body = html.split("<h3>Worst tracks</h3>")[1]
    assert body.count('class="thumb" src="data:image/png;base64,') == len(expected[:12])  # first windows
    assert body.count('.wav">') == len(expected[:12])  # audio linked relative to the page


def test_a_run_without_track_predictions_says_so(va_run, tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(va_run, run)
    (run / "track_predictions.csv").unlink()
    html = write_report(run).read_text()
    assert "has no track_predictions.csv, so its worst tracks cannot be shown" in html
    assert "Validation scores (tracks)" in html and 'class="thumb"' not in html


def test_the_multilabel_report(mood_run, tmp_path):
    page = write_report(mood_run, tmp_path / "elsewhere" / "moods.html")
    html = page.read_text()
    metrics = json.loads((mood_run / "metrics.json").read_text())
    for block in (metrics, metrics["track"]):
        for key, name in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP")):
            value = "–" if block[key] is None else f"{block[key]:.3f}"
            assert f'<tr class="total"><td>{name}</td><td></td><td></td><td class="num">{value}</td>' in html
    for mood, scores in metrics["per_label"].items():
        assert f"<tr><td>{mood}</td>" in html and f'<td class="num">{scores["support"]}</td></tr>' in html
    assert f"A mood is predicted at probability ≥ {metrics['threshold']}." in html
    images = _check_page(html, page)
    assert "precision, recall, F1 and AP per mood (windows)" in images

    tracks = _rows(mood_run / "track_predictions.csv")
    wrong = {r["clip_id"]: len((set(r["true"].split(";")) ^ set(r["predicted"].split(";"))) - {""}) for r in tracks}
    assert (
        f"{sum(1 for n in wrong.values() if n)} of {len(tracks)} validation tracks have at least one mood wrong" in html
    )
    shown = _worst_clips(html) if any(wrong.values()) else []
    assert [wrong[clip] for clip in shown] == sorted((n for n in wrong.values() if n), reverse=True)[: len(shown)]
    assert len(shown) == min(12, sum(1 for n in wrong.values() if n))


def test_mlflow_tracks_a_regression_run(va_test_data, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install 'mer-fastai[mlflow]'")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(va_test_data, tiny(epochs=2, track="mlflow", tracking_uri=uri), tmp_path / "run", show=False)
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("valence+energy").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["data.task"] == "regression" and json.loads(run.data.params["data.targets"]) == TARGETS
    for name in ("train_loss", "valid_loss", "ccc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [0, 1], name
    metrics, test = result.metrics, result.metrics["test"]
    expected = {}
    for key in ("ccc", "pearson_r", "r2", "rmse", "mae"):
        expected.update({f"final_{key}": metrics[key], f"track_{key}": metrics["track"][key]})
        expected.update({f"test_{key}": test[key], f"test_track_{key}": test["track"][key]})
    expected = {key: value for key, value in expected.items() if value is not None}
    assert {"final_ccc", "final_rmse", "track_mae", "test_track_rmse"} <= set(expected)
    assert {key: run.data.metrics[key] for key in expected} == pytest.approx(expected)
    assert "final_accuracy" not in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "scatter_valence.png", "circumplex.png", "track_predictions.csv"} <= artifacts
