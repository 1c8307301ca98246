"""`embed`: a trained model as a feature extractor, and a 2-D map of the music in its feature space.

The features are the model's penultimate layer: the input of the head's final `Linear` (fastai's model
is `nn.Sequential(body, head)`; the head pools and flattens the body's output), taken with a forward
hook. Every window of a file gives one vector; a track's vector is the mean of its windows. The features do
not depend on the task; the `predicted` columns do (`Predictor.describe`): a class, the moods joined by ";",
or `target=value` pairs joined by ";" (a track's from the mean of its windows' outputs).

A musicnn model (`musicnn-msd`, `musicnn-mtt`) also gives musicnn's 50 tag probabilities per window and per
track (mean of its windows), computed on the same windows by the ORIGINAL pretrained tagger (its weights from
the user cache, `mer-fastai weights get musicnn`), not by the fine-tuned body: `write_embeddings` puts them in
`<out stem>-tags.csv` beside the embeddings. An ensemble has one feature vector per member and is refused.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._plumbing.files import atomic_path, atomic_write, check_output_file
from .._plumbing.progress import progress_bar
from ..data.audio import SkippedFile, find_audio_files
from ..data.labels import clip_id, label_table, labelled_files
from ..errors import AudioError, MerError
from ..runs.inputs import refuse_input_out

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .predict import Predictor

EMBED_FORMATS = (".npz", ".parquet")
MAP_METHODS = ("umap", "t-SNE", "PCA")


@dataclass
class Embeddings:
    """Window and track features with where they come from; labels when a labels file was given."""

    classes: list[str]
    window: float
    hop: float
    model: str | None = None
    feature: str | None = None
    task: str = "classification"
    window_features: list[np.ndarray] = field(default_factory=list)
    window_file: list[str] = field(default_factory=list)
    window_clip_id: list[str] = field(default_factory=list)
    window_start: list[float] = field(default_factory=list)
    window_predicted: list[str] = field(default_factory=list)
    window_label: list[str] = field(default_factory=list)
    track_features: list[np.ndarray] = field(default_factory=list)
    track_file: list[str] = field(default_factory=list)
    track_clip_id: list[str] = field(default_factory=list)
    track_windows: list[int] = field(default_factory=list)
    track_predicted: list[str] = field(default_factory=list)
    track_label: list[str] = field(default_factory=list)
    track_outputs: list[np.ndarray] = field(default_factory=list)  # mean window outputs (probabilities or values)
    skipped: list[SkippedFile] = field(default_factory=list)
    # a musicnn model's: the original tagger's name, its tag names and probabilities (windows and track means)
    tagger: str | None = None
    tags: tuple[str, ...] = ()
    window_tags: list[np.ndarray] = field(default_factory=list)
    track_tags: list[np.ndarray] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return any(self.track_label)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every column as a numpy array (features as float32 matrices), the layout of the .npz file."""
        width = self.track_features[0].shape[0] if self.track_features else 0
        return {
            "window_features": np.stack(self.window_features) if self.window_features else np.zeros((0, width)),
            "window_file": np.array(self.window_file, dtype=str),
            "window_clip_id": np.array(self.window_clip_id, dtype=str),
            "window_start": np.array(self.window_start, dtype=np.float64),
            "window_predicted": np.array(self.window_predicted, dtype=str),
            "window_label": np.array(self.window_label, dtype=str),
            "track_features": np.stack(self.track_features) if self.track_features else np.zeros((0, width)),
            "track_file": np.array(self.track_file, dtype=str),
            "track_clip_id": np.array(self.track_clip_id, dtype=str),
            "track_windows": np.array(self.track_windows, dtype=np.int64),
            "track_predicted": np.array(self.track_predicted, dtype=str),
            "track_label": np.array(self.track_label, dtype=str),
            "classes": np.array(self.classes, dtype=str),
        }

    def info(self) -> dict:
        """What made the embeddings (stored as JSON in the output)."""
        return {
            "model": self.model,
            "feature": self.feature,
            "window": self.window,
            "hop": self.hop,
            "layer": "input of the head's final Linear",
            **({"tagger": self.tagger} if self.tagger else {}),
            "skipped": [{"file": s.file, "reason": s.reason} for s in self.skipped],
        }


