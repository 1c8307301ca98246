"""`mer-fastai prepare`: audio + labels → spectrogram data set."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .._plumbing.progress import console
from ..errors import MerError
from . import options


def command(
    audio_dir: Path = typer.Argument(
        ..., help="Folder of audio clips, searched recursively (links followed); --out must lie outside it."
    ),
    labels: Path = options.Labels,
    feature: str = options.feature_option(required=True),
    task: str = typer.Option(
        None,
        "--task",
        help="classification (classes, the default), regression (numeric --target columns; implied by --target) "
        "or multilabel (a set of moods per clip: --label-column of ';'-separated moods, or one --target per mood "
        "with 0/1 flags or vote shares).",
    ),
    target: list[str] = typer.Option(
        None,
        "--target",
        help="Regression: a numeric labels column to learn (repeatable, e.g. --target valence --target energy); "
        "multilabel: a mood column (0/1 or vote share). Blank/NaN cells are refused like labels.",
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Multilabel from --target mood columns: a mood holds for a clip when its value is above 0 and at "
        "least this fraction of the clip's largest value (default 0.5: vote shares keep the moods chosen by at "
        "least half as many listeners as the top one; 0/1 flags are read as they are).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the data set (train/, valid/, test/ with --test-pct, manifest.csv)."
    ),
    spectrogram: str = typer.Option(
        None,
        "--spectrogram",
        help="A named spectrogram preset: musicnn (the input of the musicnn-msd/musicnn-mtt architectures: 16 kHz, "
        "512-point FFT, hop 256, 96 mel bands, log10(1 + 10000·P) as 16-bit images, 3 s patches of 187 frames). "
        "It sets every setting below but --hop-seconds (patch overlap).",
    ),
    segment_seconds: float = typer.Option(None, "--segment-seconds", help="Window length in seconds (default 10)."),
    hop_seconds: float = typer.Option(
        None, "--hop-seconds", help="Window hop in seconds (default: the window length)."
    ),
    valid_pct: float = typer.Option(0.2, "--valid-pct", help="Share of clips (or groups) held out for validation."),
    test_pct: float = typer.Option(
        0.0,
        "--test-pct",
        help="Share of clips (or groups) held out as a test split, chosen first, grouped and stratified like "
        "validation; training never reads it, the final model is scored on it once.",
    ),
    group_by: str = options.group_by_option("whose values never straddle the split (e.g. Artist)"),
    seed: int = typer.Option(42, "--seed", help="Random seed of the split."),
    id_column: str = options.IdColumn,
    label_column: str = options.LabelColumn,
    cuts: str = options.Cuts,
    sample_rate: int = typer.Option(None, "--sample-rate", help="Resampling rate in Hz (default 22050)."),
    n_mels: int = typer.Option(None, "--n-mels", help="Mel bands (image height; default 128)."),
    n_fft: int = typer.Option(None, "--n-fft", help="FFT size (default 2048)."),
    hop_length: int = typer.Option(None, "--hop-length", help="STFT hop in samples (default 512)."),
    skip_unlabeled: bool = options.SkipUnlabeled,
    workers: int = typer.Option(None, "--workers", help="Parallel processes (default: all cores)."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace a data set made with other settings in --out: deletes only that data set's own files (its "
        "images, manifest.csv, dataset.json, spectrogram.json, progress journal); anything else there stays.",
    ),
    allow_outliers: bool = typer.Option(
        False,
        "--allow-outliers",
        help="Regression: keep target values far outside the others (beyond 10 interquartile ranges of a "
        "quartile), which are otherwise refused naming their rows; prepare notes them.",
    ),
) -> None:
    """Turn audio clips and labels into a mel-spectrogram data set (ImageFolder layout)."""
    from ..preparation.prepare import prepare_dataset

    spec = spectrogram_settings(
        spectrogram,
        {
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "segment_seconds": segment_seconds,
        },
        hop_seconds,
    )
    result = prepare_dataset(
        audio_dir,
        out,
        feature,
        labels,
        spec=spec,
        valid_pct=valid_pct,
        test_pct=test_pct,
        group_by=group_by,
        seed=seed,
        id_column=id_column,
        label_column=label_column,
        cuts=options.parse_cuts(cuts),
        skip_unlabeled=skip_unlabeled,
        workers=workers,
        overwrite=overwrite,
        task=task,
        targets=list(target or []) or None,
        threshold=threshold,
        allow_outliers=allow_outliers,
    )
    print_summary(result)


def spectrogram_settings(preset: str | None, given: dict, hop_seconds: float | None):
    """The `SpecConfig` of the options given (None: not given), from a named preset or the defaults."""
    import dataclasses

    from ..data.spectrogram import SpecConfig
    from ..data.spectrogram import preset as named

    given = {key: value for key, value in given.items() if value is not None}
    if preset is None:
        return SpecConfig(**given, segment_hop_seconds=hop_seconds)
    if given:
        flags = ", ".join("--" + key.replace("_", "-") for key in given)
        raise MerError(f"--spectrogram {preset} sets {flags} itself; drop {flags} (or drop --spectrogram)")
    return dataclasses.replace(named(preset), segment_hop_seconds=hop_seconds)


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
