"""`mer-fastai prepare`: audio + labels → spectrogram data set."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .._plumbing.progress import console
from ..data.labelsource import LabelSource
from ..data.spectrogram import SpecConfig
from ..tasks.registry import TASKS
from . import options

# every registered task, with what its labels are (the registry imports no heavy library: `--help` stays quick)
TASK_HELP = ", ".join(
    f"{name} ({task.facts.described}{', the default' if task.is_default else ''})" for name, task in TASKS.items()
)


@options.with_spec_options
@options.with_label_options(
    "labels", "group_by", "id_column", "label_column", "cuts", "skip_unlabeled", "targets", "threshold",
    "allow_outliers",
    helps={
        "group_by": "Labels column whose values never straddle the split (e.g. Artist).",
        "targets": "Regression: a numeric labels column to learn (repeatable, e.g. --target valence --target energy); "
        "multilabel: a mood column (0/1 or vote share). Blank/NaN cells are refused like labels.",
        "threshold": "Multilabel from --target mood columns: a mood holds for a clip when its value is above 0 and at "
        "least this fraction of the clip's largest value (default 0.5: vote shares keep the moods chosen by at "
        "least half as many listeners as the top one; 0/1 flags are read as they are).",
    },
)  # fmt: skip
def command(
    audio_dir: Path = typer.Argument(
        ..., help="Folder of audio clips, searched recursively (links followed); --out must lie outside it."
    ),
    source: LabelSource = ...,  # the label options (`options.with_label_options`)
    feature: str = options.feature_option(required=True),
    task: str = typer.Option(
        None,
        "--task",
        help=TASK_HELP,
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the data set (train/, valid/, test/ with --test-pct, manifest.csv)."
    ),
    spec: SpecConfig = ...,  # the spectrogram options (`options.with_spec_options`)
    valid_pct: float = typer.Option(0.2, "--valid-pct", help="Share of clips (or groups) held out for validation."),
    test_pct: float = typer.Option(
        0.0,
        "--test-pct",
        help="Share of clips (or groups) held out as a test split, chosen first, grouped and stratified like "
        "validation; training never reads it, the final model is scored on it once.",
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed of the split."),
    workers: int = typer.Option(None, "--workers", help="Parallel processes (default: all cores)."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace a data set made with other settings in --out: deletes only that data set's own files (its "
        "images, manifest.csv, dataset.json, spectrogram.json, progress journal); anything else there stays.",
    ),
) -> None:
    """Turn audio clips and labels into a mel-spectrogram data set (ImageFolder layout)."""
    from ..preparation.prepare import prepare_dataset

    result = prepare_dataset(
        audio_dir,
        out,
        feature,
        source,
        spec=spec,
        valid_pct=valid_pct,
        test_pct=test_pct,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        task=task,
    )
    print_summary(result)


def print_summary(result) -> None:
    from rich.table import Table

    table = Table(title=f"data set {result.out_dir}", title_justify="left")
    table.add_column("class")
    splits = list(result.counts)  # train, valid (and test)
    for split in splits:
        table.add_column(split, justify="right")
    for name in result.classes:
        table.add_row(name, *(str(result.counts[split].get(name, 0)) for split in splits))
    console.print(table)
    console.print(f"{result.clips} clips → {result.segments} spectrograms ({result.reused} reused from an earlier run)")
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} file(s):")
        for item in result.skipped:
            console.print(f"  [yellow]{escape(item['reason'])}", soft_wrap=True, highlight=False)
    for note in result.notes:
        console.print(f"  [yellow]{escape(note)}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("prepare")(command)
