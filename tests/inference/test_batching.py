"""One pass per clip (`inference.batching`): full batches across files, rows handed back to each file in order,
and the same predictions as labelling each file on its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import soundfile

from mer_fastai.inference.batching import Decoded, batched
from mer_fastai.inference.embed import embed_audio
from mer_fastai.inference.predict import Predictor
from mer_fastai.inference.writing import write_predictions

from .test_predict import predictor, tiny_run  # noqa: F401  (session fixtures)


def _decoded(name: str, count: int, first: int) -> Decoded:
    images = [np.full((2, 2), first + i, dtype=np.uint8) for i in range(count)]
    return Decoded(Path(name), float(count), [float(i) for i in range(count)], images)


def test_full_batches_across_files_and_rows_back_in_order():
    files = [_decoded("a", 5, 0), Decoded(Path("bad"), error="bad: cannot decode"), _decoded("b", 1, 5),
             _decoded("c", 7, 6), _decoded("d", 0, 0), _decoded("e", 2, 13)]  # fmt: skip
    sizes: list[int] = []

    def compute(images):
        sizes.append(len(images))
        values = np.array([float(image[0, 0]) for image in images])
        return values, values * 2

    results = list(batched(iter(files), compute, bs=4))
    assert [item.file.name for item, _ in results] == ["a", "bad", "b", "c", "d", "e"]
    assert sizes[-1] == 3 and all(size == 4 for size in sizes[:-2]) and sizes.count(0) == 1  # "d": no window
    assert sum(sizes) == 15
    first = 0
    for item, rows in results:
        if item.error is not None:
            assert rows == ()
            continue
        expected = np.arange(first, first + len(item.images), dtype=float)
        np.testing.assert_array_equal(rows[0], expected)
        np.testing.assert_array_equal(rows[1], expected * 2)
        first += len(item.images)


def _clips(tiny_audio: Path, folder: Path) -> Path:
    """Files of different lengths (windows do not fill whole batches) and one that is not audio."""
    sources = sorted(tiny_audio.rglob("*.wav"))[:4]
    folder.mkdir()
    for index, source in enumerate(sources):
        samples, rate = soundfile.read(source)
        repeated = np.tile(samples, index + 1)[: int(len(samples) * (index + 1.7))]
        soundfile.write(folder / f"clip{index}.wav", repeated, rate)
    shutil.copy(sources[0], folder / "same-as-clip0.wav")
    (folder / "broken.mp3").write_bytes(b"not audio")
    return folder


def test_batched_predictions_file_equals_file_by_file(predictor, tiny_audio, tmp_path):  # noqa: F811
    audio = _clips(tiny_audio, tmp_path / "audio")
    one_by_one = [predictor.predict(file) for file in sorted(audio.glob("*.wav"))]
    batched_run = predictor.predict_many([audio])
    assert [t.file for t in batched_run] == [t.file for t in one_by_one]
    assert [s.file for s in batched_run.skipped] == [str(audio / "broken.mp3")]
    for got, want in zip(batched_run, one_by_one, strict=True):
        assert len(got.windows) == len(want.windows) and len(got.windows) > 1
        np.testing.assert_allclose(list(got.probabilities.values()), list(want.probabilities.values()), atol=1e-6)
    in_workers = Predictor(predictor.model, predictor.meta, device="cpu", bs=2, workers=2).predict_many([audio])
    out = write_predictions(batched_run, predictor, tmp_path / "batched.json", "json")
    again = write_predictions(in_workers, predictor, tmp_path / "workers.json", "json")
    assert json.loads(out.read_text()) == json.loads(again.read_text())


def test_batched_predictions_equal_the_legacy_loop(predictor, tiny_audio, tmp_path):  # noqa: F811
    """The file written by predict_many equals the one written from tracks labelled one file at a time."""
    from mer_fastai.inference.tracks import Predictions

    audio = _clips(tiny_audio, tmp_path / "audio")
    files = sorted(audio.glob("*.wav"))
    seconds, step = predictor.window_settings()
    legacy = Predictions([predictor.predict(file) for file in files], [], seconds, step)
    now = predictor.predict_many(files)
    a = write_predictions(legacy, predictor, tmp_path / "legacy.csv", "csv").read_text()
    b = write_predictions(now, predictor, tmp_path / "now.csv", "csv").read_text()
    assert a == b and a.count("\n") > len(files)


def test_batched_embeddings_equal_each_file_alone(predictor, tiny_audio, tmp_path):  # noqa: F811
    audio = _clips(tiny_audio, tmp_path / "audio")
    embeddings = embed_audio(Predictor(predictor.model, predictor.meta, device="cpu", bs=4, workers=2), [audio])
    assert [Path(s.file).name for s in embeddings.skipped] == ["broken.mp3"]
    assert embeddings.track_file == [str(f) for f in sorted(audio.glob("*.wav"))]
    offset = 0
    for file, count, vector in zip(embeddings.track_file, embeddings.track_windows, embeddings.track_features):
        _, starts, images = predictor.window_images(file, *predictor.window_settings())
        features, _ = predictor.features(images)
        assert count == len(starts) == len(images)
        np.testing.assert_allclose(
            np.stack(embeddings.window_features[offset : offset + count]), features, rtol=1e-5, atol=5e-5
        )
        np.testing.assert_allclose(vector, features.numpy().mean(axis=0), rtol=1e-5, atol=5e-5)
        assert embeddings.window_start[offset : offset + count] == starts
        offset += count
    assert offset == len(embeddings.window_features)


def test_cli_workers_decode_in_processes_and_refuse_zero(tiny_run, tiny_audio, tmp_path, capsys, monkeypatch):  # noqa: F811
    from tests.test_cli import run_main

    audio = _clips(tiny_audio, tmp_path / "audio")
    code, err = run_main(["predict", str(tiny_run), str(audio), "--workers", "0"], capsys, monkeypatch)
    assert code == 2 and "--workers must be at least 1 (got 0)" in err and "Traceback" not in err
    outputs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"workers{workers}.csv"
        code, err = run_main(["predict", str(tiny_run), str(audio), "--workers", workers, "--out", str(out)], capsys,
                             monkeypatch)  # fmt: skip
        assert code == 0, err
        outputs[workers] = out.read_text()
    assert outputs["1"] == outputs["2"] and outputs["1"].count("clip") >= 4
