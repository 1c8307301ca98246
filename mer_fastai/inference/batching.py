"""One pass per clip: each file is decoded once, and the windows of many files go through the network together.

A producer decodes the files (in this process, or in the project's worker pool, `_plumbing.workers`) into
their window images; a consumer queues the windows of consecutive files and runs the network on full batches
of `bs` windows, whatever file each window comes from, and hands every file its own rows back, in the order the
files were given. A batch-normalised network in eval mode computes each window alone, so a window's outputs do
not depend on the windows it is batched with (`tests/inference/test_batching.py` compares the two ways).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._plumbing.workers import completed
from ..data.spectrogram import SpecConfig
from ..errors import AudioError
from ..models.windowreads import forkable, read_windows

# (window images) → arrays with one row per window (e.g. logits; features and logits)
Compute = Callable[[Sequence[np.ndarray]], tuple[np.ndarray, ...]]


@dataclass
class Decoded:
    """One file's windows: where they start (seconds), their spectrogram images and the file's duration; or
    why the file could not be decoded (`error`, the `AudioError` text)."""

    file: Path
    duration: float = 0.0
    starts: list[float] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    error: str | None = None


def decode(file: Path, spec: SpecConfig, seconds: float, step: float, reads: str | None = None) -> Decoded:
    """Decode `file` once and cut it into the window images of `spec` (`reads`: a model of window features'
    vectors, `models.windowreads`); an undecodable file: its reason."""
    try:
        duration, starts, inputs = read_windows(file, spec, seconds, step, reads)
    except AudioError as exc:
        return Decoded(file, error=str(exc))
    return Decoded(file, duration, starts, inputs)


def decoded_in_order(
    files: Sequence[Path], spec: SpecConfig, seconds: float, step: float, workers: int = 1, reads: str | None = None
) -> Iterator[Decoded]:
    """Every file decoded (`workers` > 1: in that many forked processes, unless its inputs run a network:
    `models.windowreads.forkable`), yielded in the order of `files`."""
    workers = workers if forkable(reads) else 1
    ready: dict[int, Decoded] = {}
    following = 0
    for index, decoded in completed(_decode_indexed, range(len(files)), workers, files, spec, seconds, step, reads):
        ready[index] = decoded
        while following in ready:
            yield ready.pop(following)
            following += 1


def _decode_indexed(
    index: int, files: Sequence[Path], spec: SpecConfig, seconds: float, step: float, reads: str | None
) -> Decoded:
    return decode(files[index], spec, seconds, step, reads)


@dataclass
class _Waiting:
    decoded: Decoded
    missing: int
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def rows(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(column) for column in zip(*self.parts, strict=True))


def batched(decoded: Iterable[Decoded], compute: Compute, bs: int) -> Iterator[tuple[Decoded, tuple[np.ndarray, ...]]]:
    """Each decoded file with its rows of `compute` (its windows' outputs, in order), in the order given; the
    network sees full batches of `bs` windows across files (only the last batch is smaller). Files that could
    not be decoded pass through with no rows, in their place."""
    queue: list[np.ndarray] = []
    waiting: deque[_Waiting] = deque()
    for item in decoded:
        entry = _Waiting(item, len(item.images))
        if item.error is None and not item.images:
            entry.parts.append(compute([]))  # no window: the empty rows the network gives for none
        waiting.append(entry)
        queue += item.images
        while len(queue) >= bs:
            _run(queue, bs, compute, waiting)
        while waiting and waiting[0].missing == 0:
            done = waiting.popleft()
            yield done.decoded, (done.rows() if done.parts else ())
    while queue:
        _run(queue, bs, compute, waiting)
    for done in waiting:
        yield done.decoded, (done.rows() if done.parts else ())


def _run(queue: list[np.ndarray], bs: int, compute: Compute, waiting: deque[_Waiting]) -> None:
    """Compute the first batch of `queue` and hand its rows to the waiting files, first come first served."""
    outputs = compute(queue[:bs])
    count = len(outputs[0])
    del queue[:count]
    offset = 0
    for entry in waiting:
        if offset == count:
            break
        take = min(entry.missing, count - offset)
        if take:
            entry.parts.append(tuple(column[offset : offset + take] for column in outputs))
            entry.missing -= take
            offset += take
