"""A clip is its path relative to the audio folder: equal file names in several folders, in every label layout."""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mer_fastai._plumbing.files import output_folder
from mer_fastai.data.audio import find_audio_files
from mer_fastai.data.labels import label_table
from mer_fastai.data.matching import match_clips
from mer_fastai.errors import MerError
from mer_fastai.preparation.prepare import prepare_dataset
from tests.conftest import TINY_SPEC

FOLDERS = ("happy", "sad")


def sine(path: Path, freq: float, seconds: float = 1.0, sr: int = 22050) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)


def audio(root: Path, folders=FOLDERS, stems=("1", "2", "3")) -> Path:
    """`root/<folder>/<stem>.wav` for every folder and stem: the same file names in each folder."""
    for i, folder in enumerate(folders):
        for j, stem in enumerate(stems):
            sine(root / folder / f"{stem}.wav", 200 + 150 * i + 20 * j)
    return root


def prepare(audio_dir: Path, out: Path, feature: str, labels: Path | None = None, **kwargs) -> dict[str, str]:
    """Prepare and return `{clip_id: label}` from the manifest (checking each clip has one label)."""
    prepare_dataset(
        audio_dir, out, feature, labels, spec=TINY_SPEC, valid_pct=0.34, workers=1, progress=False, **kwargs
    )
    with (out / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["clip_id"], set()).add(row["label"])
        relative = Path(row["source"]).relative_to(audio_dir).with_suffix("").as_posix()
        assert unicodedata.normalize("NFC", relative) == row["clip_id"]
    assert all(len(labels) == 1 for labels in found.values())
    return {clip: labels.pop() for clip, labels in found.items()}


def matched(audio_dir: Path, labels: Path | None, feature: str, **kwargs) -> dict[str, str]:
    """evaluate's matching: `{clip_id: label}`."""
    files = find_audio_files(audio_dir)
    table = label_table(audio_dir, files, labels, feature, **kwargs)
    return {name: clip.label for _, name, clip in match_clips(audio_dir, files, table)[0]}


def test_class_folders(tmp_path):
    root = audio(tmp_path / "a")
    sine(root / "happy" / "live" / "1.wav", 900)  # deeper: the top-level folder is the class
    expected = {f"{f}/{s}": f for f in FOLDERS for s in "123"} | {"happy/live/1": "happy"}
    assert prepare(root, tmp_path / "d", "emotions") == expected
    assert matched(root, None, "emotions") == expected
    sine(root / "loose.wav", 300)
    with pytest.raises(MerError, match="loose.wav: lies directly in"):
        prepare_dataset(root, tmp_path / "d2", "emotions", spec=TINY_SPEC, progress=False)
    assert not (tmp_path / "d2").exists()


def test_generic_csv_with_relative_path_ids_and_group_by(tmp_path):
    root = audio(tmp_path / "a", folders=("classical", "rock"))
    rows = [
        f"{f}/{s}.mp3,{'calm' if f == 'classical' else 'loud'},artist{s}" for f in ("classical", "rock") for s in "123"
    ]
    labels = tmp_path / "l.csv"
    labels.write_text("file,mood,artist\n" + "\n".join(rows) + "\n")
    options = {"id_column": "file", "label_column": "mood"}
    expected = {f"{f}/{s}": "calm" if f == "classical" else "loud" for f in ("classical", "rock") for s in "123"}
    assert prepare(root, tmp_path / "d", "mood", labels, **options) == expected
    assert matched(root, labels, "mood", **options) == expected
    grouped = prepare(root, tmp_path / "g", "mood", labels, group_by="artist", **options)
    assert grouped == expected
    with (tmp_path / "g" / "manifest.csv").open() as handle:
        sides: dict[str, set[str]] = {}
        for row in csv.DictReader(handle):
            sides.setdefault(row["clip_id"].split("/")[1], set()).add(row["split"])  # the stem is the artist
    assert all(len(side) == 1 for side in sides.values()) and len(sides) == 3


def test_generic_csv_with_ambiguous_stem_ids_is_refused(tmp_path):
    root = audio(tmp_path / "a")
    labels = tmp_path / "l.csv"
    labels.write_text("file,mood\n1,happy\n2,sad\n3,sad\n")
    options = {"id_column": "file", "label_column": "mood"}
    with pytest.raises(MerError, match=r"id '1' matches more than one clip .*happy/1.wav and .*sad/1.wav.*folder"):
        prepare_dataset(root, tmp_path / "d", "mood", labels, spec=TINY_SPEC, progress=False, **options)
    assert not (tmp_path / "d").exists()
    with pytest.raises(MerError, match="matches more than one clip"):
        matched(root, labels, "mood", **options)


