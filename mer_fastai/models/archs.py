"""The architecture table: how each network is built, cut into body and head, sized and normalised.

Adding an architecture is one entry in `ARCHS`; any timm model is reachable as `timm/<name>`. An entry
carries its input contract: the image size and statistics it expects and, for networks pretrained on
spectrograms of their own (musicnn), the `spectrogram` preset a data set must be prepared with.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..bounds import quote
from ..choices import LAYERS
from ..errors import MerError

if TYPE_CHECKING:  # torch is imported where a network is built, so the CLI starts without it
    from torch import nn

    from ..data.spectrogram import SpecConfig

__all__ = ["ARCHS", "ArchSpec", "get_arch"]

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
INCEPTION_STATS = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])  # Google's weights expect inputs in [-1, 1]
MAX_SIZE = 1024  # larger inputs need tens of GB per batch; no table network was trained beyond 600 px
LOCAL = "local"  # an architecture of this package, trained from scratch
MUSICNN = "musicnn"  # musicnn (Pons & Serra 2019), ported to PyTorch, weights from the musicnn wheel
IDENTITY_STATS = ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
HUB_PROBE_SECONDS = 1.5  # how long to wait for the Hugging Face Hub before treating it as unreachable


@dataclass(frozen=True)
class ArchSpec:
    """How one architecture is made and fine-tuned."""

    name: str
    source: str  # "torchvision", "timm" or "local" (mer_fastai.<model_name>.<model_name>(), no pretrained weights)
    model_name: str
    cut: int | Callable[[nn.Module], nn.Module]  # what of the full model is kept as the body
    input_size: int = 224
    stats: tuple[list[float], list[float]] = IMAGENET_STATS
    min_size: int = 32  # smallest input that survives the body's downsampling
    spectrogram: str | None = None  # the spectrogram preset the network reads (fixed size, no resizing)
    pretraining: str | None = "ImageNet"  # what `--weights pretrained` loads; None: no pretrained weights
    layer: str | None = None  # musicnn: the layer its body ends at (`choices.LAYERS`; named `musicnn-msd:pooled`)

    def check_size(self, size: int | None) -> None:
        """A training resolution this network can take, or one clear error."""
        if size is not None and self.spectrogram:
            raise MerError(
                f"--size: {self.name} reads its {self.spectrogram} spectrograms at their own size; drop --size"
            )
        if size is not None and not self.min_size <= size <= MAX_SIZE:
            problem = "too small" if size < self.min_size else "too large"
            raise MerError(
                f"--size {size} is {problem} for {self.name}; use {self.min_size} to {MAX_SIZE} px "
                f"(its default is {self.input_size})"
            )


CONTRACT_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "segment_seconds", "compression",
                   "framing", "image_height", "image_width")  # fmt: skip


def contract_differences(spec: ArchSpec, config: SpecConfig) -> list[str]:
    """The settings of `config` that differ from the fixed input `spec` reads (none for the image CNNs)."""
    if spec.spectrogram is None:
        return []
    from ..data.spectrogram import preset

    wanted = preset(spec.spectrogram)
    return [name for name in CONTRACT_FIELDS if getattr(config, name) != getattr(wanted, name)]


def check_spectrogram(spec: ArchSpec, config: SpecConfig, where: str) -> None:
    """One line when the spectrograms of `where` (a data set) are not what `spec` reads, naming the prepare option."""
    if spec.spectrogram is None:
        if config.compression != "db":
            raise MerError(
                f"{where}: holds {config.compression} spectrograms, which {spec.name} does not read; prepare the data "
                "set without --spectrogram (dB images) for it"
            )
        return
    differ = contract_differences(spec, config)
    if differ:
        raise MerError(
            f"{where}: its spectrograms are not {spec.name}'s input ({', '.join(differ)} differ); prepare it with "
            f"`mer-fastai prepare ... --spectrogram {spec.spectrogram}`"
        )


def _keep_children(*dropped: str) -> Callable[[nn.Module], nn.Module]:
    """A body made of the model's children minus `dropped` (e.g. Inception's auxiliary classifier)."""

    def cut(model: nn.Module) -> nn.Module:
        from torch import nn

        return nn.Sequential(*[child for name, child in model.named_children() if name not in dropped])

    return cut


def _densenet_body(model: nn.Module) -> nn.Module:
    """DenseNet's features end in a BatchNorm; its forward applies the ReLU, so the body must too."""
    from torch import nn

    return nn.Sequential(model.features, nn.ReLU(inplace=True))


