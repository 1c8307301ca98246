"""Experiment results as the study shows them: CSV, markdown tables, a heatmap and a rich table."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from rich.table import Table

from .._plumbing.files import atomic_write
from ..errors import MerError
from ..runs.layout import HEATMAP, RESULTS_CSV, RESULTS_MD
from ..scoring.columns import IDENTITY_COLUMNS, SCORE_SETS, SD_SUFFIX, SPREAD_SETS, write_csv_rows
from ..tasks.base import Task
from ..tasks.registry import TASKS as REGISTERED
from ..tasks.registry import get_task
from .figures import save_figure

__all__ = ["load_results"]

SCORE_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1", "map": "mAP", "ccc": "CCC",
                "pearson_r": "r", "r2": "R²", "rmse": "RMSE", "mae": "MAE"}  # fmt: skip


def result_columns(tasks: Iterable[str] = ("classification",)) -> list[str]:
    """results.csv's columns for rows of `tasks`: identity, the tasks' scores (`TaskFacts.scores`) of validation
    windows, seconds, stage, run_dir, the same scores of validation tracks, test windows and test tracks, the
    folds' sd of window and track scores, `folds`, and beside classification `task`."""
    named = set(tasks)
    present = [task for task in REGISTERED.values() if task in named]
    scores = list(dict.fromkeys(key for task in present for key in task.facts.scores))
    columns = [*IDENTITY_COLUMNS, *scores, "seconds", "stage", "run_dir"]
    columns += [prefix + key for prefix in SCORE_SETS if prefix for key in scores]
    columns += [prefix + key + SD_SUFFIX for prefix in SPREAD_SETS for key in scores]
    return [*columns, "folds", *(["task"] if any(not task.is_default for task in present) else [])]


SCORE_NAMES = frozenset(key for task in REGISTERED.values() for key in task.facts.scores)


def is_score_column(column: str) -> bool:
    """Whether a results.csv column holds a score (or its sd): `<set prefix><task score>[_sd]`."""
    base = column.removesuffix(SD_SUFFIX)
    return any(base.startswith(prefix) and base.removeprefix(prefix) in SCORE_NAMES for prefix in SCORE_SETS)


def row_task(row: dict) -> Task:
    """The task a results row, a run's metrics or a cv.json names (those written before tasks existed:
    classification); one `Task`, equal to its name."""
    return get_task(row.get("task"))


def main_score(task: Task) -> str:
    """The score a heatmap and a gain compare: accuracy, CCC, macro-F1."""
    return task.facts.table_scores[0]


def legend(task: Task) -> str:
    """What a table cell shows, e.g. `accuracy / macro-F1`."""
    return " / ".join(SCORE_LABELS[key] for key in task.facts.table_scores)


def _column(row: dict) -> str:
    """Table column of a row: feature · mode (· augmentation when not 'none')."""
    parts = [row["feature"], row["mode"]]
    if row.get("augmentation", "none") not in ("none", ""):
        parts.append(f"+{row['augmentation']}")
    return " · ".join(parts)


def _score(row: dict, prefix: str = "") -> str:
    """The task's table scores of one score set (`accuracy / macro-F1`, `CCC / R² / RMSE`, ...); `mean ± sd`
    each where the row is cross-validated; "–" without the main score (a score undefined alone: "–" there)."""
    names = [prefix + key for key in row_task(row).facts.table_scores]
    if _missing(row, names[0]):
        return "–"
    return " / ".join("–" if _missing(row, name) else _value(row, name) for name in names)


def _missing(row: dict, name: str) -> bool:
    return row.get(name) in (None, "")


def _value(row: dict, name: str) -> str:
    sd = row.get(name + SD_SUFFIX)
    return f"{float(row[name]):.3f}" + ("" if sd in (None, "") else f" ± {float(sd):.3f}")


