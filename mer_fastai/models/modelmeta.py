"""`ModelMeta`: the one record of what a model file says about its network and how to feed it.

Training writes it, `predict`, `evaluate`, `export` and `train --weights` read it. `from_dict` is the only
place the stored fields are checked; the file layer (`modelfile`) adds and verifies `format` and `checksum`.
Light on purpose (no torch, no fastai), so the CLI can use it without slowing its start.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._plumbing.files import check_component
from ..bounds import Bounds, quote
from ..choices import HEADS, TRACK_POOLING
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from ..tasks.base import Task
from ..tasks.registry import DEFAULT, TASKS, get_task
from .header import run_settings
from .preprocessing import RESIZE_METHODS, resize_policy
from .windowreads import KNOWN, readable

__all__ = ["ModelMeta", "Stats"]

RETRAIN = "retrain the model with this version of mer-fastai"
FILE_FIELDS = ("format", "checksum")  # written and verified by the file layer (modelfile), not part of the record
REQUIRED = ("arch", "classes", "spectrogram", "stats", "input_size")
# What an ensemble member's input contract is made of: stored field → `ModelMeta` attribute. A member records
# each of them only where it differs from the first member's (the ensemble's own fields).
# The head and its pooling (`models.track_head`) are recorded the same way: an ensemble may mix window and track heads.
CONTRACT = {"arch": "arch", "spectrogram": "spec", "input_size": "input_size", "resize": "resize", "stats": "stats",
            "head": "head", "pooling": "pooling", "window_features": "window_features"}  # fmt: skip
FEATURE_ARCH = "linear"  # the architecture of a model reading window features (`baseline --save-model`)
ORIGIN_FIELDS = ("source", "checksum", "mode", "metrics")  # where an ensemble member came from, its mode and scores
MEMBER_FIELDS = (*ORIGIN_FIELDS, *CONTRACT)  # all an ensemble records about each member

# Plausible bounds of the fields that size what a reader allocates (the spectrogram's are `SpecConfig`'s own)
INPUT_SIZE = Bounds(1, 4096, whole=True)  # square side in pixels, as `train --size` allows
MAX_CLASSES = 10_000  # classes, targets or moods
MAX_MEMBERS = 1000  # networks of an ensemble

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class ModelMeta:
    """Everything needed to rebuild a saved network and feed it exactly as in training."""

    arch: str
    classes: tuple[str, ...]
    spec: SpecConfig  # stored as "spectrogram"
    stats: Stats  # (mean, std) per RGB channel, applied after scaling pixels to [0, 1]
    input_size: int  # square side in pixels
    resize: str = "squish"  # one of RESIZE_METHODS
    feature: str | None = None
    mode: str | None = None  # freeze, whole or partial
    cuts: tuple[float, ...] | None = None  # rating cut points of 3-level features
    package_version: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    # An ensemble: one description per member network (source, checksum, mode, metrics, and its own `CONTRACT`
    # fields where they differ from the first member's), in the order of the file's `members.<i>.` tensors; its
    # outputs combine the members' (modelfile.EnsembleModel): log mean probabilities, mean values (regression)
    # or logits of mean mood probabilities. Empty: a single network.
    members: tuple[Mapping[str, Any], ...] = ()
    # What the outputs are: "classification" (class logits), "regression" (one value per target, in
    # `classes` order, squeezed into its `scale` [low, high] by the head's last layer) or "multilabel" (one
    # logit per mood, in `classes` order; a mood holds when its sigmoid reaches 0.5). Every verb serves all three.
    # The `Task` object (a task's name is accepted and resolved); the file holds its name.
    task: Task = DEFAULT
    scale: tuple[tuple[float, float], ...] = ()
    # What the head learns from (`choices.HEADS`): "window" (each window alone; files without the field) or "track"
    # (all a clip's windows at once, pooled by `pooling`: `models.track_head`; stored only for a track head)
    head: str = HEADS[0]
    pooling: str | None = None
    # A model of window features (`FEATURE_ARCH`, `baseline --save-model`): what it reads instead of an image, each
    # window's vector of `models.windowreads` (hand-crafted with `spec`, a musicnn probe); `input_size`: its width
    window_features: str | None = None

    @property
    def is_track(self) -> bool:
        """Whether the network is a track head (`models.track_head.TrackModel`): one output row per clip."""
        return self.head == HEADS[1] and not self.members

    @property
    def reads_tracks(self) -> bool:
        """Whether the network (or a member of it) needs all of a clip's windows at once: a track head."""
        return self.is_track or any(self.member(i).is_track for i in range(len(self.members)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", get_task(self.task))

    @property
    def is_ensemble(self) -> bool:
        """Whether the file holds several networks whose probabilities are averaged."""
        return bool(self.members)

    def member(self, index: int) -> ModelMeta:
        """Member `index` of an ensemble as a single model's record: its own contract fields where recorded, else
        the ensemble's, with its mode and scores."""
        described = self.members[index]
        own = {attribute: _contract_value(name, described[name]) for name, attribute in CONTRACT.items()
               if name in described}  # fmt: skip
        mode, metrics = described.get("mode"), dict(described.get("metrics") or {})
        return dataclasses.replace(self, members=(), mode=mode, metrics=metrics, **own)

    @property
    def input_groups(self) -> tuple[tuple[int, ...], ...]:
        """An ensemble's members grouped by the input they read (spectrogram settings, input size, resize policy),
        in order of first appearance: one group for an ensemble of one input, several for a mixed one."""
        groups: dict[tuple, list[int]] = {}
        for index in range(len(self.members)):
            member = self.member(index)
            key = (member.spec, member.input_size, member.resize, member.window_features)
            groups.setdefault(key, []).append(index)
        return tuple(tuple(group) for group in groups.values())

    @property
    def is_mixed(self) -> bool:
        """Whether the file is an ensemble whose members read different inputs (one spectrogram each group)."""
        return self.is_ensemble and len(self.input_groups) > 1

    def group(self, index: int) -> ModelMeta:
        """The members of input group `index` as one model's record: the member itself, or an ensemble of them."""
        indices = self.input_groups[index]
        if len(indices) == 1:
            return self.member(indices[0])
        return ensemble_record([self.member(i) for i in indices], [self.members[i] for i in indices])

    @property
    def arch_summary(self) -> str:
        """The architecture, or an ensemble's members' ("2 × melcnn", "2 × melcnn + 1 × musicnn-msd")."""
        if not self.is_ensemble:
            return self.arch
        counts = Counter(self.member(index).arch for index in range(len(self.members)))
        return " + ".join(f"{count} × {arch}" for arch, count in counts.items())

    def to_dict(self) -> dict:
        """The JSON-ready form stored in a model file (without `format` and `checksum`)."""
        return {
            "arch": self.arch,
            "classes": list(self.classes),
            "feature": self.feature,
            "spectrogram": self.spec.to_dict(),
            "stats": [list(self.stats[0]), list(self.stats[1])],
            "input_size": self.input_size,
            "mode": self.mode,
            "resize": self.resize,
            "cuts": list(self.cuts) if self.cuts is not None else None,
            "package_version": self.package_version,
            "metrics": dict(self.metrics),
            **({"members": [dict(member) for member in self.members]} if self.members else {}),
            **(
                {"task": self.task.name, "scale": [list(pair) for pair in self.scale]}
                if not self.task.is_default
                else {}
            ),
            **({"head": self.head, "pooling": self.pooling} if self.head == HEADS[1] else {}),
            **({"window_features": self.window_features} if self.window_features else {}),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str | Path) -> ModelMeta:
        """The checked record of a model file's metadata; anything malformed is one `MerError` naming `path`.

        Files written before `resize` was recorded take it from the run's config.json beside `path`
        (the "study" augmentation validates on centre crops), else "squish".
        """
        path = Path(path)
        if not isinstance(values, Mapping):
            raise _malformed(path, "its metadata is not a table of fields")
        names = {f.name for f in dataclasses.fields(cls)} - {"spec"} | {"spectrogram", *FILE_FIELDS}
        unknown = sorted(set(values) - names)
        if unknown:
            raise _malformed(path, f"its metadata holds unknown field(s) {', '.join(map(quote, unknown))}")
        for key in REQUIRED:
            if key not in values:
                raise _malformed(path, f"its metadata lacks {quote(key)}")
        resize = values.get("resize") or resize_policy(_run_augment(path))
        reads = _reads(values.get("window_features"), path)
        meta = cls(
            arch=_arch(values["arch"], path, reads),
            classes=_classes(values["classes"], path),
            spec=_spec(values["spectrogram"], path),
            stats=_stats(values["stats"], path),
            input_size=_input_size(values["input_size"], path),
            resize=_choice(resize, "resize", RESIZE_METHODS, path),
            feature=_optional_text(values.get("feature"), "feature", path),
            mode=_optional_text(values.get("mode"), "mode", path),
            cuts=_cuts(values.get("cuts"), path),
            package_version=_optional_text(values.get("package_version"), "package_version", path),
            metrics=_metrics(values.get("metrics"), path),
            members=_members(values.get("members"), path, reads),
            task=_choice(values.get("task", DEFAULT.name), "task", tuple(TASKS), path),
            **_head(values.get("head", HEADS[0]), values.get("pooling"), path),
            window_features=reads,
        )
        return dataclasses.replace(meta, scale=_scale(values.get("scale"), meta.task, len(values["classes"]), path))


def ensemble_record(members: list[ModelMeta], described: list[Mapping[str, Any]]) -> ModelMeta:
    """The record of an ensemble of `members` (their own records, the first's fields becoming the ensemble's):
    each member described by its `described` source, checksum, mode and metrics plus the `CONTRACT` fields in
    which it differs from the first; the mode is the members' common one (else None), no ensemble scores."""
    first = members[0]
    modes = {member.mode for member in members}
    return dataclasses.replace(
        first,
        mode=modes.pop() if len(modes) == 1 else None,
        metrics={},
        members=tuple(
            {
                **{name: described_i[name] for name in ORIGIN_FIELDS if name in described_i},
                **{
                    name: _stored(getattr(member, attribute))
                    for name, attribute in CONTRACT.items()
                    if getattr(member, attribute) != getattr(first, attribute)
                },
            }
            for member, described_i in zip(members, described, strict=True)
        ),
    )


def _stored(value: Any) -> Any:
    """A contract value as a model file stores it (settings as a table, statistics as lists)."""
    if isinstance(value, SpecConfig):
        return value.to_dict()
    if isinstance(value, tuple):
        return [list(part) for part in value]
    return value


def _contract_value(name: str, value: Any) -> Any:
    """A stored (already checked) contract value as `ModelMeta` holds it."""
    if name == "spectrogram":
        return SpecConfig.from_dict(dict(value))
    if name == "stats":
        return tuple(tuple(float(v) for v in part) for part in value)
    return value


def _malformed(path: Path, problem: str) -> MerError:
    return MerError(f"{path}: {problem}; {RETRAIN}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _arch(value: Any, path: Path, reads: str | None = None) -> str:
    from .archs import get_arch

    if not isinstance(value, str) or not value:
        raise _malformed(path, f"'arch' must be an architecture name (got {quote(value)})")
    if (reads is not None) != (value == FEATURE_ARCH):  # a model reading window features, and it alone, is linear
        raise _malformed(path, f"a model reading window features has arch {quote(FEATURE_ARCH)}, no other one")
    if reads is not None:  # a model of window features: a linear map of them
        return value
    try:
        get_arch(value)
    except MerError as exc:
        raise MerError(f"{path}: {exc}") from exc
    return value


def _classes(value: Any, path: Path) -> tuple[str, ...]:
    if not (isinstance(value, list) and value and all(isinstance(c, str) and c for c in value)):
        raise _malformed(path, "'classes' must be a non-empty list of class names")
    if len(value) > MAX_CLASSES:
        raise _malformed(path, f"'classes' lists {len(value)} names, over {MAX_CLASSES}")
    if len(set(value)) != len(value):
        raise _malformed(path, f"'classes' holds a name twice ({', '.join(value)})")
    for name in value:  # class, mood and target names become file names (a regression target's scatter plot)
        check_component(name, f"{path}: class", RETRAIN)
    return tuple(value)


def _spec(value: Any, path: Path) -> SpecConfig:
    if not isinstance(value, Mapping):
        raise _malformed(path, "'spectrogram' must be a table of settings")
    try:
        return SpecConfig.from_dict(dict(value))
    except (MerError, TypeError, ValueError) as exc:
        raise _malformed(path, f"its spectrogram settings are malformed ({exc})") from exc


def _stats(value: Any, path: Path) -> Stats:
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(s, (list, tuple)) and len(s) == 3 and all(map(_is_number, s)) for s in value)
        and all(v > 0 for v in value[1])
    ):
        raise _malformed(path, "'stats' must be a mean and a std of 3 numbers each (std > 0)")
    mean, std = (tuple(float(v) for v in s) for s in value)
    return mean, std  # type: ignore[return-value]


def _input_size(value: Any, path: Path) -> int:
    if not (isinstance(value, int) and INPUT_SIZE.holds(value)):
        raise _malformed(path, f"'input_size' (pixels) must be {INPUT_SIZE.describe()} (got {quote(value)})")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...], path: Path) -> str:
    if value not in choices:
        raise _malformed(path, f"{quote(key)} must be one of {', '.join(choices)} (got {quote(value)})")
    return value