def test_ratings_layout_with_relative_path_numbers(tmp_path):
    root = audio(tmp_path / "a", folders=("set1", "set2"), stems=("001", "002", "003"))
    targets = {
        "set1/1": "HAPPY",
        "set1/2": "SAD",
        "set1/3": "SURPRISE",
        "set2/1": "SAD",
        "set2/2": "HAPPY",
        "set2/3": "SAD",
    }
    header = "number\tvalence\tenergy\ttension\tanger\tfear\thappy\tsad\ttender\tTARGET"
    lines = [header] + [f"{n}\t5\t5\t5\t1\t1\t1\t1\t1\t{t}" for n, t in targets.items()]
    labels = tmp_path / "mean_ratings.csv"
    labels.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    expected = {f"{n[:5]}00{n[-1]}": t.lower() for n, t in targets.items() if t != "SURPRISE"}
    assert prepare(root, tmp_path / "d", "emotions", labels) == expected
    info = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert [Path(s["file"]).relative_to(root).as_posix() for s in info["skipped"]] == ["set1/003.wav"]
    assert "SURPRISE" in info["skipped"][0]["reason"]
    assert matched(root, labels, "emotions") == expected


def test_quadrant_layout_with_song_paths(tmp_path):
    root = audio(tmp_path / "a", folders=("Q1", "Q2", "Q3", "Q4"), stems=("1", "2"))
    quadrant = {"Q1": "Q1", "Q2": "Q2", "Q3": "Q3", "Q4": "Q4"}
    labels = tmp_path / "annotations.csv"
    labels.write_text(
        "Song,Artist,Quadrant\n" + "".join(f"{q}/{s},{q}{s},{quadrant[q]}\n" for q in quadrant for s in "12")
    )
    valence = {"Q1": "positive", "Q4": "positive", "Q2": "negative", "Q3": "negative"}
    expected = {f"{q}/{s}": valence[q] for q in quadrant for s in "12"}
    assert prepare(root, tmp_path / "d", "valence", labels, group_by="Artist") == expected
    assert matched(root, labels, "valence") == expected


def test_labels_are_checked_before_anything_is_written(tmp_path):
    root = audio(tmp_path / "a")
    one = tmp_path / "one.csv"
    one.write_text("file,mood\n" + "".join(f"{f}/{s},happy\n" for f in FOLDERS for s in "123"))
    with pytest.raises(MerError, match="have class 'happy'; a data set needs at least two classes"):
        prepare_dataset(root, tmp_path / "d", "mood", one, id_column="file", label_column="mood", progress=False)
    assert not (tmp_path / "d").exists()


def test_notes_duplicates_and_a_class_missing_from_validation(tmp_path):
    root = audio(tmp_path / "a")
    sine(root / "tender" / "1.wav", 1000)
    labels = tmp_path / "l.csv"
    rows = [f"{f}/{s},{f}" for f in FOLDERS for s in "123"] + ["tender/1,tender", "happy/01.wav,happy"]
    labels.write_text("file,mood\n" + "\n".join(rows) + "\n")
    result = prepare_dataset(
        root,
        tmp_path / "d",
        "mood",
        labels,
        id_column="file",
        label_column="mood",
        spec=TINY_SPEC,
        workers=1,
        progress=False,
    )
    notes = json.loads((tmp_path / "d" / "dataset.json").read_text())["notes"]
    assert notes == result.notes
    assert any("'happy/1' is listed twice (rows 2 and 9)" in note for note in notes)
    assert any("class 'tender' has a single clip" in note for note in notes)


def test_a_second_prepare_into_a_locked_folder_is_refused_at_once(tmp_path):
    root = audio(tmp_path / "a")
    refused = pytest.raises(MerError, match=r"another mer-fastai process \(PID \d+\) is writing this folder")
    with output_folder(tmp_path / "d"), refused:  # another run holds the folder
        prepare_dataset(root, tmp_path / "d", "emotions", spec=TINY_SPEC, overwrite=True, progress=False)
    assert [p.name for p in (tmp_path / "d").iterdir()] == [".lock"]
    first = prepare(root, tmp_path / "d", "emotions")
    again = prepare_dataset(root, tmp_path / "d", "emotions", spec=TINY_SPEC, overwrite=True, workers=1, progress=False)
    assert again.reused == 0 and again.clips == len(first) and (tmp_path / "d" / ".lock").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(MerError, match="is a file, not a folder"):
        prepare_dataset(root, tmp_path / "f", "emotions", spec=TINY_SPEC, progress=False)