def _score_sets(rows: list[dict]) -> list[str]:
    """The score prefixes some row of `rows` holds (validation windows always)."""
    return [p for p in SCORE_SETS if not p or any(not _missing(row, p + main_score(row_task(row))) for row in rows)]


def _tables(rows: list[dict]) -> dict[tuple[str, str, str, str], list[dict]]:
    """Rows grouped by (experiment, stage, dataset, task), in order of appearance."""
    groups: dict[tuple[str, str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["experiment"], row.get("stage", ""), row["dataset"], row_task(row))].append(row)
    return groups


def _task_note(task: Task) -> str:
    """What a table's title adds for its task: nothing for classification, else ` (regression)` etc."""
    return "" if task.is_default else f" ({task})"


def _grid(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    columns = list(dict.fromkeys(_column(r) for r in rows))
    cells = {(r["arch"], _column(r)): r for r in rows}
    return archs, columns, cells


def results_markdown(rows: list[dict]) -> str:
    """Markdown tables: rows = architectures, columns = feature × mode; cells = the task's table scores
    (accuracy / macro-F1; CCC / R² / RMSE; macro-F1 / micro-F1 / mAP).

    One table per score set present: validation windows, then validation tracks, test windows and test
    tracks when the runs recorded them."""
    tasks = list(dict.fromkeys(row_task(row) for row in rows))
    cells_are = legend(tasks[0]) if len(tasks) == 1 else "; ".join(f"{task}: {legend(task)}" for task in tasks)
    lines = ["# Results", "", f"Cells: {cells_are} (validation windows unless the table says otherwise).", ""]
    folds = sorted({str(row["folds"]) for row in rows if row.get("folds") not in (None, "")})
    if folds:
        lines[-1:] = [
            f"Cross-validated cells ({' or '.join(folds)} fold trainings): mean ± standard deviation over the folds, "
            "each fold scored on the clips it held out.",
            "",
        ]
    for (experiment, stage, dataset, task), group in _tables(rows).items():
        archs, columns, cells = _grid(group)
        title = (f"{experiment} — {stage} on {dataset}" if stage else f"{experiment} on {dataset}") + _task_note(task)
        for prefix in _score_sets(group):
            lines += [
                f"## {title}" + (f" — {SCORE_SETS[prefix]}" if prefix else ""),
                "",
                "| arch | " + " | ".join(columns) + " |",
                "|---" * (len(columns) + 1) + "|",
            ]
            for arch in archs:
                values = [_score(cells[(arch, c)], prefix) if (arch, c) in cells else "–" for c in columns]
                lines.append(f"| {arch} | " + " | ".join(values) + " |")
            lines.append("")
        lines += _augmentation_gain(group) + _transfer_comparison(group, rows)
    return "\n".join(lines)


def _paired_table(title: str, pairs: list[tuple[dict, dict]], describe) -> list[str]:
    """Markdown rows comparing each cell's main score (`main_score`) with its reference cell's."""
    pairs = [(row, ref) for row, ref in pairs if row_task(row) == row_task(ref)]
    if not pairs:
        return []
    key = main_score(row_task(pairs[0][0]))
    lines = [f"{title} ({SCORE_LABELS[key]}):", "", "| arch | feature · mode | reference | this | gain |"]
    lines.append("|---|---|---|---|---|")
    for row, ref in pairs:
        if _missing(row, key) or _missing(ref, key):
            continue
        gain = float(row[key]) - float(ref[key])
        lines.append(
            f"| {row['arch']} | {row['feature']} · {row['mode']} | "
            f"{float(ref[key]):.3f} ({describe(ref)}) | "
            f"{float(row[key]):.3f} ({describe(row)}) | {gain:+.3f} |"
        )
    return [*lines, ""]


def _augmentation_gain(group: list[dict]) -> list[str]:
    """Experiment C: the main score with augmentation against without, per arch, feature and mode."""
    plain = {(r["arch"], r["feature"], r["mode"]): r for r in group if r.get("augmentation") == "none"}
    augmented = [r for r in group if r.get("augmentation") not in ("none", "")]
    pairs = [
        (r, plain[(r["arch"], r["feature"], r["mode"])])
        for r in augmented
        if (r["arch"], r["feature"], r["mode"]) in plain
    ]
    return _paired_table("Augmentation gain", pairs, lambda r: f"augmentation {r['augmentation']}")


def _transfer_comparison(group: list[dict], rows: list[dict]) -> list[str]:
    """Experiment B: transferred-weight cells beside another experiment's cells on the same data."""
    transferred = [r for r in group if r["weights"] not in ("imagenet", "pretrained", "none", "")]
    reference = {
        (r["dataset"], r["feature"], r["arch"], r["mode"]): r
        for r in rows
        if r["experiment"] != group[0]["experiment"]
        and r["weights"] in ("imagenet", "pretrained", "none")
        and r.get("augmentation") == "none"
    }
    keys = [(r, (r["dataset"], r["feature"], r["arch"], r["mode"])) for r in transferred]
    pairs = [(r, reference[key]) for r, key in keys if key in reference]
    title = "Transfer vs. the other experiment's weights on the same data"
    return _paired_table(title, pairs, lambda r: f"{r['experiment']}, weights {r['weights']}")


def plot_heatmap(path: Path, rows: list[dict]) -> Path:
    """One heatmap per (experiment, stage, data set) table of its main score (accuracy, CCC, macro-F1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(_tables(rows).items())
    heights = [0.8 + 0.45 * len(_grid(g)[0]) for _, g in groups]
    width = max(6.0, 2.0 + 1.3 * max(len(_grid(g)[1]) for _, g in groups))
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(width, sum(heights) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, ((experiment, stage, dataset, task), group) in zip(axes[:, 0], groups):
        archs, columns, cells = _grid(group)
        key = main_score(task)
        values = np.array(
            [[_number(cells[(a, c)], key) if (a, c) in cells else np.nan for c in columns] for a in archs]
        )
        ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(archs)), archs, fontsize=8)
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    color="white" if value < 0.6 else "black",
                    fontsize=8,
                )
        ax.set_title(
            (f"{experiment} · {stage} · {dataset}" if stage else f"{experiment} · {dataset}")
            + f"{_task_note(task)} — {SCORE_LABELS[key]}",
            fontsize=9,
        )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _number(row: dict, key: str) -> float:
    """A row's score as a number (NaN where it is undefined)."""
    return float("nan") if _missing(row, key) else float(row[key])


def write_results(out: str | Path, rows: list[dict]) -> None:
    """results.csv, results.md and the heatmap, each replaced atomically."""
    out = Path(out)
    write_csv_rows(out / RESULTS_CSV, result_columns(row_task(row) for row in rows), rows)
    if rows:
        atomic_write(out / RESULTS_MD, results_markdown(rows) + "\n")
        plot_heatmap(out / HEATMAP, rows)


def load_results(out: str | Path) -> list[dict]:
    """Rows of `results.csv` in a run folder."""
    path = Path(out) / RESULTS_CSV
    if not path.exists():
        raise MerError(f"{out}: no {RESULTS_CSV}; run an experiment with `mer-fastai run RECIPE --out {out}` first")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def results_tables(rows: list[dict]) -> list[Table]:
    """Rich tables in the same shape as results.md."""
    tables = []
    for (experiment, stage, dataset, task), group in _tables(rows).items():
        archs, columns, cells = _grid(group)
        for prefix in _score_sets(group):
            what = f"{experiment} · {stage} · {dataset}{_task_note(task)}  ({SCORE_SETS[prefix]}: {legend(task)})"
            table = Table(title=what, title_justify="left")
            table.add_column("arch")
            for column in columns:
                table.add_column(column, justify="right")
            for arch in archs:
                table.add_row(arch, *[_score(cells[(arch, c)], prefix) if (arch, c) in cells else "–" for c in columns])
            tables.append(table)
    return tables
