"""Exploration of track-level heads on cached frozen musicnn layers (issue 27 A), on the folds of the accuracy
benchmark: which head, which pooling, which layer, which head settings, each lever paired fold by fold.

    python benchmarks/track_heads.py --cache /work/cache/musicnn-4q-msd          # every row
    python benchmarks/track_heads.py --cache ... --rows "window,track mean+std+max"  # some rows

The cache holds one `Q<k>__<song>.npz` per 4q-dev clip with musicnn's per-patch layers (3 s patches without
overlap, as `musicnn_features` computes them): `pooled` (patches × 1506, the mid-end's max and mean over time),
`penultimate` (patches × 200) and `tags` (patches × 50 sigmoid). The folds are `plan_folds` on the clips' quadrants
and artists at seed 42: those of `mer-fastai cv --folds 5` on a `prepare --group-by Artist` data set of the same
clips, so the numbers pair with benchmarks/accuracy.py and benchmarks/musicnn.py fold by fold.

A window head learns every patch with its clip's label (the product's freeze-mode head: BatchNorm, dropout,
dense 512, ReLU, BatchNorm, dropout, dense) and a clip's track probabilities are the mean of its patches'; a track
head sees all of a clip's patches at once, pools them (masked mean, std, max over the patches, or attention) and
learns one label per clip with the same dense layers. Both train with AdamW and a one-cycle schedule. These are
exploration numbers on the numpy/torch path, not the product's: each row is mean ± sd over the 5 folds of the
track accuracy averaged over `--seeds` training seeds.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from mer_fastai.evaluation.folds import plan_folds  # noqa: E402

FOLD_SEED, FOLDS = 42, 5
LAYERS = {"penultimate": ("penultimate",), "pooled": ("pooled",), "tags": ("tags",),
          "pooled+penultimate": ("pooled", "penultimate")}  # fmt: skip


@dataclass(frozen=True)
class Head:
    """One row's head: window or track, the layer it reads, the track pooling and the training settings."""

    kind: str = "track"  # window | track | logreg
    layer: str = "penultimate"
    pooling: str = "mean+std+max"  # track heads: any of mean, std, max joined by "+", or "attention"
    hidden: int = 512
    dropout: float = 0.5
    wd: float = 0.01
    epochs: int = 20
    lr: float = 3e-3
    bs: int = 32
    extra: str = ""  # logreg: a per-clip array of the clip's arrays appended to its statistics (e.g. hand-crafted)


WINDOW = Head(kind="window")
TRACK = Head()
ROWS: dict[str, Head] = {
    "window": WINDOW,
    "track mean+std+max": TRACK,
    "track mean": replace(TRACK, pooling="mean"),
    "track mean+std": replace(TRACK, pooling="mean+std"),
    "track max": replace(TRACK, pooling="max"),
    "track attention": replace(TRACK, pooling="attention"),
    "track on pooled": replace(TRACK, layer="pooled"),
    "track on tags": replace(TRACK, layer="tags"),
    "track on pooled+penultimate": replace(TRACK, layer="pooled+penultimate"),
    "track hidden 128": replace(TRACK, hidden=128),
    "track linear (no hidden layer)": replace(TRACK, hidden=0),
    "track dropout 0.2": replace(TRACK, dropout=0.2),
    "track weight decay 0.1": replace(TRACK, wd=0.1),
    "track 10 epochs": replace(TRACK, epochs=10),
    "track 40 epochs": replace(TRACK, epochs=40),
    "logreg mean+std (C 0.01)": Head(kind="logreg", pooling="mean+std"),
    "window on pooled": replace(WINDOW, layer="pooled"),
}
REFERENCE = "window"


