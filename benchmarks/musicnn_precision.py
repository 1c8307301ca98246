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
from mer_fastai.models import precision as prec  # noqa: E402
from mer_fastai.models.folding import fold  # noqa: E402
from mer_fastai.models.musicnn.network import MusicNN  # noqa: E402
from mer_fastai.models.musicnn.preprocessing import audio_patches  # noqa: E402
from mer_fastai.models.musicnn.weights import load_state  # noqa: E402

PATCH_SECONDS = 2.992
PRECISIONS = ("fp32", "bf16", "int8")
CACHE = Path.home() / ".cache" / "mer-fastai-benchmarks" / "precision"
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


def layers_at(model: MusicNN, precision: str, calibration: torch.Tensor) -> Callable[[torch.Tensor], dict]:
    """patches → {pooled, penultimate, tags} of one clip with musicnn's body at `precision`, its tag layer fp32
    (as `predict` runs it; the freeze-mode feature cache runs the body up to its layer the same way)."""
    parts = list(model)
    to_pooled = prec.lower(nn.Sequential(*parts[:3]), precision, calibration)
    with torch.inference_mode():
        pooled_calibration = to_pooled(calibration).float()
    to_penultimate = prec.lower(nn.Sequential(parts[3]), precision, pooled_calibration)

    def run(x: torch.Tensor) -> dict:
        with torch.inference_mode():
            pooled = to_pooled(x).float()
            penultimate = to_penultimate(pooled).float()
            tags = torch.sigmoid(model.head(penultimate))
        return {"pooled": pooled.numpy(), "penultimate": penultimate.numpy(), "tags": tags.numpy()}

    return run


def cached_layers(model, precision, calibration, chosen, cache: Path) -> dict[str, dict]:
    """Per clip id (`Q<k>/<song>.mp3`): its patches' layers at `precision`, computed once into `cache`/<precision>/."""
    folder = cache / precision
    folder.mkdir(parents=True, exist_ok=True)
    run, arrays = None, {}
    for path, quadrant, _ in chosen:
        file = folder / f"{quadrant}__{path.stem}.npz"
        if not file.exists():
            run = run or layers_at(model, precision, calibration)
            np.savez(file.with_suffix(".tmp.npz"), **run(torch.from_numpy(audio_patches(path))))
            file.with_suffix(".tmp.npz").rename(file)
        with np.load(file) as data:
            arrays[f"{quadrant}/{path.name}"] = {name: data[name] for name in ("pooled", "penultimate", "tags")}
    return arrays


def accuracy(model: MusicNN, chosen: list, calibration: torch.Tensor, cache: Path, seeds: int) -> dict[str, dict]:
    """Per precision against fp32: max tag difference, same top-5 share (patches), same top tag share (clips), and
    the artist-grouped 5-fold CV track accuracy of the window head (track_heads.py's, on the penultimate layer)."""
    from benchmarks.track_heads import WINDOW, folds_of, run_row

    ids = [f"{q}/{path.name}" for path, q, _ in chosen]
    labels, artists = [q for _, q, _ in chosen], [a for _, _, a in chosen]
    y = {clip: ["Q1", "Q2", "Q3", "Q4"].index(q) for clip, q in zip(ids, labels, strict=True)}
    folds = folds_of(ids, labels, artists)
    results, reference = {}, None
    for precision in PRECISIONS:
        arrays = cached_layers(model, precision, calibration, chosen, cache)
        cv = run_row(WINDOW, arrays, ids, y, folds, seeds)["folds"]
        row = {"cv track accuracy": float(np.mean(cv)), "folds": cv}
        tags = [torch.from_numpy(arrays[clip]["tags"]) for clip in ids]
        if reference is None:
            reference = tags
        else:
            every = (torch.cat(reference), torch.cat(tags))
            row["max tag difference"] = float((every[0] - every[1]).abs().max())
            row["same top-5 tags (patches)"] = prec.agreement(*every, 5)
            row["same top tag (clips)"] = float(np.mean([int(a.mean(0).argmax()) == int(b.mean(0).argmax())
                                                         for a, b in zip(reference, tags, strict=True)]))  # fmt: skip
            row["cv difference"] = row["cv track accuracy"] - results["fp32"]["cv track accuracy"]
            row["folds_difference"] = [a - b for a, b in zip(cv, results["fp32"]["folds"], strict=True)]
        results[precision] = row
        print(precision, row, flush=True)
    return results


