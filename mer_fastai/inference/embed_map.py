"""`embed --map`: a 2-D map of the tracks in the model's feature space, as a figure and a report-style page."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._plumbing.files import atomic_write, check_replaceable
from .embed import Embeddings
from .embed_files import refuse_embed_inputs
from .own_files import is_map_figure, is_map_page


def map_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows: UMAP when umap-learn is installed, else t-SNE, else (few points) PCA."""
    n = len(features)
    if n >= 5:
        try:
            import umap

            reducer = umap.UMAP(n_neighbors=max(2, min(15, n - 1)), random_state=seed)
            return np.asarray(reducer.fit_transform(features)), "umap"
        except ImportError:
            from sklearn.manifold import TSNE

            perplexity = float(min(30.0, (n - 1) / 3))
            return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features), "t-SNE"
    from sklearn.decomposition import PCA

    coords = PCA(min(2, n, features.shape[1])).fit_transform(features) if n > 1 else np.zeros((n, 1))
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1]))), "PCA"


def map_files(out: str | Path) -> tuple[Path, Path]:
    """Where `write_map` puts the map of the embeddings file `out`: `<out stem>-map.png` and `-map.html`."""
    out = Path(out)
    return out.with_name(f"{out.stem}-map.png"), out.with_name(f"{out.stem}-map.html")


def check_map_out(out: str | Path) -> tuple[Path, Path]:
    """`map_files(out)`, each new, empty or embed's own earlier map; anything else is refused in one line."""
    png, html = map_files(out)
    return check_replaceable(png, is_map_figure, "embed"), check_replaceable(html, is_map_page, "embed")


def write_map(embeddings: Embeddings, out: str | Path) -> tuple[Path, Path, str]:
    """The track map as `map_files(out)` beside `out`; returns both and the method."""
    png, html = map_files(out)
    refuse_embed_inputs([png, html], embeddings)
    check_map_out(out)
    xy, method = map_2d(np.stack(embeddings.track_features))
    plot_map(png, xy, embeddings, method)
    atomic_write(html, map_page(embeddings, xy, method, png))
    return png, html, method


def plot_map(path: Path, xy: np.ndarray, embeddings: Embeddings, method: str) -> Path:
    """One panel coloured by label (when labels were given) and one by the model's prediction (a regression
    model's: its first target's value, on a colour scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report.figures import save_figure

    panels = [("label", embeddings.track_label)] if embeddings.labelled else []
    panels.append(("prediction", embeddings.track_predicted))
    names = list(dict.fromkeys([*embeddings.classes, *embeddings.track_label]))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(n for n in names if n)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (what, values) in zip(axes[0], panels):
        if what == "prediction" and embeddings.task.facts.predicts_values:
            _value_panel(fig, ax, xy, embeddings)
            continue
        for name in dict.fromkeys(values):
            where = [i for i, v in enumerate(values) if v == name]
            ax.scatter(xy[where, 0], xy[where, 1], s=36, color=colours.get(name, "grey"), label=name or "unlabelled")
        ax.set_title(f"coloured by {what}", fontsize=10)
        ax.legend(fontsize=8, loc="best")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{len(xy)} tracks · {method} of the penultimate-layer features", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _value_panel(fig, ax, xy: np.ndarray, embeddings: Embeddings) -> None:
    """The tracks coloured by the first target's predicted value."""
    values = [outputs[0] for outputs in embeddings.track_outputs]
    points = ax.scatter(xy[:, 0], xy[:, 1], s=36, c=values, cmap="viridis")
    fig.colorbar(points, ax=ax, label=f"predicted {embeddings.classes[0]}")
    ax.set_title("coloured by prediction", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def map_page(embeddings: Embeddings, xy: np.ndarray, method: str, png: Path) -> str:
    """The map as a page of the report templates: the figure inlined, one table row per track."""
    from ..report.html.templating import data_uri, render

    facts = [
        ("model", embeddings.model or "–"),
        ("tracks", str(len(embeddings.track_file))),
        ("windows", str(len(embeddings.window_file))),
        ("map", f"{method} of the track vectors (mean of each track's window features)"),
        ("window", f"{embeddings.window:g} s every {embeddings.hop:g} s"),
        ("skipped files", str(len(embeddings.skipped))),
    ]
    tracks = [
        {"clip_id": c, "windows": w, "label": label or "–", "predicted": p, "x": float(x), "y": float(y)}
        for c, w, label, p, (x, y) in zip(
            embeddings.track_clip_id,
            embeddings.track_windows,
            embeddings.track_label or [""] * len(xy),
            embeddings.track_predicted,
            xy,
        )
    ]
    page = {"facts": facts, "map": {"src": data_uri(png), "caption": png.name}, "tracks": tracks}
    return render("embed.html.j2", f"Embedding map of {len(tracks)} tracks", embeddings.model or "", page=page)
