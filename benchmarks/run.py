"""Benchmark suite: the study's training loop vs `mer-fastai train` vs the model's compute floor,
`prepare` vs a serial librosa loop, and `predict` throughput; writes BENCHMARKS.md.

    python benchmarks/run.py --quick          # small subset, a few minutes
    python benchmarks/run.py                  # the full run recorded in BENCHMARKS.md

Every measurement runs in a fresh process, one after the other, on the same prepared data, so timings
do not share warm caches or threads and each reports its own peak memory. Each finished measurement is
journalled, so an interrupted run started again with the same options skips what it already measured
(`--fresh` measures everything anew).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `benchmarks` and `mer_fastai` importable
    sys.path.insert(0, str(REPO))

from benchmarks.report import write_report  # noqa: E402
from mer_fastai._plumbing.jsonlines import append_entry, open_to_append, read_entries  # noqa: E402

Runner = Callable[..., dict]
DEFAULT_AUDIO = REPO.parent / "shared" / "data" / "4q-dev"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mer-fastai-benchmarks"
STUDY_SIZE = 224
QUICK_CLIPS = 80
MODES = ("whole", "freeze")
PREPARE_RUNS = 2


@dataclass
class Settings:
    """What one benchmark run measures (the defaults are the full run)."""

    data: Path | None = None
    audio: Path = DEFAULT_AUDIO
    archs: list[str] = field(default_factory=lambda: ["squeezenet1_0", "timm/resnet18"])
    epochs: int = 10
    freeze_epochs: int = 20
    ablation_epochs: int = 2
    bs: int = 32
    size: int = 128
    study_size: int = STUDY_SIZE
    sizes: list[int] = field(default_factory=lambda: [224, 96])
    per_class: tuple[int, int] | None = None
    prepare_files: int = 600
    memory_files: int = 100
    predict_files: int = 60
    floor_steps: int = 5
    lr: str = "auto"
    weights: str = "none"
    seed: int = 42
    quick: bool = False
    out: Path = REPO / "BENCHMARKS.md"
    work: Path = CACHE

    @classmethod
    def quick_run(cls, **overrides) -> Settings:
        """A few minutes: one small arch, 24+8 images per class, two epochs, small images."""
        values = {
            "archs": ["squeezenet1_0"],
            "epochs": 2,
            "freeze_epochs": 3,
            "ablation_epochs": 1,
            "size": 64,
            "sizes": [],
            "per_class": (24, 8),
            "prepare_files": 24,
            "memory_files": 8,
            "predict_files": 8,
            "floor_steps": 2,
            "quick": True,
        }
        return cls(**{**values, **overrides})


def run_task(name: str, work: Path, **kwargs) -> dict:
    """One task of `benchmarks.tasks` in a fresh Python process; its result dict."""
    result_path = work / f".result-{os.getpid()}.json"
    command = [sys.executable, "-m", "benchmarks.tasks", name, json.dumps(kwargs), str(result_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    busy, own, started = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    others = machine_busy_seconds() - busy - (own_cpu_seconds() - own)
    result = json.loads(result_path.read_text())
    result_path.unlink()
    return {**result, "others_cpu_share": max(0.0, others) / (wall * (os.cpu_count() or 1))}


class Journal:
    """A `Runner` that keeps each finished task's result in a JSON-lines file and replays it on a rerun.

    A task is known by its name, its arguments and how many identical calls came before it in this run,
    so repeated measurements (the two prepare runs) each keep their own result.
    """

    def __init__(self, path: Path, runner: Runner = run_task) -> None:
        self.path, self.runner = path, runner
        self.saved = {entry["key"]: entry["result"] for entry in read_entries(path)}
        self.calls: dict[str, int] = {}
        self.replayed = 0

    def __call__(self, name: str, work: Path, **kwargs) -> dict:
        call = json.dumps([name, kwargs], sort_keys=True)
        self.calls[call] = self.calls.get(call, 0) + 1
        key = f"{call}#{self.calls[call]}"
        if key in self.saved:
            say(f"  (measured before: kept from {self.path.name})")
            self.replayed += 1
            return self.saved[key]
        result = self.runner(name, work, **kwargs)
        with open_to_append(self.path) as journal:
            append_entry(journal, {"key": key, "result": result})
        return result


def prepare_default_data(audio: Path, work: Path) -> Path:
    """The 4-quadrant data set of `audio` (split by artist), prepared once into the cache folder."""
    from mer_fastai.data.labelsource import LabelSource
    from mer_fastai.errors import MerError
    from mer_fastai.preparation.prepare import prepare_dataset

    out = work / f"data-{audio.name}"
    labels = audio / "annotations.csv"
    kwargs = {"labels": LabelSource(labels, group_by="Artist")} if labels.exists() else {}
    try:
        prepare_dataset(audio, out, "emotions", workers=2, progress=True, **kwargs)
    except MerError as exc:  # cached by another version of the toolkit: make it anew
        say(f"{exc}; preparing it again")
        prepare_dataset(audio, out, "emotions", workers=2, progress=True, overwrite=True, **kwargs)
    return out


def subset_dataset(source: Path, out: Path, per_class: tuple[int, int]) -> Path:
    """A copy of `source` keeping `per_class` (train, valid) images of each class, spread over its files."""
    import dataclasses

    from mer_fastai.data.dataset import read_info, read_manifest, read_spec, write_info, write_manifest, write_spec

    info, rows = read_info(source), read_manifest(source)
    shutil.rmtree(out, ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    kept = []
    for split, keep in zip(("train", "valid"), per_class, strict=True):
        counts[split] = {}
        for name in info.classes:
            listed = sorted((r for r in rows if r.split == split and r.label == name), key=lambda r: r.image)
            chosen = listed[:: max(1, len(listed) // keep)][:keep]
            (out / split / name).mkdir(parents=True)
            for row in chosen:
                row.path(out).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(row.path(source), row.path(out))
            counts[split][name] = len(chosen)
            kept += chosen
    write_spec(out, read_spec(source))
    write_manifest(out, kept)
    clips = len({row.clip_id for row in kept})
    write_info(out, dataclasses.replace(info, counts=counts, clips=clips, segments=len(kept), subset_of=str(source)))
    return out


def audio_subset(audio: Path, n: int, out: Path) -> list[Path]:
    """`n` clips of `audio` taken round-robin over its class folders, linked into `out/<class>/`."""
    from mer_fastai.data.audio import find_audio_files

    by_class: dict[str, list[Path]] = {}
    for file in find_audio_files(audio):
        by_class.setdefault(file.parent.name, []).append(file)
    chosen: list[Path] = []
    for i in range(max(map(len, by_class.values()))):
        chosen += [files[i] for files in by_class.values() if i < len(files)]
    shutil.rmtree(out, ignore_errors=True)
    links = []
    for file in chosen[:n]:
        link = out / file.parent.name / file.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(file.resolve())
        links.append(link)
    return links


def audio_seconds(files: list[Path]) -> float:
    import soundfile

    return sum(soundfile.info(str(f)).duration for f in files)


def count_images(data: Path) -> dict[str, int]:
    return {split: len(list((data / split).glob("*/*.png"))) for split in ("train", "valid")}


def measure(settings: Settings, run_task: Runner = run_task) -> dict:
    """Every benchmark of `settings`, as the dict `write_report` renders; `run_task` runs each piece."""
    from mer_fastai.data.dataset import read_info

    work = settings.work
    work.mkdir(parents=True, exist_ok=True)
    started, busy = time.time(), machine_busy_seconds() - own_cpu_seconds()
    keys = ("bs", "seed", "weights", "lr", "size", "study_size", "quick")
    results: dict = {
        "settings": {key: getattr(settings, key) for key in keys},
        "load_before": os.getloadavg()[0],
        "training": [],
        "sizes": [],
        "ablations": [],
    }
    if settings.data:
        data = settings.data
    elif settings.quick:  # a small data set of its own, split by clip
        from mer_fastai.preparation.prepare import prepare_dataset

        audio_subset(settings.audio, QUICK_CLIPS, work / "audio-quick")
        data = work / "data-quick"
        prepare_dataset(work / "audio-quick", data, "emotions", workers=2, progress=False)
    else:
        data = prepare_default_data(settings.audio, work)
    if settings.per_class:
        data = subset_dataset(data, work / "data-subset", settings.per_class)
    images = count_images(data)
    results["data"] = {
        "path": str(data),
        **images,
        "classes": read_info(data).classes,
    }
    n_classes = len(results["data"]["classes"])
    runs = work / "runs"
    common = {"data": str(data), "bs": settings.bs, "seed": settings.seed}
    tool = {**common, "lr": settings.lr, "weights": settings.weights}
    for arch in settings.archs:
        say(f"{arch}: compute floor")
        floors = {
            (size, channels_last): run_task(
                "floor",
                work,
                arch=arch,
                size=size,
                bs=settings.bs,
                n_classes=n_classes,
                steps=settings.floor_steps,
                channels_last=channels_last,
            )
            for size, channels_last in {(settings.study_size, False), (settings.size, False), (settings.size, True)}
        }
        for mode, epochs in (("whole", settings.epochs), ("freeze", settings.freeze_epochs)):
            say(f"{arch} {mode}: study loop, {epochs} epochs")
            study = run_task(
                "study",
                work,
                arch=arch,
                mode=mode,
                epochs=epochs,
                size=settings.study_size,
                pretrained=settings.weights == "imagenet",
                **common,
            )
            say(f"{arch} {mode}: mer-fastai train, {epochs} epochs at {settings.size} px")
            out = runs / f"{arch.replace('/', '_')}-{mode}"
            ours = run_task(
                "toolkit", work, arch=arch, mode=mode, epochs=epochs, size=settings.size, out=str(out), **tool
            )
            results["training"].append(
                {
                    "arch": arch,
                    "mode": mode,
                    "epochs": epochs,
                    "study": study,
                    "toolkit": ours,
                    "run": str(out),
                    "floor": floors[settings.size, True],
                    "floor_nchw": floors[settings.size, False],
                    "floor_study": floors[settings.study_size, False],
                }
            )
    arch = settings.archs[0]
    for size in settings.sizes:
        say(f"{arch} whole: mer-fastai train at {size} px")
        out = runs / f"size-{size}"
        ours = run_task(
            "toolkit", work, arch=arch, mode="whole", epochs=settings.epochs, size=size, out=str(out), **tool
        )
        results["sizes"].append({"arch": arch, "size": size, "toolkit": ours})
    short = {"arch": arch, "epochs": settings.ablation_epochs, "size": settings.size, **tool}
    say(f"{arch}: mer-fastai train with every speed-up on, {settings.ablation_epochs} epoch(s) per mode")
    on = {mode: run_task("toolkit", work, mode=mode, out=str(runs / f"all-on-{mode}"), **short) for mode in MODES}
    for mode, option in (("whole", "cache"), ("whole", "channels_last"), ("freeze", "feature_cache")):
        say(f"{arch} {mode}: mer-fastai train with {option} off")
        off = run_task("toolkit", work, mode=mode, out=str(runs / f"no-{option}"), **{option: False}, **short)
        results["ablations"].append({"arch": arch, "mode": mode, "option": option, "off": off, "on": on[mode]})
    results["prepare"] = measure_prepare(settings, work, run_task)
    results["predict"] = measure_predict(settings, work, results["training"], run_task)
    wall = time.time() - started
    others = machine_busy_seconds() - own_cpu_seconds() - busy
    results["others_cpu_share"] = max(0.0, others) / (wall * (os.cpu_count() or 1))
    results["minutes"] = wall / 60
    return results


def machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (user, system, interrupts: /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of the measurement processes it has run."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def measure_prepare(settings: Settings, work: Path, run_task: Runner) -> dict:
    """`prepare` with 2 workers vs the serial librosa loop on the same clips, and its memory at two sizes."""
    files = audio_subset(settings.audio, settings.prepare_files, work / "audio")
    seconds = audio_seconds(files)
    runs = []
    for attempt in range(PREPARE_RUNS):  # the faster of two from-scratch runs: the least disturbed by others
        say(f"prepare: {len(files)} clips ({seconds / 60:.0f} min of audio), 2 workers, run {attempt + 1}")
        runs.append(run_task("prepare", work, audio_dir=str(work / "audio"), out=str(work / "prepared"), workers=2))
    ours = {**min(runs, key=lambda r: r["wall"]), "walls": [r["wall"] for r in runs]}
    say(f"prepare: serial librosa loop on {len(files)} clips")
    serial = run_task("serial_librosa", work, files=[str(f) for f in files], out=str(work / "serial"))
    say(f"prepare: memory with {settings.memory_files} clips")
    audio_subset(settings.audio, settings.memory_files, work / "audio-small")
    small = run_task("prepare", work, audio_dir=str(work / "audio-small"), out=str(work / "prepared-small"), workers=2)
    for folder in ("serial", "prepared", "prepared-small"):
        shutil.rmtree(work / folder, ignore_errors=True)
    return {
        "files": len(files),
        "audio_seconds": seconds,
        "toolkit": ours,
        "serial": serial,
        "small": {**small, "files": settings.memory_files},
    }


def measure_predict(settings: Settings, work: Path, training: list[dict], run_task: Runner) -> dict:
    """`Predictor.predict_many` throughput with the largest whole-mode model trained above."""
    whole = [row for row in training if row["mode"] == "whole"]
    model = whole[-1]
    files = audio_subset(settings.audio, settings.predict_files, work / "audio-predict")
    say(f"predict: {len(files)} clips with {model['arch']}")
    result = run_task("predict", work, model=model["run"], files=[str(f) for f in files])
    return {
        "arch": model["arch"],
        "size": settings.size,
        "files": len(files),
        "audio_seconds": audio_seconds(files),
        **result,
    }


def say(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


def parse_args(argv: list[str] | None) -> tuple[Settings, Path | None, bool]:
    """The settings to measure, the saved results to render instead (--render), and whether --fresh was given."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="a prepared data set (default: prepare --audio into the cache)")
    parser.add_argument(
        "--audio", type=Path, help=f"class-per-folder clips for prepare/predict (default: {DEFAULT_AUDIO})"
    )
    parser.add_argument("--arch", action="append", help="architecture to train (repeatable)")
    parser.add_argument("--epochs", type=int, help="epochs of the whole-mode runs (both loops)")
    parser.add_argument("--freeze-epochs", type=int, help="epochs of the freeze-mode runs (both loops; default 20)")
    parser.add_argument("--bs", type=int, help="batch size (both loops)")
    parser.add_argument("--size", type=int, help="mer-fastai training size in px (the study loop crops 224)")
    parser.add_argument("--sizes", help="comma-separated extra sizes for the accuracy-vs-time runs of the first arch")
    parser.add_argument("--per-class", help="TRAIN,VALID images per class: train on a subset")
    parser.add_argument("--prepare-files", type=int, help="clips for the prepare comparison")
    parser.add_argument("--predict-files", type=int, help="clips for the predict throughput")
    parser.add_argument("--lr", help="mer-fastai learning rate (default: auto, i.e. lr_find)")
    parser.add_argument("--weights", help="starting weights of both loops: none (default) or imagenet")
    parser.add_argument("--quick", action="store_true", help="small subset, few epochs (a few minutes)")
    parser.add_argument("--out", type=Path, help="report file (default: BENCHMARKS.md; quick: benchmarks-quick.md)")
    parser.add_argument("--render", type=Path, help="write the report from a saved results JSON; measure nothing")
    parser.add_argument("--fresh", action="store_true", help="measure everything anew, ignoring an interrupted run")
    args = parser.parse_args(argv)
    given = {
        "data": args.data,
        "audio": args.audio,
        "archs": args.arch,
        "epochs": args.epochs,
        "freeze_epochs": args.freeze_epochs,
        "bs": args.bs,
        "size": args.size,
        "sizes": [int(s) for s in args.sizes.split(",") if s] if args.sizes is not None else None,
        "per_class": tuple(int(n) for n in args.per_class.split(",")) if args.per_class else None,
        "prepare_files": args.prepare_files,
        "predict_files": args.predict_files,
        "lr": args.lr,
        "weights": args.weights,
        "out": args.out or (Path(tempfile.gettempdir()) / "benchmarks-quick.md" if args.quick else None),
    }
    given = {key: value for key, value in given.items() if value is not None}
    return (Settings.quick_run(**given) if args.quick else Settings(**given)), args.render, args.fresh


def main(argv: list[str] | None = None) -> int:
    settings, render, fresh = parse_args(argv)
    if render:
        results = json.loads(render.read_text())
    else:
        journal = settings.work / f"progress-{settings.out.stem}.jsonl"
        if fresh:
            journal.unlink(missing_ok=True)
        runner = Journal(journal)
        results = {**measure(settings, runner), "replayed": runner.replayed}
        results["command"] = ("python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
        saved = settings.work / f"results-{settings.out.stem}.json"
        saved.write_text(json.dumps(results, indent=1))
        journal.unlink(missing_ok=True)
        say(f"measurements saved to {saved} (`--render {saved}` rewrites the report from them)")
    print(write_report(settings.out, results))
    print(f"report written to {settings.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
