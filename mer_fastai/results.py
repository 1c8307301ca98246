"""Experiment results as the study shows them: CSV, markdown tables, a heatmap and a rich table."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from rich.table import Table

from .errors import MerError
from .files import atomic_path, atomic_write
from .report import save_figure

RESULT_COLUMNS = [
    "experiment",
    "dataset",
    "feature",
    "arch",
    "mode",
    "weights",
    "augmentation",
    "epochs",
    "lr",
    "accuracy",
    "macro_f1",
    "seconds",
    "stage",
    "run_dir",
    # appended (baseline.py writes the first 12 columns): track scores and the held-out test split's scores
    "track_accuracy",
    "track_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "test_track_accuracy",
    "test_track_macro_f1",
    # cross-validated cells (recipe `folds`): the score columns hold the mean over folds, these the sd
    "accuracy_sd",
    "macro_f1_sd",
    "track_accuracy_sd",
    "track_macro_f1_sd",
    "folds",  # how many fold trainings (K·R)
]
SD_SUFFIX = "_sd"
# The score pairs a table can show (prefix of accuracy/macro_f1) and what they are, in table order.
SCORE_SETS = {
    "": "validation windows",
    "track_": "validation tracks",
    "test_": "test windows",
    "test_track_": "test tracks",
}
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
HEATMAP = "results_heatmap.png"


def score_columns(metrics: dict) -> dict:
    """The track and test score columns of a run's metrics (empty strings where the run has none)."""
    test = metrics.get("test") or {}
    values = {
        "track_accuracy": metrics.get("track_accuracy"),
        "track_macro_f1": metrics.get("track_macro_f1"),
        "test_accuracy": test.get("accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "test_track_accuracy": test.get("track_accuracy"),
        "test_track_macro_f1": test.get("track_macro_f1"),
    }
    return {name: "" if value is None else round(value, 4) for name, value in values.items()}


def _column(row: dict) -> str:
    """Table column of a row: feature · mode (· augmentation when not 'none')."""
    parts = [row["feature"], row["mode"]]
    if row.get("augmentation", "none") not in ("none", ""):
        parts.append(f"+{row['augmentation']}")
    return " · ".join(parts)


def _score(row: dict, prefix: str = "") -> str:
    """`accuracy / macro-F1` of one score set; `mean ± sd` each where the row is cross-validated."""
    names = (f"{prefix}accuracy", f"{prefix}macro_f1")
    if any(row.get(name) in (None, "") for name in names):
        return "–"
    return " / ".join(_value(row, name) for name in names)


def _value(row: dict, name: str) -> str:
    sd = row.get(name + SD_SUFFIX)
    return f"{float(row[name]):.3f}" + ("" if sd in (None, "") else f" ± {float(sd):.3f}")


def _score_sets(rows: list[dict]) -> list[str]:
    """The score prefixes some row of `rows` holds (validation windows always)."""
    return [p for p in SCORE_SETS if not p or any(row.get(f"{p}accuracy") not in (None, "") for row in rows)]


def _tables(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Rows grouped by (experiment, stage, dataset), in order of appearance."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["experiment"], row.get("stage", ""), row["dataset"])].append(row)
    return groups


def _grid(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    columns = list(dict.fromkeys(_column(r) for r in rows))
    cells = {(r["arch"], _column(r)): r for r in rows}
    return archs, columns, cells


def results_markdown(rows: list[dict]) -> str:
    """Markdown tables: rows = architectures, columns = feature × mode; cells = accuracy / macro-F1.

    One table per score set present: validation windows, then validation tracks, test windows and test
    tracks when the runs recorded them."""
    lines = ["# Results", "", "Cells: accuracy / macro-F1 (validation windows unless the table says otherwise).", ""]
    folds = sorted({str(row["folds"]) for row in rows if row.get("folds") not in (None, "")})
    if folds:
        lines[-1:] = [
            f"Cross-validated cells ({' or '.join(folds)} fold trainings): mean ± standard deviation over the folds, "
            "each fold scored on the clips it held out.",
            "",
        ]
    for (experiment, stage, dataset), group in _tables(rows).items():
        archs, columns, cells = _grid(group)
        title = f"{experiment} — {stage} on {dataset}" if stage else f"{experiment} on {dataset}"
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
    """Markdown rows comparing each cell's accuracy with its reference cell's."""
    if not pairs:
        return []
    lines = [title, "", "| arch | feature · mode | reference | this | gain |", "|---|---|---|---|---|"]
    for row, ref in pairs:
        gain = float(row["accuracy"]) - float(ref["accuracy"])
        lines.append(
            f"| {row['arch']} | {row['feature']} · {row['mode']} | "
            f"{float(ref['accuracy']):.3f} ({describe(ref)}) | "
            f"{float(row['accuracy']):.3f} ({describe(row)}) | {gain:+.3f} |"
        )
    return [*lines, ""]


def _augmentation_gain(group: list[dict]) -> list[str]:
    """Experiment C: accuracy with augmentation against without, per arch, feature and mode."""
    plain = {(r["arch"], r["feature"], r["mode"]): r for r in group if r.get("augmentation") == "none"}
    augmented = [r for r in group if r.get("augmentation") not in ("none", "")]
    pairs = [
        (r, plain[(r["arch"], r["feature"], r["mode"])])
        for r in augmented
        if (r["arch"], r["feature"], r["mode"]) in plain
    ]
    return _paired_table("Augmentation gain (accuracy):", pairs, lambda r: f"augmentation {r['augmentation']}")


def _transfer_comparison(group: list[dict], rows: list[dict]) -> list[str]:
    """Experiment B: transferred-weight cells beside another experiment's cells on the same data."""
    transferred = [r for r in group if r["weights"] not in ("imagenet", "none", "")]
    reference = {
        (r["dataset"], r["feature"], r["arch"], r["mode"]): r
        for r in rows
        if r["experiment"] != group[0]["experiment"]
        and r["weights"] in ("imagenet", "none")
        and r.get("augmentation") == "none"
    }
    keys = [(r, (r["dataset"], r["feature"], r["arch"], r["mode"])) for r in transferred]
    pairs = [(r, reference[key]) for r, key in keys if key in reference]
    title = "Transfer vs. the other experiment's weights on the same data (accuracy):"
    return _paired_table(title, pairs, lambda r: f"{r['experiment']}, weights {r['weights']}")


def plot_heatmap(path: Path, rows: list[dict]) -> Path:
    """One accuracy heatmap per (experiment, stage, data set) table."""
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
    for ax, ((experiment, stage, dataset), group) in zip(axes[:, 0], groups):
        archs, columns, cells = _grid(group)
        values = np.array(
            [[float(cells[(a, c)]["accuracy"]) if (a, c) in cells else np.nan for c in columns] for a in archs]
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
            f"{experiment} · {stage} · {dataset} — accuracy" if stage else f"{experiment} · {dataset}",
            fontsize=9,
        )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_results(out: str | Path, rows: list[dict]) -> None:
    """results.csv, results.md and the heatmap, each replaced atomically."""
    out = Path(out)
    write_csv_rows(out / RESULTS_CSV, RESULT_COLUMNS, rows)
    if rows:
        atomic_write(out / RESULTS_MD, results_markdown(rows) + "\n")
        plot_heatmap(out / HEATMAP, rows)


def write_csv_rows(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """A CSV of `rows` (keys outside `columns` ignored), replaced atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


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
    for (experiment, stage, dataset), group in _tables(rows).items():
        archs, columns, cells = _grid(group)
        for prefix in _score_sets(group):
            what = SCORE_SETS[prefix]
            table = Table(
                title=f"{experiment} · {stage} · {dataset}  ({what}: accuracy / macro-F1)", title_justify="left"
            )
            table.add_column("arch")
            for column in columns:
                table.add_column(column, justify="right")
            for arch in archs:
                table.add_row(arch, *[_score(cells[(arch, c)], prefix) if (arch, c) in cells else "–" for c in columns])
            tables.append(table)
    return tables
