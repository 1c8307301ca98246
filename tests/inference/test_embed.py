"""`embed_audio` / `mer-fastai embed`: penultimate-layer features per window and track, labels, map."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.data.audio import load_audio
from mer_fastai.data.labelsource import LabelSource
from mer_fastai.data.spectrogram import log_values, musicnn_spec, window_images
from mer_fastai.data.synth import make_demo_audio
from mer_fastai.errors import MerError
from mer_fastai.inference.embed import embed_audio
from mer_fastai.inference.embed_files import check_embed_out, write_embeddings
from mer_fastai.inference.predict import penultimate_layer
from mer_fastai.models.archs import IDENTITY_STATS
from mer_fastai.models.modelfile import build_network, save_model_file
from mer_fastai.models.modelmeta import ModelMeta
from mer_fastai.models.musicnn.tags import MSD_TAGS
from tests.inference.test_predict import predictor, tiny_run  # noqa: F401  (session fixtures: one tiny training)


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory, tiny_audio):
    """A generic labels CSV naming every clip of `tiny_audio` by its path, with a label unlike its folder's."""
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    clips = sorted(p.relative_to(tiny_audio).with_suffix("").as_posix() for p in tiny_audio.rglob("*.wav"))
    path.write_text(
        "clip,mood\n" + "".join(f"{clip},{'calm' if i % 2 else 'lively'}\n" for i, clip in enumerate(clips))
    )
    return path


def test_features_are_the_input_of_the_final_linear(predictor):  # noqa: F811
    images = [np.random.default_rng(i).integers(0, 255, (32, 44), dtype=np.uint8) for i in range(5)]
    features, logits = predictor.features(images)
    linear = penultimate_layer(predictor.model)
    assert features.shape == (5, linear.in_features)
    linear = linear.float().cpu()
    recomputed = torch.nn.functional.linear(features, linear.weight.detach(), linear.bias)  # fastai's: no bias
    torch.testing.assert_close(recomputed, logits, atol=1e-4, rtol=1e-4)


def test_embed_windows_and_tracks(predictor, tiny_audio):  # noqa: F811
    emb = embed_audio(predictor, [tiny_audio], window=1.0, hop=0.5)
    assert len(emb.track_file) == 16 and "angry/angry_00" in emb.track_clip_id
    arrays = emb.arrays()
    first = arrays["track_clip_id"][0]
    rows = arrays["window_clip_id"] == first
    predicted = predictor.predict(arrays["track_file"][0], window=1.0, hop=0.5)  # the same windows as predict
    assert rows.sum() == arrays["track_windows"][0] == len(predicted.windows) > 2
    assert arrays["window_start"][rows].tolist() == [w.start for w in predicted.windows]
    assert arrays["window_predicted"][rows].tolist() == [w.label for w in predicted.windows]
    assert arrays["track_predicted"][0] == predicted.label
    np.testing.assert_allclose(arrays["track_features"][0], arrays["window_features"][rows].mean(axis=0), rtol=1e-5)
    assert set(arrays["track_label"]) == {""}  # no labels file: no labels
    single = embed_audio(predictor, [tiny_audio / "sad" / "sad_01.wav"])
    assert single.track_clip_id == ["sad_01"]  # a file given directly: relative to its own folder


def test_predictor_embed_is_a_deprecated_alias_of_embed_audio(predictor, tiny_audio):  # noqa: F811
    clip = tiny_audio / "sad" / "sad_01.wav"
    with pytest.warns(DeprecationWarning, match="Predictor.embed is deprecated.*embed_audio"):
        old = predictor.embed([clip])
    new = embed_audio(predictor, [clip])
    assert old.track_clip_id == new.track_clip_id == ["sad_01"]
    np.testing.assert_array_equal(old.arrays()["track_features"], new.arrays()["track_features"])


def test_embed_labels_match_like_evaluate(predictor, tiny_audio, labels_file, tmp_path):  # noqa: F811
    options = {"labels": labels_file, "feature": "mood", "id_column": "clip", "label_column": "mood"}
    emb = embed_audio(predictor, [tiny_audio], **options)
    by_clip = dict(zip(emb.track_clip_id, emb.track_label))
    assert by_clip["angry/angry_00"] == "lively" and by_clip["angry/angry_01"] == "calm"
    extra = tmp_path / "audio"
    for clip in sorted((tiny_audio / "happy").glob("*.wav"))[:2]:
        (extra / "happy").mkdir(parents=True, exist_ok=True)
        (extra / "happy" / clip.name).write_bytes(clip.read_bytes())
    (extra / "new.wav").write_bytes((tiny_audio / "sad" / "sad_00.wav").read_bytes())
    with pytest.raises(MerError, match="new"):
        embed_audio(predictor, [extra], **options)  # a file without a row is refused, as evaluate refuses it
    with pytest.warns(DeprecationWarning, match="embed_audio: the label keyword") as seen:  # the loose keywords
        kept = embed_audio(predictor, [extra], **options, skip_unlabeled=True)
    assert len([w for w in seen if w.category is DeprecationWarning]) == 1
    assert kept.track_clip_id == ["happy/happy_00", "happy/happy_01"]
    assert [s.file for s in kept.skipped] == [str(extra / "new.wav")]
    source = LabelSource(labels_file, id_column="clip", label_column="mood", skip_unlabeled=True)
    whole = embed_audio(predictor, [extra], labels=source, feature="mood")  # the label options as one value
    assert whole.track_label == kept.track_label and whole.skipped == kept.skipped
    with pytest.raises(TypeError, match="embed_audio: cuts given beside a LabelSource"):
        embed_audio(predictor, [extra], labels=source, feature="mood", cuts=[3.0, 6.0])