def load_clips(caches: list[Path], annotations: Path) -> tuple[list[str], list[str], list[str], dict]:
    """Clip ids (`Q<k>/<song>.mp3`), quadrants, artists and per-clip layer arrays of every clip in the caches."""
    ids, labels, artists, arrays = [], [], [], {}
    with annotations.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            found = [cache / f"{row['Quadrant']}__{row['Song']}.npz" for cache in caches]
            path = next((p for p in found if p.exists()), None)
            if path is None:
                continue
            clip = f"{row['Quadrant']}/{row['Song']}.mp3"
            with np.load(path) as data:
                arrays[clip] = {name: data[name].astype(np.float32) for name in ("pooled", "penultimate", "tags")}
            ids.append(clip)
            labels.append(row["Quadrant"])
            artists.append(row["Artist"])
    return ids, labels, artists, arrays


def folds_of(ids: list[str], labels: list[str], artists: list[str]) -> list[frozenset[str]]:
    """The validation clips of each fold, as `cv --folds 5` deals them at seed 42."""
    clips = {clip: (label, artist) for clip, label, artist in zip(ids, labels, artists, strict=True)}
    return [fold.valid_clips for fold in plan_folds(clips, FOLDS, 1, FOLD_SEED)]


def windows(arrays: dict, clip: str, layer: str) -> np.ndarray:
    return np.concatenate([arrays[clip][name] for name in LAYERS[layer]], axis=1)


def padded(arrays: dict, clips: list[str], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(clips, most patches, features) zero-padded and the (clips, most patches) mask of real patches."""
    rows = [windows(arrays, clip, layer) for clip in clips]
    most = max(len(r) for r in rows)
    x = torch.zeros(len(rows), most, rows[0].shape[1])
    mask = torch.zeros(len(rows), most, dtype=torch.bool)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.from_numpy(r)
        mask[i, : len(r)] = True
    return x, mask


class Pool(nn.Module):
    """Masked statistics over a clip's patches (B, N, D) → (B, k·D); "attention": a learnt weighted mean and std."""

    def __init__(self, pooling: str, dim: int):
        super().__init__()
        self.stats = ("mean", "std") if pooling == "attention" else tuple(pooling.split("+"))
        self.score = nn.Sequential(nn.Linear(dim, 64), nn.Tanh(), nn.Linear(64, 1)) if pooling == "attention" else None
        self.out_dim = len(self.stats) * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).float()
        if self.score is not None:
            w = self.score(x).masked_fill(~mask.unsqueeze(-1), float("-inf")).softmax(1)
        else:
            w = m / m.sum(1, keepdim=True)
        mean = (w * x).sum(1)
        parts = {"mean": mean}
        if "std" in self.stats:
            parts["std"] = ((w * (x - mean.unsqueeze(1)) ** 2).sum(1) + 1e-6).sqrt()
        if "max" in self.stats:
            parts["max"] = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return torch.cat([parts[s] for s in self.stats], 1)


def dense(dim: int, head: Head, classes: int) -> nn.Sequential:
    """The product's freeze-mode head layers (without its pooling): BN, dropout, dense, ReLU, BN, dropout, dense."""
    if not head.hidden:
        return nn.Sequential(nn.BatchNorm1d(dim), nn.Dropout(head.dropout), nn.Linear(dim, classes))
    return nn.Sequential(
        nn.BatchNorm1d(dim), nn.Dropout(head.dropout / 2), nn.Linear(dim, head.hidden), nn.ReLU(),
        nn.BatchNorm1d(head.hidden), nn.Dropout(head.dropout), nn.Linear(head.hidden, classes),
    )  # fmt: skip


