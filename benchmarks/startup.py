"""CLI start-up: how long `mer-fastai` takes before it does anything, against importing the heavy stack.

    python benchmarks/startup.py            # median of 5 runs each; prints a Markdown table

Each command runs in a fresh process, one after the other. The reference row imports what the CLI
imported eagerly before it became lazy (fastai's vision API, which pulls in torch and torchvision), so
the ratio says how much of that cost `--help`, usage errors and light commands no longer pay.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs per command (median reported).")
    args = parser.parse_args()
    results = {name: median_seconds(command, args.runs) for name, command in COMMANDS.items()}
    reference = results["reference: `import fastai.vision.all`"][0]
    print(f"| command | median of {args.runs} (s) | runs (s) | × of the reference |")
    print("|---|---|---|---|")
    for name, (median, times) in results.items():
        runs = ", ".join(f"{t:.2f}" for t in sorted(times))
        print(f"| {name} | {median:.2f} | {runs} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()
