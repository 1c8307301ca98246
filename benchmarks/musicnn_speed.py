"""musicnn at the machine's limit (issue 28): predict throughput and freeze-mode training cost, side by side with
the original musicnn (TensorFlow) and with the port as it was before one pass per clip.

    python benchmarks/musicnn_speed.py --baseline-tree /tmp/mer-base --write BENCHMARKS.md
    python benchmarks/musicnn_speed.py --rows "port;one pass;one pass, bf16" --precision bf16 --train-clips 0

Every row runs in a fresh process of its own, in rounds (each round runs the rows in turn, the next round in the
reverse order, so that a change of load hits every row alike); a row's figures are the median over rounds, and
each ratio is taken round by round against the baseline row of the same round.

Predict rows label `--clips` clips of `AUDIO` (default `../shared/data/4q-dev`, the last clips of each quadrant)
with a musicnn-msd freeze model, decoding included, after one warm-up clip:
- `original`: musicnn 0.1.0 (TensorFlow) `extractor(file, "MSD_musicnn")` per file, as its users call it, in the
  Python of a separate environment (`--tf-python`, default /work/tf-venv/bin/python; made as
  `tests/fixtures/musicnn/make_reference.py` says, with its float32 compression); skipped with the reason when
  that environment is missing;
- `port`: `Predictor.predict_many` of the code in `--baseline-tree` (a checkout of the commit before one pass per
  clip, e.g. `git archive c4b3d29 | tar -x -C /tmp/mer-base`); skipped when not given;
- `one pass`: this checkout (each file decoded once, windows batched across files, freed memory reused);
- `one pass, malloc as before`: the same with glibc's default malloc (the page-fault lever alone);
- `one pass, decoding workers`: decoding in 2 worker processes while this one runs the network;
- one row per `--precision` other than fp32, when `Predictor.load` takes `precision=` (issue 28 A); else skipped.
Training rows train musicnn-msd `--mode freeze` (20 epochs, bs 32) on subsets of `AUDIO` (12 and `--train-clips`
clips, so that a round fits) with the baseline tree and with this checkout (and its feature cache at each
`--precision`); CPU-minutes are the process's user +
system time, extrapolated to the 600 clips of 4q-dev along the line through the two sizes (a fixed cost plus the
body's features, which grow with the clips).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(REPO))

from benchmarks.startup import write_marked_section  # noqa: E402

TARGET_SPEED, TARGET_MINUTES, TARGET_GAIN = 200.0, 3.0, 2.0
FULL_CLIPS, SMALL_CLIPS = 600, 12  # 4q-dev; the small training subset
KEY, TITLE = "musicnn-speed", "musicnn speed"

PREDICT = """
import json, resource, sys, time
from pathlib import Path
files = [Path(f) for f in json.loads(sys.argv[1])]
model, options = sys.argv[2], json.loads(sys.argv[3])
import mer_fastai.inference.predict as predict
if options.pop("malloc_default", False):
    predict.reuse_freed_memory = lambda: False
load = {key: options.pop(key) for key in ("precision", "workers") if key in options}
predictor = predict.Predictor.load(model, device="cpu", **load)
predictor.predict_many(files[:1], **options)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
result = predictor.predict_many(files[1:], **options)
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
c0, c1 = resource.getrusage(resource.RUSAGE_CHILDREN), None
audio = sum(track.duration for track in result.tracks)
print(json.dumps({"wall": wall, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                  "audio": audio, "tracks": len(result.tracks)}))
"""

ORIGINAL = """
import json, os, resource, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # musicnn 0.1.0 builds its graph with tf.compat.v1 layers
sys.path.insert(0, sys.argv[2])
import librosa
from make_reference import batch_data_float32
from musicnn import extractor
extractor.batch_data = batch_data_float32  # numpy 2: the original's float16 compression overflows
files = json.loads(sys.argv[1])
extractor.extractor(files[0], model="MSD_musicnn", input_overlap=False)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for file in files[1:]:
    extractor.extractor(file, model="MSD_musicnn", input_overlap=False)
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
audio = sum(librosa.get_duration(path=f) for f in files[1:])
print(json.dumps({"wall": wall, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                  "audio": audio, "tracks": len(files) - 1}))
"""

TRAIN = """
import json, resource, sys, time
from mer_fastai.training.config import TrainConfig
try:
    from mer_fastai.api.training import train
