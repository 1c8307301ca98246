"""Music-pretrained transfer on unseen artists: musicnn (MSD, MTT) in freeze mode, on the folds of the accuracy
benchmark, paired against the from-scratch recipe and the classic baseline; ensembles; predict throughput.

    python benchmarks/musicnn.py                          # every row, 5 folds, resumable
    python benchmarks/musicnn.py --rows "musicnn-msd freeze,baseline"
    python benchmarks/musicnn.py --rows "musicnn-msd freeze,baseline linear,musicnn-msd + hand-crafted linear"
    python benchmarks/musicnn.py --write BENCHMARKS.md    # also puts the table in its section of the report

`AUDIO` (default `../shared/data/4q-dev`) is prepared once with `--spectrogram musicnn` (2.992 s patches, and
1.496 s hops for the overlap lever) and once as the accuracy benchmark's 10 s data set (scratch recipe and the
baseline). Every row is one `mer-fastai cv` on the same folds (they depend on the clips, their artists and the
seed only, not on the windows) or `mer-fastai baseline --folds`, journalled in `--work/musicnn.jsonl`; a fusion row
averages two rows' held-out track probabilities fold by fold, which is what their `mer-fastai ensemble` predicts
("baseline linear": `baseline --classifier linear --folds K --save-model`, whose fold files `ensemble` takes).
Needs the musicnn weights (`mer-fastai weights get musicnn`). Targets (issue 21): ≥ 0.76 track accuracy for the
best single musicnn model at ≤ 5 CPU-minutes per model, ≥ 0.78 for an ensemble that `predict` runs as one file,
predict ≥ 300× real time for a musicnn model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `benchmarks` and `mer_fastai` importable
    sys.path.insert(0, str(REPO))

from benchmarks.accuracy import (  # noqa: E402
    FOLD_SEED,
    SCRATCH,
    baseline_rows,
    cpu_seconds,
    cross_validate,
    fmt,
    fold_dirs,
    fusion_row,
    journal,
    paired_gain,
    prepare,
    record,
    row_folder,
)
from benchmarks.startup import write_marked_section  # noqa: E402

TARGET_SINGLE, TARGET_ENSEMBLE, TARGET_MINUTES, TARGET_SPEED = 0.76, 0.78, 5.0, 300.0
FREEZE = {"mode": "freeze", "weights": "pretrained", "epochs": 20, "bs": 32}
# name → (data set, settings)
ROWS: dict[str, tuple[str, dict]] = {
    "musicnn-msd freeze": ("musicnn", {"arch": "musicnn-msd", **FREEZE}),
    "musicnn-mtt freeze": ("musicnn", {"arch": "musicnn-mtt", **FREEZE}),
    "musicnn-msd freeze (patches every 1.5 s)": ("musicnn-overlap", {"arch": "musicnn-msd", **FREEZE}),
    "musicnn-msd freeze (5 epochs)": ("musicnn", {"arch": "musicnn-msd", **FREEZE, "epochs": 5}),
    **{
        f"musicnn-msd freeze ({layer} layer)": ("musicnn", {"arch": "musicnn-msd", **FREEZE, "layer": layer})
        for layer in ("pooled", "tags", "pooled+penultimate")
    },  # issue 27: which layer the head reads (benchmarks/track_heads.py explores them on cached layers)
    "scratch": ("10s", SCRATCH),
    # issue 27: the track head (`train --head track`) on the same cached features, after the window head in one
    # process (the body's features are computed once per process: the window row's CPU includes them)
    "musicnn-msd freeze (track head)": ("musicnn", {"arch": "musicnn-msd", **FREEZE, "head": "track"}),
    "musicnn-msd freeze (track head for 10 epochs)": (
        "musicnn",
        {"arch": "musicnn-msd", **FREEZE, "head": "track", "epochs": 10},
    ),
}
# fusion rows: name → the two rows whose held-out track probabilities are averaged
FUSIONS = {
    "musicnn-msd + musicnn-mtt": ("musicnn-msd freeze", "musicnn-mtt freeze"),
    "musicnn-msd + scratch": ("musicnn-msd freeze", "scratch"),
    # issue 27 item 7: musicnn and the hand-crafted linear model as one file (`baseline --save-model`, `ensemble`)
    "musicnn-msd + hand-crafted linear": ("musicnn-msd freeze", "baseline linear"),
    # the three views of the clip as one file: the best ensemble of the levers measured (issue 27 item 8)
    "musicnn-msd + scratch + hand-crafted linear": ("musicnn-msd freeze", "scratch", "baseline linear"),
}
LINEAR = "baseline linear"  # `baseline --features handcrafted --classifier linear --folds K --save-model`
SPEED = "predict speed"
REFERENCE = "baseline svm"


def prepare_musicnn(audio: Path, work: Path, layout: str) -> Path:
    """The musicnn data set (non-overlapping patches, or patches every half patch for the overlap lever)."""
    import dataclasses

    from mer_fastai.data.labelsource import LabelSource
    from mer_fastai.data.spectrogram import musicnn_spec
    from mer_fastai.preparation.prepare import prepare_dataset

    spec = musicnn_spec()
    if layout == "musicnn-overlap":
        spec = dataclasses.replace(spec, segment_hop_seconds=spec.segment_seconds / 2)
    out = work / f"data-{layout}"
    labels = LabelSource(audio / "annotations.csv", group_by="Artist")
    prepare_dataset(audio, out, "emotions", labels, spec=spec, progress=False)
    return out


def linear_row(data_dir: Path, out: Path, folds: int) -> dict:
    """`mer-fastai baseline --features handcrafted --classifier linear --folds K --save-model` on the 10 s data set
    (the folds of every row: same clips, `FOLD_SEED`), into its own folder: each fold's held-out track
    probabilities and its model file (`OUT/folds/<k>/linear/`); CPU minutes of the whole run (feature extraction
    included) per fold, as `baseline_rows` counts them."""
    from mer_fastai.evaluation.baseline.folds import cross_validate_baseline
    from mer_fastai.evaluation.oof import describe

    started = cpu_seconds()
    result = cross_validate_baseline(
        data_dir, out, folds, classifiers=["linear"], seed=FOLD_SEED, progress=False, features="handcrafted",
        save_model=True,
    )  # fmt: skip
    minutes = (cpu_seconds() - started) / 60 / folds
    keys = ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1")
    rows = result.per_fold["linear"]
    summary = {key: describe([float(row[key]) for row in rows]) for key in keys}
    return {"summary": summary, "cpu_minutes": minutes, "settings": "10s windows; hand-crafted features (83), linear"}


def row_folds(work: Path, row: str, folds: int) -> list[Path]:
    """The fold folders holding a row's held-out `track_predictions.csv` (the linear baseline's: its `linear/`)."""
    if row == LINEAR:
        return [fold / "linear" for fold in fold_dirs(work / "baseline-linear", folds)]
    return fold_dirs(row_folder(work, row), folds)


def data_set(audio: Path, work: Path, layout: str) -> Path:
    return prepare(audio, work, layout) if layout == "10s" else prepare_musicnn(audio, work, layout)


def predict_speed(audio: Path, run: Path, clips: int = 40) -> dict:
    """Seconds of audio labelled per second of wall time by `Predictor.predict_many` (decoding included)."""
    import soundfile

    from mer_fastai.inference.predict import Predictor

    files = sorted(audio.rglob("*.mp3"))[:clips]
    seconds = sum(soundfile.info(str(path)).duration for path in files)
    predictor = Predictor.load(run)
    predictor.predict_many(files[:2])  # warm-up
    started = time.perf_counter()
    predictor.predict_many(files)
    wall = time.perf_counter() - started
    return {"audio_seconds": seconds, "wall_seconds": wall, "times_real_time": seconds / wall, "threads": _threads()}


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def table(done: dict[str, dict], folds: int) -> str:
    """The Markdown table: each row paired fold by fold against musicnn-msd freeze, the scratch recipe and the SVM."""
    lines = [
        f"| row | track accuracy (mean ± sd, {folds} folds) | vs musicnn-msd freeze (paired) | vs scratch (paired) "
        "| vs SVM (paired) | track macro-F1 | window accuracy | CPU-min / model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    references = {name: done.get(name) for name in ("musicnn-msd freeze", "scratch", REFERENCE)}
    for row, result in done.items():
        if row == SPEED:
            continue
        summary = result["summary"]
        gains = [
            paired_gain(summary["track_accuracy"]["values"], ref["summary"]["track_accuracy"]["values"])
            if ref and name != row
            else "–"
            for name, ref in references.items()
        ]
        lines.append(
            f"| {row} | {fmt(summary['track_accuracy'])} | {' | '.join(gains)} | {fmt(summary['track_macro_f1'])} "
            f"| {fmt(summary.get('accuracy'))} | {result['cpu_minutes']:.1f} |"
        )
    return "\n".join(lines)


def verdicts(done: dict[str, dict]) -> str:
    """One line per target of issue 21, met or missed, from the journalled rows."""
    singles = {row: done[row] for row in ROWS if row.startswith("musicnn") and row in done}
    ensembles = {row: done[row] for row in FUSIONS if row in done}
    lines = []
    if singles:
        row, best = max(singles.items(), key=lambda item: item[1]["summary"]["track_accuracy"]["mean"])
        accuracy, minutes = best["summary"]["track_accuracy"]["mean"], best["cpu_minutes"]
        met = accuracy >= TARGET_SINGLE and minutes <= TARGET_MINUTES
        lines.append(
            f"- best single musicnn model ({row}): {accuracy:.3f} at {minutes:.1f} CPU-min — target ≥ "
            f"{TARGET_SINGLE} at ≤ {TARGET_MINUTES:.0f}: **{'met' if met else 'missed'}**"
        )
    if ensembles:
        row, best = max(ensembles.items(), key=lambda item: item[1]["summary"]["track_accuracy"]["mean"])
        accuracy = best["summary"]["track_accuracy"]["mean"]
        met = accuracy >= TARGET_ENSEMBLE
        lines.append(
            f"- best ensemble ({row}): {accuracy:.3f} — target ≥ {TARGET_ENSEMBLE}: **{'met' if met else 'missed'}**"
        )
    if SPEED in done:
        speed = done[SPEED]
        met = speed["times_real_time"] >= TARGET_SPEED
        lines.append(
            f"- predict, musicnn-msd: {speed['times_real_time']:.0f}× real time ({speed['audio_seconds']:.0f} s of "
            f"audio in {speed['wall_seconds']:.1f} s, {speed['threads']} threads, decoding included) — target ≥ "
            f"{TARGET_SPEED:.0f}×: **{'met' if met else 'missed'}**"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "data" / "4q-dev")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mer-fastai-benchmarks" / "musicnn")
    parser.add_argument("--folds", type=int, default=5)
    order = [
        "musicnn-msd freeze",
        "musicnn-mtt freeze",
        "baseline",
        LINEAR,
        "musicnn-msd + hand-crafted linear",
        "musicnn-msd + scratch + hand-crafted linear",
        "musicnn-msd + musicnn-mtt",
        SPEED,
        "musicnn-msd freeze (patches every 1.5 s)",
        "musicnn-msd freeze (5 epochs)",
        "scratch",
        "musicnn-msd + scratch",
        *[row for row in ROWS if row.endswith(" layer)")],
        *[row for row in ROWS if "track head" in row],
    ]
    parser.add_argument("--rows", default=",".join(order), help="Comma-separated rows to run, in this order.")
    parser.add_argument("--write", type=Path, help="Report file whose musicnn section to replace.")
    args = parser.parse_args()
    wanted = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in wanted if row not in order]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; choose from {', '.join(order)}")
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "musicnn.jsonl"
    done = journal(log)
    for row in wanted:
        if row in done or (row == "baseline" and REFERENCE in done):
            continue
        if row == "baseline":
            data_dir = prepare(args.audio, args.work, "10s")
            for name, result in baseline_rows(data_dir, args.work / "baseline", args.folds).items():
                record(log, f"baseline {name}", {**result, "settings": "10s windows; hand-crafted features (83)"})
        elif row == LINEAR:
            data_dir = prepare(args.audio, args.work, "10s")
            record(log, row, linear_row(data_dir, args.work / "baseline-linear", args.folds))
        elif row in FUSIONS:
            members = FUSIONS[row]
            minutes = sum(done[name]["cpu_minutes"] for name in members)
            folders = [row_folds(args.work, name, args.folds) for name in members]
            record(log, row, fusion_row(*folders, f"mean of {' and '.join(members)} track probabilities", minutes))
        elif row == SPEED:
            run = fold_dirs(row_folder(args.work, "musicnn-msd freeze"), args.folds)[0]
            record(log, row, predict_speed(args.audio, run))
        else:
            layout, settings = ROWS[row]
            data_dir = data_set(args.audio, args.work, layout)
            print(f"{row}: cross-validating ({args.folds} folds)", flush=True)
            result = cross_validate(data_dir, row_folder(args.work, row), settings, args.folds)
            record(log, row, {**result, "settings": f"{layout}; " + ", ".join(f"{k} {v}" for k, v in settings.items())})
        done = journal(log)
    text = table(done, args.folds) + "\n\n" + verdicts(done)
    print(text)
    if args.write:
        intro = (
            f"`python benchmarks/musicnn.py --write {args.write.name}` ({os.cpu_count()} cores): the folds of "
            "'Accuracy on unseen artists' (5-fold, grouped by artist, stratified by quadrant, last epoch kept); "
            "musicnn rows read `prepare --spectrogram musicnn` data sets (2.992 s patches), the scratch recipe and "
            "the SVM the 10 s data set of the same clips; track = mean of a clip's window probabilities; fusion "
            "rows average two rows' held-out track probabilities (what their `mer-fastai ensemble` predicts). "
            f"Targets: ≥ {TARGET_SINGLE} for the best single musicnn model at ≤ {TARGET_MINUTES:.0f} CPU-minutes "
            f"per model, ≥ {TARGET_ENSEMBLE} for an ensemble, predict ≥ {TARGET_SPEED:.0f}× real time."
        )
        write_marked_section(args.write, "musicnn", "Music-pretrained transfer (musicnn)", intro, text)


if __name__ == "__main__":
    main()
