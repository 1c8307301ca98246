"""`gan train`: fit a class-conditional GAN on the TRAINING images of a data set, then score and show it."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._plumbing.files import write_json
from .._plumbing.locks import reads_dataset
from .._plumbing.progress import progress_bar
from .._version import __version__
from ..bounds import SEED, Bounds, quote
from ..errors import MerError
from ..runs.layout import GAN_CHECKPOINT, GAN_META, GAN_SAMPLES, METRICS_FILE
from ..tasks.opened import Dataset, as_dataset
from . import stylegan
from .diffaugment import DEFAULT_POLICY, diff_augment, parse_policy
from .generate import sample_class
from .images import (
    dataset_image_size,
    load_real,
    pick_classes,
    plot_samples,
    read_gray,
    to_unit_range,
    train_images,
)
from .model import Discriminator, GanShape, Generator, save_checkpoint
from .quality import quality_report

__all__ = ["train_gan", "GanResult"]

QUALITY_IMAGES = 256  # per class, at most: real training images and generated ones compared
SHOWN_REAL, SHOWN_FAKE = 2, 6

GAN_SIZE = Bounds(8, 1024, whole=True)  # --size: the generated images' side in pixels
GAN_LR = Bounds(0, 1, above=True)
GAN_KIMG = Bounds(1, 1_000_000, whole=True)


@dataclass
class GanResult:
    """What `train_gan` made."""

    out: Path
    backend: str
    classes: list[str]
    metrics: dict


@reads_dataset
def train_gan(
    data_dir: str | Path | Dataset,
    out: str | Path,
    classes: list[str] | None = None,
    backend: str = "diffaug",
    *,
    steps: int = 2000,
    size: int = 64,
    bs: int = 32,
    seed: int = 42,
    lr: float = 2e-4,
    latent_dim: int = 128,
    policy: str = DEFAULT_POLICY,
    kimg: int | None = None,
    stylegan_dir: str | Path | None = None,
    stylegan_python: str | None = None,
    progress: bool = True,
) -> GanResult:
    """Train a class-conditional GAN on `data_dir/train/<class>/*.png` (a `Dataset`, or its folder) at size×size
    and write `out`.

    `out` gets `gan.json` (metadata), `metrics.json` (losses, quality), `samples.png` and the network:
    `generator.safetensors` (diffaug) or StyleGAN2-ADA's snapshot pickle (stylegan2-ada, where the
    training length is `kimg`, by default steps × bs / 1000).
    """
    out = Path(out)
    if backend not in BACKENDS:
        raise MerError(f"unknown --backend {quote(backend)}; choose one of {', '.join(BACKENDS)}")
    if steps < 1 or bs < 1:
        raise MerError(f"--steps and --bs must be at least 1 (got {steps} and {bs})")
    checked = ((GAN_SIZE, size, "--size"), (GAN_LR, lr, "--lr"), (GAN_KIMG, kimg, "--kimg"), (SEED, seed, "--seed"))
    for bounds, value, flag in checked:
        bounds.check(value, flag)
    parse_policy(policy)
    fit, ready = BACKENDS[backend]
    options = GanOptions(steps, size, bs, seed, lr, latent_dim, policy, kimg, ready(stylegan_dir), stylegan_python)
    dataset = as_dataset(data_dir)
    data_dir, info = dataset.path, dataset.info
    if not dataset.task.facts.labels_are_classes:  # the GAN is conditioned on the class of each image
        raise MerError(
            f"{data_dir}: is a {info.task} data set; `mer-fastai gan train` handles classification data "
            "sets only in this version (train and its metrics.json/plots handle every task)"
        )
    if dataset.spec.bit_depth != 8:
        raise MerError(f"{data_dir}: gan train makes 8-bit dB spectrograms, not this data set's 16-bit ones; "
                       "train the GAN on a data set prepared without --spectrogram")  # fmt: skip
    chosen = pick_classes(dataset, classes)
    images, labels = load_real(dataset, chosen, size)
    out.mkdir(parents=True, exist_ok=True)
    metadata = {
        "backend": backend,
        "classes": chosen,
        "size": size,
        "image_size": list(dataset_image_size(dataset, chosen)),
        "data_dir": str(data_dir.resolve()),
        "feature": info.feature,
        "train_images": {name: int((labels == i).sum()) for i, name in enumerate(chosen)},
        "seed": seed,
        "version": __version__,
    }
    started = time.time()
    extra, history = fit(images, labels, out, metadata, options, progress)
    metadata.update(extra)
    seconds = round(time.time() - started, 2)
    write_json(out / GAN_META, metadata)
    quality = evaluate(out, metadata, dataset, seed)
    metrics = {
        "backend": backend,
        "classes": chosen,
        "steps": metadata.get("steps"),  # diffaug's; stylegan2-ada trains `kimg`
        "kimg": metadata.get("kimg"),
        "seconds": seconds,
        "losses": history,
        "quality": quality,
    }
    write_json(out / METRICS_FILE, metrics)
    return GanResult(out, backend, chosen, metrics)


@dataclass(frozen=True)
class GanOptions:
    """`train_gan`'s training settings, as a backend reads them (`folder`: the checked StyleGAN2-ADA checkout)."""

    steps: int
    size: int
    bs: int
    seed: int
    lr: float
    latent_dim: int
    policy: str
    kimg: int | None
    folder: Path | None
    python: str | None


