"""Tests for fcnet.plots: valid PNG files, figure structure, input validation."""

from __future__ import annotations

import ast
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from fcnet import plots
from fcnet.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_prediction,
    plot_predictions_grid,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


class _History(list):
    """Stands in for fcnet's History: a list subclass of per-epoch dicts."""


def _history(epochs: int = 6, *, with_val: bool = True) -> _History:
    history = _History()
    for e in range(1, epochs + 1):
        entry = {"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 1.0 - 0.5 / e}
        if with_val:
            # Lowest validation loss at epoch 3.
            entry["val_loss"] = 0.5 + 0.05 * (e - 3) ** 2
            entry["val_accuracy"] = 0.8 + 0.01 * e
        history.append(entry)
    return history


def _assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # a real drawing, not an empty canvas
    # No temporary file left next to it.
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def _images(n: int, dtype=torch.uint8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
    return torch.rand(n, 28, 28, generator=gen) * 2 - 1


# ---------------------------------------------------------------------------- plot_history


def test_history_png_and_axes(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "history.png"
    fig = plot_history(_history(), path)
    assert isinstance(fig, Figure)
    _assert_png(path)
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "accuracy"
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert "train loss" in labels and "val loss" in labels
    assert "best val loss (epoch 3)" in labels


def test_history_without_path_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fig = plot_history(_history())
    assert isinstance(fig, Figure)
    assert list(tmp_path.iterdir()) == []


def test_history_missing_keys_and_no_validation() -> None:
    history = _history(5, with_val=False)
    del history[2]["train_accuracy"]
    fig = plot_history(history)
    acc_lines = [line for line in fig.axes[1].get_lines() if line.get_label() == "train accuracy"]
    assert len(acc_lines) == 1
    assert list(acc_lines[0].get_xdata()) == [1.0, 2.0, 4.0, 5.0]
    # No validation: no best-epoch marker.
    assert not any("best" in line.get_label() for ax in fig.axes for line in ax.get_lines())


def test_history_default_metrics_skip_unrecorded_ones() -> None:
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 2.0 / e} for e in (1, 2, 3)]
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss"]


def test_history_explicit_metric_must_exist() -> None:
    with pytest.raises(ValueError, match=r"no values for metric 'f1'.*keys present: \['epoch'"):
        plot_history(_history(), metrics=("loss", "f1"))


def test_history_single_metric_name() -> None:
    fig = plot_history(_history(), metrics="accuracy")
    assert [ax.get_title() for ax in fig.axes] == ["accuracy"]


def test_history_stop_annotation() -> None:
    history = _history()
    history[-1]["stopped_early"] = True
    history[-1]["stop_reason"] = "val_loss did not improve for 3 epochs"
    fig = plot_history(history)
    assert fig.get_suptitle() == (
        "stopped early after epoch 6: val_loss did not improve for 3 epochs"
    )
    assert plot_history(_history()).get_suptitle() == ""


def test_history_epoch_defaults_to_position() -> None:
    history = [{"train_loss": v} for v in (3.0, 2.0, 1.0)]
    fig = plot_history(history, metrics=("loss",))
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("history", "error", "message"),
    [
        ([], ValueError, r"history is empty"),
        ({"train_loss": 1.0}, TypeError, r"history must be a list of per-epoch dicts.*got dict"),
        ([{"train_loss": 1.0}, 3], TypeError, r"one dict per epoch, got int at position 1"),
        ([{"train_loss": "low"}], TypeError, r"history\[0\]\['train_loss'\] must be a number"),
        ([{"lr": 0.1}], ValueError, r"no values for any of the metrics \['loss', 'accuracy'\]"),
    ],
)
def test_history_bad_input(history, error, message) -> None:
    with pytest.raises(error, match=message):
        plot_history(history)


