"""`prepare_dataset`: layout, manifest, splits, resume and bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mer_fastai.errors import MerError
from mer_fastai.prepare import JOURNAL_FILE, prepare_dataset
from mer_fastai.spectrogram import SpecConfig

from .conftest import TINY_SPEC


def manifest(data: Path) -> list[dict]:
    with (data / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_layout_manifest_and_config(tiny_data):
    rows = manifest(tiny_data)
    assert {r["split"] for r in rows} == {"train", "valid"}
    assert len(rows) == 4 * 4 * 2  # 16 clips of 2 s → two 1 s windows each
    for row in rows:
        image = tiny_data / row["image"]
        assert image.parent.name == row["label"] and image.parent.parent.name == row["split"]
        assert Image.open(image).size == (TINY_SPEC.native_size[1], TINY_SPEC.native_size[0])
    assert SpecConfig.load(tiny_data) == TINY_SPEC
    info = json.loads((tiny_data / "dataset.json").read_text())
    assert info["classes"] == ["angry", "happy", "sad", "tender"]
    # segments of one clip never straddle the split
    sides = {}
    for row in rows:
        sides.setdefault(row["clip_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert all(info["counts"]["valid"].get(c, 0) > 0 for c in info["classes"])  # stratified


def test_rerun_skips_finished_clips_and_refuses_other_settings(tiny_audio, tmp_path):
    out = tmp_path / "data"
    first = prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=2, progress=False)
    assert first.reused == 0
    rows = manifest(out)
    image = out / rows[0]["image"]
    image.unlink()  # a lost image is redone, the rest are reused
    with (out / JOURNAL_FILE).open("a") as journal:
        journal.write('{"task": {"key": "torn')  # a run killed while writing its journal
    again = prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    assert again.reused == first.clips - 1 and image.exists()
    assert manifest(out) == rows
    third = prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    assert third.reused == first.clips  # the clip redone after the torn line is journalled too
    with pytest.raises(MerError, match="spectrogram"):
        prepare_dataset(tiny_audio, out, "emotions", spec=SpecConfig(segment_seconds=0.5, n_mels=32), progress=False)
    redone = prepare_dataset(
        tiny_audio,
        out,
        "emotions",
        spec=SpecConfig(segment_seconds=0.5, n_mels=32),
        overwrite=True,
        progress=False,
    )
    assert redone.segments == 4 * 4 * 4


def test_bad_file_is_skipped_and_reported(tiny_audio, tmp_path):
    audio = tmp_path / "audio"
    shutil.copytree(tiny_audio, audio)
    (audio / "sad" / "broken.wav").write_bytes(b"RIFF not really")
    (audio / "happy" / "empty.mp3").write_bytes(b"")
    result = prepare_dataset(audio, tmp_path / "data", "emotions", spec=TINY_SPEC, workers=2, progress=False)
    assert sorted(Path(s["file"]).name for s in result.skipped) == ["broken.wav", "empty.mp3"]
    assert result.clips == 16
    assert all("\n" not in s["reason"] for s in result.skipped)
    info = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert len(info["skipped"]) == 2


def test_group_by_keeps_each_group_on_one_side(tmp_path, tiny_audio):
    audio = tmp_path / "flat"
    audio.mkdir()
    lines = ["Song,Artist,Quadrant"]
    for index, wav in enumerate(sorted(tiny_audio.rglob("*.wav"))):
        shutil.copy(wav, audio / f"MT{index:03d}.wav")
        lines.append(f"MT{index:03d},artist{index % 5},Q{index % 4 + 1}")
    (tmp_path / "ann.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "data"
    prepare_dataset(audio, out, "valence", tmp_path / "ann.csv", group_by="Artist", spec=TINY_SPEC, progress=False)
    artist = {f"MT{i:03d}": f"artist{i % 5}" for i in range(16)}
    sides: dict[str, set] = {}
    for row in manifest(out):
        sides.setdefault(artist[row["clip_id"]], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 5


def test_unknown_id_is_an_error_unless_skipped(tmp_path, tiny_audio):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,mood\nhappy_00,happy\nsad_00,sad\nhappy_01,happy\nsad_01,sad\n")
    kwargs = {"id_column": "id", "label_column": "mood", "spec": TINY_SPEC, "progress": False}
    with pytest.raises(MerError, match="no row in") as error:
        prepare_dataset(tiny_audio, tmp_path / "d1", "emotions", labels, **kwargs)
    assert "--skip-unlabeled" in str(error.value)
    result = prepare_dataset(tiny_audio, tmp_path / "d2", "emotions", labels, skip_unlabeled=True, **kwargs)
    assert result.clips == 4


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MerError, match="no audio files"):
        prepare_dataset(tmp_path / "empty", tmp_path / "out", "emotions", progress=False)


def test_a_relabelled_clip_moves_and_leaves_no_stale_image(tmp_path, tiny_audio):
    files = sorted(tiny_audio.rglob("*.wav"))
    labels = tmp_path / "labels.csv"
    rows = [f"{wav.stem},{'happy' if i % 2 else 'sad'}" for i, wav in enumerate(files)]
    labels.write_text("id,mood\n" + "\n".join(rows) + "\n")
    kwargs = {"id_column": "id", "label_column": "mood", "spec": TINY_SPEC, "progress": False, "workers": 1}
    first = prepare_dataset(tiny_audio, tmp_path / "d", "emotions", labels, **kwargs)
    moved = next(row for row in manifest(first.out_dir) if row["label"] == "sad")
    rows = [line.replace(f"{Path(moved['source']).stem},sad", f"{Path(moved['source']).stem},happy") for line in rows]
    labels.write_text("id,mood\n" + "\n".join(rows) + "\n")  # the same file, one clip relabelled
    again = prepare_dataset(tiny_audio, tmp_path / "d", "emotions", labels, **kwargs)
    assert 0 < again.reused < first.clips  # the relabelled clip (and any the new stratified split moved) redone
    images = {p.relative_to(again.out_dir).as_posix() for p in again.out_dir.glob("*/*/*.png")}
    assert images == {row["image"] for row in manifest(again.out_dir)}  # the folders hold the manifest exactly
    assert not (again.out_dir / moved["image"]).exists()


def test_an_unfinished_run_refuses_other_settings_too(tiny_audio, tmp_path, monkeypatch):
    import mer_fastai.prepare as prepare_module

    calls = []

    def killed_after_two(task, out_dir, spec_values):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task)
        return original(task, out_dir, spec_values)

    original = prepare_module._run_clip
    monkeypatch.setattr(prepare_module, "_run_clip", killed_after_two)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    assert not (out / "dataset.json").exists()
    monkeypatch.setattr(prepare_module, "_run_clip", original)
    with pytest.raises(MerError, match="other settings"):
        prepare_dataset(tiny_audio, out, "emotions", spec=SpecConfig(segment_seconds=0.5, n_mels=32), progress=False)
    resumed = prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    assert resumed.reused == 2 and resumed.clips == 16


def test_an_interrupted_rerun_never_leaves_a_clip_on_both_sides(tmp_path, tiny_audio, monkeypatch):
    import mer_fastai.prepare as prepare_module

    files = sorted(tiny_audio.rglob("*.wav"))
    labels = tmp_path / "labels.csv"
    rows = [f"{wav.stem},{'happy' if i % 2 else 'sad'}" for i, wav in enumerate(files)]
    labels.write_text("id,mood\n" + "\n".join(rows) + "\n")
    kwargs = {"id_column": "id", "label_column": "mood", "spec": TINY_SPEC, "progress": False, "workers": 1}
    out = prepare_dataset(tiny_audio, tmp_path / "d", "emotions", labels, **kwargs).out_dir
    relabelled = [r.replace(",sad", ",happy") if i < 4 else r for i, r in enumerate(rows)]  # two clips change class
    labels.write_text("id,mood\n" + "\n".join(relabelled) + "\n")
    original = prepare_module._run_clip
    monkeypatch.setattr(prepare_module, "_run_clip", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(tiny_audio, out, "emotions", labels, **kwargs)
    assert not (out / "dataset.json").exists()  # mid-update: no loader takes the folder for a data set
    stems = [{p.stem.rsplit("_", 1)[0] for p in (out / side).glob("*/*.png")} for side in ("train", "valid")]
    assert not stems[0] & stems[1]
    monkeypatch.setattr(prepare_module, "_run_clip", original)
    done = prepare_dataset(tiny_audio, out, "emotions", labels, **kwargs)
    images = {p.relative_to(out).as_posix() for p in out.glob("*/*/*.png")}
    assert images == {row["image"] for row in manifest(out)} and done.clips == len(files)


def test_foreign_folders_older_splits_and_clashing_names_are_refused(tmp_path, tiny_audio):
    foreign = tmp_path / "photos"
    (foreign / "train" / "cats").mkdir(parents=True)
    (foreign / "train" / "cats" / "tom.png").write_bytes(b"not ours")
    with pytest.raises(MerError, match="prepare did not make"):
        prepare_dataset(tiny_audio, foreign, "emotions", spec=TINY_SPEC, progress=False)
    assert (foreign / "train" / "cats" / "tom.png").exists()
    out = prepare_dataset(tiny_audio, tmp_path / "d", "emotions", spec=TINY_SPEC, workers=1, progress=False).out_dir
    info = json.loads((out / "dataset.json").read_text())
    info["settings"]["split"] = "an-older-method"
    (out / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(MerError, match=r"older version of mer-fastai \(another train/valid split\); pass --overwrite"):
        prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, progress=False)
    del info["settings"]["format"]  # made before clip ids were relative paths
    (out / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(MerError, match=r"older version of mer-fastai \(another kind of clip id and train/valid split"):
        prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, progress=False)
    clash = tmp_path / "clash" / "sad"
    clash.mkdir(parents=True)
    wav = next(tiny_audio.rglob("*.wav"))
    shutil.copy(wav, clash / "a b.wav")
    shutil.copy(wav, clash / "a_b.wav")
    shutil.copy(wav, clash / "other.wav")
    with pytest.raises(MerError, match="same spectrogram names"):
        prepare_dataset(tmp_path / "clash", tmp_path / "c", "emotions", spec=TINY_SPEC, progress=False)


def test_warnings_about_the_split_and_the_validation_windows():
    from mer_fastai.dataset import ManifestRow
    from mer_fastai.prepare import ClipTask, _split_notes, _window_notes

    tasks = [
        ClipTask(f"{c}{i}.wav", f"{c}/{i}", f"{c}_{i}", c, side)
        for c, i, side in [
            ("calm", 1, "train"),
            ("calm", 2, "train"),
            ("loud", 1, "train"),
            ("loud", 2, "valid"),
            ("rare", 1, "train"),
        ]
    ]
    notes = _split_notes(tasks)
    assert len(notes) == 2 and "class 'calm' has no clip in validation" in notes[0]
    assert "class 'rare' has a single clip" in notes[1]
    windows = [("valid", "loud", clip) for clip in ["long"] * 5 + ["a", "b"]]
    windows += [("valid", "calm", "solo"), ("train", "calm", "x")]
    rows = [
        ManifestRow(f"{clip}.wav", clip, 0.0, label, split, f"{split}/{label}/{clip}.png")
        for split, label, clip in windows
    ]
    notes = _window_notes(rows)
    assert notes[0] == "warning: class 'calm' is validated on one clip only ('solo'); its scores rest on it"
    assert "clip 'long' holds 5 of the 7 validation windows of class 'loud'" in notes[1] and len(notes) == 2
