"""The baseline's estimators: standardise-then-fit pipelines of the classic families, one kind per task.

Every task names its estimator kind (`TaskFacts.baseline_estimator`): a classifier of the classes, a regressor of
every target (RBF SVR, k-NN, random forest, extra trees regression), or a classifier giving each mood a
probability (the SVM one-vs-rest, the others natively multilabel). The kind also says what its windows'
outputs are: class probabilities (one column per data-set class), predicted values or mood probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

CONSTANT_SPREAD = 1e-8  # a feature whose training spread is below this is constant (see `scaler`)
LINEAR_C = 0.01  # the logistic regression's inverse regularisation, fixed (see `make_classifier`)
RIDGE_ALPHA = 100.0  # the ridge regression's penalty, fixed (not measured: no regression data set here)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ...tasks.base import Task


@cache
def scaler() -> type:
    """scikit-learn's `StandardScaler`, except that a feature whose spread over the training windows is below
    `CONSTANT_SPREAD` counts as constant (divided by 1, as the scaler divides an exactly constant one): a spread of
    floating-point noise (1e-17 for a beat-interval deviation of synthetic audio) would otherwise blow the other
    windows' values up to 1e13 and the scores with them. Real features spread far more (the 83 hand-crafted
    features of 4q-dev's 10 s windows: at least 0.0098), so their numbers do not change."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    class ConstantSafeScaler(StandardScaler):
        def fit(self, x, y=None, sample_weight=None):
            super().fit(x, y, sample_weight)
            if self.scale_ is not None:
                self.scale_ = np.where(np.sqrt(self.var_) < CONSTANT_SPREAD, 1.0, self.scale_)
            return self

    return ConstantSafeScaler


def make_classifier(name: str, seed: int, n_train: int, workers: int | None = None) -> Pipeline:
    """A standardise-then-classify pipeline for one of `CLASSIFIERS`; every random choice follows `seed`.

    The SVM's class probabilities are libsvm's (`probability=True`: Platt scaling of the pairwise decisions,
    coupled). scikit-learn 1.9 deprecates that option for `CalibratedClassifierCV(SVC(), ensemble=False)`,
    but on 4q-dev's artist-grouped folds the replacement scored 0.638 ± 0.007 track accuracy against libsvm's
    0.650 ± 0.025 (BENCHMARKS.md): the reference would get weaker and flatter the CNNs, so the option stays
    (its warning silenced in `run_baseline`) and pyproject keeps scikit-learn below 1.11, which removes it.

    `linear` is a multinomial logistic regression (the linear probe of an embedding) at the fixed `LINEAR_C`:
    the issue's whole-clip probe of musicnn-msd measured C = 0.01 on 4q-dev's artist-grouped folds; nested
    choice of C is not done (BENCHMARKS.md, "Linear probes")."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    jobs = workers or os.cpu_count() or 1
    models = {
        "svm": lambda: SVC(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=seed),
        "knn": lambda: KNeighborsClassifier(n_neighbors=min(5, n_train)),
        "random_forest": lambda: RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=jobs),
        "extra_trees": lambda: ExtraTreesClassifier(n_estimators=300, random_state=seed, n_jobs=jobs),
        "linear": lambda: LogisticRegression(C=LINEAR_C, max_iter=2000, random_state=seed),
    }
    return make_pipeline(scaler()(), models[name]())


def make_regressor(name: str, seed: int, n_train: int, workers: int | None = None) -> Pipeline:
    """A standardise-then-regress pipeline of the family `name` (one of `CLASSIFIERS`, `linear`: ridge at
    `RIDGE_ALPHA`), predicting every target."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVR

    jobs = workers or os.cpu_count() or 1
    models = {
        "svm": lambda: MultiOutputRegressor(SVR(kernel="rbf", C=1.0, gamma="scale")),
        "knn": lambda: KNeighborsRegressor(n_neighbors=min(5, n_train)),
        "random_forest": lambda: RandomForestRegressor(n_estimators=300, random_state=seed, n_jobs=jobs),
        "extra_trees": lambda: ExtraTreesRegressor(n_estimators=300, random_state=seed, n_jobs=jobs),
        "linear": lambda: Ridge(alpha=RIDGE_ALPHA),
    }
    return make_pipeline(scaler()(), models[name]())


def make_mood_classifier(name: str, seed: int, n_train: int, workers: int | None = None) -> Pipeline:
    """A standardise-then-classify pipeline of the family `name` (one of `CLASSIFIERS`) giving every mood a
    probability: the SVM and the logistic regression one per mood (one-vs-rest), k-NN and the forests natively
    multilabel."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    model = make_classifier(name, seed, n_train, workers)[-1]
    return make_pipeline(scaler()(), OneVsRestClassifier(model) if name in ("svm", "linear") else model)


def class_probs(model: Pipeline, x: np.ndarray, n_names: int) -> np.ndarray:
    """(windows, classes) probabilities: one column per data-set class, 0 for a class the classifier never saw
    trained."""
    probs = np.zeros((len(x), n_names))
    probs[:, model.classes_] = model.predict_proba(x)
    return probs


def predicted_values(model: Pipeline, x: np.ndarray, n_names: int) -> np.ndarray:
    """(windows, targets) predicted values (a single target's too: scikit-learn's regressors give it as (windows,))."""
    return np.asarray(model.predict(x)).reshape(len(x), n_names)


def mood_probs(model: Pipeline, x: np.ndarray, n_moods: int) -> np.ndarray:
    """(windows, moods) probabilities. One-vs-rest of several moods gives them as they are; a natively
    multilabel estimator one (windows, classes seen) array per mood, and any estimator of one mood (a binary
    classifier) one such array, whose class-1 column is taken (a mood always or never present in the training
    windows: all 1 or all 0)."""
    probs, seen = model.predict_proba(x), model[-1].classes_
    if n_moods > 1 and not isinstance(probs, list):
        return probs
    pairs = zip(probs, seen) if n_moods > 1 else [(probs, seen)]
    return np.column_stack([p[:, list(c).index(1)] if 1 in c else np.zeros(len(x)) for p, c in pairs])


@dataclass(frozen=True)
class Estimator:
    """One estimator kind: how it is made (`make(name, seed, n_train, workers)`), the windows' outputs it
    gives (`outputs(model, x, n_names)`), whether it learns class indices (else rows of values: targets, or
    1/0 per mood) and what the terminal table calls it."""

    make: Callable[..., Pipeline]
    outputs: Callable[[Pipeline, np.ndarray, int], np.ndarray]
    learns_classes: bool
    called: str


ESTIMATORS = {  # by `TaskFacts.baseline_estimator`
    "classifier": Estimator(make_classifier, class_probs, True, "classifier"),
    "regressor": Estimator(make_regressor, predicted_values, False, "regressor"),
    "mood_classifier": Estimator(make_mood_classifier, mood_probs, False, "classifier"),
}


def estimator(task: Task) -> Estimator:
    """The estimator kind of a task."""
    return ESTIMATORS[task.facts.baseline_estimator]
