"""Self-describing model files: safetensors weights plus JSON metadata with a checksum, never pickle.

`write_safetensors`/`read_safetensors` are the one reader and writer of such files, for model files and
GAN generator checkpoints alike (each a `FileFormat`). The metadata carries a sha256 `checksum` over the
tensors (sorted names, dtype, shape, raw bytes) and the metadata itself (canonical JSON without the
checksum), so a flipped byte anywhere in the file is refused, not loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._plumbing.files import atomic_path, check_input_file
from ..bounds import quote
from ..errors import MerError
from ..tasks.base import Task
from ..tasks.registry import DEFAULT
from .archs import ArchSpec, build_full_model, get_arch
from .header import METADATA_KEY, MODEL_FILE, WRITER_KEY, model_file_path
from .metachecks import RETRAIN
from .modelmeta import FILE_FIELDS, ModelMeta

__all__ = ["load_model", "create_model"]

FORMAT = "mer-fastai-model/1"
CHECKSUM = "checksum"


@dataclass(frozen=True)
class FileFormat:
    """One kind of safetensors+JSON file: its format name, metadata key, and how messages name it."""

    name: str
    key: str
    noun: str
    made_by: str
    legacy_fix: str  # what to do with a file written before checksums; `{path}` is filled in


MODEL_FORMAT = FileFormat(
    FORMAT,
    METADATA_KEY,
    "safetensors model file",
    "`mer-fastai train` or `mer-fastai export`",
    "if you trust it, add one with `mer-fastai export {path} --out NEW.safetensors --accept-unverified`, "
    "else retrain the model",
)


def checksum(state: Mapping[str, torch.Tensor], metadata: dict) -> str:
    """sha256 over the tensors (sorted names, dtype, shape, raw bytes) and the canonical metadata JSON.

    The metadata's own `checksum` field is left out; tensors are hashed as whole buffers (no per-element work),
    whatever their strides or dtype: the bytes of their elements in row-major order.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = packed(state[name])
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    body = {key: value for key, value in metadata.items() if key != CHECKSUM}
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return f"sha256:{digest.hexdigest()}"


