"""Label readers and feature derivation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_fastai.errors import MerError
from mer_fastai.labels import labels_from_folders, normalize_id, read_labels

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
    assert table.excluded == {"4", "181"}


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


def test_folder_layout(tmp_path):
    files = [tmp_path / "happy" / "a.wav", tmp_path / "sad" / "b.wav"]
    assert {k: v.label for k, v in labels_from_folders(tmp_path, files).labels.items()} == {
        "a": "happy",
        "b": "sad",
    }
    with pytest.raises(MerError, match="class folder"):
        labels_from_folders(tmp_path, [tmp_path / "loose.wav"])


def test_missing_labels_file(tmp_path):
    with pytest.raises(MerError, match="not found"):
        read_labels(tmp_path / "nope.csv", "emotions")
