"""`ensemble`: several trained runs as ONE model file whose predictions are the mean of its members'
(class or mood probabilities, or regression values).

The file is an ordinary checksummed model file (`modelfile`): the members' tensors are stored as
`members.<i>.<name>` and its `ModelMeta` lists the members (`members`), so `predict`, `evaluate` and
`export` load it like any other model (`modelfile.EnsembleModel` combines the outputs so that the usual
softmax, sigmoid or identity gives the mean itself). Members must agree on everything that feeds and names
their outputs: task, classes (targets, moods), target scales, feature, spectrogram settings, architecture,
input size, resize policy and rating cuts. Members normalised differently (`--norm dataset` runs on other
training images) keep their own statistics: the file's are the first member's and each other member
re-normalises its input (`modelfile.EnsembleModel`). An ensemble given as a member is flattened into its
own members.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import MerError
from .modelfile import (
    CHECKSUM,
    build_network,
    load_model,
    member_stats,
    model_file_path,
    model_target,
    read_model_file,
    save_model_file,
)
from .modelmeta import ModelMeta

# what every member must share, and how a refusal names it
SHARED = {
    "task": "task",
    "classes": "classes",
    "feature": "feature",
    "spec": "spectrogram settings",
    "arch": "architecture",
    "input_size": "input size",
    "resize": "resize policy",
    "cuts": "rating cut points",
    "scale": "target scales",
}
MEMBER_METRICS = ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1", "ccc", "rmse", "map")


@dataclass
class EnsembleResult:
    """Where the ensemble went and the `ModelMeta` it carries (one entry per member in `meta.members`)."""

    model_file: Path
    meta: ModelMeta


@dataclass
class _Member:
    source: Path
    state: dict[str, torch.Tensor]
    meta: ModelMeta
    checksum: str | None


def ensemble_models(runs: list[str | Path], out: str | Path) -> EnsembleResult:
    """Write the runs (run folders or model files) as one ensemble model file `out` (a folder gets model.safetensors).

    Refused in one line: fewer than two distinct models, or members that differ in what they predict or
    how they are fed (naming the first mismatch and the two runs).
    """
    target = model_target(out)
    members = _flatten([_read(run) for run in runs])
    _check_members(members)
    meta = _ensemble_meta(members)
    model = build_network(meta)
    state = {f"members.{i}.{name}": tensor for i, member in enumerate(members) for name, tensor in member.state.items()}
    model.load_state_dict(state, strict=True)
    save_model_file(target, model, meta)
    load_model(target)  # what was written reads back, checksum verified
    return EnsembleResult(target, meta)


def _read(run: str | Path) -> list[_Member]:
    """One run's model (or an ensemble's members), checked as every reader checks it."""
    source = model_file_path(run)
    state, metadata = read_model_file(source)
    meta = ModelMeta.from_dict(metadata, source)
    if not meta.is_ensemble:
        return [_Member(source, state, meta, metadata.get(CHECKSUM))]
    single = dataclasses.replace(meta, members=(), metrics={})
    return [
        _Member(
            Path(described["source"]),
            {name.split(".", 2)[2]: t for name, t in state.items() if name.startswith(f"members.{i}.")},
            dataclasses.replace(
                single,
                mode=described.get("mode"),
                metrics=described.get("metrics", {}),
                stats=member_stats(meta, described),
            ),
            described.get("checksum"),
        )
        for i, described in enumerate(meta.members)
    ]


def _flatten(groups: list[list[_Member]]) -> list[_Member]:
    members = [member for group in groups for member in group]
    seen: dict[str, Path] = {}
    for member in members:
        if member.checksum is not None and member.checksum in seen:
            raise MerError(
                f"{member.source}: is the same model as {seen[member.checksum]}; an ensemble needs different models"
            )
        seen[member.checksum or str(member.source)] = member.source
    if len(members) < 2:
        raise MerError("ensemble: needs at least two runs or model files; pass more RUN arguments")
    return members


def _check_members(members: list[_Member]) -> None:
    """Refuse members that differ from the first in anything they must share (one line naming it)."""
    first = members[0]
    for member in members[1:]:
        for name, what in SHARED.items():
            mine, theirs = getattr(first.meta, name), getattr(member.meta, name)
            if mine != theirs:
                raise MerError(
                    f"{member.source}: does not match {first.source} in its {what} ({_difference(theirs, mine)}); "
                    "an ensemble's members must share task, classes, spectrogram settings, architecture and input size"
                )


def _difference(theirs, mine) -> str:
    """`A vs B`; for settings records only the settings that differ."""
    if hasattr(mine, "to_dict"):
        a, b = theirs.to_dict(), mine.to_dict()
        keys = sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))
        return ", ".join(f"{key} {a.get(key)} vs {b.get(key)}" for key in keys)
    return f"{theirs} vs {mine}"


def _ensemble_meta(members: list[_Member]) -> ModelMeta:
    """The first member's record, with the members described (their own scores kept, no ensemble score)."""
    modes = {member.meta.mode for member in members}
    return dataclasses.replace(
        members[0].meta,
        mode=modes.pop() if len(modes) == 1 else None,
        metrics={},
        members=tuple(
            {
                "source": str(member.source),
                "checksum": member.checksum,
                "mode": member.meta.mode,
                "metrics": {k: member.meta.metrics[k] for k in MEMBER_METRICS if k in member.meta.metrics},
                **(
                    {"stats": [list(s) for s in member.meta.stats]}
                    if member.meta.stats != members[0].meta.stats
                    else {}
                ),
            }
            for member in members
        ),
    )