def packed(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` on the CPU with the standard row-major strides of its shape (copied only when it has others).

    `.contiguous()` alone keeps any stride of a size-1 dimension (a 1-element slice such as `bounds[:, 0]`
    keeps stride 2), which viewing the buffer as bytes refuses.
    """
    tensor = tensor.detach().cpu().contiguous()
    if tensor.reshape(-1).stride(0) != 1:
        tensor = tensor.clone(memory_format=torch.contiguous_format)
    return tensor


def write_safetensors(
    path: str | Path, state: Mapping[str, torch.Tensor], metadata: dict, fmt: FileFormat, writer: str | None = None
) -> Path:
    """Write `state` and `metadata` (with `fmt`'s format name and a checksum) atomically to `path`; `writer` names
    the command in the header (`runs.layout.model_writer`), outside the checksummed record."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {name: packed(tensor) for name, tensor in state.items()}
    fields = {key: value for key, value in metadata.items() if key not in FILE_FIELDS}
    body = json.loads(json.dumps({"format": fmt.name, **fields}))  # as it will read back (tuples → lists)
    body[CHECKSUM] = checksum(tensors, body)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={fmt.key: json.dumps(body), **({WRITER_KEY: writer} if writer else {})})
    return path


def read_safetensors(
    path: str | Path, fmt: FileFormat, *, accept_unverified: bool = False
) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a file written by `write_safetensors`; any damage is one clear error.

    A file without a checksum (written by an older version) is refused unless `accept_unverified`;
    a file with one is always verified.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(fmt.key)
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not iterable)
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MerError(
            f"{path}: not a readable {fmt.noun} ({reason}); it is damaged or another kind of file: "
            "retrain or restore it from a copy"
        ) from exc
    if raw is None:
        raise MerError(f"{path}: holds no {fmt.name} metadata; pass a {fmt.noun} made by {fmt.made_by}")
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _damaged(path, "its metadata is not valid JSON") from exc
    if not isinstance(metadata, dict):
        raise _damaged(path, "its metadata is not a JSON object")
    stored = metadata.get(CHECKSUM)
    if stored is None and not accept_unverified:
        raise MerError(
            f"{path}: has no checksum (written by an older mer-fastai), so damage cannot be ruled out; "
            + fmt.legacy_fix.format(path=path)
        )
    if stored is not None and stored != checksum(state, metadata):
        raise _damaged(path, "checksum mismatch: its weights or metadata changed after it was written")
    if metadata.get("format") != fmt.name:
        raise MerError(
            f"{path}: holds format {quote(metadata.get('format'))}, not {quote(fmt.name)}; pass a {fmt.noun} made by "
            f"{fmt.made_by} of this version"
        )
    return state, metadata


def _damaged(path: Path, reason: str) -> MerError:
    return MerError(f"{path}: is damaged ({reason}); retrain or restore it from a copy")


def save_model_file(path: str | Path, model: nn.Module, meta: ModelMeta | dict, writer: str | None = None) -> Path:
    """Write `model`'s weights and its `ModelMeta` to one checksummed file; a malformed record is refused first.

    The record goes through `ModelMeta.from_dict` (as every reader will), so nothing unreadable is written;
    its stored form (a dict) is accepted too. `writer`: the command writing it ("train", "export", ...).
    """
    meta = ModelMeta.from_dict(meta.to_dict() if isinstance(meta, ModelMeta) else meta, path)
    return write_safetensors(path, model.state_dict(), meta.to_dict(), MODEL_FORMAT, writer)


def model_target(out: str | Path) -> Path:
    """The model file to write for `--out`: the path itself, or model.safetensors inside a folder."""
    out = Path(out)
    target = out / MODEL_FILE if out.is_dir() else out
    if target.suffix != ".safetensors":
        raise MerError(f"{out}: a model file must end in .safetensors (e.g. {target.with_suffix('.safetensors')})")
    return target


def read_model_file(path: str | Path, *, accept_unverified: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata of a model file or run folder, checksum verified; any damage is one clear error.

    `accept_unverified` lets a file without a checksum (older versions) through, only for `export`.
    """
    given, path = Path(path), model_file_path(path)
    if given.is_dir() and not path.exists():
        raise MerError(
            f"{given}: is a folder without {MODEL_FILE} (not a run folder); pass a run folder or a model file"
        )
    check_input_file(path, "the model", f"pass a run folder or its {MODEL_FILE}")
    return read_safetensors(path, MODEL_FORMAT, accept_unverified=accept_unverified)


def read_model(path: str | Path, *, accept_unverified: bool = False) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """Weights and checked `ModelMeta` of a model file or run folder; any damage is one clear error."""
    state, metadata = read_model_file(path, accept_unverified=accept_unverified)
    return state, ModelMeta.from_dict(metadata, model_file_path(path))


def create_model(
    spec: ArchSpec,
    n_out: int,
    scale: Sequence[Sequence[float]] | None = None,
    full_model: Callable[..., nn.Module] | None = None,
) -> nn.Module:
    """The body + fastai head network of `spec` with `n_out` outputs: the one builder, which training starts
    from and model files are loaded into.

    The body is the full network cut at the table's cut, the head fastai's (`create_vision_model`, as
    `vision_learner` makes it, without writing fastai's global `model_meta`); given the targets' `scale`, the
    head ends in `TargetRange`. `full_model` makes the network before the cut (default: untrained; training
    passes `weights.model_factory`'s, which loads the pretrained weights).
    """
    from fastai.vision.learner import create_vision_model

    def untrained(*_args, **_kwargs) -> nn.Module:
        return build_full_model(spec, pretrained=False)

    model = create_vision_model(full_model or untrained, n_out, pretrained=False, cut=spec.cut)
    if scale:
        model[1].append(TargetRange([list(pair) for pair in scale]))
    return model


class TargetRange(nn.Module):
    """fastai's `sigmoid_range` per target: output j is squeezed into (low_j, high_j), its recorded scale.

    The last layer of a regression head (`create_model` appends it). The bounds are
    buffers, so they move with the model and are saved in its state dict.
    """

    def __init__(self, scale: list[list[float]]):
        super().__init__()
        bounds = torch.tensor(scale, dtype=torch.float32).reshape(-1, 2)
        self.register_buffer("low", bounds[:, 0].clone())
        self.register_buffer("high", bounds[:, 1].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low


class EnsembleModel(nn.Module):
    """Several networks with the same outputs, combined so that every reader's usual step on a model's outputs
    gives the mean of the members':

    classification: the log of their mean softmax probabilities (softmax of it is the mean); multilabel: the
    logit of their mean sigmoid probabilities (sigmoid of it is the mean); regression: the mean of their
    values. The members' tensors are named `members.<i>.<name>`.

    `groups` lists the members by the input they read (`ModelMeta.input_groups`; default: all one input). With
    one group, `forward(x)` feeds `x` to every member; a mixed ensemble has no single input: `group(g)` is the
    network of group g's members, fed that group's input. A group's input is normalised with its first member's
    statistics; `renorm[i]` = (scale, shift) turns it into member i's own (x · scale + shift, per channel),
    for members trained with other statistics.
    """

    def __init__(
        self,
        members: list[nn.Module],
        task: Task = DEFAULT,
        renorm: list[tuple] | None = None,
        groups: tuple[tuple[int, ...], ...] | None = None,
    ):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task = task
        self.rules = task  # how the members' outputs combine
        self.groups = groups or (tuple(range(len(members))),)
        self.renorm = [pair is not None for pair in (renorm or [None] * len(members))]
        for i, pair in enumerate(renorm or []):
            if pair is not None:  # buffers, not saved: they move with the model to the device it predicts on
                for name, values in zip(("scale", "shift"), pair, strict=True):
                    tensor = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)
                    self.register_buffer(f"renorm_{name}_{i}", tensor, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.groups) > 1:
            raise MerError(
                f"a mixed-input ensemble reads {len(self.groups)} different spectrograms, not one input; predict or "
                "evaluate it on audio, or use one of its members"
            )
        return self.combine(x, self.groups[0])

    def combine(self, x: torch.Tensor, indices: tuple[int, ...]) -> torch.Tensor:
        """The combined outputs of the members `indices`, which read the same input `x`."""
        inputs = [
            x * getattr(self, f"renorm_scale_{i}") + getattr(self, f"renorm_shift_{i}") if self.renorm[i] else x
            for i in indices
        ]
        outputs = torch.stack([self.members[i](xi).float() for i, xi in zip(indices, inputs, strict=True)])
        return self.rules.combine(outputs)

    def group(self, index: int) -> nn.Module:
        """The network of input group `index`: a lone member as it is (its record, `ModelMeta.group`, is the
        member's own: a track head keeps its body and head), or its members combined on their shared input (weights
        shared)."""
        indices = self.groups[index]
        return self.members[indices[0]] if len(indices) == 1 else _Group(self, indices)


class _Group(nn.Module):
    """Some members of an ensemble, combined on the one input they share (`EnsembleModel.combine`)."""

    def __init__(self, ensemble: EnsembleModel, indices: tuple[int, ...]):
        super().__init__()
        self.ensemble, self.indices = ensemble, indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ensemble.combine(x, self.indices)


def build_network(meta: ModelMeta) -> nn.Module:
    """The untrained network a model file with `meta` holds: one body + head (a regression head ending in
    `TargetRange` with the recorded scale, as training builds it), or an ensemble of them (each member its own
    architecture, its input normalised from its input group's first member's statistics)."""
    if not meta.is_ensemble:
        return _network(meta)
    members = [meta.member(i) for i in range(len(meta.members))]
    groups = meta.input_groups
    leader = {i: members[group[0]].stats for group in groups for i in group}
    renorm = [_renorm(leader[i], member.stats) for i, member in enumerate(members)]
    networks = [_network(member) for member in members]
    return EnsembleModel(networks, meta.task, renorm, groups)


def _renorm(ensemble: tuple, own: tuple) -> tuple[list[float], list[float]] | None:
    """(scale, shift) taking an input normalised with `ensemble` statistics to one normalised with `own`."""
    if own == ensemble:
        return None
    (m0, s0), (m1, s1) = ensemble, own
    return [a / b for a, b in zip(s0, s1, strict=True)], [(a - b) / c for a, b, c in zip(m0, m1, s1, strict=True)]


def _network(meta: ModelMeta) -> nn.Module:
    if meta.window_features:  # a hand-crafted model: its features' linear map (`models.featurenet`)
        from .featurenet import FeatureLinear

        return FeatureLinear(meta.input_size, len(meta.classes))
    model = create_model(get_arch(meta.arch), len(meta.classes), scale=meta.scale)
    if meta.is_track:
        from .track_head import track_network

        return track_network(model)
    return model


def load_model(path: str | Path, *, accept_unverified: bool = False) -> tuple[nn.Module, ModelMeta]:
    """The network of a model file or run folder, rebuilt in eval mode, and its checked `ModelMeta`.

    Nothing is unpickled: the architecture is rebuilt from its name and the weights are safetensors.
    `accept_unverified` loads a file without a checksum (see `read_model_file`).
    """
    state, meta = read_model(path, accept_unverified=accept_unverified)
    path = model_file_path(path)
    model = build_network(meta)
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise MerError(
            f"{path}: its tensors do not match a {meta.arch_summary} model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected; first: {first}); the file is mislabelled: {RETRAIN}"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise MerError(
                f"{path}: tensor {name} has shape {tuple(state[name].shape)}, but a {meta.arch_summary} model "
                f"with {len(meta.classes)} classes needs {tuple(tensor.shape)}; the file is mislabelled: {RETRAIN}"
            )
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise MerError(
                f"{path}: tensor {name} holds NaN or infinite values (its training diverged); retrain the model, "
                "e.g. with a lower --lr"
            )
    model.load_state_dict(state, strict=True)
    return model.eval(), meta
