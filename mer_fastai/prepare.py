"""`prepare`: audio + labels → a class-per-folder mel-spectrogram data set (ImageFolder layout)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

from .audio import find_audio_files, load_audio, windows
from .errors import AudioError, MerError
from .jsonlines import append_entry, open_to_append, read_entries
from .labels import LabelTable, label_table, normalize_id
from .png import save_png
from .progress import progress_bar
from .spectrogram import SpecConfig, mel_image
from .split import SPLIT_METHOD, split_groups

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
JOURNAL_FILE = ".progress.jsonl"  # one line per finished clip: what a rerun reuses
MANIFEST_COLUMNS = ["source", "clip_id", "segment_start", "label", "split", "image"]


@dataclass(frozen=True)
class ClipTask:
    """One clip to turn into spectrogram windows."""

    source: str
    clip_id: str
    key: str
    label: str
    split: str


@dataclass
class PrepareResult:
    """What `prepare_dataset` made."""

    out_dir: Path
    classes: list[str]
    clips: int
    segments: int
    counts: dict[str, dict[str, int]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    reused: int = 0


def _clip_key(file: Path, root: Path) -> str:
    """File-system-safe unique name of a clip, from its path below the audio folder."""
    relative = file.relative_to(root) if file.is_relative_to(root) else Path(file.name)
    return "__".join(relative.with_suffix("").parts).replace(" ", "_")


def _process_clip(task: ClipTask, out_dir: str, spec_values: dict) -> list[dict[str, str]]:
    """Decode one clip, write one PNG per window; return its manifest rows."""
    spec = SpecConfig(**spec_values)
    signal = load_audio(task.source, spec.sample_rate)
    folder = Path(out_dir) / task.split / task.label
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for start, window in windows(signal, spec.sample_rate, spec.segment_seconds, spec.hop_seconds):
        image = folder / f"{task.key}_{int(round(start * 1000)):08d}.png"
        save_png(image, mel_image(window, spec))
        rows.append(
            {
                "source": task.source,
                "clip_id": task.clip_id,
                "segment_start": f"{start:.3f}",
                "label": task.label,
                "split": task.split,
                "image": image.relative_to(out_dir).as_posix(),
            }
        )
    return rows


def _run_clip(task: ClipTask, out_dir: str, spec_values: dict) -> tuple[list[dict[str, str]], str | None]:
    """`_process_clip` that reports a bad file instead of raising."""
    try:
        return _process_clip(task, out_dir, spec_values), None
    except AudioError as exc:
        return [], str(exc)


def _read_journal(out_dir: Path) -> tuple[dict[str, dict], set[str]]:
    """The clips finished by earlier runs, by key (the last entry of a key wins; a torn last line is
    ignored), and every image the journal says was written."""
    done: dict[str, dict] = {}
    written: set[str] = set()
    for entry in read_entries(out_dir / JOURNAL_FILE):
        try:
            done[entry["task"]["key"]] = entry
            written.update(row["image"] for row in entry["rows"])
        except (KeyError, TypeError):
            continue
    return done, written


def _open_journal(path: Path, settings: dict) -> BinaryIO:
    """The journal, opened to append on a line of its own.

    A new journal starts with the run's settings, so that a rerun with other settings is refused even
    before the first run has finished.
    """
    journal = open_to_append(path)
    if not journal.tell():
        append_entry(journal, {"settings": settings})
    return journal


def _reusable_rows(entry: dict | None, task: ClipTask, out_dir: Path) -> list[dict[str, str]] | None:
    """Rows of a clip finished by an earlier run, if it was made for the same task and its images exist."""
    if entry is None or entry.get("task") != task.__dict__:
        return None
    if not all((out_dir / row["image"]).exists() for row in entry["rows"]):
        return None
    return entry["rows"]


def plan_tasks(
    audio_dir: Path, table: LabelTable, files: list[Path], valid_pct: float, seed: int, skip_unlabeled: bool
) -> tuple[list[ClipTask], list[Path]]:
    """Match files to labels and assign each clip to train or validation."""
    matched, unlabeled = [], []
    for file in files:
        clip_id = normalize_id(file.stem)
        if clip_id in table.labels:
            matched.append((file, clip_id, table.labels[clip_id]))
        elif clip_id not in table.excluded:
            unlabeled.append(file)
    if unlabeled and not skip_unlabeled:
        raise MerError(
            f"{unlabeled[0]}: id {normalize_id(unlabeled[0].stem)!r} has no row in {table.source} "
            f"({len(unlabeled)} file(s) unlabeled); add the rows or pass --skip-unlabeled"
        )
    if not matched:
        raise MerError(f"{audio_dir}: no audio file matches a labelled id in {table.source}; check ids and --feature")
    keys: dict[str, Path] = {}
    for file, _, _ in matched:
        other = keys.setdefault(_clip_key(file, audio_dir), file)
        if other != file:
            raise MerError(
                f"{file}: gives the same spectrogram names as {other} (same name but for extension or spaces); "
                "rename one of them"
            )
    labels = [clip.label for _, _, clip in matched]
    groups = [clip.group or clip_id for _, clip_id, clip in matched]
    sides = split_groups(labels, groups, valid_pct, seed)
    tasks = [
        ClipTask(str(file), clip_id, _clip_key(file, audio_dir), clip.label, side)
        for (file, clip_id, clip), side in zip(matched, sides)
    ]
    return tasks, unlabeled


def _saved_settings(out_dir: Path) -> dict | None:
    """The settings `out_dir` was prepared with: from dataset.json, or the journal of an unfinished run."""
    if (out_dir / DATASET_FILE).exists():
        return json.loads((out_dir / DATASET_FILE).read_text()).get("settings", {})
    try:
        with (out_dir / JOURNAL_FILE).open() as journal:
            return json.loads(journal.readline()).get("settings")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _check_existing(out_dir: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to mix two different preparations in one folder."""
    if overwrite and ((out_dir / DATASET_FILE).exists() or (out_dir / JOURNAL_FILE).exists()):
        shutil.rmtree(out_dir)
        return
    saved = _saved_settings(out_dir)
    if saved is None:
        if any(any((out_dir / split).glob("*")) for split in ("train", "valid")):
            raise MerError(f"{out_dir}: holds train/ or valid/ folders that prepare did not make; choose another --out")
        return
    changed = [key for key in settings if saved.get(key) != settings[key]]
    if changed == ["split"]:
        raise MerError(
            f"{out_dir}: was prepared by an older version's train/valid split; pass --overwrite (or a new --out)"
        )
    if changed:
        raise MerError(
            f"{out_dir}: was prepared with other settings ({', '.join(changed)} differ); "
            "pass a new --out or --overwrite"
        )


