"""Classification metrics: accuracy, macro-F1, per-class scores and the confusion matrix, and their text report."""

from __future__ import annotations

import numpy as np


def classification_metrics(targets: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Every class has a per-class entry (support 0 when it has no item here). Macro averages are over the
    classes that occur as a target or a prediction, as fastai's training metric computes them: a class
    absent from the evaluated items and never predicted has no F1 and does not pull the average to 0.
    `absent_classes` names the classes without any item.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(targets, predicted)),
        "macro_f1": float(
            f1_score(targets, predicted, labels=_scored(targets, predicted), average="macro", zero_division=0)
        ),
        "classes": list(classes),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "absent_classes": [name for i, name in enumerate(classes) if support[i] == 0],
        "confusion_matrix": confusion_matrix(targets, predicted, labels=labels).tolist(),
    }


def _scored(targets: np.ndarray, predicted: np.ndarray) -> list[int]:
    """Class indices that occur as a target or a prediction: the ones macro averages are taken over."""
    return sorted({int(i) for i in np.concatenate([np.ravel(targets), np.ravel(predicted)])})


def text_report(targets: np.ndarray, predicted: np.ndarray, classes: list[str]) -> str:
    """sklearn's classification report over the classes that occur; classes without items are named below it."""
    from sklearn.metrics import classification_report

    scored = _scored(targets, predicted)
    report = classification_report(
        targets, predicted, labels=scored, target_names=[classes[i] for i in scored], digits=3, zero_division=0
    )
    missing = [name for i, name in enumerate(classes) if i not in scored]
    if missing:
        report += f"\nno item and no prediction (left out of the averages): {', '.join(missing)}\n"
    return report