def test_npz_and_parquet_round_trip(predictor, tiny_audio, tmp_path):  # noqa: F811
    emb = embed_audio(predictor, [tiny_audio / "angry"])
    npz = np.load(write_embeddings(emb, tmp_path / "e.npz"))
    assert npz["window_features"].shape[0] == len(emb.window_file)
    assert json.loads(str(npz["info"]))["layer"] == "input of the head's final Linear"
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    table = pd.read_parquet(write_embeddings(emb, tmp_path / "e.parquet"))
    assert (table.level == "track").sum() == 4 and (table.level == "window").sum() == len(emb.window_file)
    assert len(table.features.iloc[0]) == npz["track_features"].shape[1]
    with pytest.raises(MerError, match="use .npz or .parquet"):
        check_embed_out(tmp_path / "e.csv")


def test_cli_embed_with_map(tiny_run, tiny_audio, tmp_path):  # noqa: F811
    out = tmp_path / "out" / "emb.npz"
    result = CliRunner().invoke(app, ["embed", str(tiny_run), str(tiny_audio / "happy"), "--out", str(out), "--map"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (out.parent / "emb-map.png").stat().st_size > 0
    page = (out.parent / "emb-map.html").read_text()
    assert 'src="data:image/png;base64,' in page and "PCA of the track vectors" in page  # 4 tracks: PCA
    assert np.load(out)["track_clip_id"].tolist() == [f"happy_0{i}" for i in range(4)]
    bad = CliRunner().invoke(app, ["embed", str(tiny_run), str(tiny_audio), "--out", str(tmp_path / "e.txt")])
    assert bad.exit_code != 0 and not (tmp_path / "e.txt").exists()


@pytest.mark.integration
def test_embed_and_map_the_soundtrack_sample(tiny_run, shared_data, tmp_path):  # noqa: F811
    sample = shared_data / "soundtracks-set1-sample"
    out = tmp_path / "emb.npz"
    args = ["embed", str(tiny_run), str(sample / "audio"), "--labels", str(sample / "mean_ratings_set1.csv")]
    result = CliRunner().invoke(app, [*args, "--feature", "emotions", "--out", str(out), "--map"])
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    tracks = len(saved["track_clip_id"])
    info = json.loads(str(saved["info"]))
    assert tracks + len(info["skipped"]) == 25  # every clip embedded, or left out by the emotions task with a reason
    assert set(saved["track_label"].tolist()) <= {"anger", "fear", "happy", "sad", "tender"}
    assert saved["track_features"].shape[0] == tracks and saved["window_features"].shape[0] > tracks
    assert (tmp_path / "emb-map.png").stat().st_size > 0


def test_a_musicnn_model_writes_the_original_taggers_tags_beside_the_embeddings(predictor, tmp_path):  # noqa: F811
    """Per window and per track (mean), the pretrained MSD musicnn's 50 tag probabilities on the model's own windows,
    whatever the model's weights (here random); other models write no tags."""
    from mer_fastai.models.musicnn.weights import cached, load_musicnn

    if not cached("msd"):
        pytest.skip("musicnn weights are not in the user cache; get them with `mer-fastai weights get musicnn`")
    audio = make_demo_audio(tmp_path / "audio", clips_per_class=1, seconds=7.0, seed=4)
    spec = musicnn_spec()
    meta = ModelMeta("musicnn-msd", ("angry", "happy", "sad", "tender"), spec, tuple(map(tuple, IDENTITY_STATS)), 187)
    torch.manual_seed(0)
    model = save_model_file(tmp_path / "musicnn.safetensors", build_network(meta), meta)
    out = tmp_path / "emb.npz"
    result = CliRunner().invoke(app, ["embed", str(model), str(audio), "--hop", "1.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "50 MSD_musicnn tag probabilities written to" in result.output
    header, *rows = list(csv.reader((tmp_path / "emb-tags.csv").open()))
    assert header == ["level", "file", "clip_id", "start", "windows", *MSD_TAGS]
    saved = np.load(out)
    windows, tracks = [r for r in rows if r[0] == "window"], [r for r in rows if r[0] == "track"]
    assert [(r[1], r[2], float(r[3])) for r in windows] == list(
        zip(saved["window_file"].tolist(), saved["window_clip_id"].tolist(), saved["window_start"].tolist())
    )
    assert [r[2] for r in tracks] == saved["track_clip_id"].tolist()
    assert json.loads(str(saved["info"]))["tagger"] == "MSD_musicnn"
    tagger = load_musicnn("msd")
    for file in sorted(audio.rglob("*.wav"))[:2]:  # musicnn's input from the same windows, as musicnn_tags feeds it
        signal = load_audio(file, spec.sample_rate)
        images = [image for _, image in window_images(signal, spec, spec.segment_seconds, 1.5)]
        patches = torch.from_numpy(np.stack([np.flipud(log_values(image)) for image in images]).copy())[:, None]
        with torch.inference_mode():
            expected = torch.sigmoid(tagger(patches)).numpy()
        got = np.array([[float(v) for v in r[5:]] for r in windows if r[1] == str(file)])
        assert got.shape == expected.shape == (4, 50)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        [track] = [r for r in tracks if r[1] == str(file)]
        assert int(track[4]) == 4
        np.testing.assert_allclose([float(v) for v in track[5:]], expected.mean(axis=0), atol=1e-5)
    plain = embed_audio(predictor, [audio / "sad"])
    assert plain.tags == () and plain.tagger is None
    write_embeddings(plain, tmp_path / "plain.npz")
    assert not (tmp_path / "plain-tags.csv").exists()
