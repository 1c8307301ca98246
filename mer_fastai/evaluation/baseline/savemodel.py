"""`baseline --save-model`: the fitted standardise + linear pipeline as a checksummed model file.

Only the linear estimators convert exactly: a multinomial logistic regression (class probabilities = softmax of
its `decision_function`), one logistic regression per mood (one-vs-rest: a sigmoid each) and ridge regression of
the targets (the values as they are). Each becomes a `models.featurenet.FeatureLinear`: logits =
((x − mean) / scale) · Wᵀ + b, so that the task's usual activation gives what the estimator gives. The file
records the feature sets it reads (`ModelMeta.window_features`, `models.windowreads`: the hand-crafted set, a
musicnn probe's layer, or both joined by "+") and the data set's spectrogram settings (sample rate, FFT size, hop,
window and window hop), so that `Predictor` computes each window's vector from the audio with the functions the
baseline fitted on. Before the file is written, the network's outputs are compared with the estimator's on the
training and validation windows; a difference over `TOLERANCE` is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..._version import __version__
from ...data.handcrafted import READS
from ...errors import MerError
from ...models.archs import IDENTITY_STATS
from ...models.header import MODEL_FILE, model_header
from ...models.metachecks import FEATURE_ARCH, INPUT_SIZE
from ...models.modelmeta import ModelMeta
from ...models.musicnn.probe import probe_reads
from ...runs.ownership import check_model_out
from ...tasks.opened import Dataset
from .featuresets import Features, row_name

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline
    from torch import nn

    from .models import Estimator

__all__ = ["check_save_model", "model_reads", "save_linear_model"]

TOLERANCE = 1e-5  # the largest difference allowed between the file's outputs and the estimator's
CERTAIN = 1e4  # the logit of a class never seen in training (-) or of a mood constant in training (±)


def check_save_model(classifiers: list[str], features: Features, outs: list[Path]) -> None:
    """Refuse `--save-model` (one line, before anything is written) unless every estimator is the linear one on
    features a model file computes (`model_reads`), and where a model file (`<out>/<row>/`, for each of `outs`:
    the output folder, or every fold's) would replace a file `baseline` did not write."""
    others = [name for name in classifiers if name != "linear"]
    if others:
        raise MerError(f"--save-model: only the linear models convert exactly to a model file, not --classifier "
                       f"{others[0]}; pass --classifier linear")  # fmt: skip
    model_reads(features)
    if not INPUT_SIZE.holds(len(features.names)):
        raise MerError(f"--save-model: --features {features.label} gives {len(features.names)} numbers per window, "
                       f"over the {INPUT_SIZE.high:g} a model file reads; drop a feature set")  # fmt: skip
    for out in outs:
        check_model_out(out / row_name("linear", features) / MODEL_FILE, "baseline", "--out")


def model_reads(features: Features) -> str:
    """What a model file of `features` reads (`ModelMeta.window_features`): each set's name at its version, joined
    by "+"; one line refusing a set no model file computes (the melodic one)."""
    parts = []
    for kind in features.sets:
        if kind.name.startswith("musicnn-"):
            parts.append(probe_reads(*kind.name.removeprefix("musicnn-").split(".")))
        elif kind.name == "handcrafted":
            parts.append(READS)
        else:
            raise MerError(f"--save-model: a model file reads the handcrafted and musicnn-msd / musicnn-mtt features, "
                           f"not --features {kind.name}; drop {kind.name} from --features")  # fmt: skip
    return "+".join(parts)


def save_linear_model(
    model: Pipeline,
    kind: Estimator,
    dataset: Dataset,
    features: Features,
    metrics: dict,
    checks: list[np.ndarray],
    folder: Path,
) -> str | None:
    """Write the fitted linear `model` (estimator `kind`) of `dataset`'s `features` as `folder/model.safetensors`,
    its record holding `metrics`, after checking its outputs against the estimator's on the windows `checks`; the
    file's checksum (the row's metrics.json binds its scores to it, as a training run's does)."""
    import torch

    from ...models.modelfile import CHECKSUM, build_network, save_model_file

    info, task = dataset.info, dataset.task
    names = task.output_names(info, lambda: info.classes)
    scaler, estimator = model[0], model[-1]
    weights, bias = LINEAR_MAPS[task.facts.baseline_estimator](estimator, len(names), len(scaler.mean_))
    meta = ModelMeta(
        arch=FEATURE_ARCH,
        classes=tuple(names),
        spec=dataset.spec,
        stats=tuple(tuple(part) for part in IDENTITY_STATS),  # type: ignore[arg-type]
        input_size=len(scaler.mean_),
        feature=info.feature,
        mode="features",
        package_version=__version__,
        task=task,
        window_features=model_reads(features),
        **task.model_record(info, metrics),
    )
    network = build_network(meta)
    state = {"mean": scaler.mean_, "scale": scaler.scale_, "linear.weight": weights, "linear.bias": bias}
    network.load_state_dict({name: torch.tensor(np.asarray(v), dtype=torch.float32) for name, v in state.items()})
    x = np.concatenate(checks)
    _check(network.eval(), task, kind.outputs(model, x, len(names)), x)
    target = save_model_file(folder / MODEL_FILE, network, meta, "baseline")
    return (model_header(target) or {}).get(CHECKSUM)


def _check(network: nn.Module, task, expected: np.ndarray, x: np.ndarray) -> None:
    """Refuse a conversion whose outputs differ from the estimator's by more than `TOLERANCE`."""
    import torch

    with torch.inference_mode():
        got = task.outputs(network(torch.from_numpy(x))).numpy()
    worst = float(np.abs(got - expected.reshape(got.shape)).max()) if len(x) else 0.0  # one target: (N,) to (N, 1)
    if not worst <= TOLERANCE:
        raise MerError(f"--save-model: the model file's outputs differ from the linear model's by {worst:.2g} (over "
                       f"{TOLERANCE:g}); nothing was written: report this with the data set")  # fmt: skip


def _classifier(estimator, n_names: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """A logistic regression's (W, b) over every data-set class: softmax(x·Wᵀ + b) is its `predict_proba`
    (two classes: the second's decision, the first's 0); a class never seen in training gets probability 0."""
    weights = np.zeros((n_names, n_features))
    bias = np.full(n_names, -CERTAIN)
    seen = list(estimator.classes_)
    if len(seen) == 2:
        bias[seen[0]] = 0.0
        weights[seen[1]], bias[seen[1]] = estimator.coef_[0], estimator.intercept_[0]
    else:
        weights[seen], bias[seen] = estimator.coef_, estimator.intercept_
    return weights, bias


def _regressor(estimator, n_names: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Ridge's (W, b): its predictions are x·Wᵀ + b."""
    return np.asarray(estimator.coef_).reshape(n_names, n_features), np.asarray(estimator.intercept_).reshape(n_names)


def _moods(estimator, n_names: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest logistic regressions' (W, b): sigmoid(x·Wᵀ + b) is each mood's probability; a mood constant in
    training (scikit-learn's constant predictor) is certain."""
    weights, bias = np.zeros((n_names, n_features)), np.zeros(n_names)
    for index, mood in enumerate(estimator.estimators_):
        if hasattr(mood, "coef_"):
            weights[index], bias[index] = mood.coef_[0], mood.intercept_[0]
        else:
            bias[index] = CERTAIN if float(np.ravel(mood.y_)[0]) >= 0.5 else -CERTAIN
    return weights, bias


LINEAR_MAPS = {"classifier": _classifier, "regressor": _regressor, "mood_classifier": _moods}  # by estimator kind