def prepare_dataset(
    audio_dir: str | Path,
    out_dir: str | Path,
    feature: str,
    labels: str | Path | None = None,
    *,
    spec: SpecConfig | None = None,
    valid_pct: float = 0.2,
    group_by: str | None = None,
    seed: int = 42,
    id_column: str | None = None,
    label_column: str | None = None,
    cuts: list[float] | None = None,
    skip_unlabeled: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareResult:
    """Build the spectrogram data set of one feature; rerunning skips clips already done."""
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    spec = spec or SpecConfig()
    files = find_audio_files(audio_dir)
    if not files:
        raise MerError(f"{audio_dir}: no audio files (.mp3 .wav .flac .ogg ...) found; check the path")
    table = label_table(
        audio_dir,
        files,
        labels,
        feature,
        group_by=group_by,
        id_column=id_column,
        label_column=label_column,
        cuts=cuts,
    )
    tasks, unlabeled = plan_tasks(audio_dir, table, files, valid_pct, seed, skip_unlabeled)
    settings = {
        "feature": feature,
        "labels": str(Path(labels).resolve()) if labels else None,
        "valid_pct": valid_pct,
        "group_by": group_by,
        "seed": seed,
        "split": SPLIT_METHOD,
        "cuts": table.cuts,
        "spectrogram": spec.digest(),
    }
    _check_existing(out_dir, settings, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(out_dir)

    rows_by_key: dict[str, list[dict[str, str]]] = {}
    todo = []
    finished, written = _read_journal(out_dir)
    for task in tasks:
        done = _reusable_rows(finished.get(task.key), task, out_dir)
        if done is None:
            todo.append(task)
        else:
            rows_by_key[task.key] = done
    reused = len(rows_by_key)
    if todo:  # the folder is being changed: until it is complete again it is no usable data set
        for name in (DATASET_FILE, MANIFEST_FILE):
            (out_dir / name).unlink(missing_ok=True)
        for task in todo:  # a redone clip may change side or class: never leave it in both
            for row in finished.get(task.key, {}).get("rows", []):
                (out_dir / row["image"]).unlink(missing_ok=True)
    skipped = [{"file": str(f), "reason": "no row in the labels file"} for f in unlabeled]
    with _open_journal(out_dir / JOURNAL_FILE, settings) as journal:
        skipped += _run_tasks(todo, out_dir, spec, workers, progress, rows_by_key, journal)

    rows = [row for task in tasks for row in rows_by_key.get(task.key, [])]
    if not rows:
        first = skipped[0]["reason"] if skipped else "no windows"
        raise MerError(f"{audio_dir}: none of the {len(tasks)} labelled files could be decoded (first: {first})")
    _write_manifest(out_dir / MANIFEST_FILE, rows)
    _remove_stale_images(out_dir, written - {row["image"] for row in rows})
    counts: dict[str, dict[str, int]] = {"train": {}, "valid": {}}
    for (split, label), n in sorted(Counter((r["split"], r["label"]) for r in rows).items()):
        counts[split][label] = n
    classes = sorted({r["label"] for r in rows})
    summary = {
        "feature": feature,
        "classes": classes,
        "audio_dir": str(audio_dir.resolve()),
        "clips": len(rows_by_key),
        "segments": len(rows),
        "counts": counts,
        "excluded_by_feature": len(table.excluded),
        "skipped": skipped,
        "settings": settings,
    }
    (out_dir / DATASET_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return PrepareResult(out_dir, classes, len(rows_by_key), len(rows), counts, skipped, reused)


def _run_tasks(
    tasks: list[ClipTask],
    out_dir: Path,
    spec: SpecConfig,
    workers: int | None,
    progress: bool,
    rows_by_key: dict[str, list[dict[str, str]]],
    journal: BinaryIO,
) -> list[dict[str, str]]:
    """Process clips in parallel with a progress bar, journalling each finished one; return the failed files."""
    skipped: list[dict[str, str]] = []

    def collect(task: ClipTask, outcome: tuple[list[dict[str, str]], str | None]) -> None:
        rows, error = outcome
        if error:
            skipped.append({"file": task.source, "reason": error})
            return
        rows_by_key[task.key] = rows
        append_entry(journal, {"task": task.__dict__, "rows": rows})  # reusable from now on

    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    with progress_bar("spectrograms", total=len(tasks), enabled=progress) as advance:
        if workers == 1:
            for task in tasks:
                collect(task, _run_clip(task, str(out_dir), spec.to_dict()))
                advance()
            return skipped
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            pending: dict[Future, ClipTask] = {}
            queue = iter(tasks)
            while True:
                for task in queue:
                    pending[pool.submit(_run_clip, task, str(out_dir), spec.to_dict())] = task
                    if len(pending) >= workers * 4:
                        break
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    collect(pending.pop(future), future.result())
                    advance()
    return skipped


def _remove_stale_images(out_dir: Path, stale: set[str]) -> None:
    """Delete images earlier runs wrote that this one no longer lists (a clip relabelled, moved to the other
    side or gone), and class folders left empty, so the folders hold exactly the manifest's images."""
    for image in stale:
        (out_dir / image).unlink(missing_ok=True)
    for folder in {(out_dir / image).parent for image in stale}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_dataset_info(data_dir: str | Path) -> dict:
    """The `dataset.json` summary of a prepared data set, with a clear error if absent."""
    path = Path(data_dir) / DATASET_FILE
    if not path.exists():
        raise MerError(f"{data_dir}: no {DATASET_FILE}; make the data set with `mer-fastai prepare` first")
    return json.loads(path.read_text())