except ImportError:  # a tree before the pages moved to api/ (the port's baseline)
    from mer_fastai.training.fit import train
extra = {"precision": sys.argv[3]} if len(sys.argv) > 3 else {}  # the port before --precision has no such field
config = TrainConfig(arch="musicnn-msd", mode="freeze", weights="pretrained", epochs=20, bs=32, lr=1e-3, **extra)
t0 = time.perf_counter()
result = train(sys.argv[1], config.check(), sys.argv[2], show=False)
r = resource.getrusage(resource.RUSAGE_SELF)
c = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": time.perf_counter() - t0, "user": r.ru_utime + c.ru_utime, "sys": r.ru_stime + c.ru_stime,
                  "cached_features": result.metrics["cached_features"], "accuracy": result.metrics["accuracy"]}))
"""


def run_python(python: str, code: str, args: list[str], tree: Path | None) -> dict:
    """Run `code` in a fresh `python` with `tree` first on its path; its last output line, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree) if tree else ""}
    done = subprocess.run([python, "-c", code, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"row failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def clip_subset(audio: Path, per_class: int, last: bool) -> list[Path]:
    """`per_class` clips of every quadrant folder (the first ones, or the last ones), in folder order."""
    chosen = []
    for folder in sorted(p for p in audio.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.mp3"))
        chosen += files[-per_class:] if last else files[:per_class]
    return chosen


def training_data(audio: Path, work: Path, per_class: int) -> Path:
    """A musicnn data set of the first `per_class` clips of every quadrant (prepared once, linked clips)."""
    import csv

    from mer_fastai.data.labelsource import LabelSource
    from mer_fastai.data.spectrogram import musicnn_spec
    from mer_fastai.preparation.prepare import prepare_dataset

    out = work / f"data-musicnn-{per_class}"
    if (out / "manifest.csv").exists():
        return out
    clips = work / f"clips-{per_class}"
    chosen = clip_subset(audio, per_class, last=False)
    for file in chosen:
        link = clips / file.parent.name / file.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(file)
    with (audio / "annotations.csv").open(newline="") as source, (clips / "labels.csv").open("w") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
        writer.writeheader()
        stems = {file.stem for file in chosen}
        writer.writerows(row for row in reader if row["Song"] in stems)
    labels = LabelSource(clips / "labels.csv", group_by="Artist")
    prepare_dataset(clips, out, "emotions", labels=labels, spec=musicnn_spec(), progress=False)
    return out


def predict_rows(args, model: Path, files: list[Path]) -> dict[str, tuple[str, list[str], Path | None] | str]:
    """Row name → (python, code arguments, tree), or the reason the row is skipped."""
    names = json.dumps([str(f) for f in files])
    rows: dict[str, tuple[str, list[str], Path | None] | str] = {}
    tf = Path(args.tf_python)
    fixtures = str(REPO / "tests" / "fixtures" / "musicnn")
    rows["original"] = (str(tf), [names, fixtures], None) if tf.exists() else f"no TensorFlow environment at {tf}"
    if args.baseline_tree:
        rows["port"] = (sys.executable, [names, str(model), "{}"], args.baseline_tree)
    else:
        rows["port"] = "no --baseline-tree (a checkout of the port before one pass per clip)"
    mine = [("one pass", {}), ("one pass, malloc as before", {"malloc_default": True}),
            ("one pass, decoding workers", {"workers": 2})]  # fmt: skip
    mine += [(f"one pass, {p}", {"precision": p}) for p in args.precision if p != "fp32"]
    takes_precision = "precision" in Path(REPO / "mer_fastai" / "inference" / "predict.py").read_text()
    for name, options in mine:
        if "precision" in options and not takes_precision:
            rows[name] = "Predictor.load takes no precision here (issue 28 A not merged)"
        else:
            rows[name] = (sys.executable, [names, str(model), json.dumps(options)], REPO)
    return {name: row for name, row in rows.items() if not args.rows or name in args.rows}


def measure(rows: dict, code: dict[str, str], rounds: int) -> dict[str, list[dict]]:
    """Every runnable row once per round, alternating the order; results per row, in round order."""
    runnable = [name for name, row in rows.items() if not isinstance(row, str)]
    results: dict[str, list[dict]] = {name: [] for name in runnable}
    for index in range(rounds):
        for name in runnable if index % 2 == 0 else runnable[::-1]:
            python, arguments, tree = rows[name]
            results[name].append(run_python(python, code[name], arguments, tree))
            print(f"round {index + 1} {name}: {results[name][-1]}", flush=True)
    return results


def median(results: list[dict], key) -> float:
    return statistics.median(key(r) for r in results)


def predict_table(rows: dict, results: dict[str, list[dict]], base: str) -> tuple[str, dict[str, float]]:
    """The predict rows: real-time factor (wall), audio seconds per CPU-second, system share, gain over `base`."""
    lines = ["| predict row | × real time (wall) | audio s per CPU-s | system time | vs " + base + " (per round) |",
             "|---|---|---|---|---|"]  # fmt: skip
    speeds = {}
    for name, row in rows.items():
        if isinstance(row, str):
            lines.append(f"| {name} | skipped: {row} | – | – | – |")
            continue
        got = results[name]
        speed = speeds[name] = median(got, lambda r: r["audio"] / r["wall"])
        per_cpu = median(got, lambda r: r["audio"] / (r["user"] + r["sys"]))
        system = median(got, lambda r: r["sys"] / (r["user"] + r["sys"]))
        gains = [b["wall"] / r["wall"] for r, b in zip(got, results.get(base, []), strict=False)]
        gain = " / ".join(f"{g:.2f}×" for g in gains) if gains and name != base else "–"
        lines.append(f"| {name} | {speed:.0f}× | {per_cpu:.1f} | {system:.0%} | {gain} |")
    return "\n".join(lines), speeds


def at_full_scale(cost: dict[int, dict], sizes: tuple[int, int]) -> dict:
    """CPU seconds (user, system) at 4q-dev's 600 clips, a line through the two sizes measured (a fixed cost of
    start-up, learner and files, and a cost per clip), with the larger run's figures."""
    small, large = (cost[size] for size in sizes)
    scale = (FULL_CLIPS - sizes[0]) / (sizes[1] - sizes[0])
    full = {key: small[key] + (large[key] - small[key]) * scale for key in ("user", "sys")}
    return {**full, "measured": large, "clips": sizes[1]}


def train_table(results: dict[str, list[dict]]) -> tuple[str, dict[str, float]]:
    lines = ["| freeze training (musicnn-msd, 20 epochs) | CPU-min per model at 600 clips | system time | measured |",
             "|---|---|---|---|"]  # fmt: skip
    minutes = {}
    for name, got in results.items():
        minutes[name] = median(got, lambda r: r["user"] + r["sys"]) / 60
        system = max(0.0, median(got, lambda r: r["sys"] / (r["user"] + r["sys"])))  # extrapolated: may dip below 0
        measured = median(got, lambda r: r["measured"]["user"] + r["measured"]["sys"])
        lines.append(
            f"| {name} | {minutes[name]:.1f} | {system:.0%} | {measured:.0f} CPU-s on {got[0]['clips']} clips |"
        )
    return "\n".join(lines), minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=REPO.parent / "shared" / "data" / "4q-dev")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mer-fastai-benchmarks" / "speed")
    parser.add_argument("--baseline-tree", type=Path, help="checkout of the port before one pass per clip")
    parser.add_argument("--tf-python", default="/work/tf-venv/bin/python")
    parser.add_argument("--model", type=Path, help="the predict rows' run folder (default: trained here)")
    parser.add_argument("--clips", type=int, default=60, help="predict clips (15 per quadrant by default)")
    parser.add_argument("--train-clips", type=int, default=80, help="training subset (0: no training rows)")
    parser.add_argument("--precision", action="append", default=["fp32"], help="a precision row (issue 28 A)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the predict rows")
    parser.add_argument("--train-rounds", type=int, default=1)
    parser.add_argument("--rows", type=lambda text: [r.strip() for r in text.split(";")], help="names, ;-separated")
    parser.add_argument("--write", type=Path, help="put the section in this report (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    train_rows = {"port": (args.baseline_tree, []), "one pass": (REPO, [])} if args.train_clips else {}
    train_rows.update({f"one pass, {p}": (REPO, [p]) for p in args.precision if p != "fp32" and args.train_clips})
    train_rows = {n: t for n, t in train_rows.items() if t[0] is not None and (not args.rows or n in args.rows)}
    sizes = (SMALL_CLIPS, max(args.train_clips, SMALL_CLIPS + 4))  # the fixed cost and the cost per clip
    needed = sizes if train_rows or not args.model else ()
    data = {size: training_data(args.audio, args.work, size // 4) for size in needed}
    trained: dict[str, list[dict]] = {name: [] for name in train_rows}
    for index in range(args.train_rounds if train_rows else 0):
        for name in list(train_rows)[:: 1 if index % 2 == 0 else -1]:
            cost = {}
            for size in sizes:
                run = args.work / "runs" / f"{name.replace(' ', '-')}-{size}-{index}"
                tree, extra = train_rows[name]
                cost[size] = run_python(sys.executable, TRAIN, [str(data[size]), str(run), *extra], tree)
                print(f"round {index + 1} train {name} on {size} clips: {cost[size]}", flush=True)
            trained[name].append(at_full_scale(cost, sizes))
    model = args.model or args.work / "runs" / f"one-pass-{sizes[1]}-0"
    if not (model / "model.safetensors").exists():  # the predict rows' model: musicnn-msd, freeze
        run_python(sys.executable, TRAIN, [str(data[sizes[1]]), str(model)], REPO)

    files = clip_subset(args.audio, args.clips // 4, last=True)
    rows = predict_rows(args, model, files)
    code = {name: ORIGINAL if name == "original" else PREDICT for name in rows}
    results = measure(rows, code, args.rounds)
    base = "port" if "port" in results else next(iter(results), "")
    table, speeds = predict_table(rows, results, base)
    verdicts = []
    if "one pass" in speeds:
        best = max(speeds.values())
        met = "met" if best >= TARGET_SPEED else "missed"
        verdicts.append(f"- predict, musicnn-msd: {speeds['one pass']:.0f}× real time (fp32; best row {best:.0f}×)"
                        f" — target ≥ {TARGET_SPEED:.0f}×: **{met}**")  # fmt: skip
    if "one pass" in speeds and "original" in speeds:
        gain = speeds["one pass"] / speeds["original"]
        verdicts.append(f"- against the original (TensorFlow): {gain:.1f}× its throughput — target ≥ "
                        f"{TARGET_GAIN:.0f}×: **{'met' if gain >= TARGET_GAIN else 'missed'}**")  # fmt: skip
    training = ""
    if trained:
        training, minutes = train_table(trained)
        if "one pass" in minutes:
            met = minutes["one pass"] <= TARGET_MINUTES
            verdicts.append(f"- freeze training: {minutes['one pass']:.1f} CPU-minutes per model at 4q-dev scale — "
                            f"target ≤ {TARGET_MINUTES:.0f}: **{'met' if met else 'missed'}**")  # fmt: skip
    intro = (
        f"`python benchmarks/musicnn_speed.py` on {os.cpu_count()} cores shared with other work (load average "
        f"{load:.1f} at the start, {started}); {args.rounds} rounds, rows alternating, medians; predict: "
        f"{len(files) - 1} clips of 4q-dev (≈30 s each) after one warm-up clip, decoding included; "
        + (
            f"training: {SMALL_CLIPS} and {sizes[1]} clips of 4q-dev, CPU time extrapolated to its 600"
            if trained
            else f"no training rows (model: {model})"
        )
        + f". Targets (issue 28): predict ≥ {TARGET_SPEED:.0f}× real time, freeze training ≤ {TARGET_MINUTES:.0f} "
        f"CPU-minutes per model, ≥ {TARGET_GAIN:.0f}× the original's throughput."
    )
    body = "\n\n".join(part for part in (table, training, "\n".join(verdicts)) if part)
    print(intro, body, sep="\n\n")
    if args.write:
        write_marked_section(args.write, KEY, TITLE, intro, body)


if __name__ == "__main__":
    main()
