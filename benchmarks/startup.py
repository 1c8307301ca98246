"""CLI start-up: how long `mer-fastai` takes before it does anything, against importing the heavy stack.

    python benchmarks/startup.py                        # median of 5 runs each; prints a Markdown table
    python benchmarks/startup.py --write BENCHMARKS.md  # also puts the table in its section of the report

Each command runs in a fresh process, one after the other. The reference row imports what the CLI
imported eagerly before it became lazy (fastai's vision API, which pulls in torch and torchvision), so
the ratio says how much of that cost `--help`, usage errors and light commands no longer pay.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "`mer-fastai --help`": [str(BIN / "mer-fastai"), "--help"],
    "`mer-fastai train --help`": [str(BIN / "mer-fastai"), "train", "--help"],
    "`mer-fastai prepare --help`": [str(BIN / "mer-fastai"), "prepare", "--help"],
    "`mer-fastai recipes`": [str(BIN / "mer-fastai"), "recipes"],
    "`mer-fastai train` (usage error)": [str(BIN / "mer-fastai"), "train"],
    "reference: `import fastai.vision.all`": [sys.executable, "-c", "import fastai.vision.all"],
}


def median_seconds(command: list[str], runs: int) -> tuple[float, list[float]]:
    """Median wall time of `runs` fresh runs of `command` (its exit status is ignored: errors are timed too)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def startup_table(runs: int) -> str:
    """The Markdown table: each command's median and runs, and its share of the reference import."""
    results = {name: median_seconds(command, runs) for name, command in COMMANDS.items()}
    reference = results["reference: `import fastai.vision.all`"][0]
    lines = [f"| command | median of {runs} (s) | runs (s) | × of the reference |", "|---|---|---|---|"]
    for name, (median, times) in results.items():
        listed = ", ".join(f"{t:.2f}" for t in sorted(times))
        lines.append(f"| {name} | {median:.2f} | {listed} | {median / reference:.2f} |")
    return "\n".join(lines)


def write_marked_section(path: Path, key: str, title: str, intro: str, table: str) -> None:
    """Replace (or append) the section marked `key` of a report; the rest of the file is kept as it is."""
    begin, end = f"<!-- {key}: begin -->", f"<!-- {key}: end -->"
    section = "\n".join([begin, f"## {title}", "", intro, "", table, end])
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def write_section(path: Path, table: str, load: float) -> None:
    """The start-up section of a report."""
    intro = (
        f"`python benchmarks/startup.py --write {path.name}` on {platform.node() or 'this machine'}, "
        f"{os.cpu_count()} cores, load average {load:.2f} before the run. Target: ≤ 1 s for `--help`, "
        "every subcommand's `--help`, `recipes` and an argument error; the reference is what the CLI "
        "imported eagerly before it became lazy."
    )
    write_marked_section(path, "startup", "CLI start-up", intro, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs per command (median reported).")
    parser.add_argument("--write", type=Path, help="Report file whose start-up section to replace (or append).")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    table = startup_table(args.runs)
    print(table)
    if args.write:
        write_section(args.write, table, load)


if __name__ == "__main__":
    main()
