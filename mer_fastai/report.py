"""Metrics, plots and tables of a finished training or evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.table import Table

from .files import atomic_path, atomic_write

CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
TRACK_CONFUSION_FILE = "track_confusion_matrix.png"
METRICS_FILE = "metrics.json"
REPORT_FILE = "classification_report.txt"
CIRCUMPLEX_FILE = "circumplex.png"
LABELS_FILE = "per_label.png"  # multilabel: precision, recall, F1 and AP per mood
AROUSAL = ("arousal", "energy")  # the circumplex's vertical axis, by the names data sets give it


def scatter_file(target: str) -> str:
    """The predicted-vs-true scatter plot of one regression target."""
    return f"scatter_{target}.png"


def classification_metrics(targets: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Every class has a per-class entry (support 0 when it has no item here). Macro averages are over the
    classes that occur as a target or a prediction, as fastai's training metric computes them: a class
    absent from the evaluated items and never predicted has no F1 and does not pull the average to 0.
    `absent_classes` names the classes without any item.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(targets, predicted)),
        "macro_f1": float(
            f1_score(targets, predicted, labels=_scored(targets, predicted), average="macro", zero_division=0)
        ),
        "classes": list(classes),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "absent_classes": [name for i, name in enumerate(classes) if support[i] == 0],
        "confusion_matrix": confusion_matrix(targets, predicted, labels=labels).tolist(),
    }


def _scored(targets: np.ndarray, predicted: np.ndarray) -> list[int]:
    """Class indices that occur as a target or a prediction: the ones macro averages are taken over."""
    return sorted({int(i) for i in np.concatenate([np.ravel(targets), np.ravel(predicted)])})


def text_report(targets: np.ndarray, predicted: np.ndarray, classes: list[str]) -> str:
    """sklearn's classification report over the classes that occur; classes without items are named below it."""
    from sklearn.metrics import classification_report

    scored = _scored(targets, predicted)
    report = classification_report(
        targets, predicted, labels=scored, target_names=[classes[i] for i in scored], digits=3, zero_division=0
    )
    missing = [name for i, name in enumerate(classes) if i not in scored]
    if missing:
        report += f"\nno item and no prediction (left out of the averages): {', '.join(missing)}\n"
    return report


