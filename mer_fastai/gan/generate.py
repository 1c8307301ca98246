"""`gan generate`: draw artificial spectrograms of a trained GAN run into `<out>/<class>/*.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._plumbing.files import check_component
from .._plumbing.progress import progress_bar
from ..bounds import SEED, quote
from ..errors import MerError
from ..runs.inputs import refuse_overwrite
from ..runs.layout import GAN_CHECKPOINT, GAN_META, read_json
from . import stylegan
from .images import check_output_folder, resize_all, save_class_images, to_uint8
from .model import Generator, load_checkpoint

__all__ = ["generate_images"]


def read_run(gan_run: str | Path) -> dict:
    """The `gan.json` metadata of a run folder made by `mer-fastai gan train`."""
    path = Path(gan_run) / GAN_META
    if not path.is_file():
        raise MerError(f"{gan_run}: no {GAN_META}; pass a folder made by `mer-fastai gan train`")
    return read_json(path)


def sample_diffaug(
    generator: Generator, class_index: int, n: int, seed: int, image_size: tuple[int, int]
) -> list[np.ndarray]:
    """`n` images of one class, grayscale uint8 at `image_size`; reproducible for each (seed, class)."""
    import torch

    rng = torch.Generator().manual_seed(seed * 1_000_003 + class_index)
    noise = torch.randn(n, generator.shape.latent_dim, generator=rng)
    device = next(generator.parameters()).device
    made = []
    with torch.no_grad():
        for start in range(0, n, 256):
            batch = noise[start : start + 256].to(device)
            labels = torch.full((len(batch),), class_index, dtype=torch.long, device=device)
            made.append(to_uint8(generator(batch, labels)))
    return resize_all(np.concatenate(made), image_size)


def sample_class(
    run_dir: Path, metadata: dict, name: str, n: int, seed: int, stylegan_python: str | None = None
) -> list[np.ndarray]:
    """`n` generated images of class `name`, whichever backend trained the run."""
    if metadata.get("backend") not in SAMPLERS:
        raise MerError(
            f"{run_dir / GAN_META}: unknown backend {quote(metadata.get('backend'))}; pass a folder made by "
            f"`mer-fastai gan train` ({', '.join(SAMPLERS)})"
        )
    return SAMPLERS[metadata["backend"]](run_dir, metadata, metadata["classes"].index(name), n, seed, stylegan_python)


def _sample_run(
    run_dir: Path, metadata: dict, class_index: int, n: int, seed: int, python: str | None = None
) -> list[np.ndarray]:
    """diffaug: `n` images of one class from the run's saved generator."""
    generator, _ = load_checkpoint(run_dir / GAN_CHECKPOINT)
    return sample_diffaug(generator, class_index, n, seed, tuple(metadata["image_size"]))


# each backend: how a trained run draws images of one class (training: `train.BACKENDS`)
SAMPLERS = {"diffaug": _sample_run, "stylegan2-ada": stylegan.sample}


def generate_images(
    gan_run: str | Path,
    n: int,
    out: str | Path,
    classes: list[str] | None = None,
    *,
    seed: int = 0,
    stylegan_python: str | None = None,
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Write `n` images per class to `<out>/<class>/gan-s<seed>-NNNNN.png` (grayscale, data set size).

    Merge them into training with `--augment-dir out`; they never join the validation split.
    """
    run_dir, out = Path(gan_run), Path(out)
    metadata = read_run(run_dir)
    if n < 1:
        raise MerError(f"--n must be at least 1 (got {n})")
    SEED.check(seed, "--seed")
    chosen = list(dict.fromkeys(classes or metadata["classes"]))
    unknown = [name for name in chosen if name not in metadata["classes"]]
    if unknown:
        raise MerError(
            f"{run_dir}: the GAN was not trained on class {quote(unknown[0])} "
            f"(classes: {', '.join(metadata['classes'])}); fix --class or retrain with it"
        )
    for name in chosen:
        check_component(name, f"{run_dir / GAN_META}: class", "retrain the GAN on a data set made by this version")
    check_output_folder(out, Path(metadata["data_dir"]))
    refuse_overwrite([out], {run_dir: "the GAN run folder"})
    written: dict[str, list[Path]] = {}
    with progress_bar("generating", total=len(chosen), enabled=progress) as advance:
        for name in chosen:
            images = sample_class(run_dir, metadata, name, n, seed, stylegan_python)
            written[name] = save_class_images(images, out / name, f"gan-s{seed}-")
            advance()
    return written
