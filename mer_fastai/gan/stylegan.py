"""The `stylegan2-ada` backend: drive NVIDIA's StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch) checkout.

The study's own tool. Its scripts run as subprocesses in the user's checkout (`--stylegan-dir`), with the
Python interpreter of an environment that has its requirements (`--stylegan-python`, default: this one):
`dataset_tool.py` packs the exported class folders into a zip, `train.py` trains a class-conditional
network with adaptive discriminator augmentation, `generate.py` draws images of one class. The command
lines are built by pure functions. It needs an NVIDIA GPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import MerError
from .images import resize_all

SCRIPTS = ("dataset_tool.py", "train.py", "generate.py")
EXPORT_DIR = "stylegan-source"
DATASET_ZIP = "stylegan-dataset.zip"
RUNS_DIR = "stylegan-runs"
SEED_STRIDE = 100_000


def check_stylegan_dir(stylegan_dir: str | Path | None) -> Path:
    """The checkout folder, verified to hold the three scripts; anything else is one clear error."""
    hint = "clone https://github.com/NVlabs/stylegan2-ada-pytorch and pass its folder with --stylegan-dir"
    if stylegan_dir is None:
        raise MerError(f"--backend stylegan2-ada needs --stylegan-dir: {hint}")
    folder = Path(stylegan_dir).expanduser().resolve()
    missing = [name for name in SCRIPTS if not (folder / name).is_file()]
    if missing:
        raise MerError(f"{folder}: no {missing[0]}, so it is not a StyleGAN2-ADA checkout; {hint}")
    return folder


def check_ready(stylegan_dir: str | Path | None) -> Path:
    """The verified checkout, and a GPU to train on; otherwise one clear error."""
    import torch

    folder = check_stylegan_dir(stylegan_dir)
    if not torch.cuda.is_available():
        raise MerError("--backend stylegan2-ada needs an NVIDIA GPU (none found); use --backend diffaug here")
    return folder


def dataset_tool_command(stylegan_dir: Path, source: Path, dest: Path, python: str = sys.executable) -> list[str]:
    """`dataset_tool.py`: a folder of class subfolders plus `dataset.json` labels → a dataset zip."""
    return [python, str(stylegan_dir / "dataset_tool.py"), f"--source={source}", f"--dest={dest}"]


def train_command(
    stylegan_dir: Path,
    data: Path,
    outdir: Path,
    kimg: int,
    batch: int,
    seed: int,
    python: str = sys.executable,
) -> list[str]:
    """`train.py`: class-conditional, adaptive augmentation (ADA), no x-flips (time has a direction)."""
    return [
        python,
        str(stylegan_dir / "train.py"),
        f"--outdir={outdir}",
        f"--data={data}",
        "--gpus=1",
        "--cond=1",
        "--aug=ada",
        "--mirror=0",
        f"--kimg={kimg}",
        f"--batch={batch}",
        f"--seed={seed}",
        "--metrics=none",  # FID50k needs an Inception download; quality is measured afterwards instead
    ]


def generate_command(
    stylegan_dir: Path,
    network: Path,
    outdir: Path,
    seeds: range,
    class_index: int,
    python: str = sys.executable,
) -> list[str]:
    """`generate.py`: one image `seedNNNN.png` per seed of class `class_index`, without truncation."""
    return [
        python,
        str(stylegan_dir / "generate.py"),
        f"--outdir={outdir}",
        f"--seeds={seeds.start}-{seeds.stop - 1}",
        f"--class={class_index}",
        f"--network={network}",
        "--trunc=1",
    ]


def class_seeds(seed: int, class_index: int, n: int) -> range:
    """Non-overlapping generate.py seeds per (seed, class): 100,000 per class, 100 classes per seed."""
    start = (seed * 100 + class_index) * SEED_STRIDE
    if seed < 0 or n > SEED_STRIDE or start + n >= 2**32:
        raise MerError(
            f"stylegan2-ada generates up to {SEED_STRIDE} images per class for --seed 0..428; "
            f"got --seed {seed} and --n {n}"
        )
    return range(start, start + n)


def export_dataset(images: np.ndarray, labels: np.ndarray, classes: list[str], folder: Path) -> Path:
    """Write `<folder>/<class>/<n>.png` (square RGB, as generate.py writes RGB) and its `dataset.json`."""
    from PIL import Image

    if folder.exists():
        shutil.rmtree(folder)
    entries = []
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"{classes[label]}/{index:06d}.png"
        (folder / classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").convert("RGB").save(folder / name)
        entries.append([name, int(label)])
    (folder / "dataset.json").write_text(json.dumps({"labels": entries}))
    return folder


def run_script(command: list[str], cwd: Path) -> None:
    """Run one StyleGAN2-ADA script with its output shown; a failure is one clear error."""
    try:
        status = subprocess.run(command, cwd=cwd, check=False).returncode
    except OSError as exc:
        raise MerError(f"{command[0]}: cannot start it ({exc}); check --stylegan-python") from exc
    if status != 0:
        raise MerError(
            f"{command[1]}: exited with status {status}; see its output above "
            "(it needs an NVIDIA GPU and its requirements in --stylegan-python's environment)"
        )


def latest_snapshot(runs_dir: Path) -> Path:
    """The newest `network-snapshot-*.pkl` of the newest training run."""
    snapshots = sorted(runs_dir.glob("*/network-snapshot-*.pkl"), key=lambda p: (p.parent.name, p.name))
    if not snapshots:
        raise MerError(f"{runs_dir}: StyleGAN2-ADA wrote no network-snapshot-*.pkl; see its log.txt there")
    return snapshots[-1]


def read_losses(run_dir: Path) -> list[dict]:
    """Per-tick losses and augmentation strength from StyleGAN2-ADA's `stats.jsonl`, if present."""
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return []
    keys = {
        "kimg": "Progress/kimg",
        "g_loss": "Loss/G/loss",
        "d_loss": "Loss/D/loss",
        "augment_p": "Progress/augment",
    }
    history = []
    for line in path.read_text().splitlines():
        stats = json.loads(line)
        history.append({name: stats[key]["mean"] for name, key in keys.items() if key in stats})
    return history


