"""Epoch time of the three tasks on the same spectrograms: classification, regression, multilabel.

    python benchmarks/task_throughput.py                        # prints a Markdown table
    python benchmarks/task_throughput.py --write BENCHMARKS.md  # also puts it in its section of the report

One synthetic study-style set (`mer_fastai.data.synth`: the study's five emotions, its ratings file with
continuous valence/energy and the five emotion ratings) is prepared three times with the same windows and
split seed: classes from `TARGET` (emotions), regression on valence + energy, and multilabel moods from the
five emotion ratings (a mood holds at ≥ 0.7 of the clip's largest rating). Each task trains the same
architecture, size, batch size and epochs in whole mode, one after the other, `--repeats` times in turn (so
the tasks share the machine's load alike); the table gives the median seconds per epoch and the ratio to
classification. Target (issue 14): regression and multilabel within 5 % of classification.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `benchmarks` and `mer_fastai` importable
    sys.path.insert(0, str(REPO))

from benchmarks.startup import write_marked_section  # noqa: E402

EMOTIONS = ["anger", "fear", "happy", "sad", "tender"]


def prepare_all(work: Path, clips_per_class: int) -> dict[str, Path]:
    """The same audio prepared as each task's data set."""
    from mer_fastai.data.labelsource import LabelSource
    from mer_fastai.data.spectrogram import SpecConfig
    from mer_fastai.data.synth import make_study_style_set
    from mer_fastai.preparation.prepare import prepare_dataset

    audio, ratings = make_study_style_set(work / "set", clips_per_class=clips_per_class, seconds=6.0, seed=0)
    spec = SpecConfig(segment_seconds=3.0, n_mels=64, hop_length=256)
    common = {"spec": spec, "workers": 2, "progress": False}
    data = {task: work / task for task in ("classification", "regression", "multilabel")}
    prepare_dataset(audio, data["classification"], "emotions", ratings, **common)
    prepare_dataset(audio, data["regression"], None, LabelSource(ratings, targets=["valence", "energy"]), **common)
    moods = LabelSource(ratings, id_column="number", targets=EMOTIONS, threshold=0.7)
    prepare_dataset(audio, data["multilabel"], None, moods, task="multilabel", **common)
    return data


def epoch_seconds(data_dir: Path, out: Path, arch: str, size: int, epochs: int, bs: int) -> list[float]:
    """Seconds of each epoch of one whole-mode training (fixed LR: no LR finder in the timing)."""
    from mer_fastai.api.training import train
    from mer_fastai.training.fit import TrainConfig

    config = TrainConfig(arch=arch, mode="whole", epochs=epochs, lr=1e-3, bs=bs, size=size, weights="none")
    train(data_dir, config, out, show=False)
    return [row["seconds"] for row in json.loads((out / "history.json").read_text())["history"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="squeezenet1_0")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--clips-per-class", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="Trainings per task, taken in turn.")
    parser.add_argument("--write", type=Path, help="Report file whose task-throughput section to replace.")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = prepare_all(work, args.clips_per_class)
        seconds: dict[str, list[float]] = {task: [] for task in data}
        for repeat in range(args.repeats):
            for task, data_dir in data.items():
                times = epoch_seconds(
                    data_dir, work / f"run-{task}-{repeat}", args.arch, args.size, args.epochs, args.bs
                )
                seconds[task] += times[1:] or times  # the first epoch also warms up; keep it only if alone
        images = sum(1 for _ in (data["classification"] / "train").rglob("*.png"))
    reference = statistics.median(seconds["classification"])
    lines = [
        f"| task | median s / epoch ({args.arch}, {args.size} px, bs {args.bs}, {images} training images) "
        "| epochs timed | × classification |",
        "|---|---|---|---|",
    ]
    for task, times in seconds.items():
        median = statistics.median(times)
        lines.append(f"| {task} | {median:.2f} | {len(times)} | {median / reference:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        intro = (
            f"`python benchmarks/task_throughput.py --write {args.write.name}` ({os.cpu_count()} cores, load "
            f"average {load:.2f} before the run): the same spectrograms as three tasks, whole mode, fixed LR, "
            f"{args.repeats} trainings of {args.epochs} epochs per task taken in turn (first epoch of each "
            "dropped). Target: regression and multilabel within 5 % of classification's epoch time."
        )
        write_marked_section(args.write, "task-throughput", "Epoch time by task", intro, table)


if __name__ == "__main__":
    main()
