"""Figures of a finished training or evaluation: curves, the LR range test, confusion matrices, scatters, circumplex,
mood bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._plumbing.files import atomic_path
from ..runs.layout import CIRCUMPLEX_FILE, scatter_file

AROUSAL = ("arousal", "energy")  # the circumplex's vertical axis, by the names data sets give it


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
    """Training/validation loss and the validation scores (accuracy/macro-F1, or CCC) per epoch (a refit's run
    has no validation: its training loss alone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in history]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("train_loss", "o-"), ("valid_loss", "s-")):
        if key in history[0]:
            loss_ax.plot(epochs, [row[key] for row in history], style, label=key.replace("_", " "))
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    scores = [key for key in history[0] if key not in ("epoch", "seconds") and not key.endswith("loss")]
    for key, style in zip(scores, ("o-", "s-", "^-", "v-")):
        score_ax.plot(epochs, [row[key] for row in history], style, label=key.replace("_", " "))
    score_ax.set_xlabel("epoch")
    score_ax.set_ylim(min([0, *(row[key] for row in history for key in scores)]), 1)
    score_ax.set_ylabel("validation score")
    if scores:
        score_ax.legend()
    else:
        score_ax.text(0.5, 0.5, "no validation clips", ha="center", va="center", transform=score_ax.transAxes)
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_lr_find(path: Path, lrs: list[float], losses: list[float], suggestions: dict[str, float]) -> Path:
    """The LR range test: loss against learning rate (the last 5 steps left out), each suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs, losses = np.array(lrs), np.array(losses)
    keep = slice(0, -5) if len(lrs) > 10 else slice(None)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs[keep], losses[keep])
    for (name, value), color in zip(suggestions.items(), ("red", "green", "orange")):
        ax.axvline(value, color=color, linestyle="--", label=f"{name}: {value:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
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


def save_figure(fig, path: Path, dpi: int) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


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