def plot_confusion(path: Path, matrix: list[list[int]], classes: list[str], title: str) -> Path:
    """Confusion matrix with counts, rows = true class, columns = predicted class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix)
    side = 1.6 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    shown = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    threshold = counts.max() / 2 if counts.size else 0
    for (row, col), value in np.ndenumerate(counts):
        ax.text(col, row, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_curves(path: Path, history: list[dict], title: str) -> Path:
    """Training/validation loss and the validation scores (accuracy/macro-F1, or CCC) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in history]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("train_loss", "o-"), ("valid_loss", "s-")):
        loss_ax.plot(epochs, [row[key] for row in history], style, label=key.replace("_", " "))
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    scores = [key for key in history[0] if key not in ("epoch", "seconds") and not key.endswith("loss")]
    for key, style in zip(scores, ("o-", "s-", "^-", "v-")):
        score_ax.plot(epochs, [row[key] for row in history], style, label=key.replace("_", " "))
    score_ax.set_xlabel("epoch")
    score_ax.set_ylim(min(0, *(row[key] for row in history for key in scores)), 1)
    score_ax.set_ylabel("validation score")
    score_ax.legend()
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_scatter(
    path: Path, predicted: np.ndarray, true: np.ndarray, scale: list[float], name: str, title: str
) -> Path:
    """Predicted against true values of one target (one point per track), with the identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    ax.plot(scale, scale, "--", color="grey", linewidth=1, label="perfect")
    ax.scatter(true, predicted, s=18, alpha=0.8)
    ax.set_xlim(*scale)
    ax.set_ylim(*scale)
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def circumplex_axes(targets: list[str]) -> tuple[int, int] | None:
    """Indices of valence and arousal (or energy) among the targets, if both are there."""
    lower = [name.lower() for name in targets]
    arousal = next((lower.index(name) for name in AROUSAL if name in lower), None)
    return (lower.index("valence"), arousal) if "valence" in lower and arousal is not None else None


def plot_circumplex(
    path: Path,
    predicted: np.ndarray,
    true: np.ndarray,
    axes: tuple[int, int],
    targets: list[str],
    scale: dict,
    title: str,
) -> Path:
    """The valence–arousal plane (Russell's circumplex): each clip's true point joined to its predicted one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = axes
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    for t, p in zip(true, predicted):
        ax.plot([t[x], p[x]], [t[y], p[y]], color="grey", linewidth=0.7, alpha=0.7)
    ax.scatter(true[:, x], true[:, y], s=20, label="true", color="tab:blue")
    ax.scatter(predicted[:, x], predicted[:, y], s=20, marker="x", label="predicted", color="tab:red")
    (x_low, x_high), (y_low, y_high) = scale[targets[x]], scale[targets[y]]
    ax.axvline((x_low + x_high) / 2, color="black", linewidth=0.6)
    ax.axhline((y_low + y_high) / 2, color="black", linewidth=0.6)
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel(targets[x])
    ax.set_ylabel(targets[y])
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_value_tracks(
    folder: Path, prefix: str, predicted: np.ndarray, true: np.ndarray, targets: list[str], scale: dict, title: str
) -> None:
    """A regression's pictures of its tracks' (n_tracks, n_targets) values: `<prefix>scatter_<target>.png` per
    target and, with valence plus arousal or energy, `<prefix>circumplex.png`."""
    for i, name in enumerate(targets):
        plot_scatter(folder / (prefix + scatter_file(name)), predicted[:, i], true[:, i], scale[name], name, title)
    axes = circumplex_axes(targets)
    if axes:
        plot_circumplex(folder / (prefix + CIRCUMPLEX_FILE), predicted, true, axes, targets, scale, title)


def write_json(path: Path, values: dict) -> Path:
    """Write JSON atomically, so an interrupted run never leaves half a file."""
    return atomic_write(path, json.dumps(values, indent=2) + "\n")


def save_figure(fig, path: Path, dpi: int) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


def summary_table(metrics: dict, title: str) -> Table:
    """Rich table: one row per class plus the overall scores; a training's metrics (with a `track` block)
    add the track scores and, with a `test` block, the test split's window and track scores."""
    table = Table(title=title, title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, scores in metrics["per_class"].items():
        table.add_row(
            name,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            str(scores["support"]),
        )
    total = sum(s["support"] for s in metrics["per_class"].values())
    table.add_section()
    table.add_row("[bold]accuracy", "", "", f"[bold]{metrics['accuracy']:.3f}", str(total))
    table.add_row("[bold]macro F1", "", "", f"[bold]{metrics['macro_f1']:.3f}", str(total))
    _score_rows(table, metrics, "")
    if metrics.get("test"):
        table.add_section()
        test = metrics["test"]
        table.add_row("[bold]test accuracy", "", "", f"[bold]{test['accuracy']:.3f}", str(test["n_windows"]))
        table.add_row("[bold]test macro F1", "", "", f"[bold]{test['macro_f1']:.3f}", str(test["n_windows"]))
        _score_rows(table, test, "test ")
    return table


def regression_table(metrics: dict, title: str) -> Table:
    """Rich table of a regression run: per target (and their mean) CCC, r, R², RMSE, MAE over windows and
    tracks, and with a `test` block the test split's."""
    table = Table(title=title, title_justify="left")
    for column in ("target", "level", "CCC", "r", "R²", "RMSE", "MAE"):
        table.add_column(column, justify="left" if column in ("target", "level") else "right")
    blocks = [("", metrics), *([("test ", metrics["test"])] if metrics.get("test") else [])]
    for prefix, block in blocks:
        table.add_section()
        for level, scores in ((f"{prefix}windows", block), (f"{prefix}tracks", block["track"])):
            for name, values in [*scores["per_target"].items(), ("[bold]mean", scores)]:
                table.add_row(name, level, *(_cell(values[key]) for key in ("ccc", "pearson_r", "r2", "rmse", "mae")))
    return table


def multilabel_table(metrics: dict, title: str) -> Table:
    """Rich table of a multilabel run: per mood precision/recall/F1/AP/support of the windows, then micro and
    macro F1 and mAP of windows and tracks (and of the test split)."""
    table = Table(title=f"{title} — threshold {metrics['threshold']}", title_justify="left")
    for column in ("mood", "precision", "recall", "F1", "AP", "support"):
        table.add_column(column, justify="left" if column == "mood" else "right")
    for name, scores in metrics["per_label"].items():
        cells = (_cell(scores[key]) for key in ("precision", "recall", "f1", "ap"))
        table.add_row(name, *cells, str(scores["support"]))
    blocks = [("", metrics), *([("test ", metrics["test"])] if metrics.get("test") else [])]
    for prefix, block in blocks:
        table.add_section()
        for level, scores, count in ((f"{prefix}windows", block, block["n_windows"]),
                                     (f"{prefix}tracks", block["track"], block["n_tracks"])):  # fmt: skip
            for key, name in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP")):
                table.add_row(f"[bold]{level} {name}", "", "", f"[bold]{_cell(scores[key])}", "", str(count))
    return table


def plot_label_bars(path: Path, per_label: dict, title: str) -> Path:
    """Grouped bars of precision, recall, F1 and AP per mood."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    moods, keys = list(per_label), ("precision", "recall", "f1", "ap")
    positions = np.arange(len(moods))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(moods) + 2), 4))
    for i, key in enumerate(keys):
        values = [per_label[mood][key] or 0.0 for mood in moods]
        ax.bar(positions + (i - 1.5) * 0.2, values, width=0.2, label=key)
    ax.set_xticks(positions, moods, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=9)
    ax.legend(ncol=4, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _score_rows(table: Table, metrics: dict, prefix: str) -> None:
    """The track accuracy and macro-F1 rows of metrics with a `track` block (support: tracks)."""
    track = metrics.get("track")
    if track:
        tracks = str(metrics["n_tracks"])
        table.add_row(f"[bold]{prefix}track accuracy", "", "", f"[bold]{track['accuracy']:.3f}", tracks)
        table.add_row(f"[bold]{prefix}track macro F1", "", "", f"[bold]{track['macro_f1']:.3f}", tracks)