def test_bad_path_is_rejected_before_drawing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"path must name a .png file, got '.*history.pdf'"):
        plot_history(_history(), tmp_path / "history.pdf")
    with pytest.raises(TypeError, match=r"path must be a str, a PathLike or None, got int"):
        plot_history(_history(), 3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_history_epoch_ticks_are_whole_numbers(epochs: int) -> None:
    fig = plot_history(_history(epochs))
    for ax in fig.axes:
        low, high = ax.get_xlim()
        visible = [t for t in ax.get_xticks() if low <= t <= high]
        assert 1 in visible
        assert all(float(t).is_integer() for t in visible), visible
    # Fractional epochs keep matplotlib's own ticks.
    halves = [{"epoch": e, "train_loss": 1.0 / e} for e in (0.5, 1.0, 1.5)]
    assert not all(float(t).is_integer() for t in plot_history(halves).axes[0].get_xticks())


def _no_drawing(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a figure was drawn before the path was checked")

    monkeypatch.setattr(plots, "Figure", refuse)


def test_folder_path_is_rejected_before_drawing(tmp_path: Path, monkeypatch) -> None:
    _no_drawing(monkeypatch)
    (tmp_path / "figs.png").mkdir()
    with pytest.raises(ValueError, match=r"path '.*figs.png' is a folder; .* '.*history.png'"):
        plot_history(_history(), tmp_path / "figs.png")
    with pytest.raises(ValueError, match=r"path '.*' is a folder; .*'.*confusion_matrix.png'"):
        plot_confusion_matrix(_cm(), CLASSES, str(tmp_path))
    with pytest.raises(ValueError, match=r"is a folder; .*predictions.png"):
        plot_predictions_grid(_images(2), [0, 1], [0, 1], CLASSES, tmp_path)
    with pytest.raises(ValueError, match=r"is a folder; .*prediction.png"):
        plot_prediction(_images(1)[0], _proba(), CLASSES, tmp_path, true_label=9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs.png"]


def test_parent_that_is_a_file_is_rejected_before_drawing(tmp_path: Path, monkeypatch) -> None:
    _no_drawing(monkeypatch)
    (tmp_path / "notes").write_text("a file, not a folder")
    message = r"path '.*notes.deeper.h.png' cannot be written: '.*notes' is a file, not a folder"
    with pytest.raises(FileNotFoundError, match=message):
        plot_history(_history(), tmp_path / "notes" / "deeper" / "h.png")
    assert (tmp_path / "notes").read_text() == "a file, not a folder"


def test_save_overwrites_and_honours_umask(tmp_path: Path) -> None:
    path = tmp_path / "h.png"
    path.write_bytes(b"old")
    plot_history(_history(), str(path))
    _assert_png(path)
    if os.name == "posix":
        umask = os.umask(0o022)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_plots_in_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            plot_history(_history(), tmp_path / f"h{i}.png")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(3):
        _assert_png(tmp_path / f"h{i}.png")


# ---------------------------------------------------------------------------- confusion matrix


def _cm() -> torch.Tensor:
    cm = torch.full((10, 10), 2, dtype=torch.int64)
    cm.fill_diagonal_(80)
    cm[3] = 0  # a class with no sample must not break normalisation
    return cm


def test_confusion_matrix_png_axes_and_cells(tmp_path: Path) -> None:
    path = tmp_path / "cm.png"
    fig = plot_confusion_matrix(_cm(), CLASSES, path)
    _assert_png(path)
    assert len(fig.axes) == 2  # the matrix and its colour bar
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 100
    # Row 0: 80 hits out of 80 + 9 * 2 = 98 samples.
    assert texts[0] == f"{100 * 80 / 98:.1f}%\n(80)"
    assert texts[3 * 10 + 3] == "0.0%\n(0)"
    image = ax.get_images()[0].get_array()
    assert np.allclose(np.asarray(image).sum(axis=1)[[0, 1, 2, 4]], 1.0)


def test_confusion_matrix_counts(tmp_path: Path) -> None:
    fig = plot_confusion_matrix(_cm().numpy(), CLASSES, normalize=False)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0] == "80" and texts[1] == "2"
    assert "row-normalised" not in fig.axes[0].get_title()


@pytest.mark.parametrize(
    ("cm", "classes", "error", "message"),
    [
        (np.zeros((3, 4)), ["a", "b", "c"], ValueError, r"cm must be a square 2-D matrix"),
        (np.zeros((3, 3)), ["a", "b"], ValueError, r"cm is 3x3 but classes names 2 classes"),
        (np.array([[1, -1], [0, 1]]), ["a", "b"], ValueError, r"finite, non-negative"),
        (np.array([[1, np.nan], [0, 1]]), ["a", "b"], ValueError, r"finite, non-negative"),
        (np.array([["a", "b"], ["c", "d"]]), ["a", "b"], TypeError, r"cm must hold numbers"),
        (np.eye(2), "ab", TypeError, r"classes must be a sequence of class names"),
    ],
)
def test_confusion_matrix_bad_input(cm, classes, error, message) -> None:
    with pytest.raises(error, match=message):
        plot_confusion_matrix(cm, classes)


# ---------------------------------------------------------------------------- predictions grid


@pytest.mark.parametrize(
    "images",
    [
        _images(12),
        _images(12).reshape(12, 784),
        _images(12).unsqueeze(1),
        _images(12, torch.float32).numpy(),
    ],
    ids=["N28x28-uint8", "N784", "N1x28x28", "float-numpy"],
)
def test_predictions_grid_shapes(images, tmp_path: Path) -> None:
    true = torch.arange(12) % 10
    pred = true.clone()
    pred[[1, 5]] = (pred[[1, 5]] + 1) % 10
    path = tmp_path / "grid.png"
    fig = plot_predictions_grid(images, true, pred, CLASSES, path, ncols=5)
    _assert_png(path)
    assert len(fig.axes) == 12
    red = [i for i, ax in enumerate(fig.axes) if ax.title.get_color() == "tab:red"]
    assert red == [1, 5]
    assert fig.axes[1].get_title() == f"{CLASSES[2]} ({CLASSES[1]})"
    assert fig.get_suptitle() == "predicted (true): 2 of 12 wrong"


def test_predictions_grid_max_images() -> None:
    labels = torch.arange(50) % 10
    fig = plot_predictions_grid(_images(50), labels, labels, CLASSES, max_images=20)
    assert len(fig.axes) == 20


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"images": torch.zeros(3, 28)}, ValueError, r"perfect-square length"),
        ({"images": torch.zeros(3)}, ValueError, r"images must have shape \(N, 28, 28\)"),
        ({"images": torch.zeros(0, 28, 28)}, ValueError, r"images is empty"),
        ({"y_true": [0, 1]}, ValueError, r"same length, got 3, 2 and 3"),
        ({"y_pred": [0, 1, 10]}, ValueError, r"y_pred holds label 10, but classes names only 10"),
        ({"y_true": [0.0, 1.0, 2.0]}, TypeError, r"y_true must hold integer class labels"),
        ({"classes": CLASSES[:2]}, ValueError, r"y_true holds label 2, but classes names only 2"),
        ({"ncols": 0}, ValueError, r"ncols must be >= 1, got 0"),
        ({"max_images": 2.5}, TypeError, r"max_images must be an int, got float 2.5"),
    ],
)
def test_predictions_grid_bad_input(kwargs, error, message) -> None:
    args = {
        "images": _images(3),
        "y_true": [0, 1, 2],
        "y_pred": [0, 1, 2],
        "classes": CLASSES,
    } | kwargs
    with pytest.raises(error, match=message):
        plot_predictions_grid(**args)


