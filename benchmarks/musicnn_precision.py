"""musicnn inference at each precision, folded and not, with the knobs on and off, side by side in one run.

    python benchmarks/musicnn_precision.py                       # speed + accuracy on 40 4q-dev clips
    python benchmarks/musicnn_precision.py --clips 600 --write BENCHMARKS.md

Speed: one batch of `--bs` real patches (3 s each) through musicnn-msd as each variant (unfolded fp32; folded fp32,
bf16, int8; channels-last; torch.compile; 1 and all threads), the variants interleaved round by round so that a
busy machine slows them alike; the median of `--rounds` rounds. Achieved GMAC/s (multiply-accumulates of the
convolutions and dense layers per second) is set against a matmul micro-benchmark's rate at the same precision,
measured in the same run.

Accuracy, against fp32 on the clips' patches: the largest tag-probability difference, the share of patches with
the same top-5 tags, the share of clips with the same top tag (mean over patches), and the cross-validated track
accuracy of a logistic regression on the clips' mean penultimate features, on folds dealt by `mer-fastai cv`'s
own `k_fold_groups` (artists as groups, seed 42: with all 600 clips, the folds of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.startup import write_marked_section  # noqa: E402
from mer_fastai.evaluation.folds import k_fold_groups  # noqa: E402
from mer_fastai.models import precision as prec  # noqa: E402
from mer_fastai.models.folding import fold  # noqa: E402
from mer_fastai.models.musicnn.network import MusicNN  # noqa: E402
from mer_fastai.models.musicnn.preprocessing import audio_patches  # noqa: E402
from mer_fastai.models.musicnn.weights import load_state  # noqa: E402

PATCH_SECONDS = 2.992
FOLD_SEED, FOLDS = 42, 5
TITLE = "musicnn precision and folding"


def clips(audio: Path, count: int) -> list[tuple[Path, str, str]]:
    """(path, quadrant, artist) of `count` clips, spread evenly over the quadrants."""
    with open(audio / "annotations.csv", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["Song"])
    per = {q: [r for r in rows if r["Quadrant"] == q] for q in ("Q1", "Q2", "Q3", "Q4")}
    chosen = [row for q in per for row in per[q][: count // 4]]
    return [(audio / r["Quadrant"] / f"{r['Song']}.mp3", r["Quadrant"], r["Artist"]) for r in chosen]


def network() -> MusicNN:
    model = MusicNN()
    model.load_state_dict(load_state("msd"))
    return model.eval()


def macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of the convolutions and dense layers for the batch `x`."""
    total = [0]

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        per_output = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
        total[0] += output.numel() * per_output

    hooks = [
        m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return total[0]


def matmul_peak(size: int = 1024, repeats: int = 5) -> dict[str, float]:
    """GMAC/s of a size³ matmul in fp32, bf16 (oneDNN) and int8 (torch.ao's quantised Linear, x86 backend)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    qa = torch.quantize_per_tensor(a, 0.05, 64, torch.quint8)
    qlinear = torch.ao.nn.quantized.Linear(size, size)
    qlinear.set_weight_bias(torch.quantize_per_tensor(b, 0.01, 0, torch.qint8), None)
    torch.backends.quantized.engine = "x86"
    runs = {"fp32": lambda: a @ b, "bf16": lambda: a.bfloat16() @ b.bfloat16(), "int8": lambda: qlinear(qa)}
    return {name: size**3 / best_time(run, repeats) / 1e9 for name, run in runs.items()}


def best_time(run: Callable[[], object], repeats: int) -> float:
    run()
    return min(timed(run) for _ in range(repeats))


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        run()
    return time.perf_counter() - start


def variants(model: MusicNN, x: torch.Tensor, calibration: torch.Tensor, compile_: bool) -> dict[str, tuple]:
    """name → (network, precision, input): every way of running musicnn measured."""
    folded = fold(model)
    made = {
        "unfolded fp32": (model, "fp32", x),
        "folded fp32": (folded, "fp32", x),
        "folded fp32, channels-last": (
            folded.to(memory_format=torch.channels_last),
            "fp32",
            x.contiguous(memory_format=torch.channels_last),
        ),  # fmt: skip
        "folded bf16": (prec.lower(model, "bf16", calibration), "bf16", x),
        "folded int8": (prec.lower(model, "int8", calibration), "int8", x),
    }
    if compile_:
        made["folded fp32, torch.compile"] = (torch.compile(fold(model)), "fp32", x)
        made["folded bf16, torch.compile"] = (torch.compile(prec.lower(model, "bf16", calibration)), "bf16", x)
    return made


def speed(model: MusicNN, x: torch.Tensor, calibration: torch.Tensor, rounds: int, threads: list[int], compile_: bool):
    """Rows (variant, threads, s per patch, × real time, GMAC/s, % of the matmul peak), measured interleaved."""
    work = macs(model, x)
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        peak = matmul_peak()
        made = variants(model, x, calibration, compile_)
        for net, _, inputs in made.values():  # warm up (and compile)
            timed(lambda net=net, inputs=inputs: net(inputs))
        times: dict[str, list[float]] = {name: [] for name in made}
        for _ in range(rounds):
            for name, (net, _, inputs) in made.items():
                times[name].append(timed(lambda net=net, inputs=inputs: net(inputs)))
        for name, (_, precision, _) in made.items():
            seconds = statistics.median(times[name])
            rate = work / seconds / 1e9
            rows.append((name, count, seconds / len(x), PATCH_SECONDS * len(x) / seconds, rate, rate / peak[precision],
                         peak[precision]))  # fmt: skip
    return rows


def accuracy(model: MusicNN, patches: list[torch.Tensor], quadrants: list[str], artists: list[str], calibration):
    """Per precision: max tag difference, same top-5 share, same track top tag share, cv track accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = np.array(k_fold_groups(quadrants, artists, FOLDS, FOLD_SEED))
    results, reference = {}, None
    for precision in ("fp32", "bf16", "int8"):
        # the body (up to the penultimate layer) at the precision, the tag layer in fp32: as `predict` runs it
        body = prec.lower(nn.Sequential(*list(model)[:-1]), precision, calibration)
        tags, features = [], []
        with torch.inference_mode():
            for x in patches:
                penultimate = body(x).float()
                tags.append(torch.sigmoid(model.head(penultimate)).numpy())
                features.append(penultimate.mean(0).numpy())
        labels = np.array(quadrants)
        predicted = np.empty(len(labels), dtype=object)
        for f in range(FOLDS):
            train, test = folds != f, folds == f
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
            classifier.fit(np.stack(features)[train], labels[train])
            predicted[test] = classifier.predict(np.stack(features)[test])
        row = {"cv track accuracy": float((predicted == labels).mean())}
        if reference is None:
            reference = tags
        else:
            row["max tag difference"] = max(float(np.abs(a - b).max()) for a, b in zip(reference, tags, strict=True))
            row["same top-5 tags (patches)"] = float(np.mean([set(np.argsort(-p)[:5]) == set(np.argsort(-q)[:5])
                                                              for a, b in zip(reference, tags, strict=True)
                                                              for p, q in zip(a, b, strict=True)]))  # fmt: skip
            row["same top tag (clips)"] = float(np.mean([a.mean(0).argmax() == b.mean(0).argmax()
                                                         for a, b in zip(reference, tags, strict=True)]))  # fmt: skip
        results[precision] = row
    return results


def report(speed_rows, accuracy_rows, n_clips: int, n_patches: int, bs: int, rounds: int) -> str:
    lines = ["| variant | threads | ms / patch | × real time | GMAC/s | of matmul peak (GMAC/s) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, threads, per_patch, realtime, rate, share, peak in speed_rows:
        lines.append(f"| {name} | {threads} | {per_patch * 1e3:.1f} | {realtime:.0f}× | {rate:.1f} | "
                     f"{share:.0%} ({peak:.0f}) |")  # fmt: skip
    lines += ["", f"Accuracy against fp32 on {n_clips} 4q-dev clips ({n_patches} patches):", "",
              "| precision | max tag difference | same top-5 tags (patches) | same top tag (clips) | "
              "cv track accuracy (logistic regression on mean features, 5 artist folds) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, row in accuracy_rows.items():
        cells = [row.get("max tag difference"), row.get("same top-5 tags (patches)"), row.get("same top tag (clips)")]
        text = ["—" if c is None else f"{c:.4f}" for c in cells]
        lines.append(f"| {name} | {' | '.join(text)} | {row['cv track accuracy']:.3f} |")
    lines += ["", f"Batch of {bs} patches, median of {rounds} interleaved rounds."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "data" / "4q-dev")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--write", type=Path, help="put the section into this report (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    chosen = clips(args.audio, args.clips)
    patches = [torch.from_numpy(audio_patches(path)) for path, _, _ in chosen]
    everything = torch.cat(patches)
    calibration = everything[:: max(1, len(everything) // prec.CALIBRATION_WINDOWS)][: prec.CALIBRATION_WINDOWS]
    model = network()
    threads = [int(t) for t in args.threads.split(",")]
    speed_rows = speed(model, everything[: args.bs], calibration, args.rounds, threads, not args.no_compile)
    accuracy_rows = {} if args.skip_accuracy else accuracy(
        model, patches, [q for _, q, _ in chosen], [a for _, _, a in chosen], calibration
    )  # fmt: skip
    table = report(speed_rows, accuracy_rows, len(chosen), len(everything), args.bs, args.rounds)
    print(table)
    if args.write:
        intro = (f"`python benchmarks/musicnn_precision.py --clips {args.clips}` on this machine ({torch.__version__}, "
                 f"{torch.get_num_threads()} threads available, shared with other jobs: ratios within a run hold, "
                 "absolute times are noisy).")  # fmt: skip
        write_marked_section(args.write, "musicnn-precision", TITLE, intro, table)


if __name__ == "__main__":
    main()
