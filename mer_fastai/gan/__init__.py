"""GAN augmentation: class-conditional generators of artificial spectrograms for the training split.

Two backends: `diffaug`, a compact conditional DCGAN-style GAN with DiffAugment that runs anywhere
(CPU included), and `stylegan2-ada`, which drives a checkout of NVIDIA's StyleGAN2-ADA on a GPU.
"""

from .generate import generate_images
from .train import BACKENDS, GanResult, train_gan

__all__ = ["BACKENDS", "GanResult", "generate_images", "train_gan"]
