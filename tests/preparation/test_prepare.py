"""`prepare_dataset`: layout, manifest, splits, resume and bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.errors import MerError
from mer_fastai.preparation.journal import JOURNAL_FILE
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.tasks.opened import open_dataset
from tests.conftest import TINY_SPEC


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
    import mer_fastai.preparation.writing as prepare_module

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
    import mer_fastai.preparation.writing as prepare_module

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
    wavs = sorted(tiny_audio.rglob("*.wav"))  # three recordings (byte-identical copies would be one clip)
    for wav, name in zip(wavs, ("a b.wav", "a_b.wav", "other.wav")):
        shutil.copy(wav, clash / name)
    with pytest.raises(MerError, match="same spectrogram names"):
        prepare_dataset(tmp_path / "clash", tmp_path / "c", "emotions", spec=TINY_SPEC, progress=False)


def test_warnings_about_the_split_and_the_validation_windows():
    from mer_fastai.data.dataset import ManifestRow
    from mer_fastai.preparation.clips import ClipJob, split_notes, window_notes

    tasks = [
        ClipJob(f"{c}{i}.wav", f"{c}/{i}", f"{c}_{i}", c, side)
        for c, i, side in [
            ("calm", 1, "train"),
            ("calm", 2, "train"),
            ("loud", 1, "train"),
            ("loud", 2, "valid"),
            ("rare", 1, "train"),
        ]
    ]
    notes = split_notes(tasks)
    assert len(notes) == 2 and "class 'calm' has no clip in validation" in notes[0]
    assert "class 'rare' has a single clip" in notes[1]
    windows = [("valid", "loud", clip) for clip in ["long"] * 5 + ["a", "b"]]
    windows += [("valid", "calm", "solo"), ("train", "calm", "x")]
    rows = [
        ManifestRow(f"{clip}.wav", clip, 0.0, label, split, f"{split}/{label}/{clip}.png")
        for split, label, clip in windows
    ]
    notes = window_notes(rows)
    assert notes[0] == "warning: class 'calm' is validated on one clip only ('solo'); its scores rest on it"
    assert "clip 'long' holds 5 of the 7 validation windows of class 'loud'" in notes[1] and len(notes) == 2


def digests(folder: Path) -> dict[str, str]:
    """Every file below `folder` (links followed) by relative path, with a hash of its bytes."""
    import hashlib

    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("where", ["audio", "parent", "inside"])
def test_an_out_that_is_holds_or_lies_in_the_audio_folder_is_refused(tmp_path, tiny_audio, where):
    audio = tmp_path / "P" / "audio"
    shutil.copytree(tiny_audio, audio)
    before = digests(tmp_path)
    out = {"audio": audio, "parent": tmp_path / "P", "inside": audio / "spectrograms"}[where]
    phrase = {"audio": "is the audio folder", "parent": "holds the audio folder", "inside": "lies inside"}[where]
    for overwrite in (False, True):
        with pytest.raises(MerError, match=phrase):
            prepare_dataset(audio, out, "emotions", spec=TINY_SPEC, workers=1, overwrite=overwrite, progress=False)
    assert digests(tmp_path) == before and not (audio / "spectrograms").exists()


def test_an_out_inside_a_linked_class_folder_is_refused(tmp_path, tiny_audio):
    audio = tmp_path / "audio"
    shutil.copytree(tiny_audio, audio)
    shutil.move(audio / "sad", tmp_path / "elsewhere")
    (audio / "sad").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(MerError, match="lies inside the audio folder .*elsewhere"):
        prepare_dataset(audio, tmp_path / "elsewhere" / "d", "emotions", spec=TINY_SPEC, progress=False)


def test_overwrite_deletes_only_the_data_sets_own_files(tmp_path, tiny_audio):
    from mer_fastai.training.items import check_dataset

    out = tmp_path / "d"
    prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    (out / "notes.txt").write_text("the user's")
    (out / "mine").mkdir()
    (out / "mine" / "model.bin").write_bytes(b"kept")
    kept = {name: digest for name, digest in digests(out).items() if name.startswith(("notes", "mine"))}
    foreign = out / "train" / "happy" / "photo.png"
    foreign.write_bytes(b"not prepare's")
    before = digests(out)
    other = SpecConfig(segment_seconds=0.5, n_mels=32)
    with pytest.raises(MerError, match=r"photo.png: was not written by prepare"):
        prepare_dataset(tiny_audio, out, "emotions", spec=other, overwrite=True, progress=False)
    assert digests(out) == before  # refused before anything was deleted
    foreign.unlink()
    redone = prepare_dataset(tiny_audio, out, "emotions", spec=other, overwrite=True, workers=1, progress=False)
    assert redone.segments == 4 * 4 * 4 and redone.reused == 0
    assert {name: digest for name, digest in digests(out).items() if name.startswith(("notes", "mine"))} == kept
    check_dataset(open_dataset(out))  # exactly the new manifest's images


def test_a_killed_runs_temporary_files_and_half_made_images_go_with_the_next_run(tmp_path, tiny_audio):
    import fcntl

    out = tmp_path / "d"
    prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    stale = [out / ".dataset.json.k1ll3d_a.tmp", out / ".manifest.csv.abcdefgh.tmp"]
    live = out / ".spectrogram.json.livewrit.tmp"
    for path in [*stale, live, out / ".dataset.json.notours.tmp.bak"]:
        path.write_bytes(b"x" * 1000)
    row = manifest(out)[0]
    orphan = out / Path(row["image"]).with_name(f"{Path(row['image']).name[:-13]}_00099000.png")
    orphan.write_bytes(b"half an image")  # written by a worker killed before the clip was journalled
    with (out / JOURNAL_FILE).open("a") as journal:
        folder = f"{row['split']}/{row['label']}"
        journal.write(json.dumps({"started": {"folder": folder, "key": orphan.name[:-13]}}) + "\n")
    with live.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a writer still at work
        again = prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    assert again.reused == again.clips
    assert not any(path.exists() for path in stale) and not orphan.exists()
    assert live.exists() and (out / ".dataset.json.notours.tmp.bak").exists()


def test_readers_and_prepare_exclude_each_other(tmp_path, tiny_audio):
    import fcntl
    import os

    from mer_fastai._plumbing.locks import reading

    out = tmp_path / "d"
    prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
    before = digests(out)
    with reading(out):
        with pytest.raises(MerError, match=rf"\(PID {os.getpid()}\) is reading this data set"):
            prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, overwrite=True, progress=False)
        assert digests(out) == before
        unchanged = prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, workers=1, progress=False)
        assert unchanged.reused == unchanged.clips  # a rerun that changes nothing never waits for readers
    handle = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        (out / ".lock").write_text("4242\n")  # as prepare records itself while it changes the data set
        with pytest.raises(MerError, match=r"prepare` \(PID 4242\) is changing this data set"), reading(out):
            pass
    finally:
        os.close(handle)


def test_the_manifest_records_each_clips_content_hash(tiny_data, tiny_audio):
    import hashlib

    rows = manifest(tiny_data)
    assert all(row["sha256"] == hashlib.sha256(Path(row["source"]).read_bytes()).hexdigest() for row in rows)
    assert len({row["sha256"] for row in rows}) == len({row["clip_id"] for row in rows})


def test_a_label_source_prepares_as_its_keywords_do_and_not_beside_them(tmp_path, tiny_audio):
    from mer_fastai.data.labelsource import LabelSource

    files = sorted(tiny_audio.rglob("*.wav"))
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "id,mood\n" + "".join(f"{wav.stem},{'happy' if i % 2 else 'sad'}\n" for i, wav in enumerate(files))
    )
    source = LabelSource(labels, id_column="id", label_column="mood")
    out = prepare_dataset(tiny_audio, tmp_path / "d", "mood", source, spec=TINY_SPEC, progress=False, workers=1)
    with pytest.warns(DeprecationWarning, match=r"labels=LabelSource\(.*id_column='id', label_column='mood'\)") as seen:
        again = prepare_dataset(tiny_audio, tmp_path / "d", "mood", labels, id_column="id", label_column="mood",
                                spec=TINY_SPEC, progress=False)  # fmt: skip
    assert len([w for w in seen if w.category is DeprecationWarning]) == 1  # once per call
    assert again.reused == out.clips  # the same settings: every clip reused
    with pytest.raises(TypeError, match="group_by given beside a LabelSource"):
        prepare_dataset(tiny_audio, tmp_path / "e", "mood", source, group_by="artist", progress=False)
