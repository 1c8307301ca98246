"""Linear probes of musicnn's layers and hand-crafted melodic features on unseen artists: `mer-fastai baseline
--features ... --folds 5` on the folds of the accuracy benchmark, paired against the SVM on the 83 hand-crafted
features.

    python benchmarks/probes.py                                 # every row, 5 folds, resumable
    python benchmarks/probes.py --rows "musicnn-msd.penultimate,handcrafted"
    python benchmarks/probes.py --melodic-cost 20               # pYIN's CPU cost on 20 clips first
    python benchmarks/probes.py --write BENCHMARKS.md            # also puts the table in its section

`AUDIO` (default `../shared/data/4q-dev`) is prepared once as the accuracy benchmark's 10 s data set (its folds
depend on the clips, their artists and the seed only). A row is one `cross_validate_baseline` (what `baseline
--folds` runs) of one `--features`/`--layer` value with the SVM and the linear estimator; its feature caches are
removed first, so that the extraction is measured: its process CPU time over all 600 clips (feature CPU-min),
then the CPU time of fitting and scoring both estimators on all folds, per model (fit CPU-min / model). musicnn's
three layers come from one forward pass (the first layer's row pays it; the others read it from memory), so their
feature cost is the first row's. Finished rows are journalled (`probes.jsonl` in `--work`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `benchmarks` and `mer_fastai` importable
    sys.path.insert(0, str(REPO))

from benchmarks.accuracy import FOLD_SEED, cpu_seconds, fmt, journal, paired_gain, prepare, record  # noqa: E402
from benchmarks.startup import write_marked_section  # noqa: E402

CLASSIFIERS = ("svm", "linear")
# row → (--features, --layer); "handcrafted" is the reference (its SVM: the accuracy section's 0.650 ± 0.025)
ROWS: dict[str, tuple[str, str]] = {
    "handcrafted": ("handcrafted", "penultimate"),
    "musicnn-msd.penultimate": ("musicnn-msd", "penultimate"),
    "musicnn-msd.pooled": ("musicnn-msd", "pooled"),
    "musicnn-msd.tags": ("musicnn-msd", "tags"),
    "musicnn-msd.penultimate+handcrafted": ("musicnn-msd+handcrafted", "penultimate"),
    "musicnn-mtt.penultimate": ("musicnn-mtt", "penultimate"),
    "handcrafted+melodic": ("handcrafted+melodic", "penultimate"),
    "musicnn-msd.penultimate+handcrafted+melodic": ("musicnn-msd+handcrafted+melodic", "penultimate"),
}
REFERENCE = ("handcrafted", "svm")
KEYS = ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1")


def run_row(data_dir: Path, work: Path, features: str, layer: str, folds: int) -> dict:
    """One `baseline --features F --layer L --folds K` with the SVM and the linear estimator: per estimator the
    fold scores, the feature CPU minutes (extraction over the whole data set) and the fit CPU minutes per model."""
    from mer_fastai.evaluation.baseline.featuresets import cache_file, gather, parse_features
    from mer_fastai.evaluation.baseline.folds import cross_validate_baseline
    from mer_fastai.evaluation.oof import describe
    from mer_fastai.tasks.opened import open_dataset

    out = work / "baseline" / f"{features}.{layer}"
    chosen = parse_features(features, layer)
    for kind in chosen.sets:
        cache_file(out, kind).unlink(missing_ok=True)
    started = cpu_seconds()
    gather(open_dataset(data_dir), chosen, out, None, False)
    extracted = cpu_seconds()
    result = cross_validate_baseline(
        data_dir, out, folds, classifiers=list(CLASSIFIERS), seed=FOLD_SEED, progress=False,
        features=features, layer=layer,
    )  # fmt: skip
    fitting = (cpu_seconds() - extracted) / 60 / folds / len(CLASSIFIERS)
    return {
        "feature_cpu_minutes": (extracted - started) / 60,
        "fit_cpu_minutes": fitting,
        "estimators": {
            name.split("-")[0]: {key: describe([float(row[key]) for row in rows]) for key in KEYS}
            for name, rows in result.per_fold.items()
        },
    }


def melodic_cost(audio: Path, clips: int) -> dict:
    """CPU seconds of pYIN's melodic features per second of audio, on the first `clips` clips (whole clips)."""
    from mer_fastai.evaluation.baseline.melodic import RATE, melodic_features
    from mer_fastai.models.musicnn.preprocessing import load_musicnn_audio

    files = sorted(audio.glob("Q*/*.mp3"))[:clips]
    signals = [load_musicnn_audio(path) for path in files]  # 16 kHz mono, as the melodic set decodes them
    melodic_features(signals[0][:RATE])  # numba's compilation is not the cost per clip
    begun, wall = cpu_seconds(), time.time()
    for signal in signals:
        melodic_features(signal)
    seconds = sum(len(signal) for signal in signals) / RATE
    return {"clips": clips, "audio_seconds": seconds, "cpu_seconds": cpu_seconds() - begun, "wall": time.time() - wall}


def table(done: dict[str, dict], folds: int) -> str:
    """The Markdown table: one line per row and estimator, its track accuracy paired against the reference."""
    reference = done.get(REFERENCE[0], {}).get("estimators", {}).get(REFERENCE[1])
    lines = [
        f"| features | estimator | track accuracy (mean ± sd, {folds} folds) | vs SVM on 83 features (paired) "
        "| track macro-F1 | window accuracy | feature CPU-min (600 clips) | fit CPU-min / model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, result in done.items():
        for name, summary in result["estimators"].items():
            same = (row, name) == REFERENCE
            gain = "–" if same or reference is None else paired_gain(
                summary["track_accuracy"]["values"], reference["track_accuracy"]["values"]
            )  # fmt: skip
            minutes = f"{result['feature_cpu_minutes']:.1f} | {result['fit_cpu_minutes']:.2f}"
            lines.append(
                f"| {row} | {name} | {fmt(summary['track_accuracy'])} | {gain} | {fmt(summary['track_macro_f1'])} "
                f"| {fmt(summary['accuracy'])} | {minutes} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "data" / "4q-dev")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mer-fastai-benchmarks" / "probes")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--melodic-cost", type=int, default=0, help="only time pYIN on this many clips")
    parser.add_argument("--write", type=Path, help="put the table in this Markdown file's marked section")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.melodic_cost:
        print(melodic_cost(args.audio, args.melodic_cost), flush=True)
        return
    data_dir = prepare(args.audio, args.work, "10s")
    log = args.work / "probes.jsonl"
    for row in [r.strip() for r in args.rows.split(",") if r.strip()]:
        if row in journal(log):
            continue
        features, layer = ROWS[row]
        record(log, row, run_row(data_dir, args.work, features, layer, args.folds))
        print(row, journal(log)[row], flush=True)
    done = {row: {k: v for k, v in entry.items() if k != "row"} for row, entry in journal(log).items()}
    text = table(done, args.folds)
    print(text)
    if args.write:
        intro = (
            f"`python benchmarks/probes.py --write BENCHMARKS.md`: `mer-fastai baseline --features F --layer L "
            f"--folds {args.folds}` on the 10 s data set of 'Accuracy on unseen artists' (same folds, seed "
            f"{FOLD_SEED}); track = mean of a clip's window probabilities; linear = logistic regression, C = 0.01."
        )
        write_marked_section(args.write, "probes", "Linear probes and hand-crafted melodic features", intro, text)


if __name__ == "__main__":
    main()
