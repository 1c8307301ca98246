"""Append-only JSON-lines journals that survive being killed mid-write (prepare's, the benchmarks')."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

from .diskfull import disk_full_error


def read_entries(path: Path) -> list:
    """Every whole entry of the journal at `path` (none if it is missing); a line torn by a kill is skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def open_to_append(path: Path) -> BinaryIO:
    """The journal, opened to append on a line of its own (a killed run may have left half a line)."""
    journal = path.open("ab+")
    if journal.tell():
        journal.seek(-1, os.SEEK_END)
        if journal.read(1) != b"\n":
            journal.write(b"\n")
            journal.flush()
    return journal


def append_entry(journal: BinaryIO, entry: dict) -> None:
    """Write `entry` as one line and flush it: once written it counts as finished, even if the run is killed (a
    line torn by a full disk is skipped by `read_entries`; the failure is one line naming the journal)."""
    try:
        journal.write(json.dumps(entry).encode() + b"\n")
        journal.flush()
    except OSError as exc:
        full = disk_full_error(exc, getattr(journal, "name", "the journal"))
        if full is None:
            raise
        raise full from exc
