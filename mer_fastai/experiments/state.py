"""A grid folder's `state.json`: what makes a recipe run resumable.

Every cell ever run in the folder keeps its status ("done", "failed"; "marker" for a baseline's data
version), the fingerprint of its settings and data, and its results row; each change is written at once
(atomically), so a failure or Ctrl-C never loses a finished cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import write_json
from ..runs.layout import STATE_FILE

if TYPE_CHECKING:
    from .executors import Cell


class State:
    """`state.json`: status, fingerprint and result row of every cell ever run in this folder."""

    def __init__(self, out: Path):
        self.path = out / STATE_FILE
        self.cells: dict[str, dict] = json.loads(self.path.read_text())["cells"] if self.path.exists() else {}

    def is_done(self, cell: Cell, fingerprint: str) -> bool:
        """Whether `cell` finished with these settings and its result files are still there."""
        saved = self.cells.get(cell.id, {})
        return (
            saved.get("status") == "done"
            and saved.get("fingerprint") == fingerprint
            and all((Path(cell.run_dir) / name).exists() for name in cell.result_files)
        )

    def record(self, key: str, entry: dict) -> None:
        """Keep `entry` under `key` and write the file at once."""
        self.cells[key] = entry
        write_json(self.path, {"cells": self.cells})

    def rows(self) -> list[dict]:
        """The results rows of every finished cell (and baseline row)."""
        return [entry["row"] for entry in self.cells.values() if entry.get("status") == "done"]