def embed_audio(
    predictor: Predictor,
    paths: Iterable[str | Path],
    *,
    labels: str | Path | None = None,
    feature: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    cuts: list[float] | None = None,
    skip_unlabeled: bool = False,
    window: float | None = None,
    hop: float | None = None,
    progress: bool = False,
) -> Embeddings:
    """Features of audio files and folders (searched recursively); clip ids are relative to the folder given.

    With `labels` (any layout `prepare` reads) each clip gets its label, matched as `evaluate` does; a
    file without a row is an error unless `skip_unlabeled` (then it is left out, like clips the feature
    excludes). Undecodable files are skipped with their reason. A musicnn model's tags come with the features
    (see the module); an ensemble is refused before any work.
    """
    predictor.features([])  # no work: one line for an ensemble or a network without a Linear head
    seconds, step = predictor.window_settings(window, hop)
    files = _files_by_root(paths)
    feature = feature or predictor.feature or "emotions"
    truth, skipped = _labels(predictor, files, labels, feature, id_column, label_column, cuts, skip_unlabeled)
    source = str(predictor.source) if predictor.source else None
    result = Embeddings(predictor.classes, seconds, step, source, feature, predictor.task)
    result.skipped = skipped
    tagger = _tagger(predictor, result)
    todo = [(file, name) for file, name, _ in files if labels is None or file in truth]
    with progress_bar("embedding", total=len(todo), enabled=progress) as advance:
        for file, name in todo:
            try:
                _add_track(result, predictor, tagger, file, name, truth.get(file, ""), seconds, step)
            except AudioError as exc:
                result.skipped.append(SkippedFile(str(file), str(exc).removeprefix(f"{file}: ")))
            advance()
    if not result.track_features:
        raise MerError("no audio file could be embedded; see the skipped files and check the paths")
    return result


def _files_by_root(paths: Iterable[str | Path]) -> list[tuple[Path, str, Path]]:
    """(file, clip id, folder) of every audio file; the id is the path relative to the folder given (a file
    given directly: its name without extension, relative to its own folder)."""
    found = []
    paths = list(paths)
    for root in map(Path, paths):
        base = root if root.is_dir() else root.parent
        found += [(file, clip_id(base, file), base) for file in find_audio_files(root)]
    if not found:
        raise MerError(f"{', '.join(map(str, paths))}: no audio files (.mp3 .wav .flac .ogg ...) found; check the path")
    return found


def _labels(
    predictor: Predictor,
    files: list[tuple[Path, str, Path]],
    labels: str | Path | None,
    feature: str,
    id_column: str | None,
    label_column: str | None,
    cuts: list[float] | None,
    skip_unlabeled: bool,
) -> tuple[dict[Path, str], list[SkippedFile]]:
    """Each file's label from the labels file, matched per folder given as `evaluate` matches them."""
    if labels is None:
        return {}, []
    if cuts is None and feature == predictor.feature and predictor.meta.cuts is not None:
        cuts = list(predictor.meta.cuts)  # as training binned the ratings
    by_base: dict[Path, list[Path]] = {}
    for file, _, base in files:
        by_base.setdefault(base, []).append(file)
    truth: dict[Path, str] = {}
    skipped: list[SkippedFile] = []
    for base, group in by_base.items():
        table = label_table(
            base, group, labels, feature, id_column=id_column, label_column=label_column, cuts=cuts,
            skip_unlabeled=skip_unlabeled,
        )  # fmt: skip
        matched, left_out = labelled_files(base, group, table, skip_unlabeled)
        truth.update({file: clip.label for file, _, clip in matched})
        skipped += left_out
    if not truth:
        raise MerError(f"{labels}: no audio file matches a labelled id; check ids and --feature")
    return truth, skipped


def _tagger(predictor: Predictor, result: Embeddings) -> nn.Module | None:
    """The original pretrained musicnn tagger of a musicnn model (its name and tags noted in `result`), else None;
    missing weights are one line naming `mer-fastai weights get musicnn`."""
    from ..models.archs import MUSICNN, get_arch

    spec = get_arch(predictor.meta.arch)
    if spec.source != MUSICNN:
        return None
    from ..models.musicnn.tags import TAGS
    from ..models.musicnn.weights import MODELS, load_musicnn

    result.tagger, result.tags = MODELS[spec.model_name], TAGS[spec.model_name]
    return load_musicnn(spec.model_name).to(predictor.device)


def tag_probabilities(tagger: nn.Module, images: list[np.ndarray], device: torch.device, bs: int) -> np.ndarray:
    """musicnn's tag probabilities (windows × tags): its 16-bit window images scaled as the loaders scale them,
    turned into musicnn's log-mel input by `transfer.SpectrogramInput`, through the tagger and a sigmoid."""
    import torch

    from ..models.musicnn.transfer import PIXEL_SCALE, SpectrogramInput

    to_input, outputs = SpectrogramInput(), []
    with torch.inference_mode():
        for start in range(0, len(images), bs):
            pixels = torch.from_numpy(np.stack(images[start : start + bs]).astype(np.float32))[:, None]
            outputs.append(torch.sigmoid(tagger(to_input(pixels.to(device) / PIXEL_SCALE))).float().cpu())
    return torch.cat(outputs).numpy()


