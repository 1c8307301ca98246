"""A grid folder's `state.json`: what makes a recipe run resumable.

Every cell ever run in the folder keeps its status ("done", "failed"; "marker" for a baseline's data
version), the fingerprint of its settings and data, and its results row; each change is written at once
(atomically), so a failure or Ctrl-C never loses a finished cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import write_json
from ..errors import MerError
from ..runs.layout import STATE_FILE, read_json

if TYPE_CHECKING:
    from .executors import Cell


class State:
    """`state.json`: status, fingerprint and result row of every cell ever run in this folder."""

    def __init__(self, out: Path):
        self.path = out / STATE_FILE
        self.cells: dict[str, dict] = _read_cells(self.path) if self.path.exists() else {}

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


def _read_cells(path: Path) -> dict[str, dict]:
    """The cells recorded in `state.json`; a damaged file is one clear error (rerunning cannot mend it)."""
    fix = "delete it to run every cell of the grid again"
    try:
        document = read_json(path)
    except MerError as exc:
        raise MerError(f"{path}: cannot be read ({exc.__cause__}); {fix}") from exc
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, dict):
        raise MerError(f"{path}: holds no table of cells; {fix}")
    return cells
