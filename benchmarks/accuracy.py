"""Accuracy on unseen artists: K-fold artist-grouped cross-validation of the classic baseline, the study's
squeezenet1_0 and the from-scratch levers, on the real 4Q clips.

    python benchmarks/accuracy.py                          # every row, 5 folds, resumable
    python benchmarks/accuracy.py --rows baseline,scratch  # some rows only
    python benchmarks/accuracy.py --write BENCHMARKS.md    # also puts the table in its section of the report

`AUDIO` (default `../shared/data/4q-dev`) is prepared by `mer-fastai prepare --group-by Artist` once per window
layout into `--work` (10 s windows; 10 s every 5 s for the overlap lever). Every row is one `mer-fastai cv` (the
same folds for all: they depend on the clips, their artists and the seed only) or, for the baseline, `mer-fastai
baseline --folds` on the same folds (features extracted once), so every number is computed by the code the commands
use; each fold keeps its last epoch, as `cv` does. A row's CPU minutes per model are the process CPU time (all
threads) of its folds divided by the folds trained. Finished rows are journalled (`accuracy.jsonl` in `--work`) and
skipped on rerun; a cv interrupted half-way resumes at its next fold. Target (issue 13): ≥ 0.72 mean out-of-fold
track accuracy with no pretrained weights at ≤ 20 CPU-minutes per model, and the best recipe ahead of the classic
baseline by more than one standard deviation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `benchmarks` and `mer_fastai` importable
    sys.path.insert(0, str(REPO))

from benchmarks.startup import write_marked_section  # noqa: E402

TARGET_ACCURACY, TARGET_CPU_MINUTES = 0.72, 20.0
BASELINE_CLASSIFIERS = ("svm", "random_forest")
# the study's squeezenet1_0 from scratch (class-balanced sampling, lr_find, one-cycle); 5 epochs: its 20 would take
# ~24 CPU-minutes per model here, past the budget (BENCHMARKS.md: 5 whole-mode epochs in the speed runs too)
STUDY = {"arch": "squeezenet1_0", "mode": "whole", "weights": "none", "size": 128, "balanced": True, "epochs": 5}
# the from-scratch recipe (recipes/scratch.yaml) and the levers measured one at a time against it
SCRATCH = {"arch": "melcnn", "mode": "whole", "weights": "none", "size": 128, "norm": "dataset", "epochs": 20,
           "augment": "specaugment", "label_smoothing": 0.0}  # fmt: skip
# name → (window layout, settings); "baseline" (the classic rows), "fusion" (scratch + classic) and "seed ensemble"
# (scratch + scratch with seed 43) are apart
ROWS: dict[str, tuple[str, dict]] = {
    "scratch": ("10s", SCRATCH),
    "study": ("10s", STUDY),
    "scratch with mixup": ("10s", {**SCRATCH, "mixup": 0.4}),
    "scratch without SpecAugment": ("10s", {**SCRATCH, "augment": "none"}),
    "scratch with label smoothing": ("10s", {**SCRATCH, "label_smoothing": 0.1}),
    "scratch with ImageNet statistics": ("10s", {**SCRATCH, "norm": "arch"}),
    "scratch with overlapping windows": ("10s/5s", SCRATCH),
    "scratch for 30 epochs": ("10s", {**SCRATCH, "epochs": 30}),
    "scratch with seed 43": ("10s", {**SCRATCH, "seed": 43}),  # same folds (FOLD_SEED), another training seed
}
APART = ("baseline", "fusion", "seed ensemble")  # rows made of other rows' folds
FOLD_SEED = 42  # deals the folds of every row
LAYOUTS = {"10s": None, "10s/5s": 5.0}  # window layout → --hop-seconds


def prepare(audio: Path, work: Path, layout: str) -> Path:
    """The data set of one window layout (prepare resumes and reuses a finished one)."""
    from mer_fastai.data.labelsource import LabelSource
    from mer_fastai.data.spectrogram import SpecConfig
    from mer_fastai.preparation.prepare import prepare_dataset

    out = work / ("data-" + layout.replace("/", "-hop"))
    spec = SpecConfig(segment_seconds=10.0, segment_hop_seconds=LAYOUTS[layout])
    labels = LabelSource(audio / "annotations.csv", group_by="Artist")
    prepare_dataset(audio, out, "emotions", labels, spec=spec, progress=False)
    return out


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished child processes (prepare's, features')."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def cross_validate(data_dir: Path, out: Path, settings: dict, folds: int) -> dict:
    """`mer-fastai cv` of one row: its summary (mean, sd, 95 % interval per score) and CPU minutes per model."""
    from mer_fastai.api.training import run_cv
    from mer_fastai.evaluation.oof import describe
    from mer_fastai.training.config import TrainConfig

    config = TrainConfig(**settings)  # run_cv checks it
    started = cpu_seconds()
    result = run_cv(data_dir, config, out, folds=folds, seed=FOLD_SEED, report=False, show=False)
    minutes = (cpu_seconds() - started) / 60
    summary = {**result.summary, "best_epoch_accuracy": describe(best_epoch_accuracy(result.fold_dirs))}
    return {"summary": summary, "pooled": result.pooled, "cpu_minutes": minutes / max(len(result.ran), 1)}


def best_epoch_accuracy(fold_dirs: list[Path]) -> list[float]:
    """Each fold's best window accuracy over its epochs: what it would report had the epoch been chosen on
    its held-out clips (cv keeps the last epoch; the difference is the optimism such a choice adds)."""
    import json

    histories = [json.loads((fold / "history.json").read_text())["history"] for fold in fold_dirs]
    return [max(row["accuracy"] for row in history) for history in histories]


def baseline_rows(data_dir: Path, out: Path, folds: int) -> dict[str, dict]:
    """`mer-fastai baseline --folds` on the 10 s data set (the folds the CNN rows train on: same clips, same
    seed): per classifier, the fold scores summarised like cv's, and the CPU minutes of the whole baseline
    run (feature extraction once, which dominates, plus every classifier on every fold) per fold; the feature
    cache is removed first, so that its extraction is counted."""
    from mer_fastai.evaluation.baseline.folds import cross_validate_baseline
    from mer_fastai.evaluation.oof import describe
    from mer_fastai.runs.layout import FEATURES_FILE

    (out / FEATURES_FILE).unlink(missing_ok=True)
    started = cpu_seconds()
    result = cross_validate_baseline(
        data_dir, out, folds, classifiers=list(BASELINE_CLASSIFIERS), seed=FOLD_SEED, progress=False
    )
    minutes = (cpu_seconds() - started) / 60 / folds
    keys = ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1")
    return {
        name: {
            "summary": {key: describe([float(row[key]) for row in rows]) for key in keys},
            "cpu_minutes": minutes,
        }
        for name, rows in result.per_fold.items()
    }


def row_folder(work: Path, row: str) -> Path:
    import re

    return work / "cv" / re.sub(r"[^A-Za-z0-9]+", "_", row)


def read_tracks(path: Path) -> dict[str, dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return {row["clip_id"]: row for row in csv.DictReader(handle)}


def fusion_row(*args) -> dict:
    """Late fusion, fold by fold: each held-out clip's track probabilities in the folds' run folders of every row
    (`fusion_row(first, second, ..., settings, cpu_minutes)`) averaged (equal weights, nothing tuned), scored by
    `classification_metrics`; `cpu_minutes`: the models' together. For CNNs this is what their `mer-fastai
    ensemble` scores (mean aggregation)."""
    import numpy as np

    from mer_fastai.evaluation.oof import describe
    from mer_fastai.runs.layout import TRACK_PREDICTIONS
    from mer_fastai.scoring.metrics import classification_metrics

    *rows, settings, cpu_minutes = args
    scores = []
    for k, folders in enumerate(zip(*rows, strict=True)):
        tables = [read_tracks(folder / TRACK_PREDICTIONS) for folder in folders]
        if any(set(table) != set(tables[0]) for table in tables):
            raise SystemExit(f"fold {k}: {', '.join(map(str, folders))} hold different clips")
        first = tables[0]
        heads = [name for name in next(iter(first.values())) if name.startswith("prob_")]
        classes = [name.removeprefix("prob_") for name in heads]
        clips = sorted(first)
        probs = np.array([[sum(float(t[c][h]) for t in tables) for h in heads] for c in clips]) / len(tables)
        truth = np.array([classes.index(first[c]["true"]) for c in clips])
        scores.append(classification_metrics(truth, probs.argmax(1), classes))
    summary = {f"track_{key}": describe([fold[key] for fold in scores]) for key in ("accuracy", "macro_f1")}
    summary["accuracy"] = None  # fused per track only
    return {"summary": summary, "cpu_minutes": cpu_minutes, "settings": settings}


def fold_dirs(folder: Path, folds: int) -> list[Path]:
    """The fold folders of a cross-validation in `folder` (a row's cv, or the baseline's), as `cv` lays them out."""
    from mer_fastai.runs.layout import FOLDS_DIR

    return [folder / FOLDS_DIR / str(k) for k in range(folds)]


def journal(path: Path) -> dict[str, dict]:
    """The finished rows: row name → result."""
    from mer_fastai._plumbing.jsonlines import read_entries

    return {entry["row"]: entry for entry in read_entries(path)}


def record(path: Path, row: str, result: dict) -> None:
    from mer_fastai._plumbing.jsonlines import append_entry, open_to_append

    with open_to_append(path) as handle:
        append_entry(handle, {"row": row, **result})


def fmt(values: dict | None) -> str:
    if values is None:  # not measured for this row
        return "–"
    return f"{values['mean']:.3f} ± {values['sd']:.3f}"


def paired_gain(values: list[float], reference: list[float]) -> str:
    """Mean ± sd over the folds of a row's track accuracy minus the reference's on the same fold."""
    import statistics

    gains = [a - b for a, b in zip(values, reference, strict=True)]
    return f"{statistics.mean(gains):+.3f} ± {statistics.stdev(gains):.3f}"


def table(done: dict[str, dict], folds: int) -> str:
    """The Markdown table; each row's gain over the best baseline row is paired fold by fold."""
    baselines = [result for row, result in done.items() if row.startswith("baseline")]
    best = max(baselines, key=lambda result: result["summary"]["track_accuracy"]["mean"], default=None)
    lines = [
        f"| row | settings | track accuracy (mean ± sd, {folds} folds) | vs best baseline (paired) | track macro-F1 "
        "| window accuracy | window accuracy of the best epoch (biased) | CPU-min / model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, result in done.items():
        summary = result["summary"]
        reference = best["summary"]["track_accuracy"]["values"] if best else None
        gain = paired_gain(summary["track_accuracy"]["values"], reference) if reference else "–"
        lines.append(
            f"| {row} | {result.get('settings', '')} | {fmt(summary['track_accuracy'])} | {gain} "
            f"| {fmt(summary['track_macro_f1'])} | {fmt(summary['accuracy'])} "
            f"| {fmt(summary.get('best_epoch_accuracy'))} | {result['cpu_minutes']:.1f} |"
        )
    return "\n".join(lines)


def describe_settings(layout: str, settings: dict) -> str:
    shown = {k: v for k, v in settings.items() if k not in ("mode", "weights")}
    return f"{layout} windows; " + ", ".join(f"{k} {v}" for k, v in shown.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "data" / "4q-dev")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mer-fastai-benchmarks" / "accuracy")
    parser.add_argument("--folds", type=int, default=5)
    order = ["scratch", "baseline", "fusion", *[row for row in ROWS if row != "scratch"], "seed ensemble"]
    parser.add_argument("--rows", default=",".join(order), help="Comma-separated rows to run, in this order.")
    parser.add_argument("--write", type=Path, help="Report file whose accuracy section to replace.")
    args = parser.parse_args()
    wanted = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in wanted if row not in (*APART, *ROWS)]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; choose from {', '.join((*APART, *ROWS))}")
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "accuracy.jsonl"
    done = journal(log)
    for row in wanted:
        if row == "baseline" and not any(name.startswith("baseline") for name in done):
            data_dir = prepare(args.audio, args.work, "10s")
            for name, result in baseline_rows(data_dir, args.work / "baseline", args.folds).items():
                record(log, f"baseline {name}", {**result, "settings": "10s windows; hand-crafted features (83)"})
        elif row == "fusion":
            for name in BASELINE_CLASSIFIERS:
                if f"scratch + {name}" not in done:
                    minutes = done["scratch"]["cpu_minutes"] + done[f"baseline {name}"]["cpu_minutes"]
                    classic = [fold / name for fold in fold_dirs(args.work / "baseline", args.folds)]
                    settings = f"mean of scratch and {name} track probabilities"
                    fused = fusion_row(
                        fold_dirs(row_folder(args.work, "scratch"), args.folds), classic, settings, minutes
                    )
                    record(log, f"scratch + {name}", fused)
        elif row == "seed ensemble":
            if row not in done:
                minutes = done["scratch"]["cpu_minutes"] + done["scratch with seed 43"]["cpu_minutes"]
                settings = "mean of scratch and scratch with seed 43 track probabilities (a 2-model ensemble per fold)"
                twins = [
                    fold_dirs(row_folder(args.work, name), args.folds) for name in ("scratch", "scratch with seed 43")
                ]
                record(log, row, fusion_row(*twins, settings, minutes))
        elif row not in APART and row not in done:
            layout, settings = ROWS[row]
            data_dir = prepare(args.audio, args.work, layout)
            print(f"{row}: cross-validating ({args.folds} folds)", flush=True)
            result = cross_validate(data_dir, row_folder(args.work, row), settings, args.folds)
            record(log, row, {**result, "settings": describe_settings(layout, settings)})
        done = journal(log)
    text = table(done, args.folds)
    print(text)
    if args.write:
        intro = (
            f"`python benchmarks/accuracy.py --write {args.write.name}` ({os.cpu_count()} cores): "
            f"{args.folds}-fold cross-validation on `{args.audio.name}`, folds grouped by artist (no artist on "
            "both sides) and stratified by quadrant, identical for every row; each fold keeps its last epoch "
            "(nothing is chosen on the held-out clips; the best epoch's window accuracy is shown beside it to "
            "size the optimism of choosing it there); track = the mean of a clip's window probabilities. No "
            "pretrained weights anywhere. Target: ≥ "
            f"{TARGET_ACCURACY:.2f} mean track accuracy at ≤ {TARGET_CPU_MINUTES:.0f} CPU-minutes per model."
        )
        write_marked_section(args.write, "accuracy", "Accuracy on unseen artists", intro, text)


if __name__ == "__main__":
    main()
