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
from ..data.fingerprint import fingerprint
from ..data.png import save_png
from ..data.spectrogram import SpecConfig, window_images
from ..errors import AudioError
from .clips import ClipJob


def _process_clip(job: ClipJob, out_dir: str, spec_values: dict) -> list[ManifestRow]:
    """Decode one clip, write one PNG per window; return its manifest rows (with the file's content hash and the
    fingerprint of the same decoded signal)."""
    spec = SpecConfig(**spec_values)
    signal = load_audio(job.source, spec.sample_rate)
    digest = content_hash(job.source)
    printed = fingerprint(signal, spec.sample_rate)
    folder = Path(out_dir) / job.split / job.label
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for start, picture in window_images(signal, spec):
        image = folder / f"{job.key}_{int(round(start * 1000)):08d}.png"
        save_png(image, picture)
        relative = image.relative_to(out_dir).as_posix()
        row = ManifestRow(job.source, job.clip_id, round(start, 3), job.label, job.split, relative)
        rows.append(replace(row, targets=job.targets, sha256=digest, fingerprint=printed))
    return rows


def _run_clip(job: ClipJob, out_dir: str, spec_values: dict) -> tuple[list[ManifestRow], str | None]:
    """`_process_clip` that reports a bad file instead of raising."""
    try:
        return _process_clip(job, out_dir, spec_values), None
    except AudioError as exc:
        return [], str(exc)


def hash_reused(jobs: list[ClipJob], rows_by_key: dict[str, list[ManifestRow]], journal: BinaryIO) -> None:
    """Give the reused rows of clips an older version finished (no content hash yet) their file's hash, and
    journal them so that the next run reuses it."""
    for job in jobs:
        rows = rows_by_key.get(job.key)
        if not rows or rows[0].sha256:
            continue
        try:
            digest = content_hash(job.source)
        except AudioError:
            continue
        rows_by_key[job.key] = [replace(row, sha256=digest) for row in rows]
        append_entry(journal, {"task": job.to_dict(), "rows": [row.to_dict() for row in rows_by_key[job.key]]})


def write_clips(
    jobs: list[ClipJob],
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

    def start(job: ClipJob) -> ClipJob:
        append_entry(journal, {"started": {"folder": f"{job.split}/{job.label}", "key": job.key}})
        return job

    def collect(job: ClipJob, outcome: tuple[list[ManifestRow], str | None]) -> None:
        rows, error = outcome
        if error:
            skipped.append({"file": job.source, "reason": error})
            return
        rows_by_key[job.key] = rows
        append_entry(journal, {"task": job.to_dict(), "rows": [row.to_dict() for row in rows]})  # reusable now

    with progress_bar("spectrograms", total=len(jobs), enabled=progress) as advance:
        started = (start(job) for job in jobs)
        finished = completed(_run_clip, started, worker_count(workers, len(jobs)), str(out_dir), spec.to_dict())
        for job, outcome in finished:
            collect(job, outcome)
            advance()
    return skipped


def move_clips(
    moves: list[ClipJob], out_dir: Path, rows_by_key: dict[str, list[ManifestRow]], journal: BinaryIO
) -> None:
    """Move the images of finished clips to the side (`split`) their job names now, journalling the new folder
    before the first image moves and the clip again once all have: a run killed in between redoes the clip."""
    for job in moves:
        append_entry(journal, {"started": {"folder": f"{job.split}/{job.label}", "key": job.key}})
        rows = []
        for row in rows_by_key[job.key]:
            image = f"{job.split}/{row.image.split('/', 1)[1]}"
            (out_dir / image).parent.mkdir(parents=True, exist_ok=True)
            row.path(out_dir).replace(out_dir / image)
            rows.append(replace(row, split=job.split, image=image))
        rows_by_key[job.key] = rows
        append_entry(journal, {"task": job.to_dict(), "rows": [row.to_dict() for row in rows]})
