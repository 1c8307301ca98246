"""`mer-fastai embed`: a trained model's penultimate-layer features per window and per track, and a map."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .._plumbing.progress import console
from ..data.labelsource import LabelSource
from . import options
from .predict import Bs, Device, Hop, Model, Precision, Window, Workers


@options.with_label_options("labels", "id_column", "label_column", "cuts", "skip_unlabeled")
def command(
    model: Path = Model,
    audio: list[Path] = typer.Argument(..., help="Audio files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Embeddings file: .npz (always) or .parquet (needs pyarrow)."),
    source: LabelSource = ...,  # the label options (`options.with_label_options`)
    feature: str = options.feature_option(required=False),
    show_map: bool = typer.Option(
        False,
        "--map",
        help="Also draw a 2-D map of the tracks (UMAP if umap-learn is installed, else t-SNE or PCA) as "
        "<out>-map.png and <out>-map.html, coloured by label and by prediction.",
    ),
    window: float = Window,
    hop: float = Hop,
    bs: int = Bs,
    device: str = Device,
    precision: str = Precision,
    workers: int = Workers,
) -> None:
    """Use a trained model as a feature extractor: features per window and per track (mean of its windows); a
    musicnn model also writes musicnn's 50 tag probabilities to <out>-tags.csv."""
    from ..inference.embed import embed_audio
    from ..inference.embed_files import check_embed_out, check_embed_owner, tags_file, write_embeddings
    from ..inference.embed_map import check_map_out, map_files, write_map
    from ..inference.predict import Predictor
    from ..inference.track_head import windows_notes
    from ..runs.inputs import refuse_input_out

    check_embed_out(out)
    refuse_input_out([out, tags_file(out), *(map_files(out) if show_map else ())], model, audio, source.labels)
    check_embed_owner(out)
    if show_map:
        check_map_out(out)
    predictor = Predictor.load(model, device=device, bs=bs, precision=precision, workers=workers)
    embeddings = embed_audio(
        predictor,
        audio,
        labels=source,
        feature=feature,
        window=window,
        hop=hop,
        progress=True,
    )
    write_embeddings(embeddings, out)
    width = embeddings.track_features[0].shape[0]
    console.print(
        f"{len(embeddings.track_file)} track(s), {len(embeddings.window_file)} window(s) × {width} features "
        f"written to [bold]{escape(str(out))}"
    )
    if embeddings.tags:
        where = escape(str(tags_file(out)))
        console.print(f"{len(embeddings.tags)} {embeddings.tagger} tag probabilities written to [bold]{where}")
    if show_map:
        png, html, method = write_map(embeddings, out)
        console.print(f"map ({method}): [bold]{escape(str(png))}[/] and [bold]{escape(str(html))}")
    for note in windows_notes(predictor, embeddings.window, embeddings.hop):
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    for item in embeddings.skipped:
        console.print(f"  [yellow]skipped[/] {escape(f'{item.file}: {item.reason}')}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("embed")(command)
