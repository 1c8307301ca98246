"""The study's training loop, reimplemented as the benchmark's baseline.

It follows the PyTorch fine-tuning tutorial the study's notebook was built on: `ImageFolder` over the
PNGs with torchvision transforms run per image and per epoch, `DataLoader(num_workers=2)`, SGD (lr 0.001,
momentum 0.9) with ReduceLROnPlateau on the validation loss, cross-entropy, and the weights of the epoch
with the best validation accuracy kept. `feature_extract` freezes the backbone (`requires_grad=False`)
and trains only the new classifier; otherwise every layer trains.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision import datasets, transforms

from mer_fastai.models.archs import build_full_model, get_arch

LR = 0.001
MOMENTUM = 0.9
WORKERS = 2


@dataclass
class StudyResult:
    """Validation scores of the best epoch and the wall seconds of every epoch (training + validation)."""

    accuracy: float
    macro_f1: float
    best_epoch: int
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


class ClassFolder(datasets.ImageFolder):
    """`ImageFolder` with the data set's class list, so a split lacking a class keeps the same indices."""

    def __init__(self, root: Path, classes: list[str], transform: transforms.Compose):
        self.known = classes
        super().__init__(str(root), transform=transform, allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self.known, {name: i for i, name in enumerate(self.known)}


def study_transforms(size: int, stats: tuple[list[float], list[float]]) -> dict[str, transforms.Compose]:
    """The notebook's transforms: random crops and flips for training, resize + centre crop to validate."""
    normalize = transforms.Normalize(*stats)
    return {
        "train": transforms.Compose(
            [
                transforms.RandomResizedCrop(size),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                normalize,
            ]
        ),
        "valid": transforms.Compose(
            [
                transforms.Resize(round(size * 256 / 224)),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
                normalize,
            ]
        ),
    }


def study_model(arch: str, n_classes: int, feature_extract: bool, pretrained: bool = False) -> nn.Module:
    """The full torchvision/timm network with its classifier replaced, the rest frozen if `feature_extract`."""
    model = build_full_model(get_arch(arch), pretrained)
    if feature_extract:
        for param in model.parameters():
            param.requires_grad = False
    if hasattr(model, "reset_classifier"):  # timm
        model.reset_classifier(n_classes)
    elif isinstance(getattr(model, "fc", None), nn.Linear):  # resnet, resnext, inception
        model.fc = nn.Linear(model.fc.in_features, n_classes)
        if getattr(model, "AuxLogits", None) is not None:
            model.AuxLogits.fc = nn.Linear(model.AuxLogits.fc.in_features, n_classes)
    elif isinstance(getattr(model, "classifier", None), nn.Linear):  # densenet
        model.classifier = nn.Linear(model.classifier.in_features, n_classes)
    elif isinstance(model.classifier[1], nn.Conv2d):  # squeezenet
        model.classifier[1] = nn.Conv2d(model.classifier[1].in_channels, n_classes, kernel_size=1)
    else:  # alexnet, vgg
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, n_classes)
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_study(
    data_dir: str | Path,
    classes: list[str],
    arch: str,
    mode: str,
    epochs: int,
    bs: int,
    size: int | None = None,
    seed: int = 42,
    workers: int = WORKERS,
    pretrained: bool = False,
) -> StudyResult:
    """Train `arch` the study's way on a prepared data set; `mode` is "freeze" or "whole".

    `size` is the crop size (default: the architecture's, 224 px for all but inception_v3's 299).
    """
    from sklearn.metrics import f1_score

    seed_everything(seed)
    spec = get_arch(arch)
    tfms = study_transforms(size or spec.input_size, spec.stats)
    data_dir = Path(data_dir)
    loaders = {
        split: torch.utils.data.DataLoader(
            ClassFolder(data_dir / split, classes, tfms[split]),
            batch_size=bs,
            shuffle=split == "train",
            num_workers=workers,
        )
        for split in ("train", "valid")
    }
    model = study_model(arch, len(classes), feature_extract=mode == "freeze", pretrained=pretrained)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR, momentum=MOMENTUM)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    criterion = nn.CrossEntropyLoss()
    best = StudyResult(accuracy=-1.0, macro_f1=0.0, best_epoch=-1)
    seconds, history = [], []
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        for inputs, labels in loaders["train"]:
            optimizer.zero_grad()
            outputs = model(inputs)
            if isinstance(outputs, tuple):  # inception in training mode: main + auxiliary logits
                loss = criterion(outputs[0], labels) + 0.4 * criterion(outputs[1], labels)
            else:
                loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
        model.eval()
        predicted, targets, total_loss = [], [], 0.0
        with torch.no_grad():
            for inputs, labels in loaders["valid"]:
                outputs = model(inputs)
                total_loss += float(criterion(outputs, labels)) * len(labels)
                predicted.append(outputs.argmax(1))
                targets.append(labels)
        valid_loss = total_loss / len(loaders["valid"].dataset)
        scheduler.step(valid_loss)
        seconds.append(time.perf_counter() - started)
        pred, true = torch.cat(predicted).numpy(), torch.cat(targets).numpy()
        accuracy = float((pred == true).mean())
        f1 = float(f1_score(true, pred, labels=list(range(len(classes))), average="macro", zero_division=0))
        history.append({"epoch": epoch, "valid_loss": valid_loss, "accuracy": accuracy, "macro_f1": f1})
        if accuracy > best.accuracy:
            best = StudyResult(accuracy, f1, epoch)
    best.epoch_seconds, best.history = seconds, history
    return best
