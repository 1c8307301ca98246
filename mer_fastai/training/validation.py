"""What a training run is scored on: its validation windows and the held-out test split, scored by the task.

The validation split is scored from the learner's own predictions; the test split once, with the final model,
fed exactly as `predict` feeds windows (`window_outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import ManifestRow
from ..errors import MerError
from ..models.modelmeta import ModelMeta
from ..models.preprocessing import native_input
from ..scoring.scores import Tracks, ValueTracks
from ..tasks.base import Task
from ..tasks.opened import Dataset, open_dataset
from .items import check_dataset


@dataclass
class Split:
    """Scored windows of a data set: its folder and the manifest rows, in the order they are scored."""

    data_dir: Path
    rows: list[ManifestRow]

    @property
    def clip_ids(self) -> list[str]:
        return [row.clip_id for row in self.rows]


@dataclass
class Splits:
    """The data set a run trains on, its validation windows and what it is tested on (if anything)."""

    dataset: Dataset
    valid: Split
    test: Split | None


def held_out_split(dataset: Dataset, test_dir: str | None) -> Split | None:
    """What the final model is scored on once: `--test DATA_DIR` (every image of another prepared data set
    with the same classes and spectrogram settings and no clip of this one), else the data set's own test
    split, else nothing."""
    data_dir, info, rows = dataset.path, dataset.info, dataset.rows
    own = dataset.split("test")
    if test_dir is None:
        return Split(data_dir, own) if own else None
    other = Path(test_dir)
    if own:
        raise MerError(f"--test {other}: {data_dir} has its own test split; drop --test or prepare without --test-pct")
    if other.resolve() == data_dir.resolve():
        raise MerError(f"--test {other}: is the training data set itself; pass another prepared data set")
    tested = check_dataset(open_dataset(other))
    other_info, other_rows = tested.info, tested.rows
    dataset.task.check_test_set(info, other_info, f"--test {other}")
    if tested.spec.digest() != dataset.spec.digest():
        raise MerError(f"--test {other}: made with other spectrogram settings; prepare it with those of {data_dir}")
    shared = sorted({row.source for row in other_rows} & {row.source for row in rows})
    if shared:
        raise MerError(
            f"--test {other}: {len(shared)} clip(s) are also in {data_dir}, e.g. {shared[0]}; a test set must "
            "hold other clips"
        )
    return Split(other, list(other_rows))


def score_test(
    model, meta: ModelMeta, task: Task, split: Split, aggregate: str
) -> tuple[np.ndarray, dict, Tracks | ValueTracks]:
    """The final model's outputs (class or mood probabilities, or values) on a test split, their scores (with the
    split's `data_dir`) and tracks."""
    names = list(meta.classes)
    outputs = task.outputs(torch.from_numpy(window_outputs(model, meta, split))).numpy().astype(np.float64)
    scores, tracks = task.score(outputs, task.split_truth(split.rows, names), split.clip_ids, names, aggregate)
    scores.update(data_dir=str(split.data_dir))
    return outputs, scores, tracks


def window_outputs(model, meta: ModelMeta, split: Split, chunk: int = 512) -> np.ndarray:
    """Raw model outputs (n_windows, n_outputs) of a split's images, fed exactly as `predict` feeds windows
    (the validation transform of training; a track head's windows one clip at a time, each carrying its clip's
    outputs)."""
    from PIL import Image

    from ..data.png import read_png16
    from ..inference.predict import Predictor

    device = next(model.parameters()).device
    predictor = Predictor(model, meta, device=str(device), bs=64)
    outputs = np.zeros((len(split.rows), len(meta.classes)))
    for indices in _chunks(split, meta, chunk):
        images = []
        for row in (split.rows[i] for i in indices):
            if native_input(meta.spec):  # PIL's RGB conversion would clip 16-bit images to 8 bits
                images.append(read_png16(row.path(split.data_dir)))
                continue
            with Image.open(row.path(split.data_dir)) as image:
                images.append(np.asarray(image if image.mode == "L" else image.convert("RGB")))
        outputs[indices] = predictor.logits(images).numpy()
    return outputs


def _chunks(split: Split, meta: ModelMeta, chunk: int) -> list[list[int]]:
    """The indices of the split's rows in the groups the network reads at once: `chunk` windows, or a track
    head's clips (all the windows of one clip)."""
    if not meta.is_track:
        return [list(range(start, min(start + chunk, len(split.rows)))) for start in range(0, len(split.rows), chunk)]
    clips: dict[str, list[int]] = {}
    for index, row in enumerate(split.rows):
        clips.setdefault(row.clip_id, []).append(index)
    return list(clips.values())
