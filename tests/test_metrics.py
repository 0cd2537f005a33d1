"""Tests for fcnet.metrics: values on hand-made examples, validation, invariants."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fcnet import metrics
from fcnet.metrics import accuracy, classification_report, confusion_matrix, per_class_accuracy

# Hand-made example: 3 classes, 8 samples.
#   true 0: predicted 0, 0, 1      -> 2 hits of 3
#   true 1: predicted 1, 1         -> 2 hits of 2
#   true 2: predicted 0, 1, 2      -> 1 hit of 3
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 1, 0, 1, 2]
CM = [
    [2, 1, 0],
    [0, 2, 0],
    [1, 1, 1],
]


def test_accuracy_hand_made() -> None:
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    assert accuracy([3], [3]) == 1.0
    assert accuracy([1, 2], [2, 1]) == 0.0


@pytest.mark.parametrize(
    "convert",
    [
        list,
        np.array,
        lambda v: np.array(v, dtype=np.uint8),
        torch.tensor,
        lambda v: torch.tensor(v, dtype=torch.int32),
    ],
    ids=["list", "numpy", "numpy-uint8", "tensor", "tensor-int32"],
)
def test_inputs_of_every_kind_give_the_same_result(convert) -> None:
    cm = confusion_matrix(convert(Y_TRUE), convert(Y_PRED))
    assert cm.dtype == torch.int64
    assert cm.tolist() == CM
    assert accuracy(convert(Y_TRUE), convert(Y_PRED)) == pytest.approx(5 / 8)


def test_confusion_matrix_known_values() -> None:
    cm = confusion_matrix(torch.tensor(Y_TRUE), torch.tensor(Y_PRED))
    assert cm.shape == (3, 3)
    assert cm.tolist() == CM
    # Rows are true classes: row 2 holds the three samples of true class 2.
    assert cm[2].sum() == 3
    # Columns are predictions: class 1 was predicted four times.
    assert cm[:, 1].sum() == 4


def test_confusion_matrix_num_classes_pads_absent_classes() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, num_classes=5)
    assert cm.shape == (5, 5)
    assert cm[:3, :3].tolist() == CM
    assert cm[3:].sum() == 0 and cm[:, 3:].sum() == 0


def test_confusion_matrix_accepts_non_contiguous_numpy() -> None:
    true = np.array(Y_TRUE * 2)[::2]
    pred = np.array(Y_PRED * 2)[::2]
    assert (
        confusion_matrix(true, pred).tolist() == confusion_matrix(list(true), list(pred)).tolist()
    )


def test_per_class_accuracy_values_and_nan_for_absent_class() -> None:
    acc = per_class_accuracy(Y_TRUE, Y_PRED, num_classes=4)
    assert acc.dtype == torch.float64
    assert acc[:3].tolist() == pytest.approx([2 / 3, 1.0, 1 / 3])
    # Class 3 has no sample: its accuracy is undefined, not 0.
    assert math.isnan(acc[3].item())
    assert torch.nanmean(acc).item() == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)


def test_classification_report_values() -> None:
    report = classification_report(Y_TRUE, Y_PRED, classes=["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(5 / 8)
    assert report["num_samples"] == 8
    assert report["classes"] == ["a", "b", "c"]
    assert report["confusion_matrix"] == CM
    a, b, c = (report["per_class"][k] for k in "abc")
    # Precision = hits / times predicted; recall = hits / support.
    assert a == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert b["precision"] == pytest.approx(2 / 4)
    assert b["recall"] == pytest.approx(1.0)
    assert b["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert b["support"] == 2
    assert c == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "support": 3})
    macro = report["macro_avg"]
    assert macro["precision"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert macro["recall"] == pytest.approx((2 / 3 + 1.0 + 1 / 3) / 3)
    assert macro["f1"] == pytest.approx((2 / 3 + 2 / 3 + 0.5) / 3)
    assert macro["support"] == 8
    weighted = report["weighted_avg"]
    # Support-weighted recall is the accuracy.
    assert weighted["recall"] == pytest.approx(5 / 8)


def test_classification_report_is_strict_json() -> None:
    # Class "d" is never present nor predicted: 0/0 ratios must not become NaN.
    report = classification_report(Y_TRUE, Y_PRED, classes=["a", "b", "c", "d"])
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert len(report["confusion_matrix"]) == 4


def test_classification_report_default_names_and_tensor_input() -> None:
    report = classification_report(torch.tensor(Y_TRUE), np.array(Y_PRED))
    assert report["classes"] == ["0", "1", "2"]
    assert list(report["per_class"]) == ["0", "1", "2"]
    assert all(type(v["support"]) is int for v in report["per_class"].values())


# ---------------------------------------------------------------------------- validation


def test_float_labels_are_rejected_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"y_pred must hold integer class labels.*float32.*argmax"):
        accuracy(torch.tensor([0, 1]), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match=r"y_true must hold integer class labels.*float64"):
        accuracy(np.array([0.0, 1.0]), np.array([0, 1]))
    with pytest.raises(TypeError, match=r"y_true must hold integer class labels.*torch.bool"):
        accuracy(torch.tensor([True, False]), torch.tensor([1, 0]))


def test_probabilities_instead_of_labels_are_rejected() -> None:
    proba = torch.softmax(torch.randn(4, 3), dim=1)
    with pytest.raises(TypeError, match=r"y_pred must hold integer class labels"):
        confusion_matrix(torch.tensor([0, 1, 2, 0]), proba)
    with pytest.raises(ValueError, match=r"y_pred must be 1-D .* got shape \(4, 3\)"):
        confusion_matrix(torch.tensor([0, 1, 2, 0]), proba.argmax(1, keepdim=True).expand(4, 3))


def test_non_sequence_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"y_true must be a torch.Tensor.*got int"):
        accuracy(3, [3])
    with pytest.raises(TypeError, match=r"y_pred must be a torch.Tensor.*got str"):
        accuracy([1], "1")


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match=r"same length, got 3 and 2"):
        accuracy([0, 1, 2], [0, 1])


def test_empty_labels() -> None:
    with pytest.raises(ValueError, match=r"y_true is empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match=r"y_true is empty"):
        confusion_matrix(torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64))


def test_negative_labels() -> None:
    with pytest.raises(ValueError, match=r"y_pred must hold labels >= 0, got -1"):
        confusion_matrix([0, 1], [0, -1])


def test_labels_outside_num_classes() -> None:
    with pytest.raises(ValueError, match=r"y_true holds label 3, outside .* num_classes=3"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match=r"y_pred holds label 5, outside .* num_classes=2"):
        per_class_accuracy([0, 1], [5, 1], num_classes=2)


@pytest.mark.parametrize(
    ("num_classes", "error", "message"),
    [
        (0, ValueError, r"num_classes must be >= 1, got 0"),
        (2.0, TypeError, r"num_classes must be an int or None, got float 2.0"),
        (True, TypeError, r"num_classes must be an int or None, got bool"),
    ],
)
def test_bad_num_classes(num_classes, error, message) -> None:
    with pytest.raises(error, match=message):
        confusion_matrix([0, 1], [1, 0], num_classes=num_classes)


def test_report_class_names_are_checked() -> None:
    with pytest.raises(ValueError, match=r"y_true holds label 2, outside .* num_classes=2"):
        classification_report([0, 2], [0, 1], classes=["a", "b"])
    with pytest.raises(ValueError, match=r"duplicates \['a'\]"):
        classification_report([0, 1], [0, 1], classes=["a", "a", "b"])
    with pytest.raises(TypeError, match=r"classes must be a sequence of class names, got str"):
        classification_report([0, 1], [0, 1], classes="ab")
    with pytest.raises(
        TypeError, match=r"classes must hold str names, got 1 \(int\) at position 1"
    ):
        classification_report([0, 1], [0, 1], classes=["a", 1])
    with pytest.raises(ValueError, match=r"classes must name at least one class"):
        classification_report([0, 1], [0, 1], classes=[])


def test_metrics_works_on_cuda_tensors_if_available() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    true = torch.tensor(Y_TRUE, device="cuda")
    pred = torch.tensor(Y_PRED, device="cuda")
    assert confusion_matrix(true, pred).tolist() == CM


# ---------------------------------------------------------------------------- properties

labels_pairs = st.integers(min_value=1, max_value=12).flatmap(
    lambda k: st.integers(min_value=1, max_value=60).flatmap(
        lambda n: st.tuples(
            st.just(k),
            st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
            st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(labels_pairs)
def test_confusion_matrix_invariants(case) -> None:
    k, true, pred = case
    cm = confusion_matrix(true, pred, num_classes=k)
    n = len(true)
    assert cm.shape == (k, k)
    assert int(cm.sum()) == n
    assert cm.sum(dim=1).tolist() == np.bincount(true, minlength=k).tolist()
    assert cm.sum(dim=0).tolist() == np.bincount(pred, minlength=k).tolist()
    assert int(cm.trace()) / n == pytest.approx(accuracy(true, pred))
    # A slow but obviously right count, cell by cell.
    for i in range(k):
        for j in range(k):
            expected = sum(1 for t, p in zip(true, pred, strict=True) if t == i and p == j)
            assert cm[i, j] == expected
    report = classification_report(true, pred, classes=[f"c{i}" for i in range(k)])
    assert report["weighted_avg"]["recall"] == pytest.approx(report["accuracy"])
    per_class = per_class_accuracy(true, pred, num_classes=k)
    recalls = [report["per_class"][f"c{i}"]["recall"] for i in range(k)]
    for acc, recall, support in zip(per_class.tolist(), recalls, cm.sum(dim=1), strict=True):
        if support == 0:
            assert math.isnan(acc)
        else:
            assert acc == pytest.approx(recall)


def test_metrics_does_not_import_upstream_modules() -> None:
    # Layering: metrics sits at the end of the data flow and must not reach back up.
    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not {m for m in imported if m and m.startswith(("fcnet.trainer", "fcnet.data"))}