def test_a_linked_class_folder_is_walked_and_a_loop_refused(tmp_path):
    root = audio(tmp_path / "a")
    for i, stem in enumerate("789"):
        sine(tmp_path / "elsewhere" / "calm" / f"{stem}.wav", 900 + 30 * i)
    (root / "calm").symlink_to(tmp_path / "elsewhere" / "calm")  # AUDIO/calm -> ../elsewhere/calm
    found = prepare(root, tmp_path / "d", "emotions")
    assert sorted(clip for clip, label in found.items() if label == "calm") == ["calm/7", "calm/8", "calm/9"]
    (root / "sad" / "again").symlink_to(root)
    with pytest.raises(MerError, match=r"sad/again: is a link to .*, a folder that contains it"):
        prepare_dataset(root, tmp_path / "d2", "emotions", spec=TINY_SPEC, progress=False)
    assert not (tmp_path / "d2").exists()


def test_one_recording_under_two_names_is_one_clip(tmp_path):
    root = audio(tmp_path / "a")
    (root / "happy" / "1_copy.wav").symlink_to(root / "happy" / "1.wav")  # a second name of one file
    (root / "sad" / "3_twin.wav").write_bytes((root / "sad" / "3.wav").read_bytes())  # a byte-identical copy
    found = prepare(root, tmp_path / "d", "emotions")
    assert sorted(found) == [f"{f}/{s}" for f in FOLDERS for s in "123"]
    notes = json.loads((tmp_path / "d" / "dataset.json").read_text())["notes"]
    assert "note: 'happy/1_copy' is the same file as 'happy/1' (a link); kept once, as 'happy/1'" in notes
    assert "note: 'sad/3_twin' is byte-identical to 'sad/3'; kept once, as 'sad/3'" in notes


@pytest.mark.parametrize("link", [False, True])
def test_one_recording_with_two_labels_is_refused(tmp_path, link):
    root = audio(tmp_path / "a")
    copy = root / "sad" / "1_copy.wav"
    if link:
        copy.symlink_to(root / "happy" / "1.wav")
    else:
        copy.write_bytes((root / "happy" / "1.wav").read_bytes())
    how = "the same file as" if link else "byte-identical to"
    with pytest.raises(MerError, match=rf"1_copy.wav: is {how} .*happy/1.wav.* but labelled 'sad', that one 'happy'"):
        prepare_dataset(root, tmp_path / "d", "emotions", spec=TINY_SPEC, progress=False)
    labels = tmp_path / "l.csv"  # the same through a labels file: one copy relabelled by the file
    labels.write_text("file,mood\n" + "".join(f"{f}/{s},{f}\n" for f in FOLDERS for s in "123") + "sad/1_copy,happy\n")
    found = prepare(root, tmp_path / "d", "mood", labels, id_column="file", label_column="mood")
    assert "sad/1_copy" not in found and found["happy/1"] == "happy"


def test_names_and_ids_are_compared_in_nfc(tmp_path):
    composed, decomposed = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    root = audio(tmp_path / "a", folders=(decomposed, "sad"))
    labels = tmp_path / "l.csv"  # ids typed composed, folders named decomposed (as macOS stores them)
    labels.write_text("file,mood\n" + "".join(f"{f}/{s},{f}\n" for f in (composed, "sad") for s in "123"))
    found = prepare(root, tmp_path / "d", "mood", labels, id_column="file", label_column="mood")
    assert found[f"{composed}/1"] == composed.lower()
    assert prepare(root, tmp_path / "d2", "emotions")[f"{composed}/2"] == composed
    labels.write_text("file,mood\nsad/1,sad\n")
    with pytest.raises(MerError, match=r"id 'Café/1' \(Caf<U\+00E9>/1\) has no row"):
        prepare_dataset(root, tmp_path / "d3", "mood", labels, id_column="file", label_column="mood", progress=False)
    sine(root / composed / "4.wav", 900)
    with pytest.raises(MerError, match=r"folder names Cafe<U\+0301> and Caf<U\+00E9> differ only in how their"):
        prepare_dataset(root, tmp_path / "d4", "emotions", spec=TINY_SPEC, progress=False)
