"""Classification metrics on integer labels: accuracy, confusion matrix, per-class scores.

Every function takes the true and the predicted labels as 1-D integer tensors (on
any device), numpy arrays or plain sequences of ints, and checks them before any
work: both must be non-empty, of the same length, and hold labels in
``[0, num_classes)``. Predictions are labels, not scores: pass
``proba.argmax(dim=1)`` (or :meth:`fcnet.Trainer.predict`) rather than the
probabilities themselves.

All counting goes through one :func:`torch.bincount`, so the cost is a single
vectorised pass whatever the number of classes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fcnet._checks import is_array_like

__all__ = ["accuracy", "classification_report", "confusion_matrix", "per_class_accuracy"]


def _as_labels(values: Any, name: str) -> torch.Tensor:
    """Return ``values`` as a 1-D int64 CPU tensor, or raise naming ``name``."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach()
        if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
            raise TypeError(
                f"{name} must hold integer class labels, got a tensor of dtype {tensor.dtype}; "
                f"convert scores to labels first, e.g. proba.argmax(dim=1)"
            )
        tensor = tensor.to("cpu", torch.int64)
    else:
        if is_array_like(values):  # a pandas Series, a polars column, ...
            values = np.asarray(values)
        if isinstance(values, (str, bytes)) or not isinstance(values, (np.ndarray, Sequence)):
            raise TypeError(
                f"{name} must be a torch.Tensor, a numpy array, a pandas Series or a "
                f"sequence of int labels, got {type(values).__name__}"
            )
        array = np.asarray(values)
        # An empty list becomes float64 in numpy; let the emptiness check below report it.
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise TypeError(
                f"{name} must hold integer class labels, got an array of dtype {array.dtype}; "
                f"convert scores to labels first, e.g. proba.argmax(axis=1)"
            )
        tensor = torch.from_numpy(np.array(array, dtype=np.int64))  # a copy: may be read-only
    if tensor.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per sample), got shape {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty; metrics need at least one sample")
    smallest = int(tensor.min())
    if smallest < 0:
        raise ValueError(f"{name} must hold labels >= 0, got {smallest}")
    return tensor


def _check_num_classes(num_classes: Any) -> int:
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool):
        raise TypeError(
            f"num_classes must be an int or None, got {type(num_classes).__name__} {num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _check_pair(
    y_true: Any, y_pred: Any, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate a pair of label vectors; return them with the number of classes."""
    true = _as_labels(y_true, "y_true")
    pred = _as_labels(y_pred, "y_pred")
    if true.numel() != pred.numel():
        raise ValueError(
            f"y_true and y_pred must have the same length, got {true.numel()} and {pred.numel()}"
        )
    if num_classes is None:
        # Inferred from the labels seen; pass num_classes when a class may be absent from both.
        return true, pred, int(max(true.max(), pred.max())) + 1
    n = _check_num_classes(num_classes)
    for name, labels in (("y_true", true), ("y_pred", pred)):
        largest = int(labels.max())
        if largest >= n:
            raise ValueError(
                f"{name} holds label {largest}, outside [0, num_classes) with num_classes={n}"
            )
    return true, pred, n


def _confusion(true: torch.Tensor, pred: torch.Tensor, n: int) -> torch.Tensor:
    # One bincount over the flattened (true, pred) cell index counts every cell at once.
    return torch.bincount(true * n + pred, minlength=n * n).reshape(n, n)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted label equals the true label.

    Args:
        y_true: True labels, 1-D integers (tensor, numpy array or sequence).
        y_pred: Predicted labels, same length as ``y_true``.

    Returns:
        The accuracy in ``[0, 1]``.

    Raises:
        TypeError: If the labels are not integers.
        ValueError: If the labels are empty, not 1-D, negative or of different lengths.
    """
    true, pred, _ = _check_pair(y_true, y_pred, None)
    return float((true == pred).double().mean())


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> torch.Tensor:
    """Count the samples of each (true class, predicted class) pair.

    Args:
        y_true: True labels, 1-D integers (tensor, numpy array or sequence).
        y_pred: Predicted labels, same length as ``y_true``.
        num_classes: Number of classes; inferred as the largest label seen plus one when
            ``None``.

    Returns:
        An int64 CPU tensor of shape ``(num_classes, num_classes)`` whose entry ``[i, j]``
        is the number of samples of true class ``i`` predicted as class ``j``: rows are
        true classes, columns predicted classes, and the diagonal holds the hits.

    Raises:
        TypeError: If the labels are not integers or ``num_classes`` is not an int.
        ValueError: If the labels are empty, not 1-D, of different lengths, or outside
            ``[0, num_classes)``.
    """
    true, pred, n = _check_pair(y_true, y_pred, num_classes)
    return _confusion(true, pred, n)


def per_class_accuracy(y_true: Any, y_pred: Any, num_classes: int | None = None) -> torch.Tensor:
    """Accuracy within each true class (the recall of each class).

    Args:
        y_true: True labels, 1-D integers (tensor, numpy array or sequence).
        y_pred: Predicted labels, same length as ``y_true``.
        num_classes: Number of classes; inferred as the largest label seen plus one when
            ``None``.

    Returns:
        A float64 tensor of shape ``(num_classes,)``. A class with no sample in ``y_true``
        has no defined accuracy and gets ``NaN`` (not 0, which would read as "always
        wrong"); use :func:`torch.nanmean` to average over the classes present.

    Raises:
        TypeError: If the labels are not integers or ``num_classes`` is not an int.
        ValueError: If the labels are empty, not 1-D, of different lengths, or outside
            ``[0, num_classes)``.
    """
    true, pred, n = _check_pair(y_true, y_pred, num_classes)
    cm = _confusion(true, pred, n).double()
    support = cm.sum(dim=1)
    # 0 / 0 gives NaN for absent classes, which is the documented result.
    return cm.diagonal() / support


def _check_classes(classes: Any) -> list[str]:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise TypeError(
            f"classes must be a sequence of class names, got {type(classes).__name__} {classes!r}"
        )
    names = list(classes)
    if not names:
        raise ValueError("classes must name at least one class, got an empty sequence")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(
                f"classes must hold str names, got {name!r} ({type(name).__name__}) at position {i}"
            )
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"classes must be unique names, got duplicates {duplicates}")
    return names