# ---------------------------------------------------------------------------- single prediction


def _proba(winner: int = 9) -> torch.Tensor:
    proba = torch.full((10,), 0.02)
    proba[winner] = 0.82
    return proba


@pytest.mark.parametrize(
    "image",
    [_images(1)[0], _images(1).reshape(784), _images(1), _images(1, torch.float32)[0].numpy()],
    ids=["28x28", "784", "1x28x28", "float"],
)
def test_prediction_png_and_axes(image, tmp_path: Path) -> None:
    path = tmp_path / "pred.png"
    fig = plot_prediction(image, _proba(), CLASSES, path, true_label=9)
    _assert_png(path)
    assert len(fig.axes) == 2
    img_ax, bar_ax = fig.axes
    assert img_ax.get_images()[0].get_array().shape == (28, 28)
    widths = [bar.get_width() for bar in bar_ax.patches]
    assert widths == pytest.approx(_proba().tolist())
    assert [t.get_text() for t in bar_ax.get_yticklabels()] == CLASSES
    assert img_ax.title.get_color() == "tab:green"


def test_prediction_wrong_is_red_and_accepts_batch_row() -> None:
    fig = plot_prediction(_images(1)[0], _proba(9).unsqueeze(0), CLASSES, true_label=7)
    img_ax, bar_ax = fig.axes
    assert img_ax.title.get_color() == "tab:red"
    assert "true: Sneaker" in img_ax.get_title()
    assert bar_ax.patches[7].get_facecolor() != bar_ax.patches[0].get_facecolor()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image": torch.zeros(2, 28, 28)}, ValueError, r"image must be one image of shape"),
        ({"proba": torch.full((9,), 1 / 9)}, ValueError, r"one probability per class.*\(10,\)"),
        ({"proba": torch.randn(10) * 5}, ValueError, r"proba must hold probabilities in \[0, 1\]"),
        ({"proba": torch.full((10,), 0.05)}, ValueError, r"must sum to 1 .*got sum 0.5000"),
        ({"true_label": 10}, ValueError, r"true_label must be in \[0, 10\), got 10"),
        ({"true_label": "Bag"}, TypeError, r"true_label must be an int or None, got str"),
        ({"classes": ["a"] * 10}, ValueError, r"classes must be unique names"),
    ],
)
def test_prediction_bad_input(kwargs, error, message) -> None:
    args = {"image": _images(1)[0], "proba": _proba(), "classes": CLASSES} | kwargs
    with pytest.raises(error, match=message):
        plot_prediction(**args)


def test_plots_use_no_pyplot_and_no_upstream_modules() -> None:
    # Figures are built without pyplot's global state, and plots sits at the end of the
    # data flow: it must not import the trainer or the data adapters.
    tree = ast.parse(Path(plots.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    forbidden = ("matplotlib.pyplot", "fcnet.trainer", "fcnet.data")
    assert not {m for m in imported if m and m.startswith(forbidden)}
