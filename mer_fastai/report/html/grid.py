"""The grid page: the results table (columns empty in every row left out), heatmap, failed cells, and every
cell's run section (a cross-validated cell: each fold's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...runs.layout import CELLS_DIR, CV_FILE, HEATMAP, STATE_FILE, TEST_PREFIX, is_finished, read_json
from ...scoring.columns import SD_SUFFIX
from ..results import SCORE_LABELS, is_score_column, load_results, main_score, row_task
from .cv import fold_sections
from .dataset import Datasets
from .run import run_section
from .templating import data_uri
from .values import cell, number, score_cell, slug

# the identity columns of results.csv (`scoring.columns.IDENTITY_COLUMNS`) that the page shows, in its order
SHOWN_IDENTITY = ("experiment", "stage", "dataset", "feature", "arch", "mode", "weights", "augmentation")
NUMBER_COLUMNS = ("epochs", "lr", "seconds", "folds")


def grid_page(folder: Path, here: Path, datasets: Datasets) -> dict:
    """The page of a grid folder: the results table, heatmap, failed cells and every cell's run section."""
    rows = load_results(folder)
    runs, anchors = [], {}
    for row in rows:
        run_dir = cell_folder(folder, row.get("run_dir", ""))
        if run_dir is None or str(run_dir) in anchors:
            continue
        anchors[str(run_dir)] = f"cell-{slug(run_dir.name)}"
        if (run_dir / CV_FILE).is_file():
            runs += fold_sections(run_dir, here, anchors[str(run_dir)], datasets)
        else:
            runs.append(run_section(run_dir, here, anchors[str(run_dir)], datasets, grid=folder))
    heatmap = data_uri(folder / HEATMAP)
    grid = {
        **results_table(rows, lambda row: anchors.get(str(cell_folder(folder, row.get("run_dir", ""))))),
        "heatmap": {"src": heatmap, "caption": f"validation {_heatmap_score(rows)} per cell"} if heatmap else None,
        "failed": _failed_cells(folder),
    }
    return {"title": f"Grid {folder.resolve().name}", "runs": runs, "datasets": datasets, "grid": grid}


def _heatmap_score(rows: list[dict]) -> str:
    """What the grid's heatmap shows: its task's main score (accuracy, CCC, macro-F1)."""
    tasks = {row_task(row) for row in rows}
    return SCORE_LABELS[main_score(tasks.pop())] if len(tasks) == 1 else "main score (accuracy, CCC or macro-F1)"


def results_table(rows: list[dict], anchor_of: Callable[[dict], str | None]) -> dict:
    """Columns and cells of the grid's results table: identity, score (± sd) and other number columns; a
    column empty in every row (e.g. the test scores of a grid without a test split) is left out."""
    names = list(rows[0]) if rows else []
    present = [c for c in SHOWN_IDENTITY if c in names and filled(rows, c)]
    shared = [c for c in present if len(rows) > 1 and len({r.get(c) for r in rows}) == 1]
    identity = [c for c in present if c not in shared]
    scores = [c for c in names if is_score_column(c) and not c.endswith(SD_SUFFIX) and filled(rows, c)]
    numbers = [c for c in NUMBER_COLUMNS if c in names and filled(rows, c)]
    columns = [{"name": "cell", "numeric": False}]
    columns += [{"name": c, "numeric": False} for c in identity]
    columns += [{"name": c.replace("_", " "), "numeric": True} for c in scores + numbers]
    table_rows = []
    for row in rows:
        cells = [cell(Path(row.get("run_dir") or "-").name, None)]
        cells += [cell(row.get(c, ""), None) for c in identity]
        cells += [score_cell(row.get(c, ""), row.get(c + SD_SUFFIX)) for c in scores]
        cells += [cell(row.get(c, ""), number(row.get(c, ""))) for c in numbers]
        table_rows.append({"cells": cells, "anchor": anchor_of(row)})
    return {
        "columns": columns,
        "rows": table_rows,
        "sd_columns": [c for c in scores if filled(rows, c + SD_SUFFIX)],
        "test": any(c.startswith(TEST_PREFIX) for c in scores),
        "shared": [(c, rows[0][c]) for c in shared],
    }


def filled(rows: list[dict], column: str) -> bool:
    """Whether some row holds a value in `column` (results.csv leaves undefined scores empty)."""
    return any(row.get(column) not in (None, "") for row in rows)


def _failed_cells(folder: Path) -> list[tuple[str, str]]:
    path = folder / STATE_FILE
    if not path.is_file():
        return []
    cells = read_json(path).get("cells", {})
    return [(name, entry.get("error", "")) for name, entry in cells.items() if entry.get("status") == "failed"]


def cell_folder(grid: Path, run_dir: str) -> Path | None:
    """A result row's run folder: as written, else `runs/<name>` of this grid (the grid was moved)."""
    if not run_dir:
        return None
    for candidate in (Path(run_dir), grid / CELLS_DIR / Path(run_dir).name):
        if is_finished(candidate) or (candidate / CV_FILE).is_file():
            return candidate
    return None
