"""`mer_fastai.data.dataset`: the data-set files written and read back, refused in one line when broken."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_fastai.data.audio import load_audio, window_at, windows
from mer_fastai.data.dataset import (
    DATASET_FILE,
    MANIFEST_COLUMNS,
    MANIFEST_FILE,
    DatasetInfo,
    ManifestRow,
    extra_train_items,
    images_on_disk,
    items,
    read_info,
    read_manifest,
    read_spec,
    write_info,
    write_manifest,
    write_spec,
)
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.errors import MerError
from tests.conftest import TINY_SPEC

INFO = DatasetInfo(
    feature="emotions",
    classes=["calm", "loud"],
    audio_dir="/audio",
    clips=2,
    segments=3,
    counts={"train": {"calm": 1, "loud": 1}, "valid": {"calm": 1}},
    skipped=[{"file": "/audio/x.wav", "reason": "cannot decode audio"}],
    notes=["warning: something"],
    settings={"seed": 42, "cuts": None},
)
ROWS = [
    ManifestRow("/audio/calm/a.wav", "calm/a", 0.0, "calm", "train", "train/calm/calm__a_00000000.png"),
    ManifestRow("/audio/calm/b.wav", "calm/b", 1.5, "calm", "valid", "valid/calm/calm__b_00001500.png"),
    ManifestRow("/audio/loud/c d.wav", "loud/c d", 12.25, "loud", "train", "train/loud/loud__c_d_00012250.png"),
]


def one_line_error(call, *phrases: str) -> str:
    with pytest.raises(MerError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and all(phrase in message for phrase in phrases), message
    return message


def test_info_manifest_and_spectrogram_round_trip(tmp_path):
    write_info(tmp_path, INFO)
    write_manifest(tmp_path, ROWS)
    write_spec(tmp_path, TINY_SPEC)
    assert read_info(tmp_path) == INFO
    assert read_manifest(tmp_path) == ROWS
    assert read_spec(tmp_path) == TINY_SPEC
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DATASET_FILE, MANIFEST_FILE, "spectrogram.json"])
    with (tmp_path / MANIFEST_FILE).open(newline="") as handle:
        text = list(csv.DictReader(handle))
    assert tuple(text[0]) == MANIFEST_COLUMNS and [row["segment_start"] for row in text] == ["0.000", "1.500", "12.250"]
    older = [{k: v for k, v in row.items() if k != "group"} for row in text]  # written before `group` existed
    with (tmp_path / MANIFEST_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(older[0]))
        writer.writeheader()
        writer.writerows(older)
    assert [row.group for row in read_manifest(tmp_path)] == [""] * len(older)
    assert "subset_of" not in json.loads((tmp_path / DATASET_FILE).read_text())
    cut = DatasetInfo(**{**INFO.to_dict(), "subset_of": "/data/full"})
    write_info(tmp_path, cut)
    assert read_info(tmp_path).subset_of == "/data/full"


def test_items_per_split_and_extra_training_folders(tmp_path):
    write_info(tmp_path, INFO)
    write_manifest(tmp_path, ROWS)
    assert items(tmp_path, "train") == [tmp_path / ROWS[0].image, tmp_path / ROWS[2].image]
    assert items(tmp_path, "valid", "calm") == [tmp_path / ROWS[1].image] and items(tmp_path, "valid", "loud") == []
    assert items(tmp_path, "test") == []  # a data set prepared without --test-pct
    one_line_error(lambda: items(tmp_path, "holdout"), "unknown split 'holdout'")
    extra = tmp_path / "generated"
    for name in ("loud/b.png", "loud/a.png", "calm/.hidden.png", "calm/notes.txt", "deeper/x/y.png"):
        (extra / name).parent.mkdir(parents=True, exist_ok=True)
        (extra / name).write_bytes(b"")
    spec = SpecConfig()
    assert extra_train_items(tmp_path, spec, [extra]) == [extra / "loud/a.png", extra / "loud/b.png"]
    assert extra_train_items(tmp_path, spec, None) == []
    one_line_error(lambda: extra_train_items(tmp_path, spec, [tmp_path / "nowhere"]), "augmentation folder not found")
    (tmp_path / "empty" / "calm").mkdir(parents=True)
    one_line_error(lambda: extra_train_items(tmp_path, spec, [tmp_path / "empty"]), "holds no <class>/<image> files")
    (tmp_path / "valid" / "calm").mkdir(parents=True)
    (tmp_path / "valid" / "calm" / "x.png").write_bytes(b"")
    one_line_error(lambda: extra_train_items(tmp_path, spec, [tmp_path / "valid"]), "inside the validation split")
    (tmp_path / "test" / "calm").mkdir(parents=True)
    (tmp_path / "test" / "calm" / "x.png").write_bytes(b"")
    one_line_error(lambda: extra_train_items(tmp_path, spec, [tmp_path / "test"]), "inside the test split")


def test_missing_or_broken_files_are_refused_in_one_line(tmp_path):
    one_line_error(lambda: read_info(tmp_path), f"{tmp_path}: no {DATASET_FILE}", "mer-fastai prepare` first")
    one_line_error(lambda: read_manifest(tmp_path), f"no {DATASET_FILE}", "first")
    path = tmp_path / DATASET_FILE
    path.write_text('{"feature": "emotions", "classes": [')
    one_line_error(lambda: read_info(tmp_path), f"{path}: not valid JSON", "--overwrite")
    path.write_text("[1, 2]")
    one_line_error(lambda: read_info(tmp_path), "does not hold a JSON object", "--overwrite")
    path.write_text(json.dumps({"feature": "emotions", "classes": ["a", "b"]}))
    one_line_error(lambda: read_info(tmp_path), "lacks audio_dir, clips, segments, counts", "--overwrite")
    path.write_text(json.dumps({**INFO.to_dict(), "classes": "calm"}))
    one_line_error(lambda: read_info(tmp_path), "classes is not a list", "--overwrite")
    write_info(tmp_path, INFO)
    manifest = tmp_path / MANIFEST_FILE
    one_line_error(lambda: read_manifest(tmp_path), f"{manifest}: not found", "rerun `mer-fastai prepare`")
    manifest.write_text("source,clip_id,label\n")
    one_line_error(lambda: read_manifest(tmp_path), "lacks the column(s) segment_start, split, image")
    write_manifest(tmp_path, [])
    one_line_error(lambda: read_manifest(tmp_path), "lists no image")
    write_manifest(tmp_path, ROWS)
    manifest.write_text(manifest.read_text().replace("1.500", "soon"))
    one_line_error(lambda: read_manifest(tmp_path), "line 3 is malformed", "soon")


def test_a_prepared_data_set_lists_exactly_its_images(tiny_data, tmp_path):
    info = read_info(tiny_data)
    rows = read_manifest(tiny_data)
    assert info == DatasetInfo.from_dict(json.loads((tiny_data / DATASET_FILE).read_text()))
    assert info.segments == len(rows) and read_spec(tiny_data) == TINY_SPEC
    for split in ("train", "valid"):
        listed = items(tiny_data, split)
        assert set(listed) == set((tiny_data / split).glob("*/*.png")) and len(listed) == len(set(listed))
        for name in info.classes:
            assert len(items(tiny_data, split, name)) == info.counts[split].get(name, 0)
    assert images_on_disk(tiny_data) == {row.image for row in rows}
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy)
    (copy / "train" / ".cache").mkdir()
    (copy / "train" / ".cache" / "x.png").write_bytes(b"")
    (copy / "train" / info.classes[0] / "stray.png").write_bytes(b"")
    assert images_on_disk(copy) == {row.image for row in rows} | {f"train/{info.classes[0]}/stray.png"}


def test_spectrogram_settings_are_written_atomically(tmp_path, monkeypatch):
    write_spec(tmp_path, TINY_SPEC)

    def fail(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(OSError):
        write_spec(tmp_path, SpecConfig())
    monkeypatch.undo()
    assert read_spec(tmp_path) == TINY_SPEC and [p.name for p in tmp_path.iterdir()] == ["spectrogram.json"]


def test_a_manifest_row_gives_back_the_window_prepare_cut(tiny_data):
    spec = read_spec(tiny_data)
    rows = [row for row in read_manifest(tiny_data) if row.source == read_manifest(tiny_data)[0].source]
    signal = load_audio(rows[0].source, spec.sample_rate)[: int(1.7 * spec.sample_rate)]  # a short last window
    cut = dict(windows(signal, spec.sample_rate, spec.segment_seconds, spec.hop_seconds))
    assert [round(start, 3) for start in cut] == [row.segment_start for row in rows] == [0.0, 1.0]
    for start, window in cut.items():
        again = window_at(signal, spec.sample_rate, spec.segment_seconds, round(start, 3))
        assert len(again) == spec.sample_rate and np.array_equal(again, window)