class _Bf16Layer(nn.Module):
    """One convolution or dense layer under bf16 autocast, its output back in fp32 (the sensitivity probe)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer, self.out_channels = layer, getattr(layer, "out_channels", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.layer(x).float()


def _layer_slots(net: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """name → (parent, attribute) of every convolution and dense layer of the folded musicnn `net`."""
    slots = {f"frontend conv {i} ({'timbral' if i < 2 else 'temporal'})": (b, "conv")
             for i, b in enumerate(net.frontend.blocks)}  # fmt: skip
    slots.update({f"midend conv {i}": (net.midend.convs, str(i)) for i in range(3)})
    dense = next(i for i, m in enumerate(net.penultimate) if isinstance(m, nn.Linear))
    slots["penultimate dense"] = (net.penultimate, str(dense))
    slots["tag dense"] = (net.head, "1")
    return slots


def sensitivity(model: MusicNN, x: torch.Tensor) -> list[tuple[str, float, float, float]]:
    """Per layer, bf16 on that layer alone and on every layer but it: (layer, share of the MACs, max tag
    difference, same top-5 share) against fp32 — where bf16's tag error comes from."""
    import copy

    folded = fold(model)

    def tags_with(names: set[str]) -> torch.Tensor:
        net = copy.deepcopy(folded)
        for name, (parent, key) in _layer_slots(net).items():
            if name in names:
                setattr(parent, key, _Bf16Layer(getattr(parent, key)))
        with torch.inference_mode():
            return torch.sigmoid(torch.cat([net(x[i : i + 32]) for i in range(0, len(x), 32)]))

    reference, names = tags_with(set()), list(_layer_slots(folded))
    shares = _layer_macs(folded, x[:1])
    rows = [("every layer", 1.0, *_against(reference, tags_with(set(names))))]
    for name in names:
        rows.append((f"{name} alone", shares[name], *_against(reference, tags_with({name}))))
        rows.append((f"all but {name}", 1 - shares[name], *_against(reference, tags_with(set(names) - {name}))))
    return rows


def _layer_macs(folded: nn.Module, x: torch.Tensor) -> dict[str, float]:
    counts = {}
    for name, (parent, key) in _layer_slots(folded).items():
        counts[name] = _count(folded, getattr(parent, key), x)
    total = sum(counts.values())
    return {name: count / total for name, count in counts.items()}


def _count(net: nn.Module, layer: nn.Module, x: torch.Tensor) -> int:
    seen = [0]

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        per_output = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
        seen[0] += output.numel() * per_output

    handle = layer.register_forward_hook(hook)
    with torch.no_grad():
        net(x)
    handle.remove()
    return seen[0]


def _against(reference: torch.Tensor, tags: torch.Tensor) -> tuple[float, float]:
    return float((reference - tags).abs().max()), prec.agreement(reference, tags, 5)


def report(speed_rows, accuracy_rows, n_clips: int, n_patches: int, bs: int, rounds: int) -> str:
    lines = ["| variant | threads | ms / patch | × real time | GMAC/s | of matmul peak (GMAC/s) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, threads, per_patch, realtime, rate, share, peak in speed_rows:
        lines.append(f"| {name} | {threads} | {per_patch * 1e3:.1f} | {realtime:.0f}× | {rate:.1f} | "
                     f"{share:.0%} ({peak:.0f}) |")  # fmt: skip
    lines += ["", f"Accuracy against fp32 on {n_clips} 4q-dev clips ({n_patches} patches):", "",
              "| precision | max tag difference | same top-5 tags (patches) | same top tag (clips) | "
              "CV track accuracy (window head, 5 artist folds) | against fp32 (per fold) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in accuracy_rows.items():
        cells = [row.get("max tag difference"), row.get("same top-5 tags (patches)"), row.get("same top tag (clips)")]
        text = ["—" if c is None else f"{c:.4f}" for c in cells]
        folds = row.get("folds_difference")
        against = "—" if folds is None else f"{row['cv difference']:+.4f} ({', '.join(f'{d:+.3f}' for d in folds)})"
        lines.append(f"| {name} | {' | '.join(text)} | {row['cv track accuracy']:.4f} | {against} |")
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
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--sensitivity", type=int, default=0, help="patches of the per-layer bf16 probe (0: none)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of each fold's window head")
    parser.add_argument("--cache", type=Path, default=CACHE, help="per-patch layers at each precision, made once")
    parser.add_argument("--write", type=Path, help="put the section into this report (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    chosen = clips(args.audio, args.clips)
    sample = torch.cat([torch.from_numpy(audio_patches(path)) for path, _, _ in chosen[:: max(1, len(chosen) // 8)]])
    calibration = sample[:: max(1, len(sample) // prec.CALIBRATION_WINDOWS)][: prec.CALIBRATION_WINDOWS]
    model = network()
    threads = [int(t) for t in args.threads.split(",")]
    speed_rows = [] if args.skip_speed else speed(
        model, sample[: args.bs], calibration, args.rounds, threads, not args.no_compile
    )  # fmt: skip
    if args.sensitivity:
        probe = torch.cat([torch.from_numpy(audio_patches(path)) for path, _, _ in chosen])[: args.sensitivity]
        print("| bf16 on | share of MACs | max tag difference | same top-5 tags |\n|---|---|---|---|")
        for name, share, worst, same in sensitivity(model, probe):
            print(f"| {name} | {share:.1%} | {worst:.4f} | {same:.4f} |", flush=True)
    accuracy_rows = {} if args.skip_accuracy else accuracy(model, chosen, calibration, args.cache, args.seeds)
    n_patches = sum(len(audio_patches(path)) for path, _, _ in chosen) if accuracy_rows else 0
    table = report(speed_rows, accuracy_rows, len(chosen), n_patches, args.bs, args.rounds)
    print(table)
    if args.write:
        intro = (f"`python benchmarks/musicnn_precision.py --clips {args.clips}` on this machine ({torch.__version__}, "
                 f"{torch.get_num_threads()} threads available, shared with other jobs: ratios within a run hold, "
                 "absolute times are noisy).")  # fmt: skip
        write_marked_section(args.write, "musicnn-precision", TITLE, intro, table)


if __name__ == "__main__":
    main()
