"""Partial fine-tuning, cached audio augmentation and overlapping patches, each on and off: musicnn-msd on the first
folds of the accuracy benchmark's 5-fold artist-grouped split of 4q-dev (a paired comparison on fewer folds, for a
2-core machine).

    python benchmarks/partial.py --folds-run 2                  # rows in order, resumable (journal in --work)
    python benchmarks/partial.py --folds-run 5 --rows "freeze + augment-audio 1"   # extends a row to 5 folds
    python benchmarks/partial.py --rows "freeze,partial"
    python benchmarks/partial.py --cost                         # seconds per patch of each training path

Rows (each trains the same folds; track = mean of a clip's window probabilities, last epoch kept):
- freeze: the body frozen, only the head trains (the "Music-pretrained transfer" row's settings);
- partial: `--mode partial`, the front end frozen and cached, mid-end, dense layers and head trained;
- freeze, predict hop 1.5 s: the freeze row's fold models scoring their validation clips from audio with patches
  every 1.496 s (half a patch) instead of every 2.992 s;
- freeze + augment-audio 1: one augmented copy (pitch, stretch, gain, noise) of each training clip.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from benchmarks.accuracy import FOLD_SEED, cpu_seconds, journal, record  # noqa: E402
from benchmarks.musicnn import FREEZE, prepare_musicnn  # noqa: E402

ROWS = {
    "freeze": {"arch": "musicnn-msd", **FREEZE, "keep": "last"},  # last epoch kept, as every cv row
    "partial": {"arch": "musicnn-msd", **FREEZE, "mode": "partial", "epochs": 5, "keep": "last"},
    "freeze + augment-audio 1": {"arch": "musicnn-msd", **FREEZE, "augment_audio": 1, "keep": "last"},
}
OVERLAP = "freeze, predict hop 1.5 s"
ORDER = ["freeze", "partial", OVERLAP, "freeze + augment-audio 1"]


def folds(data_dir: Path, work: Path, count: int) -> list[Path]:
    """The fold data sets of the first `count` folds of the benchmark's 5-fold split."""
    from mer_fastai.evaluation.folds import build_fold_data, dataset_folds
    from mer_fastai.tasks.opened import open_dataset

    dataset = open_dataset(data_dir)
    _, plan, _ = dataset_folds(dataset, 5, 1, FOLD_SEED)
    out = []
    for fold in plan[:count]:
        dest = work / "folds" / str(fold.index)
        if not (dest / "manifest.csv").exists():
            build_fold_data(dataset, list(dataset.rows), fold, dest)
        out.append(dest)
    return out


def train_row(name: str, fold_data: list[Path], work: Path, log: Path) -> dict:
    """Train the row's model on each fold not in its journal entry yet; the entry is rewritten after each fold,
    so a longer `--folds-run` extends an earlier run instead of repeating it."""
    from mer_fastai.api.training import train
    from mer_fastai.training.config import TrainConfig

    done = journal(log).get(name, {"folds": [], "cpu_minutes": []})
    scores, minutes = list(done["folds"]), list(done["cpu_minutes"])
    for k in range(len(scores), len(fold_data)):
        started = cpu_seconds()
        result = train(fold_data[k], TrainConfig(**ROWS[name]).check(), work / "runs" / name / str(k), show=False)
        minutes.append((cpu_seconds() - started) / 60)
        scores.append({key: result.metrics[key] for key in ("track_accuracy", "track_macro_f1", "accuracy")})
        scores[-1]["cached_features"] = result.metrics["cached_features"]
        record(log, name, {"folds": scores, "cpu_minutes": minutes})
    return {"folds": scores, "cpu_minutes": minutes}


def overlap_row(fold_data: list[Path], work: Path) -> dict:
    """The freeze row's fold models on their validation clips' audio, patches every half patch."""
    from mer_fastai.data.dataset import read_manifest
    from mer_fastai.inference.predict import Predictor

    scores = []
    for k, data in enumerate(fold_data):
        truth = {r.source: r.label for r in read_manifest(data) if r.split == "valid"}
        predictor = Predictor.load(work / "runs" / "freeze" / str(k))
        row = {}
        for name, hop in (("hop 2.992 s", None), ("hop 1.496 s", predictor.spec.segment_seconds / 2)):
            started = time.perf_counter()
            tracks = predictor.predict_many(sorted(truth), hop=hop)
            right = sum(track.label == truth[track.file] for track in tracks)
            row[name] = {"track_accuracy": right / len(truth), "seconds": time.perf_counter() - started}
        scores.append(row)
    return {"folds": scores}


def step_costs(batch: int = 8, repeats: int = 5) -> dict:
    """Seconds per 2.992 s patch of one training step (forward + backward) of musicnn-msd with fastai's head:
    whole mode on images, partial mode on cached front-end outputs, and the front end's one-off forward pass
    that fills the cache; the fastest of `repeats` interleaved runs, one thread."""
    import torch

    from mer_fastai.models.archs import get_arch
    from mer_fastai.models.modelfile import create_model
    from mer_fastai.models.prefix import split_body

    torch.set_num_threads(1)
    model = create_model(get_arch("musicnn-msd"), 4)
    split = split_body(model[0])
    images, target = torch.rand(batch, 3, 96, 187), torch.randint(0, 4, (batch,))
    with torch.no_grad():
        cached = split.prefix.eval()(images)
    loss = torch.nn.CrossEntropyLoss()
    rest = torch.nn.Sequential(split.rest, model[1])

    def whole() -> None:
        model.train()
        loss(model(images), target).backward()

    def partial() -> None:
        rest.train()
        loss(rest(cached), target).backward()

    def fill() -> None:
        with torch.no_grad():
            split.prefix.eval()(images)

    best = {name: float("inf") for name in ("whole step", "partial step (cached)", "front end once (cache fill)")}
    for _ in range(repeats):
        for name, step in zip(best, (whole, partial, fill)):
            started = time.perf_counter()
            step()
            best[name] = min(best[name], (time.perf_counter() - started) / batch)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "data" / "4q-dev")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mer-fastai-benchmarks" / "partial")
    parser.add_argument("--folds-run", type=int, default=2, help="How many of the 5 folds to train (first ones).")
    parser.add_argument("--rows", default=",".join(ORDER))
    parser.add_argument("--cost", action="store_true", help="Only time one training step of each path.")
    args = parser.parse_args()
    if args.cost:
        print(json.dumps(step_costs(), indent=1))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "partial.jsonl"
    data_dir = prepare_musicnn(args.audio, args.work, "musicnn")
    fold_data = folds(data_dir, args.work, args.folds_run)
    for name in [row.strip() for row in args.rows.split(",") if row.strip()]:
        if len(journal(log).get(name, {}).get("folds", [])) >= len(fold_data):
            continue
        print(f"{name}: {len(fold_data)} folds", flush=True)
        if name == OVERLAP:
            result = overlap_row(fold_data, args.work)
            record(log, name, result)
        else:
            result = train_row(name, fold_data, args.work, log)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