class TrackNet(nn.Module):
    def __init__(self, dim: int, head: Head, classes: int):
        super().__init__()
        self.pool = Pool(head.pooling, dim)
        self.dense = dense(self.pool.out_dim, head, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.dense(self.pool(x, mask))


def fit(model: nn.Module, inputs: tuple[torch.Tensor, ...], y: torch.Tensor, head: Head) -> None:
    """AdamW with a one-cycle schedule, cross-entropy, shuffled batches (the last short batch dropped)."""
    opt = torch.optim.AdamW(model.parameters(), lr=head.lr, weight_decay=head.wd)
    steps = max(1, len(y) // head.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=head.lr, total_steps=steps * head.epochs)
    loss = nn.CrossEntropyLoss()
    model.train()
    for _ in range(head.epochs):
        order = torch.randperm(len(y))
        for step in range(steps):
            idx = order[step * head.bs : (step + 1) * head.bs]
            opt.zero_grad()
            loss(model(*(t[idx] for t in inputs)), y[idx]).backward()
            opt.step()
            sched.step()
    model.eval()


def track_probabilities(head: Head, arrays: dict, train: list[str], valid: list[str], y: dict, seed: int) -> np.ndarray:
    """Held-out clips' track probabilities (valid clips × classes) of `head` trained on the `train` clips."""
    torch.manual_seed(seed)
    classes = len(set(y.values()))
    target = torch.tensor([y[c] for c in train])
    if head.kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        def stats(clips: list[str]) -> np.ndarray:
            x, mask = padded(arrays, clips, head.layer)
            pooled = Pool(head.pooling, x.shape[2])(x, mask).numpy()
            return np.hstack([pooled, *([np.stack([arrays[c][head.extra] for c in clips])] if head.extra else [])])

        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
        return model.fit(stats(train), target.numpy()).predict_proba(stats(valid))
    if head.kind == "window":
        rows = [windows(arrays, c, head.layer) for c in train]
        x = torch.from_numpy(np.concatenate(rows))
        net = dense(x.shape[1], head, classes)
        fit(net, (x,), target.repeat_interleave(torch.tensor([len(r) for r in rows])), head)
        with torch.no_grad():
            return np.stack([net(torch.from_numpy(windows(arrays, c, head.layer))).softmax(1).mean(0).numpy()
                             for c in valid])  # fmt: skip
    x, mask = padded(arrays, train, head.layer)
    net = TrackNet(x.shape[2], head, classes)
    fit(net, (x, mask), target, head)
    with torch.no_grad():
        return net(*padded(arrays, valid, head.layer)).softmax(1).numpy()


def run_row(head: Head, arrays: dict, ids: list[str], y: dict, folds: list[frozenset], seeds: int) -> dict:
    """Per fold: track accuracy averaged over the seeds; and the CPU seconds per model."""
    accuracies, started = [], time.process_time()
    for valid_clips in folds:
        train = [c for c in ids if c not in valid_clips]
        valid = [c for c in ids if c in valid_clips]
        truth = np.array([y[c] for c in valid])
        runs = [track_probabilities(head, arrays, train, valid, y, seed) for seed in range(seeds)]
        accuracies.append(float(np.mean([(p.argmax(1) == truth).mean() for p in runs])))
    models = len(folds) * seeds
    return {"folds": accuracies, "cpu_seconds": (time.process_time() - started) / models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        action="append",
        help="Cache folder (repeatable; a clip is read from "
        "the first that has it). Default: /work/cache/musicnn-4q-msd",
    )
    audio = REPO.parent / "shared" / "data" / "4q-dev"
    parser.add_argument("--annotations", type=Path, default=audio / "annotations.csv")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ids, labels, artists, arrays = load_clips(args.cache or [Path("/work/cache/musicnn-4q-msd")], args.annotations)
    classes = sorted(set(labels))
    y = {clip: classes.index(label) for clip, label in zip(ids, labels, strict=True)}
    folds = folds_of(ids, labels, artists)
    print(f"{len(ids)} clips, {FOLDS} artist-grouped folds at seed {FOLD_SEED}, {args.seeds} seeds per fold")
    results = {}
    names = args.rows.split(",")
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    print("| row | track accuracy (mean ± sd, 5 folds) | vs window head (paired) | CPU-s / model |")
    print("|---|---|---|---|")
    for name in names:
        results[name] = result = run_row(ROWS[name], arrays, ids, y, folds, args.seeds)
        acc, ref = np.array(result["folds"]), np.array(results[REFERENCE]["folds"])
        gain = "–" if name == REFERENCE else f"{(acc - ref).mean():+.3f} ± {(acc - ref).std(ddof=1):.3f}"
        print(f"| {name} | {acc.mean():.3f} ± {acc.std(ddof=1):.3f} | {gain} | {result['cpu_seconds']:.1f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