def _timm_body(model: nn.Module) -> nn.Module:
    from fastai.vision.learner import TimmBody

    return TimmBody(model, pretrained=False)


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("resnext101_32x8d", "torchvision", "resnext101_32x8d", cut=-2),
        ArchSpec("alexnet", "torchvision", "alexnet", cut=-2, min_size=63),
        ArchSpec("vgg16_bn", "torchvision", "vgg16_bn", cut=-2),
        ArchSpec("squeezenet1_0", "torchvision", "squeezenet1_0", cut=-1),
        ArchSpec("densenet121", "torchvision", "densenet121", cut=_densenet_body),
        ArchSpec("melcnn", LOCAL, "melcnn", cut=-2, input_size=128, min_size=16, pretraining=None),
        *(
            ArchSpec(
                f"musicnn-{name}",
                MUSICNN,
                name,
                cut=-1,
                input_size=187,
                stats=IDENTITY_STATS,
                spectrogram="musicnn",
                pretraining=collection,
            )
            for name, collection in (("msd", "the Million Song Dataset"), ("mtt", "MagnaTagATune"))
        ),
        ArchSpec(
            "inception_v3",
            "torchvision",
            "inception_v3",
            cut=_keep_children("AuxLogits", "avgpool", "dropout", "fc"),
            input_size=299,
            stats=INCEPTION_STATS,
            min_size=75,
        ),
    )
}
TIMM_PREFIX = "timm/"
LAYER_SEPARATOR = ":"  # a musicnn body ending at another layer than the penultimate: musicnn-msd:pooled


def layered(arch: str, layer: str) -> str:
    """The architecture name of `arch`'s body ending at `layer` (the default layer: `arch` itself)."""
    return arch if layer == LAYERS[0] else f"{arch}{LAYER_SEPARATOR}{layer}"


def get_arch(name: str) -> ArchSpec:
    """The table entry for `name`, or a `timm/<model>` entry made from timm's own config."""
    if name in ARCHS:
        return ARCHS[name]
    base, _, layer = name.partition(LAYER_SEPARATOR)
    if layer and base in ARCHS and ARCHS[base].source == MUSICNN:
        if layer not in LAYERS:
            raise MerError(f"unknown musicnn layer {quote(layer)} in {quote(name)}; choose {', '.join(LAYERS)}")
        return replace(ARCHS[base], name=name, layer=layer)
    if name.startswith(TIMM_PREFIX):
        import timm

        model_name = name[len(TIMM_PREFIX) :]
        if not timm.is_model(model_name):
            raise MerError(
                f"unknown timm model {quote(model_name)}; "
                "list them with `python -c 'import timm; print(timm.list_models())'`"
            )
        cfg = timm.get_pretrained_cfg(model_name)
        size = cfg.input_size[-1] if cfg else 224
        stats = (list(cfg.mean), list(cfg.std)) if cfg else IMAGENET_STATS
        return ArchSpec(name, "timm", model_name, cut=_timm_body, input_size=size, stats=stats)
    raise MerError(f"unknown architecture {quote(name)}; choose one of {', '.join(ARCHS)} or timm/<model>")


def build_full_model(spec: ArchSpec, pretrained: bool) -> nn.Module:
    """The complete network from its library (`SOURCES`), with its pretrained weights when `pretrained`."""
    return SOURCES[spec.source](spec, pretrained)


def _local_model(spec: ArchSpec, pretrained: bool) -> nn.Module:
    """An architecture of this package: `mer_fastai.models.<model_name>.<model_name>()`, never pretrained."""
    import importlib

    if pretrained:
        raise MerError(f"{spec.name} has no pretrained weights; pass --weights none or an earlier run's model")
    return getattr(importlib.import_module(f"{__package__}.{spec.model_name}"), spec.model_name)()


def _musicnn_model(spec: ArchSpec, pretrained: bool) -> nn.Module:
    from .musicnn.transfer import transfer_model

    return transfer_model(spec.model_name, pretrained, spec.layer or LAYERS[0])


def _timm_model(spec: ArchSpec, pretrained: bool) -> nn.Module:
    import timm

    offline = pretrained and not _timm_weights_cached(spec.model_name) and not _hub_reachable()
    with _hub_offline() if offline else nullcontext():
        return timm.create_model(spec.model_name, pretrained=pretrained, num_classes=0)


def _torchvision_model(spec: ArchSpec, pretrained: bool) -> nn.Module:
    import torchvision

    extra = {"aux_logits": True, "init_weights": False} if spec.model_name == "inception_v3" else {}
    return torchvision.models.get_model(spec.model_name, weights="DEFAULT" if pretrained else None, **extra)


# how each source builds a full network (`ArchSpec.source`)
SOURCES: dict[str, Callable[[ArchSpec, bool], nn.Module]] = {
    "torchvision": _torchvision_model,
    "timm": _timm_model,
    LOCAL: _local_model,
    MUSICNN: _musicnn_model,
}


def _timm_weights_cached(model_name: str) -> bool:
    """Whether timm finds the model's pretrained weights on disk (Hugging Face cache or timm's URL cache)."""
    import timm
    from huggingface_hub import try_to_load_from_cache
    from timm.models._hub import check_cached_file

    cfg = timm.get_pretrained_cfg(model_name)
    if cfg is None:
        return False
    if cfg.hf_hub_id:
        filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        if any(isinstance(try_to_load_from_cache(cfg.hf_hub_id, name), str) for name in filenames):
            return True
    return bool(cfg.url) and check_cached_file(cfg.url)


def _hub_reachable() -> bool:
    """Whether the Hugging Face Hub answers a TCP connection within `HUB_PROBE_SECONDS`."""
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=HUB_PROBE_SECONDS).close()
    except OSError:
        return False
    return True


@contextmanager
def _hub_offline() -> Iterator[None]:
    """The hub's offline mode for one call: a missing file fails at once instead of after minutes of retries."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