def _add_track(
    result: Embeddings,
    predictor: Predictor,
    tagger: nn.Module | None,
    file: Path,
    name: str,
    label: str,
    seconds: float,
    step: float,
) -> None:
    _, starts, images = predictor.window_images(file, seconds, step)
    if tagger is not None:
        tags = tag_probabilities(tagger, images, predictor.device, predictor.bs)
        result.window_tags += list(tags)
        result.track_tags.append(tags.mean(axis=0))
    features, logits = predictor.features(images)
    probs = predictor.outputs(logits)
    vectors = features.numpy().astype(np.float32)
    for start, vector, p in zip(starts, vectors, probs, strict=True):
        result.window_features.append(vector)
        result.window_file.append(str(file))
        result.window_clip_id.append(name)
        result.window_start.append(float(start))
        result.window_predicted.append(predictor.describe(p))
        result.window_label.append(label)
    result.track_features.append(vectors.mean(axis=0))
    result.track_file.append(str(file))
    result.track_clip_id.append(name)
    result.track_windows.append(len(starts))
    result.track_predicted.append(predictor.describe(probs.mean(axis=0)))
    result.track_outputs.append(probs.mean(axis=0))
    result.track_label.append(label)


# ---------------------------------------------------------------- output


def check_embed_out(out: str | Path) -> Path:
    """`--out` as an .npz or .parquet file; .parquet needs pyarrow. Checked before any work is done."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EMBED_FORMATS:
        raise MerError(f"--out {out}: unknown extension; use .npz or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise MerError(f"--out {out}: writing parquet needs pyarrow; use .npz or `pip install pyarrow`") from exc
    return check_output_file(out, "--out")


def write_embeddings(embeddings: Embeddings, out: str | Path) -> Path:
    """Write .npz (arrays named as `Embeddings.arrays`, plus `info` JSON) or .parquet (one row per window
    and per track, `level` telling which, `features` a list column; `info` in the file's metadata); a musicnn
    model's tags also as `tags_file(out)` (see `write_tags`)."""
    out = check_embed_out(out)
    refuse_embed_inputs([out, *([tags_file(out)] if embeddings.tags else [])], embeddings)
    info = json.dumps(embeddings.info())
    if out.suffix.lower() == ".npz":
        with atomic_path(out) as tmp, tmp.open("wb") as handle:
            np.savez_compressed(handle, info=np.array(info), **embeddings.arrays())
    else:
        _write_parquet(embeddings, out, info)
    if embeddings.tags:
        write_tags(embeddings, tags_file(out))
    return out


def tags_file(out: str | Path) -> Path:
    """Where `write_embeddings` puts a musicnn model's tag probabilities: `<out stem>-tags.csv` beside `out`."""
    out = Path(out)
    return out.with_name(f"{out.stem}-tags.csv")


def write_tags(embeddings: Embeddings, path: Path) -> Path:
    """The tag probabilities as CSV: one row per window, then one per track (the mean of its windows); columns
    level (window or track), file, clip_id, start (empty for a track), windows, then one column per tag."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["level", "file", "clip_id", "start", "windows", *embeddings.tags])
        e = embeddings
        for file, clip, start, tags in zip(e.window_file, e.window_clip_id, e.window_start, e.window_tags, strict=True):
            writer.writerow(["window", file, clip, f"{start:.3f}", 1, *(f"{p:.6f}" for p in tags)])
        for file, clip, count, tags in zip(e.track_file, e.track_clip_id, e.track_windows, e.track_tags, strict=True):
            writer.writerow(["track", file, clip, "", count, *(f"{p:.6f}" for p in tags)])
    return path


def refuse_embed_inputs(outputs: list[Path], embeddings: Embeddings) -> None:
    """One line when a file to write is the model the embeddings came from or one of its audio files."""
    refuse_input_out(outputs, embeddings.model, [*embeddings.track_file, *(item.file for item in embeddings.skipped)])


def _write_parquet(embeddings: Embeddings, out: Path, info: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    a = embeddings.arrays()
    n_windows, n_tracks = len(a["window_file"]), len(a["track_file"])
    columns = {
        "level": ["window"] * n_windows + ["track"] * n_tracks,
        "file": [*a["window_file"], *a["track_file"]],
        "clip_id": [*a["window_clip_id"], *a["track_clip_id"]],
        "start": [*a["window_start"].tolist(), *[None] * n_tracks],
        "windows": [1] * n_windows + a["track_windows"].tolist(),
        "label": [*a["window_label"], *a["track_label"]],
        "predicted": [*a["window_predicted"], *a["track_predicted"]],
        "features": [*a["window_features"].tolist(), *a["track_features"].tolist()],
    }
    table = pa.table(columns).replace_schema_metadata({"mer_fastai": info})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out


# ---------------------------------------------------------------- map


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


def write_map(embeddings: Embeddings, out: str | Path) -> tuple[Path, Path, str]:
    """The track map as `map_files(out)` beside `out`; returns both and the method."""
    png, html = map_files(out)
    refuse_embed_inputs([png, html], embeddings)
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

    from ..plots.figures import save_figure

    panels = [("label", embeddings.track_label)] if embeddings.labelled else []
    panels.append(("prediction", embeddings.track_predicted))
    names = list(dict.fromkeys([*embeddings.classes, *embeddings.track_label]))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(n for n in names if n)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (what, values) in zip(axes[0], panels):
        if what == "prediction" and embeddings.task == "regression":
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
    from ..report.html.page import data_uri, render

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
