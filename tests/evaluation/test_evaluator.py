"""`evaluate` and `mer-fastai evaluate`, on synthetic clips and on the real data beside the checkout."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mer_fastai.api.evaluation import evaluate
from mer_fastai.cli.main import app
from mer_fastai.data.labelsource import LabelSource
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.preparation.prepare import prepare_dataset
from tests.inference.test_predict import TINY_CONFIG, tiny_run, train_run  # noqa: F401  (session fixture shared by the modules)

runner = CliRunner()


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def write_labels(path: Path, labels: dict[str, str]) -> Path:
    path.write_text("clip,mood\n" + "".join(f"{clip},{label}\n" for clip, label in labels.items()))
    return path


def folder_labels(tiny_audio: Path) -> dict[str, str]:
    return {wav.stem: wav.parent.name for wav in sorted(tiny_audio.rglob("*.wav"))}


def test_evaluate_class_folders_writes_consistent_report(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    result = evaluate(tiny_run, tiny_audio, tmp_path / "eval", progress=False)
    out = result.out_dir
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_tracks"] == 16 and metrics["n_windows"] == 32 and metrics["skipped"] == []
    assert sum(map(sum, metrics["confusion_matrix"])) == 16
    assert {c: s["support"] for c, s in metrics["per_class"].items()} == dict.fromkeys(
        ["angry", "happy", "sad", "tender"], 4
    )
    predictions = rows(out / "predictions.csv")
    truth = folder_labels(tiny_audio)
    assert all(row["true"] == truth[Path(row["file"]).stem] for row in predictions)
    correct = sum(row["true"] == row["predicted"] for row in predictions)
    assert metrics["accuracy"] == pytest.approx(correct / 16)
    assert "macro avg" in (out / "classification_report.txt").read_text()
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_the_loop_writes_the_results_and_its_caller_the_pages(tiny_run, tiny_audio, tmp_path, monkeypatch, capsys):  # noqa: F811
    """`evaluation.evaluator.evaluate` writes predictions.csv and metrics.json and returns what the plots show;
    `api.evaluation.evaluation_pages` draws the pages `mer_fastai.evaluate` draws, byte for byte; a page that cannot
    be written is a warning line, and the published results stay."""
    from mer_fastai.api.evaluation import evaluation_pages
    from mer_fastai.evaluation import evaluator
    from mer_fastai.report.views.classification import ClassificationViews

    api = evaluate(tiny_run, tiny_audio, tmp_path / "api", progress=False).out_dir
    result = evaluator.evaluate(tiny_run, tiny_audio, tmp_path / "loop", progress=False)
    pages = {"classification_report.txt", "confusion_matrix.png"}
    assert {p.name for p in result.out_dir.iterdir()} == {p.name for p in api.iterdir()} - pages
    assert result.plots is not None and result.plots.names == ["angry", "happy", "sad", "tender"]
    evaluation_pages(result)
    for name in {p.name for p in api.iterdir()} - {".lock"}:
        assert (result.out_dir / name).read_bytes() == (api / name).read_bytes(), name

    def full_disk(*_args) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(ClassificationViews, "plot_evaluation", full_disk)
    failed = evaluate(tiny_run, tiny_audio, tmp_path / "full", progress=False).out_dir
    assert "a plot could not be written: No space left on device" in capsys.readouterr().err
    assert (failed / "metrics.json").read_bytes() == (api / "metrics.json").read_bytes().replace(b"/api", b"/full")
    assert not (failed / "confusion_matrix.png").exists()


def test_labels_outside_the_model_are_an_error(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    labels = folder_labels(tiny_audio) | {"happy_00": "joy"}
    with pytest.raises(MerError, match=r"label\(s\) joy of 1 file\(s\) are not classes of the model"):
        evaluate(
            tiny_run,
            tiny_audio,
            tmp_path,
            labels=write_labels(tmp_path / "l.csv", labels),
            id_column="clip",
            label_column="mood",
            progress=False,
        )


def test_blank_and_unlabeled_clips_need_a_flag_and_are_reported(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    predictor = Predictor.load(tiny_run, device="cpu")
    labels = folder_labels(tiny_audio)
    del labels["sad_01"]  # no row at all
    options = {"id_column": "clip", "label_column": "mood", "progress": False}
    with pytest.raises(MerError, match="sad_01.wav: id 'sad_01' has no row"):
        evaluate(
            predictor, tiny_audio / "sad", tmp_path / "a", labels=write_labels(tmp_path / "l.csv", labels), **options
        )
    path = write_labels(tmp_path / "l.csv", labels | {"sad_00": ""})  # a blank label: refused unless skipped
    with pytest.raises(MerError, match=r"row \d+ has no usable value in column 'mood'.*--skip-unlabeled"):
        evaluate(predictor, tiny_audio / "sad", tmp_path / "a", labels=path, **options)
    assert not (tmp_path / "a").exists()  # a failed evaluate leaves no folder behind
    with pytest.warns(DeprecationWarning, match="evaluate: the label keyword") as seen:  # the loose keywords
        result = evaluate(predictor, tiny_audio / "sad", tmp_path / "b", labels=path, skip_unlabeled=True, **options)
    assert len([w for w in seen if w.category is DeprecationWarning]) == 1
    assert result.metrics["n_tracks"] == 2
    reasons = {Path(s.file).stem: s.reason for s in result.skipped}
    assert set(reasons) == {"sad_00", "sad_01"} and "no usable value" in reasons["sad_00"]
    source = LabelSource(path, id_column="clip", label_column="mood", skip_unlabeled=True)
    whole = evaluate(predictor, tiny_audio / "sad", tmp_path / "c", labels=source, progress=False)  # one value
    assert whole.metrics["n_tracks"] == 2 and whole.skipped == result.skipped
    with pytest.raises(TypeError, match="evaluate: group_by given beside a LabelSource"):
        evaluate(predictor, tiny_audio / "sad", tmp_path / "d", labels=source, group_by="artist", progress=False)


def test_equal_file_names_in_class_folders_keep_their_own_truth(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    audio = tmp_path / "audio"
    for folder in ("happy", "sad"):
        (audio / folder).mkdir(parents=True)
        for i, wav in enumerate(sorted((tiny_audio / folder).glob("*.wav"))[:2]):
            (audio / folder / f"{i}.wav").symlink_to(wav)
    evaluate(tiny_run, audio, tmp_path / "eval", progress=False)
    predictions = {row["clip_id"]: row["true"] for row in rows(tmp_path / "eval" / "predictions.csv")}
    assert predictions == {"happy/0": "happy", "happy/1": "happy", "sad/0": "sad", "sad/1": "sad"}
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(MerError, match="file.txt: is a file, not a folder"):
        evaluate(tiny_run, audio, tmp_path / "file.txt", progress=False)


def test_cli_evaluate(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    labels = write_labels(tmp_path / "l.csv", folder_labels(tiny_audio))
    command = ["evaluate", str(tiny_run), str(tiny_audio / "happy"), "--labels", str(labels)]
    command += [
        "--id-column",
        "clip",
        "--label-column",
        "mood",
        "--aggregate",
        "vote",
        "--out",
        str(tmp_path / "e"),
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["n_tracks"] == 4 and metrics["aggregate"] == "vote" and 0 <= metrics["macro_f1"] <= 1
    assert len(rows(tmp_path / "e" / "predictions.csv")) == 4

    result = runner.invoke(app, ["evaluate", str(tiny_run), str(tiny_audio), "--group-by", "x", "-o", str(tmp_path)])
    assert isinstance(result.exception, MerError) and "--group-by needs a --labels file" in str(result.exception)


def link_clips(source: Path, target: Path, quadrant_slice: slice) -> Path:
    """Symlink a few clips of each quadrant folder of 4q-dev into `target` (same layout)."""
    for quadrant in ("Q1", "Q2", "Q3", "Q4"):
        (target / quadrant).mkdir(parents=True)
        for clip in sorted((source / quadrant).glob("*.mp3"))[quadrant_slice]:
            (target / quadrant / clip.name).symlink_to(clip)
    return target


@pytest.fixture(scope="module")
def real_run(shared_data, tmp_path_factory) -> Path:
    """A valence model trained on 12 clips of 4q-dev (3 s windows, 48 px images), split by artist."""
    root = tmp_path_factory.mktemp("real")
    audio = link_clips(shared_data / "4q-dev", root / "audio", slice(0, 3))
    spec = SpecConfig(segment_seconds=3.0, n_mels=32, hop_length=512)
    labels = shared_data / "4q-dev" / "annotations.csv"
    prepare_dataset(audio, root / "data", "valence", labels, spec=spec, group_by="Artist", workers=1, progress=False)
    return train_run(root / "data", root / "run", dataclasses.replace(TINY_CONFIG, bs=16, size=48))


def test_evaluate_real_clips_of_other_artists(real_run, shared_data, tmp_path):
    audio = link_clips(shared_data / "4q-dev", tmp_path / "audio", slice(3, 5))
    labels = shared_data / "4q-dev" / "annotations.csv"
    result = evaluate(real_run, audio, tmp_path / "eval", labels=labels, feature="valence", progress=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    predictions = rows(tmp_path / "eval" / "predictions.csv")
    assert metrics["n_tracks"] == len(predictions) == 8
    assert metrics["n_windows"] == sum(int(row["windows"]) for row in predictions)
    assert 72 <= metrics["n_windows"] <= 88  # about 30 s per clip, 3 s windows
    assert set(metrics["per_class"]) == {"negative", "positive"}
    truth = {"Q1": "positive", "Q4": "positive", "Q2": "negative", "Q3": "negative"}
    assert all(row["true"] == truth[Path(row["file"]).parent.name] for row in predictions)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["accuracy"] == result.metrics["accuracy"]


def test_soundtrack_predictions_and_their_three_level_labels(real_run, shared_data, tmp_path):
    soundtracks = shared_data / "soundtracks-set1-sample"
    out = tmp_path / "p.json"
    result = runner.invoke(
        app, ["predict", str(real_run), str(soundtracks / "audio"), "--format", "json", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    tracks = json.loads(out.read_text())["tracks"]
    assert len(tracks) == 25
    for track in tracks:
        assert 14 <= track["duration"] <= 23 and 4 <= len(track["windows"]) <= 8
        assert [w["start"] for w in track["windows"]] == [3.0 * i for i in range(len(track["windows"]))]
    with pytest.raises(MerError, match="neutral of .* are not classes of the model"):
        evaluate(
            real_run,
            soundtracks / "audio",
            tmp_path,
            labels=soundtracks / "mean_ratings_set1.csv",
            progress=False,
        )


def test_evaluate_never_writes_over_its_inputs(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    """--out that is the audio folder, the model's run folder, or that would put a report file over the labels file:
    one line before anything (not even a lock file) is written."""
    run, audio = tmp_path / "run", tmp_path / "audio"
    shutil.copytree(tiny_run, run)
    shutil.copytree(tiny_audio, audio)
    (tmp_path / "ev").mkdir()
    labels = write_labels(tmp_path / "ev" / "predictions.csv", folder_labels(tiny_audio))
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    for out, what in [(audio, "is the audio folder"), (run, "is the run folder of the model"),
                      (tmp_path / "ev", "is the labels file")]:  # fmt: skip
        with pytest.raises(MerError, match=what):
            evaluate(run, audio, out, labels=labels, id_column="clip", label_column="mood", progress=False)
    with pytest.raises(MerError, match="is the run folder of the model"):
        evaluate(Predictor.load(run, device="cpu"), audio, run, progress=False)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