def _optional_text(value: Any, key: str, path: Path) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _malformed(path, f"{quote(key)} must be text (got {quote(value)})")
    return value


def _cuts(value: Any, path: Path) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and all(map(_is_number, value)) and value == sorted(value)):
        raise _malformed(path, f"'cuts' must be rising rating cut points (got {quote(value)})")
    return tuple(float(v) for v in value)


def _scale(value: Any, task: Task, outputs: int, path: Path) -> tuple[tuple[float, float], ...]:
    """A regression model's [low, high] per output; other models have none."""
    if not task.facts.predicts_values:
        if value:
            raise _malformed(path, f"a {task} model has no 'scale'")
        return ()
    pairs = value if isinstance(value, list) else []
    if not (
        len(pairs) == outputs
        and all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) and p[0] < p[1] for p in pairs)
    ):
        raise _malformed(path, f"'scale' must give a rising [low, high] for each of its {outputs} targets")
    return tuple((float(low), float(high)) for low, high in pairs)


def _metrics(value: Any, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _malformed(path, "'metrics' must be a table of scores")
    return dict(value)


def _head(head: Any, pooling: Any, path: Path) -> dict[str, Any]:
    """The head and its pooling: a window head has none, a track head `TRACK_POOLING`."""
    _choice(head, "head", HEADS, path)
    if pooling != (TRACK_POOLING if head == HEADS[1] else None):
        raise _malformed(path, f"a {head} head has pooling {quote(TRACK_POOLING if head == HEADS[1] else None)}, "
                         f"not {quote(pooling)}")  # fmt: skip
    return {"head": head, "pooling": pooling}


def _reads(value: Any, path: Path) -> str | None:
    """What a model of window features reads: features this version computes (`models.windowreads`), or refused."""
    if value is not None and not (isinstance(value, str) and readable(value)):
        raise MerError(f"{path}: reads window features {quote(value)}, which this version does not compute ({KNOWN}); "
                       "refit it with `mer-fastai baseline DATA --classifier linear --save-model`")  # fmt: skip
    return value


def _members(value: Any, path: Path, reads: str | None = None) -> tuple[dict, ...]:
    """The member descriptions of an ensemble: at least two tables of the known fields, each naming its source."""
    if value is None:
        return ()
    if not (isinstance(value, list) and 2 <= len(value) <= MAX_MEMBERS and all(isinstance(m, Mapping) for m in value)):
        raise _malformed(path, f"'members' must list at least two member descriptions, at most {MAX_MEMBERS}")
    for member in value:
        unknown = sorted(set(member) - set(MEMBER_FIELDS))
        if unknown:
            raise _malformed(path, f"an ensemble member holds unknown field(s) {', '.join(map(quote, unknown))}")
        if not isinstance(member.get("source"), str):
            raise _malformed(path, "every ensemble member must name its 'source'")
        _optional_text(member.get("checksum"), "checksum", path)
        _optional_text(member.get("mode"), "mode", path)
        _metrics(member.get("metrics"), path)
        own = _reads(member["window_features"], path) if "window_features" in member else reads
        checks = {"arch": lambda v, p, own=own: _arch(v, p, own), "spectrogram": _spec, "input_size": _input_size,
                  "stats": _stats, "resize": lambda v, p: _choice(v, "resize", RESIZE_METHODS, p)}  # fmt: skip
        if "head" in member or "pooling" in member:
            _head(member.get("head", HEADS[0]), member.get("pooling"), path)
        for name, check in checks.items():
            if name in member:
                check(member[name], path)
    return tuple(dict(member) for member in value)


def _run_augment(model_path: Path) -> str | None:
    """The augmentation of the run that wrote a model file, from its config.json (None when unknown)."""
    augment = run_settings(model_path).get("augment")
    return augment if isinstance(augment, str) else None
