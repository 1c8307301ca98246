"""`ensemble`: several trained runs as ONE model file whose predictions are the mean of its members'
(class or mood probabilities, or regression values).

The file is an ordinary checksummed model file (`models.modelfile`): the members' tensors are stored as
`members.<i>.<name>` and its `ModelMeta` lists the members (`members`), so `predict`, `evaluate` and
`export` load it like any other model (`models.modelfile.EnsembleModel` combines the outputs so that the usual
softmax, sigmoid or identity gives the mean itself). Members must agree on what their outputs are: task,
classes (targets, moods), target scales, feature and rating cuts. They may read different inputs: the file's
architecture, spectrogram settings, input size, resize policy and statistics are the first member's, and each
other member records its own where they differ (`ModelMeta.members`, `models.modelmeta.CONTRACT`). Members of the
same spectrogram, input size and resize policy share one input (normalised differently, a member re-normalises
it); an ensemble of several inputs (a "mixed" one) is averaged per track by `predict` and `evaluate`, which
compute each input from the audio (`inference.predict.Predictor`). An ensemble given as a member is flattened into its
own members.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MerError
from ..models.modelfile import CHECKSUM, build_network, load_model, model_target, read_model_file, save_model_file
from ..models.modelmeta import ModelMeta, ensemble_record
from ..runs.inputs import Inputs, model_inputs, refuse_overwrite
from ..runs.layout import model_file_path
from ..runs.ownership import check_model_out

__all__ = ["ensemble_models", "EnsembleResult"]

# what every member must share, and how a refusal names it
SHARED = {
    "task": "task",
    "classes": "classes",
    "feature": "feature",
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
    given: Path  # the RUN argument the member came from (an ensemble given as a member: the ensemble)
    nested: bool = False  # a member of an ensemble given as a member

    def named(self) -> str:
        """The member as the user typed it (and the nested member it resolved to)."""
        return f"{self.given} (its member {self.source})" if self.nested else str(self.given)


def ensemble_models(runs: list[str | Path], out: str | Path, *, writer: str = "ensemble") -> EnsembleResult:
    """Write the runs (run folders or model files) as one ensemble model file `out` (a folder gets model.safetensors).

    Refused in one line, before anything is written: an `out` that is a member (its model file, run folder or
    the run's records), fewer than two distinct models, or members that differ in what they predict (naming the
    first mismatch and the two runs). Members may differ in architecture and input (see the module). The command
    `ensemble` (`writer`) writes neither into another command's output folder nor over a file it did not write
    (`runs.ownership.check_model_out`); `cv` writes its folds' ensemble into its own folder.
    """
    target = model_target(out)
    members_read: Inputs = {}
    for run in runs:
        members_read.update(model_inputs(run, "an ensemble member"))
    refuse_overwrite([out, target], members_read)
    if writer == "ensemble":
        check_model_out(target, writer)
    members = _flatten([_read(run) for run in runs])
    _check_members(members)
    meta = ensemble_record([member.meta for member in members], [_origin(member) for member in members])
    model = build_network(meta)
    state = {f"members.{i}.{name}": tensor for i, member in enumerate(members) for name, tensor in member.state.items()}
    model.load_state_dict(state, strict=True)
    save_model_file(target, model, meta, writer)
    load_model(target)  # what was written reads back, checksum verified
    return EnsembleResult(target, meta)


def _read(run: str | Path) -> list[_Member]:
    """One run's model (or an ensemble's members), checked as every reader checks it."""
    source = model_file_path(run)
    state, metadata = read_model_file(source)
    meta = ModelMeta.from_dict(metadata, source)
    if not meta.is_ensemble:
        return [_Member(source, state, meta, metadata.get(CHECKSUM), Path(run))]
    return [
        _Member(
            Path(described["source"]),
            {name.split(".", 2)[2]: t for name, t in state.items() if name.startswith(f"members.{i}.")},
            meta.member(i),
            described.get("checksum"),
            Path(run),
            nested=True,
        )
        for i, described in enumerate(meta.members)
    ]


def _flatten(groups: list[list[_Member]]) -> list[_Member]:
    members = [member for group in groups for member in group]
    seen: dict[str, _Member] = {}
    for member in members:
        if member.checksum is not None and member.checksum in seen:
            raise MerError(
                f"{member.named()}: is the same model as {seen[member.checksum].named()}; an ensemble needs "
                "different models"
            )
        seen[member.checksum or str(member.source)] = member
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
                    f"{member.named()}: does not match {first.named()} in its {what} ({theirs} vs {mine}); "
                    "an ensemble's members must share task, classes (targets, moods), feature, scales and rating cuts"
                )


def _origin(member: _Member) -> dict:
    """Where a member came from, its mode and its own scores, as the ensemble describes it."""
    metrics = {key: member.meta.metrics[key] for key in MEMBER_METRICS if key in member.meta.metrics}
    return {"source": str(member.source), "checksum": member.checksum, "mode": member.meta.mode, "metrics": metrics}