def _safe_ratio(num: float, den: float) -> float:
    # 0 / 0 counts as 0 (scikit-learn's zero_division=0) so the report stays valid JSON.
    return num / den if den else 0.0


def classification_report(
    y_true: Any, y_pred: Any, classes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Summarise a classifier's predictions as plain, JSON-ready data.

    Precision, recall and F1 follow scikit-learn's ``classification_report`` with
    ``zero_division=0``: a ratio whose denominator is 0 (a class never predicted, or
    never present) is reported as 0.0, so the result holds no NaN and survives strict
    JSON. Macro averages are unweighted means over every class; weighted averages
    weight each class by its support.

    Args:
        y_true: True labels, 1-D integers (tensor, numpy array or sequence).
        y_pred: Predicted labels, same length as ``y_true``.
        classes: One name per class, in label order; its length is the number of
            classes. When ``None``, classes are named ``"0"``, ``"1"``, ... up to the
            largest label seen.

    Returns:
        A dict with the keys

        - ``"accuracy"``: float, fraction of correct predictions;
        - ``"num_samples"``: int;
        - ``"classes"``: list of the class names, in label order;
        - ``"per_class"``: ``{name: {"precision", "recall", "f1", "support"}}`` with
          float scores and int support (number of true samples of the class);
        - ``"macro_avg"`` and ``"weighted_avg"``: ``{"precision", "recall", "f1",
          "support"}``, support being the total number of samples;
        - ``"confusion_matrix"``: nested lists of ints, rows true classes, columns
          predicted classes.

    Raises:
        TypeError: If the labels are not integers or ``classes`` is not a sequence of str.
        ValueError: If the labels are empty, not 1-D, of different lengths or outside
            ``[0, len(classes))``, or if ``classes`` is empty or has duplicates.
    """
    if classes is None:
        true, pred, n = _check_pair(y_true, y_pred, None)
        names = [str(i) for i in range(n)]
    else:
        names = _check_classes(classes)
        true, pred, n = _check_pair(y_true, y_pred, len(names))
    cm = _confusion(true, pred, n)
    hits = cm.diagonal().tolist()
    support = cm.sum(dim=1).tolist()
    predicted = cm.sum(dim=0).tolist()
    total = int(true.numel())

    per_class: dict[str, dict[str, float | int]] = {}
    for i, name in enumerate(names):
        precision = _safe_ratio(hits[i], predicted[i])
        recall = _safe_ratio(hits[i], support[i])
        f1 = _safe_ratio(2 * precision * recall, precision + recall)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(support[i]),
        }

    def _average(weights: list[float]) -> dict[str, float | int]:
        norm = math.fsum(weights)
        return {
            key: math.fsum(
                w * scores[key] for w, scores in zip(weights, per_class.values(), strict=True)
            )
            / norm
            for key in ("precision", "recall", "f1")
        } | {"support": total}

    return {
        "accuracy": sum(hits) / total,
        "num_samples": total,
        "classes": names,
        "per_class": per_class,
        "macro_avg": _average([1.0] * n),
        "weighted_avg": _average([float(s) for s in support]),
        "confusion_matrix": cm.tolist(),
    }
