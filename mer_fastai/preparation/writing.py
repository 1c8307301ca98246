"""Making a data set's images: one process per core decodes each clip and writes one PNG per window, journalling
each clip as it starts and finishes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from .._plumbing.jsonlines import append_entry
from .._plumbing.progress import progress_bar
from .._plumbing.workers import completed, worker_count
from ..data.audio import content_hash, load_audio
from ..data.dataset import ManifestRow
from ..data.png import save_png
from ..data.spectrogram import SpecConfig, window_images
from ..errors import AudioError
from .clips import ClipTask


def _process_clip(task: ClipTask, out_dir: str, spec_values: dict) -> list[ManifestRow]:
    """Decode one clip, write one PNG per window; return its manifest rows (with the file's content hash)."""
    spec = SpecConfig(**spec_values)
    signal = load_audio(task.source, spec.sample_rate)
    digest = content_hash(task.source)
    folder = Path(out_dir) / task.split / task.label
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for start, picture in window_images(signal, spec):
        image = folder / f"{task.key}_{int(round(start * 1000)):08d}.png"
        save_png(image, picture)
        relative = image.relative_to(out_dir).as_posix()
        row = ManifestRow(task.source, task.clip_id, round(start, 3), task.label, task.split, relative)
        rows.append(replace(row, targets=task.targets, sha256=digest))
    return rows


def _run_clip(task: ClipTask, out_dir: str, spec_values: dict) -> tuple[list[ManifestRow], str | None]:
    """`_process_clip` that reports a bad file instead of raising."""
    try:
        return _process_clip(task, out_dir, spec_values), None
    except AudioError as exc:
        return [], str(exc)


def hash_reused(tasks: list[ClipTask], rows_by_key: dict[str, list[ManifestRow]], journal: BinaryIO) -> None:
    """Give the reused rows of clips an older version finished (no content hash yet) their file's hash, and
    journal them so that the next run reuses it."""
    for task in tasks:
        rows = rows_by_key.get(task.key)
        if not rows or rows[0].sha256:
            continue
        try:
            digest = content_hash(task.source)
        except AudioError:
            continue
        rows_by_key[task.key] = [replace(row, sha256=digest) for row in rows]
        append_entry(journal, {"task": task.to_dict(), "rows": [row.to_dict() for row in rows_by_key[task.key]]})


def run_tasks(
    tasks: list[ClipTask],
    out_dir: Path,
    spec: SpecConfig,
    workers: int | None,
    progress: bool,
    rows_by_key: dict[str, list[ManifestRow]],
    journal: BinaryIO,
) -> list[dict[str, str]]:
    """Process clips in parallel with a progress bar, journalling each one as it starts (where its images may
    lie) and when it has finished; return the failed files."""
    skipped: list[dict[str, str]] = []

    def start(task: ClipTask) -> ClipTask:
        append_entry(journal, {"started": {"folder": f"{task.split}/{task.label}", "key": task.key}})
        return task

    def collect(task: ClipTask, outcome: tuple[list[ManifestRow], str | None]) -> None:
        rows, error = outcome
        if error:
            skipped.append({"file": task.source, "reason": error})
            return
        rows_by_key[task.key] = rows
        append_entry(journal, {"task": task.to_dict(), "rows": [row.to_dict() for row in rows]})  # reusable now

    with progress_bar("spectrograms", total=len(tasks), enabled=progress) as advance:
        started = (start(task) for task in tasks)
        jobs = completed(_run_clip, started, worker_count(workers, len(tasks)), str(out_dir), spec.to_dict())
        for task, outcome in jobs:
            collect(task, outcome)
            advance()
    return skipped
