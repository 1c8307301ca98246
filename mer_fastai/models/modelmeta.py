"""`ModelMeta`: the one record of what a model file says about its network and how to feed it.

Training writes it, `predict`, `evaluate`, `export` and `train --weights` read it. `from_dict` is the only
place the stored fields are checked (which fields a file holds, and an ensemble's member tables, here; each value
by its check in `models.metachecks`); the file layer (`modelfile`) adds and verifies `format` and `checksum`.
Light on purpose (no torch, no fastai), so the CLI can use it without slowing its start.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bounds import quote
from ..choices import HEADS
from ..data.spectrogram import SpecConfig
from ..tasks.base import Task
from ..tasks.registry import DEFAULT, TASKS, get_task
from . import metachecks as check
from .header import run_settings
from .metachecks import MAX_MEMBERS, Stats, malformed
from .preprocessing import RESIZE_METHODS, resize_policy

__all__ = ["ModelMeta", "Stats"]

FILE_FIELDS = ("format", "checksum")  # written and verified by the file layer (modelfile), not part of the record
REQUIRED = ("arch", "classes", "spectrogram", "stats", "input_size")
# What an ensemble member's input contract is made of: stored field → `ModelMeta` attribute. A member records
# each of them only where it differs from the first member's (the ensemble's own fields).
# The head and its pooling (`models.track_head`) are recorded the same way: an ensemble may mix window and track heads.
CONTRACT = {"arch": "arch", "spectrogram": "spec", "input_size": "input_size", "resize": "resize", "stats": "stats",
            "head": "head", "pooling": "pooling", "window_features": "window_features"}  # fmt: skip
ORIGIN_FIELDS = ("source", "checksum", "mode", "metrics")  # where an ensemble member came from, its mode and scores
MEMBER_FIELDS = (*ORIGIN_FIELDS, *CONTRACT)  # all an ensemble records about each member


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
            raise malformed(path, "its metadata is not a table of fields")
        names = {f.name for f in dataclasses.fields(cls)} - {"spec"} | {"spectrogram", *FILE_FIELDS}
        unknown = sorted(set(values) - names)
        if unknown:
            raise malformed(path, f"its metadata holds unknown field(s) {', '.join(map(quote, unknown))}")
        for key in REQUIRED:
            if key not in values:
                raise malformed(path, f"its metadata lacks {quote(key)}")
        resize = values.get("resize") or resize_policy(_run_augment(path))
        reads = check.reads(values.get("window_features"), path)
        meta = cls(
            arch=check.arch(values["arch"], path, reads),
            classes=check.classes(values["classes"], path),
            spec=check.spec(values["spectrogram"], path),
            stats=check.stats(values["stats"], path),
            input_size=check.input_size(values["input_size"], path),
            resize=check.choice(resize, "resize", RESIZE_METHODS, path),
            feature=check.optional_text(values.get("feature"), "feature", path),
            mode=check.optional_text(values.get("mode"), "mode", path),
            cuts=check.cuts(values.get("cuts"), path),
            package_version=check.optional_text(values.get("package_version"), "package_version", path),
            metrics=check.metrics(values.get("metrics"), path),
            members=_members(values.get("members"), path, reads),
            task=check.choice(values.get("task", DEFAULT.name), "task", tuple(TASKS), path),
            **check.head(values.get("head", HEADS[0]), values.get("pooling"), path),
            window_features=reads,
        )
        scale = check.scale(values.get("scale"), meta.task, len(values["classes"]), path)
        return dataclasses.replace(meta, scale=scale)


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


def _members(value: Any, path: Path, reads: str | None = None) -> tuple[dict, ...]:
    """The member descriptions of an ensemble: at least two tables of the known fields, each naming its source."""
    if value is None:
        return ()
    if not (isinstance(value, list) and 2 <= len(value) <= MAX_MEMBERS and all(isinstance(m, Mapping) for m in value)):
        raise malformed(path, f"'members' must list at least two member descriptions, at most {MAX_MEMBERS}")
    for member in value:
        unknown = sorted(set(member) - set(MEMBER_FIELDS))
        if unknown:
            raise malformed(path, f"an ensemble member holds unknown field(s) {', '.join(map(quote, unknown))}")
        if not isinstance(member.get("source"), str):
            raise malformed(path, "every ensemble member must name its 'source'")
        check.optional_text(member.get("checksum"), "checksum", path)
        check.optional_text(member.get("mode"), "mode", path)
        check.metrics(member.get("metrics"), path)
        own = check.reads(member["window_features"], path) if "window_features" in member else reads
        checks = {"arch": lambda v, p, own=own: check.arch(v, p, own), "spectrogram": check.spec,
                  "input_size": check.input_size, "stats": check.stats,
                  "resize": lambda v, p: check.choice(v, "resize", RESIZE_METHODS, p)}  # fmt: skip
        if "head" in member or "pooling" in member:
            check.head(member.get("head", HEADS[0]), member.get("pooling"), path)
        for name, checked in checks.items():
            if name in member:
                checked(member[name], path)
    return tuple(dict(member) for member in value)


def _run_augment(model_path: Path) -> str | None:
    """The augmentation of the run that wrote a model file, from its config.json (None when unknown)."""
    augment = run_settings(model_path).get("augment")
    return augment if isinstance(augment, str) else None