def train(
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    out: Path,
    *,
    kimg: int,
    batch: int,
    seed: int,
    folder: Path,
    python: str | None,
) -> tuple[dict, list[dict]]:
    """Export, pack and train in the checked checkout `folder`; return the run's metadata and losses."""
    python = python or sys.executable
    source = export_dataset(images, labels, classes, out / EXPORT_DIR)
    dataset = out / DATASET_ZIP
    dataset.unlink(missing_ok=True)
    run_script(dataset_tool_command(folder, source, dataset, python), folder)
    run_script(train_command(folder, dataset, out / RUNS_DIR, kimg, batch, seed, python), folder)
    network = latest_snapshot(out / RUNS_DIR)
    metadata = {
        "network": network.relative_to(out).as_posix(),
        "stylegan_dir": str(folder),
        "stylegan_python": python,
        "kimg": kimg,
    }
    return metadata, read_losses(network.parent)


def sample(
    run_dir: Path, metadata: dict, class_index: int, n: int, seed: int, python: str | None = None
) -> list[np.ndarray]:
    """`n` images of one class from the trained network, grayscale at the data set's image size."""
    from PIL import Image

    folder = check_ready(metadata["stylegan_dir"])
    scratch = run_dir / ".generate" / str(class_index)
    shutil.rmtree(scratch, ignore_errors=True)
    seeds = class_seeds(seed, class_index, n)
    network = run_dir / metadata["network"]
    python = python or metadata["stylegan_python"]
    run_script(generate_command(folder, network, scratch, seeds, class_index, python), folder)
    images = []
    for value in seeds:
        path = scratch / f"seed{value:04d}.png"
        if not path.is_file():
            raise MerError(f"{path}: generate.py wrote no image for seed {value}; check its output above")
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("L")))
    shutil.rmtree(scratch, ignore_errors=True)
    return resize_all(np.stack(images), tuple(metadata["image_size"]))
