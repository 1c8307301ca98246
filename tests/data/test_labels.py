"""Label readers and feature derivation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_fastai.data.labelfiles import normalize_id
from mer_fastai.data.labels import labels_from_folders, read_labels
from mer_fastai.data.matching import match_clips
from mer_fastai.errors import MerError

RATINGS_HEADER = "number\tvalence\tenergy\ttension\tanger\tfear\thappy\tsad\ttender\tTARGET"


def write_ratings(path: Path, rows: list[tuple]) -> Path:
    """A ratings file exactly as the authors distribute it: tab-separated, BOM, CRLF."""
    lines = [RATINGS_HEADER] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


@pytest.fixture
def ratings(tmp_path) -> Path:
    rows = [
        ("001", 7.1, 6.8, 3.2, 1, 1, 7.3, 1, 1, "HAPPY"),
        ("002", 2.0, 7.9, 8.0, 8, 2, 1, 1, 1, "ANGER"),
        ("003", 3.0, 2.1, 4.0, 1, 1, 1, 7, 2, "SAD"),
        ("004", 5.0, 5.0, 6.5, 1, 6, 1, 1, 1, "SURPRISE"),
        ("005", 6.5, 2.5, 2.0, 1, 1, 1, 1, 7, "TENDER"),
        ("181", 8.0, 4.0, 3.0, 1, 1, 1, 1, 1, "HIGH VALENCE"),
    ]
    return write_ratings(tmp_path / "mean_ratings_set1.csv", rows)


def test_emotions_keep_the_five_discrete_targets(ratings):
    table = read_labels(ratings, "emotions")
    assert {k: v.label for k, v in table.labels.items()} == {
        "1": "happy",
        "2": "anger",
        "3": "sad",
        "5": "tender",
    }
    assert set(table.excluded) == {"4", "181"} and "SURPRISE" in table.excluded["4"]


def test_dimensions_are_binned_by_tertiles_or_explicit_cuts(ratings):
    energy = read_labels(ratings, "energy")
    levels = [energy.labels[k].label for k in ("1", "2", "3", "4", "5", "181")]
    assert levels == ["high", "high", "low", "medium", "low", "medium"]
    assert len(energy.cuts) == 2
    valence = read_labels(ratings, "valence", cuts=[4.0, 6.0])
    assert [valence.labels[k].label for k in ("2", "4", "1")] == ["negative", "neutral", "positive"]


def test_quadrant_file_mapping_and_unavailable_feature(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text("Song,Artist,Title,Quadrant\nMT1,A,t,Q1\nMT2,A,t,Q2\nMT3,B,t,Q3\nMT4,C,t,Q4\n")
    valence = read_labels(path, "valence", group_by="Artist")
    assert [valence.labels[f"MT{i}"].label for i in range(1, 5)] == [
        "positive",
        "negative",
        "negative",
        "positive",
    ]
    assert valence.labels["MT2"].group == "A"
    energy = read_labels(path, "energy")
    assert [energy.labels[f"MT{i}"].label for i in range(1, 5)] == ["high", "high", "low", "low"]
    assert read_labels(path, "emotions").labels["MT3"].label == "Q3"
    with pytest.raises(MerError, match="tension"):
        read_labels(path, "tension")
    with pytest.raises(MerError, match="no column 'Label'"):
        read_labels(path, "valence", group_by="Label")


def test_generic_csv_classes_and_numeric_ratings(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file;mood\nsong_a.mp3;Happy\nsong_b.wav;sad\n")
    table = read_labels(path, "emotions", id_column="file", label_column="mood")
    assert {k: v.label for k, v in table.labels.items()} == {"song_a": "happy", "song_b": "sad"}
    numeric = tmp_path / "numeric.csv"
    numeric.write_text("id,arousal\n" + "".join(f"{i},{i / 2}\n" for i in range(12)))
    levels = read_labels(numeric, "energy", id_column="id", label_column="arousal")
    assert levels.labels["0"].label == "low" and levels.labels["11"].label == "high"
    with pytest.raises(MerError, match="--label-column"):
        read_labels(path, "emotions", id_column="file")
    with pytest.raises(MerError, match="cannot tell the layout"):
        read_labels(numeric, "energy")


def test_ids_match_whatever_the_zero_padding():
    assert normalize_id("001") == normalize_id("1") == normalize_id("001.mp3") == "1"
    assert normalize_id(" MT0001 ") == "MT0001"
    assert normalize_id("rock/001.mp3") == normalize_id("rock\\1") == normalize_id("./rock/1.wav") == "rock/1"


def test_folder_layout_uses_the_top_level_folder(tmp_path):
    files = [tmp_path / "happy" / "a.wav", tmp_path / "sad" / "a.wav", tmp_path / "sad" / "live" / "b.wav"]
    assert {k: v.label for k, v in labels_from_folders(tmp_path, files).labels.items()} == {
        "happy/a": "happy",
        "sad/a": "sad",
        "sad/live/b": "sad",
    }
    with pytest.raises(MerError, match="class folder"):
        labels_from_folders(tmp_path, [tmp_path / "loose.wav"])


def test_missing_labels_file(tmp_path):
    with pytest.raises(MerError, match="not found"):
        read_labels(tmp_path / "nope.csv", "emotions")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def generic(path: Path, **kwargs):
    return read_labels(path, "mood", id_column="file", label_column="mood", **kwargs)


def test_duplicate_ids_same_label_is_a_note_conflicting_is_an_error(tmp_path):
    same = generic(write(tmp_path / "same.csv", "file,mood\n001,happy\n2,sad\n1.mp3,Happy\n"))
    assert {k: v.label for k, v in same.labels.items()} == {"1": "happy", "2": "sad"}
    assert len(same.notes) == 1 and "rows 2 and 4" in same.notes[0]
    with pytest.raises(MerError, match=r"id 'a/1' has conflicting labels in row 2 \(happy\) and row 4 \(sad\)"):
        generic(write(tmp_path / "conflict.csv", "file,mood\na/1.mp3,happy\nb/1,sad\na/001,sad\n"))


@pytest.mark.parametrize("cell", ["", "NaN", "n/a", "abc", "inf"])
def test_blank_nan_or_text_ratings_name_the_rows_or_are_skipped(tmp_path, cell):
    values = [f"{1 + i / 2}" for i in range(14)]
    values[3] = values[9] = cell
    path = write(tmp_path / "r.csv", "file,v\n" + "".join(f"c{i},{v}\n" for i, v in enumerate(values)))
    with pytest.raises(MerError, match=r"rows 5, 11 have no usable value in column 'v'.*--skip-unlabeled"):
        read_labels(path, "energy", id_column="file", label_column="v")
    table = read_labels(path, "energy", id_column="file", label_column="v", skip_unlabeled=True)
    assert set(table.excluded) == {"c3", "c9"} and "row 5" in table.excluded["c3"]
    assert len(table.labels) == 12 and all(
        np.isfinite(table.cuts)
    )  # numeric despite the blank: never a class per value
    assert {clip.label for clip in table.labels.values()} == {"low", "medium", "high"}


def test_the_ratings_layout_refuses_a_blank_rating(tmp_path):
    rows = [("001", 7.1, "", 3.2, 1, 1, 7.3, 1, 1, "HAPPY"), ("002", 2.0, 7.9, 8.0, 8, 2, 1, 1, 1, "ANGER")]
    with pytest.raises(MerError, match="row 2 has no usable value in column 'energy'"):
        read_labels(write_ratings(tmp_path / "r.csv", rows), "energy")


def test_blank_quadrant_names_its_row(tmp_path):
    path = write(tmp_path / "a.csv", "Song,Quadrant\nMT1,Q1\nMT2,\n")
    with pytest.raises(MerError, match="row 3 has no usable value in column 'Quadrant'"):
        read_labels(path, "valence")
    with pytest.raises(MerError, match=r"row 2\) is not one of Q1..Q4"):
        read_labels(write(tmp_path / "b.csv", "Song,Quadrant\nMT1,Q5\n"), "valence")


def test_encodings(tmp_path):
    text = "file,mood\nété/1,gaie\n2,triste\n"
    for encoding in ("utf-8", "utf-8-sig", "utf-16"):  # Python's utf-16 writes a byte-order mark
        table = generic(write(tmp_path / f"{encoding}.csv", text.replace("\n", "\r\n"), encoding))
        assert {k: v.label for k, v in table.labels.items()} == {"été/1": "gaie", "2": "triste"}
    with pytest.raises(MerError, match=r"latin\.csv: not UTF-8 .*save it as UTF-8"):
        generic(write(tmp_path / "latin.csv", text, "latin-1"))
    with pytest.raises(MerError, match=r"bare\.csv: not UTF-8 .*UTF-16 without a byte-order mark"):
        generic(write(tmp_path / "bare.csv", text, "utf-16-le"))


def test_stem_ids_must_name_one_clip_and_path_ids_name_their_clip(tmp_path):
    files = [tmp_path / "rock" / "001.mp3", tmp_path / "jazz" / "1.wav", tmp_path / "jazz" / "2.wav"]
    paths = generic(write(tmp_path / "p.csv", "file,mood\nrock/1,loud\njazz\\001.mp3,soft\nx/9,none\n"))
    matched, excluded, unlabeled = match_clips(tmp_path, files, paths)
    assert [(f.name, name, clip.label) for f, name, clip in matched] == [
        ("001.mp3", "rock/001", "loud"),
        ("1.wav", "jazz/1", "soft"),
    ]
    assert not excluded and unlabeled == [files[2]]
    stems = generic(write(tmp_path / "s.csv", "file,mood\n2,soft\n1,loud\n"))
    with pytest.raises(MerError, match=r"id '1' matches more than one clip .*use ids with the folder"):
        match_clips(tmp_path, files, stems)


@pytest.mark.parametrize(
    ("cell", "shown"),
    [("hap/py", r"'hap/py' is not a safe file name \('/'\)"), ("a\\b", r"\('\\\\'\)"), ("x\x07y", r"'\\x07'"),
     (".hidden", "begins with '.'"), ("..", "not a safe file name")],
)  # fmt: skip
def test_a_class_that_cannot_name_a_folder_is_refused_with_its_row(tmp_path, cell, shown):
    path = tmp_path / "l.csv"
    path.write_text(f"file,mood\na,happy\nb,{cell}\n")
    with pytest.raises(MerError, match=rf"l.csv: row 3: class .*{shown}"):
        read_labels(path, "mood", id_column="file", label_column="mood")


def test_a_class_folder_that_would_hide_its_images_is_refused(tmp_path):
    for name in ("happy", ".sad"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.wav").write_bytes(b"")
    with pytest.raises(MerError, match=r"class folder '.sad' begins with '.', which would hide .*; rename the folder"):
        labels_from_folders(tmp_path, sorted(tmp_path.rglob("*.wav")))