def _fit_diffaug(
    images: np.ndarray, labels: np.ndarray, out: Path, metadata: dict, options: GanOptions, progress: bool
) -> tuple[dict, list[dict]]:
    """diffaug: train here and save the averaged generator; returns its settings (for `gan.json`) and losses."""
    shape = GanShape(n_classes=len(metadata["classes"]), size=options.size, latent_dim=options.latent_dim)
    generator, history = train_diffaug(
        images, labels, shape, steps=options.steps, bs=options.bs, lr=options.lr, seed=options.seed,
        policy=options.policy, progress=progress,
    )  # fmt: skip
    extra = {"steps": options.steps, "bs": options.bs, "lr": options.lr, "latent_dim": options.latent_dim,
             "policy": options.policy}  # fmt: skip
    save_checkpoint(out / GAN_CHECKPOINT, generator, {**metadata, **extra})
    return extra, history


def _fit_stylegan(
    images: np.ndarray, labels: np.ndarray, out: Path, metadata: dict, options: GanOptions, progress: bool
) -> tuple[dict, list[dict]]:
    """stylegan2-ada: NVIDIA's checkout trains `kimg` thousand images (default: steps × bs / 1000)."""
    kimg = options.kimg or max(1, round(options.steps * options.bs / 1000))
    return stylegan.train(images, labels, metadata["classes"], out, kimg=kimg, batch=options.bs, seed=options.seed,
                          folder=options.folder, python=options.python)  # fmt: skip


# each backend: how it trains (its settings for gan.json, its losses), and what it checks before data is read (the
# StyleGAN2-ADA checkout); sampling: `generate.SAMPLERS`
BACKENDS: dict[str, tuple[Callable[..., tuple[dict, list[dict]]], Callable[[Any], Path | None]]] = {
    "diffaug": (_fit_diffaug, lambda _folder: None),
    "stylegan2-ada": (_fit_stylegan, stylegan.check_ready),
}


def train_diffaug(
    images: np.ndarray,
    labels: np.ndarray,
    shape: GanShape,
    *,
    steps: int,
    bs: int,
    lr: float,
    seed: int,
    policy: str,
    progress: bool = True,
) -> tuple[Generator, list[dict]]:
    """Hinge-loss training with DiffAugment on real and fake images; returns the EMA generator (CPU).

    Runs on the GPU when there is one, else on the CPU.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator, critic = Generator(shape).to(device), Discriminator(shape).to(device)
    average = copy.deepcopy(generator).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.0, 0.99))
    real, targets = to_unit_range(images).to(device), torch.from_numpy(labels).to(device)
    picker = torch.Generator().manual_seed(seed)
    interval = max(1, steps // 200)
    history: list[dict] = []
    sums = np.zeros(2)
    with progress_bar("GAN steps", total=steps, enabled=progress) as advance:
        for step in range(steps):
            index = torch.randint(len(real), (bs,), generator=picker).to(device)
            batch, classes = real[index], targets[index]
            fake = generator(torch.randn(bs, shape.latent_dim, device=device), classes)
            critic.requires_grad_(True)
            d_loss = (
                F.relu(1 - critic(diff_augment(batch, policy), classes)).mean()
                + F.relu(1 + critic(diff_augment(fake.detach(), policy), classes)).mean()
            )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            critic.requires_grad_(False)
            g_loss = -critic(diff_augment(fake, policy), classes).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            update_average(average, generator, step)
            sums += (d_loss.item(), g_loss.item())
            if (step + 1) % interval == 0 or step + 1 == steps:
                d_mean, g_mean = sums / ((step % interval) + 1)
                history.append({"step": step + 1, "d_loss": float(d_mean), "g_loss": float(g_mean)})
                sums[:] = 0
            advance()
    return average.cpu(), history


def update_average(average: Generator, model: Generator, step: int) -> None:
    """Exponential moving average of the generator's weights (warm-up: short runs follow the model)."""
    import torch

    beta = min(0.999, (1 + step) / (10 + step))
    with torch.no_grad():
        for kept, current in zip(average.parameters(), model.parameters(), strict=True):
            kept.lerp_(current, 1 - beta)
        for kept, current in zip(average.buffers(), model.buffers(), strict=True):
            kept.copy_(current)


def evaluate(out: Path, metadata: dict, dataset: Dataset, seed: int) -> dict:
    """Quality scores of generated vs real training images, and the `samples.png` grid."""
    rng = np.random.default_rng(seed)
    real, fake = {}, {}
    for name in metadata["classes"]:
        files = train_images(dataset, name)
        files = [files[i] for i in sorted(rng.permutation(len(files))[:QUALITY_IMAGES])]
        real[name] = np.stack([read_gray(file) for file in files])
        fake[name] = np.stack(sample_class(out, metadata, name, max(len(files), SHOWN_FAKE), seed))
    plot_samples(
        out / GAN_SAMPLES,
        {name: list(images[:SHOWN_REAL]) for name, images in real.items()},
        {name: list(images[:SHOWN_FAKE]) for name, images in fake.items()},
    )
    return quality_report(real, fake)
