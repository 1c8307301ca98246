"""BENCHMARKS.md from the measurements of `run.py`: tables, ratios and the targets met or missed.

A hand-written section after the `ANALYSIS_MARK` line of an existing report is kept when it is rewritten.
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

ANALYSIS_MARK = "<!-- analysis: kept when the report is regenerated -->"
TARGETS = {
    "whole_floor": 1.10,  # epoch time at most this times the floor
    "whole_speedup": 2.0,  # epoch time vs the study's loop
    "freeze_speedup": 10.0,  # total time of the freeze-mode run vs the study's loop
    "prepare": 1500.0,  # audio seconds per wall second
    "predict": 100.0,
}


def floor_epoch(floor: dict, n_train: int, n_valid: int, bs: int) -> float:
    """Seconds of the model's own compute for one epoch: `n_train` images trained, `n_valid` evaluated."""
    return floor["train_step"] * n_train / bs + floor["eval_step"] * n_valid / bs


def training_rows(results: dict, bs: int) -> list[dict]:
    """The derived figures of every (arch, mode) pair: epoch times, floors, ratios and scores."""
    n_train, n_valid = results["data"]["train"], results["data"]["valid"]
    rows = []
    for run in results["training"]:
        study, ours = run["study"], run["toolkit"]
        row = {
            "arch": run["arch"],
            "mode": run["mode"],
            "epochs": run["epochs"],
            "study_epoch": median(study["epoch_seconds"]),
            "ours_epoch": median(ours["epoch_seconds"]),
            "study_total": study["wall"],
            "ours_total": ours["wall"],
            "floor_study": floor_epoch(run["floor_study"], n_train, n_valid, bs),
            "floor_ours": floor_epoch(run["floor"], bs * (n_train // bs), n_valid, bs),
            "floor_nchw": floor_epoch(run["floor_nchw"], bs * (n_train // bs), n_valid, bs),
            "study_acc": study["accuracy"],
            "study_f1": study["macro_f1"],
            "ours_acc": ours["accuracy"],
            "ours_f1": ours["macro_f1"],
            "cached_features": ours["cached_features"],
            "lr": ours["lr"],
            "study_rss": study["peak_rss_mb"],
            "ours_rss": ours["peak_rss_mb"],
            "study_child_rss": study["child_peak_rss_mb"],
            "others": max(study["others_cpu_share"], ours["others_cpu_share"]),
        }
        if run["mode"] == "freeze":  # one no-grad forward pass of every image per epoch at least
            row["floor_study"] = run["floor_study"]["eval_step"] * (n_train + n_valid) / bs
            row["floor_ours"] = run["floor"]["eval_step"] * (n_train + n_valid) / bs
            row["floor_nchw"] = run["floor_nchw"]["eval_step"] * (n_train + n_valid) / bs
        row["epoch_speedup"] = row["study_epoch"] / row["ours_epoch"]
        row["total_speedup"] = row["study_total"] / row["ours_total"]
        rows.append(row)
    return rows


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def speedup_row(target: str, required: float, speed: float, digits: int) -> tuple[str, str, str, str]:
    """The row of a speed-up target: at least `required` times, measured `speed` times."""
    return target, f"≥ {required:.0f}×", f"{speed:.{digits}f}×", verdict(speed >= required)


def target_rows(rows: list[dict], results: dict) -> list[tuple[str, str, str, str]]:
    """(target, required, measured, verdict) of every target with a measurement."""
    out = []
    for row in rows:
        name = f"{row['arch']} {row['mode']}"
        if row["mode"] == "whole":
            ratio = row["ours_epoch"] / row["floor_ours"]
            out.append(
                (
                    f"{name}: epoch / floor",
                    f"≤ {TARGETS['whole_floor']:.2f}",
                    f"{ratio:.2f}",
                    verdict(ratio <= TARGETS["whole_floor"]),
                )
            )
            out.append(speedup_row(f"{name}: study epoch / ours", TARGETS["whole_speedup"], row["epoch_speedup"], 2))
            diff = row["ours_acc"] - row["study_acc"]
            out.append((f"{name}: accuracy ours − study", "≥ 0", f"{diff:+.3f}", verdict(diff >= 0)))
        else:
            out.append(
                speedup_row(
                    f"{name} ({row['epochs']} epochs): study total / ours",
                    TARGETS["freeze_speedup"],
                    row["total_speedup"],
                    1,
                )
            )
    prepare, predict = results["prepare"], results["predict"]
    rate = prepare["audio_seconds"] / prepare["toolkit"]["wall"]
    out.append(
        (
            "prepare (2 workers): × real time",
            f"≥ {TARGETS['prepare']:.0f}×",
            f"{rate:.0f}×",
            verdict(rate >= TARGETS["prepare"]),
        )
    )
    rate = predict["audio_seconds"] / predict["wall"]
    out.append(
        (
            f"predict ({predict['arch']}): × real time",
            f"≥ {TARGETS['predict']:.0f}×",
            f"{rate:.0f}×",
            verdict(rate >= TARGETS["predict"]),
        )
    )
    return out


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ratio_table(rows: list[dict]) -> str:
    """The side-by-side table of the study loop (a), mer-fastai (b) and the floor (c)."""
    return table(
        [
            "arch",
            "mode",
            "epochs",
            "(a) s/epoch",
            "(b) s/epoch",
            "(c) floor s/epoch: a · b (b in NCHW)",
            "(a)/(b) epoch",
            "(a) total s",
            "(b) total s",
            "(a)/(b) total",
            "(b)/floor",
            "(a) acc · F1",
            "(b) acc · F1",
            "others' CPU",
        ],
        [
            [
                r["arch"],
                r["mode"],
                str(r["epochs"]),
                f"{r['study_epoch']:.1f}",
                f"{r['ours_epoch']:.2f}",
                f"{r['floor_study']:.1f} · {r['floor_ours']:.1f} ({r['floor_nchw']:.1f})",
                f"{r['epoch_speedup']:.2f}×",
                f"{r['study_total']:.0f}",
                f"{r['ours_total']:.0f}",
                f"{r['total_speedup']:.1f}×",
                f"{r['ours_epoch'] / r['floor_ours']:.2f}" if r["mode"] == "whole" else "—",
                f"{r['study_acc']:.3f} · {r['study_f1']:.3f}",
                f"{r['ours_acc']:.3f} · {r['ours_f1']:.3f}",
                f"{r['others']:.0%}",
            ]
            for r in rows
        ],
    )


def machine() -> list[str]:
    """Machine, library versions and date lines."""
    import fastai
    import librosa
    import numpy
    import PIL
    import torch
    import torchvision

    import mer_fastai

    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, GPU: {gpu}; {platform.platform()}",
        f"- versions: Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"torchvision {torchvision.__version__}, fastai {fastai.__version__}, librosa {librosa.__version__}, "
        f"numpy {numpy.__version__}, Pillow {PIL.__version__}, mer-fastai {mer_fastai.__version__}",
    ]


def write_report(path: Path, results: dict) -> str:
    """Write the report of `run.measure`'s results; return the ratio and target tables (what `run.py` prints)."""
    settings, command = results["settings"], results["command"]
    bs = settings["bs"]
    rows = training_rows(results, bs)
    targets = table(["target", "required", "measured", ""], [list(t) for t in target_rows(rows, results)])
    if settings.get("quick"):
        targets += (
            "\n\nQuick run: the targets are set for the full run (whole data set, 20 freeze epochs, 600 clips "
            "to prepare); on a few images and clips fixed costs (process start, lr_find, the one feature pass) "
            "dominate, so these figures check that the suite works rather than measure the targets."
        )
    ratios = ratio_table(rows)
    data = results["data"]
    before, others = results["load_before"], results["others_cpu_share"]
    load_note = (
        ""
        if before < 1 and others < 0.05
        else " **The machine was not idle: other processes shared the CPU, so the times are pessimistic.**"
    )
    replayed = results.get("replayed")
    resumed = f" (resumed: {replayed} measurements kept from an interrupted run)" if replayed else ""
    lines = [
        "# Benchmarks",
        "",
        "Reproduce with one command (it prepares the data set into `~/.cache/mer-fastai-benchmarks` first):",
        "",
        f"    {command}",
        "",
        *machine(),
        f"- load average (1 min) before the run: {before:.2f}; other processes' share of the CPU during "
        f"the run: {others:.1%} (from /proc/stat minus the benchmark's own CPU time).{load_note}",
        f"- whole run: {results['minutes']:.0f} min{resumed}",
        f"- data: `{data['path']}`: {data['train']} training + {data['valid']} validation spectrograms, "
        f"classes {', '.join(data['classes'])}",
        f"- settings: batch size {bs}, seed {settings['seed']}, weights `{settings['weights']}` for both loops"
        f"{' (random initialisation: no pretrained weights here)' if settings['weights'] == 'none' else ''}, "
        f"mer-fastai lr `{settings['lr']}`{' (lr_find)' if settings['lr'] == 'auto' else ''}, "
        f"mer-fastai size {settings['size']} px, study loop {settings['study_size']} px crops",
        "",
        "## Ratios and targets",
        "",
        targets,
        "",
        "## Training: the study's loop (a), `mer-fastai train` (b) and the compute floor (c)",
        "",
        "(a) `benchmarks/study_loop.py`: ImageFolder PNGs, torchvision transforms per image and epoch, "
        f"2 loader workers, SGD 0.001 + momentum 0.9, ReduceLROnPlateau, {settings['study_size']} px; "
        "freeze = backbone `requires_grad=False`. (b) `mer_fastai.train` with the defaults: "
        "spectrograms decoded once into memory, channels-last weights, freeze mode on cached body "
        "features, fit_one_cycle after lr_find. (c) the same network's forward + backward + SGD step "
        "(whole) or forward pass (freeze) on random in-memory tensors, median of repeated batches, "
        "scaled to the epoch's images; first figure at "
        f"{settings['study_size']} px in NCHW like (a), second at (b)'s size in channels-last like (b), "
        "in brackets the same in NCHW. s/epoch is the median over the epochs (training + validation); "
        "others' CPU is the largest share of the 2 cores other processes took during (a) or (b); totals "
        "are the whole process work: for (b) decoding, feature caching, lr_find, fitting, report and "
        "model file.",
        "",
        ratios,
        "",
    ]
    if results["sizes"]:
        lines += ["## Accuracy vs time by training size (whole mode, mer-fastai)", ""]
        size_rows = [r for r in rows if r["mode"] == "whole" and r["arch"] == results["sizes"][0]["arch"]]
        entries = [
            (
                settings["size"],
                size_rows[0]["ours_epoch"],
                size_rows[0]["ours_total"],
                size_rows[0]["ours_acc"],
                size_rows[0]["ours_f1"],
            )
        ]
        entries += [
            (
                s["size"],
                median(s["toolkit"]["epoch_seconds"]),
                s["toolkit"]["wall"],
                s["toolkit"]["accuracy"],
                s["toolkit"]["macro_f1"],
            )
            for s in results["sizes"]
        ]
        lines += [
            table(
                ["size px", "s/epoch", "total s", "accuracy", "macro-F1"],
                [[str(s), f"{e:.1f}", f"{t:.0f}", f"{a:.3f}", f"{f:.3f}"] for s, e, t, a, f in sorted(entries)],
            ),
            "",
            f"Same arch ({results['sizes'][0]['arch']}), data, epochs, batch size and seed; the study loop "
            f"trains at {settings['study_size']} px (row above: {size_rows[0]['study_epoch']:.1f} s/epoch, accuracy "
            f"{size_rows[0]['study_acc']:.3f}).",
            "",
        ]
    if results["ablations"]:
        lines += ["## Each speed-up on and off (mer-fastai, same settings otherwise)", ""]
        lines += [
            table(
                [
                    "arch",
                    "mode",
                    "option",
                    "epochs",
                    "off: s/epoch · total s",
                    "on: s/epoch · total s",
                    "total off/on",
                ],
                [
                    [
                        a["arch"],
                        a["mode"],
                        a["option"],
                        str(len(a["on"]["epoch_seconds"])),
                        f"{median(a['off']['epoch_seconds']):.2f} · {a['off']['wall']:.0f}",
                        f"{median(a['on']['epoch_seconds']):.2f} · {a['on']['wall']:.0f}",
                        f"{a['off']['wall'] / a['on']['wall']:.1f}×",
                    ]
                    for a in results["ablations"]
                ],
            ),
            "",
        ]
    lines += prepare_section(results["prepare"]) + predict_section(results["predict"])
    lines += memory_section(rows, results["prepare"])
    lines += [
        "## GPU",
        "",
        "No GPU was lent to the task that made this run (the project's GPU machines are lent to a random few "
        "tasks), so nothing was measured on one: densenet121/resnext101_32x8d images/s with bf16 and "
        "channels-last on a GPU remain to be recorded.",
        "",
    ]
    lines += ["## Analysis", "", ANALYSIS_MARK, ""]
    kept = ""
    if path.exists() and ANALYSIS_MARK in path.read_text():
        kept = path.read_text().split(ANALYSIS_MARK, 1)[1].lstrip("\n")
    path.write_text("\n".join(lines) + kept)
    return ratios + "\n\n" + targets


def prepare_section(prepare: dict) -> list[str]:
    seconds = prepare["audio_seconds"]
    ours, serial = prepare["toolkit"], prepare["serial"]
    return [
        "## `prepare` (d)",
        "",
        table(
            ["pipeline", "clips", "spectrograms", "wall s", "× real time", "ms per clip"],
            [
                [
                    name,
                    str(r["clips"]),
                    str(r["segments"]),
                    f"{r['wall']:.1f}",
                    f"{seconds / r['wall']:.0f}×",
                    f"{1000 * r['wall'] / r['clips']:.0f}",
                ]
                for name, r in (
                    ("mer-fastai prepare, 2 workers", ours),
                    ("serial librosa loop, 1 process", serial),
                )
            ],
        ),
        "",
        f"{prepare['files']} clips, {seconds / 60:.1f} min of audio; 10 s windows, 128 mel bands, PNG output. "
        f"prepare vs the serial loop: {serial['wall'] / ours['wall']:.1f}×. mer-fastai's figure is the faster of "
        f"{len(ours.get('walls', [ours['wall']]))} from-scratch runs "
        f"({', '.join(f'{w:.1f}' for w in ours.get('walls', [ours['wall']]))} s).",
        "",
    ]


def predict_section(predict: dict) -> list[str]:
    seconds, wall = predict["audio_seconds"], predict["wall"]
    return [
        "## `predict` (e)",
        "",
        f"`Predictor.load(run).predict_many(clips)` with the whole-mode {predict['arch']} model "
        f"({predict['size']} px) on {predict['files']} clips ({seconds / 60:.1f} min of audio, "
        f"{predict['windows']} windows), one process: **{seconds / wall:.0f}× real time** "
        f"({wall:.1f} s, {predict['windows'] / wall:.1f} windows/s); loading the model took a further "
        f"{predict['load']:.1f} s ({seconds / (wall + predict['load']):.0f}× real time with it). "
        f"Peak memory {predict['peak_rss_mb']:.0f} MiB.",
        "",
    ]


def memory_section(rows: list[dict], prepare: dict) -> list[str]:
    small, full = prepare["small"], prepare["toolkit"]
    lines = [
        "## Memory (peak resident set size, MiB)",
        "",
        table(
            ["prepare", "main process", "largest worker"],
            [
                [f"{n} clips", f"{r['peak_rss_mb']:.0f}", f"{r['child_peak_rss_mb']:.0f}"]
                for n, r in ((small["files"], small), (prepare["files"], full))
            ],
        ),
        "",
        "`prepare` streams: one clip per worker at a time and a bounded queue of pending clips, so its "
        "memory does not grow with the number of files.",
        "",
    ]
    lines += [
        table(
            ["arch", "mode", "(a) study loop: main · largest loader worker", "(b) mer-fastai train"],
            [
                [
                    r["arch"],
                    r["mode"],
                    f"{r['study_rss']:.0f} · {r['study_child_rss']:.0f}",
                    f"{r['ours_rss']:.0f}",
                ]
                for r in rows
            ],
        ),
        "",
    ]
    return lines
