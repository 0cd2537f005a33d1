"""Figures for training runs and predictions: loss curves, confusion matrix, image grids.

Every function builds a :class:`matplotlib.figure.Figure` directly, never through
``pyplot``: there is no global figure state, nothing to close, no GUI backend to
pick, so the functions work headless and from several threads at once. Each returns
its figure (for notebooks: display it, or add to it) and, when ``path`` is given,
also writes it there as a PNG. The file is written atomically (to a temporary file
in the same folder, then renamed over ``path``), so a reader never sees half an
image; missing parent folders are created. A ``path`` that cannot be written (an
existing folder, a name that is not ``.png``, or a parent that is a file) is refused
before anything is drawn.

Inputs are checked before anything is drawn; labels go through the same checks as
:mod:`fcnet.metrics`.
"""

from __future__ import annotations

import math
import numbers
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fcnet.metrics import _as_labels, _check_classes

__all__ = ["plot_confusion_matrix", "plot_history", "plot_prediction", "plot_predictions_grid"]

_DEFAULT_METRICS = ("loss", "accuracy")
_TRAIN_COLOR = "tab:blue"
_VAL_COLOR = "tab:orange"
_RIGHT_COLOR = "tab:green"
_WRONG_COLOR = "tab:red"


# --------------------------------------------------------------------------- helpers


def _check_path(path: Any, example: str = "figure.png") -> Path | None:
    """``path`` as a Path, refused before drawing when the PNG could not be written there.

    ``example`` is the file name suggested when ``path`` is a folder.
    """
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, a PathLike or None, got {type(path).__name__}")
    result = Path(path)
    if result.is_dir():
        raise ValueError(
            f"path {str(result)!r} is a folder; pass the .png file to write, such as "
            f"{str(result / example)!r}"
        )
    if result.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file, got {str(result)!r}")
    # Missing folders are created when saving; a file in their place would only fail
    # there, after all the drawing.
    for folder in result.parents:
        if folder.exists():
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"path {str(result)!r} cannot be written: {str(folder)!r} is a file, "
                    f"not a folder"
                )
            break
    return result


def _save(fig: Figure, path: Path | None) -> Figure:
    """Write ``fig`` to ``path`` as a PNG, atomically; return ``fig``."""
    if path is None:
        return fig
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target so that os.replace is a rename, atomic on POSIX and Windows.
    tmp_name = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    # os.open with 0o666 honours the umask (mkstemp would force 0o600 on the final file);
    # O_EXCL guarantees the temporary name is ours alone.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp_name, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png")
        os.replace(tmp_name, path)
    except BaseException:
        # Never leave a stray temporary file behind, whatever interrupted the write.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return fig


def _to_numpy(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(
            f"{name} must be a torch.Tensor, a numpy array or a sequence, "
            f"got {type(values).__name__}"
        )
    return np.asarray(values)


def _check_numeric(array: np.ndarray, name: str) -> None:
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")


def _as_images(images: Any, name: str) -> np.ndarray:
    """Return a batch of grayscale images as an ``(N, H, W)`` array."""
    array = _to_numpy(images, name)
    _check_numeric(array, name)
    shape = array.shape
    if array.ndim == 4 and shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 2:
        side = math.isqrt(shape[1])
        if side * side != shape[1]:
            raise ValueError(
                f"{name} of shape {shape} must hold square images: flattened rows need a "
                f"perfect-square length such as 784 (28x28), got {shape[1]}"
            )
        array = array.reshape(shape[0], side, side)
    elif array.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, 28, 28), (N, 1, 28, 28) or (N, 784), got {shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    return array


def _imshow_kwargs(image: np.ndarray) -> dict[str, Any]:
    # uint8 pixels have a fixed range; float images may be [0, 1] or normalised to [-1, 1],
    # so they keep matplotlib's per-image scaling.
    if image.dtype == np.uint8:
        return {"cmap": "gray", "vmin": 0, "vmax": 255}
    return {"cmap": "gray"}


def _check_label_range(labels: Any, name: str, n_classes: int) -> np.ndarray:
    tensor = _as_labels(labels, name)
    largest = int(tensor.max())
    if largest >= n_classes:
        raise ValueError(
            f"{name} holds label {largest}, but classes names only {n_classes} classes"
        )
    return tensor.numpy()


def _check_positive_int(value: Any, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _style_frame(ax: Any, color: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if color is not None:
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(2.5)


# --------------------------------------------------------------------------- history


def _history_entries(history: Any) -> list[Mapping[str, Any]]:
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise TypeError(
            f"history must be a list of per-epoch dicts (such as fcnet's History), "
            f"got {type(history).__name__}"
        )
    entries = list(history)
    if not entries:
        raise ValueError("history is empty; train for at least one epoch before plotting")
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"history must hold one dict per epoch, got {type(entry).__name__} at position {i}"
            )
    return entries


def _column(entries: list[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Return the (epochs, values) at which ``key`` was recorded."""
    epochs: list[float] = []
    values: list[float] = []
    for i, entry in enumerate(entries):
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(
                f"history[{i}][{key!r}] must be a number, got {type(value).__name__} {value!r}"
            )
        epoch = entry.get("epoch", i + 1)
        if not isinstance(epoch, numbers.Real) or isinstance(epoch, bool):
            raise TypeError(
                f"history[{i}]['epoch'] must be a number, got {type(epoch).__name__} {epoch!r}"
            )
        epochs.append(float(epoch))
        values.append(float(value))
    return epochs, values


def _check_metrics(metrics: Any) -> tuple[str, ...]:
    if isinstance(metrics, str):
        return (metrics,)
    if not isinstance(metrics, Sequence) or not metrics:
        raise TypeError(
            f"metrics must be a non-empty sequence of metric names such as ('loss', 'accuracy'), "
            f"got {metrics!r}"
        )
    for name in metrics:
        if not isinstance(name, str) or not name:
            raise TypeError(f"metrics must hold non-empty str names, got {name!r}")
    return tuple(metrics)


def _stop_note(last: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> str | None:
    reason = last.get("stop_reason")
    stopped = bool(last.get("stopped_early")) or bool(reason)
    if not stopped:
        return None
    epoch = last.get("epoch", len(entries))
    note = f"stopped early after epoch {epoch}"
    return f"{note}: {reason}" if isinstance(reason, str) and reason else note


def plot_history(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str] | None = None,
    *,
    metrics: Sequence[str] = _DEFAULT_METRICS,
) -> Figure:
    """Plot training against validation curves, one subplot per metric.

    For each metric ``m`` the subplot draws ``train_m`` and ``val_m`` against
    ``epoch`` (the 1-based position when an entry has no ``"epoch"``). Entries that
    miss a key are skipped for that curve only. The epoch with the lowest
    ``val_loss`` is marked on every subplot, and when the last entry carries
    ``"stopped_early"`` or ``"stop_reason"`` the figure says why training stopped.

    Args:
        history: One dict per epoch, such as :class:`fcnet.History` or any list of
            dicts with keys like ``"epoch"``, ``"train_loss"``, ``"train_accuracy"``,
            ``"val_loss"``, ``"val_accuracy"``.
        path: Where to write the figure as a PNG; nothing is written when ``None``.
        metrics: Metric names without their ``train_``/``val_`` prefix, or a single
            name. With the default, a metric that was never recorded (say, accuracy
            on a run without it) is left out; a metric named explicitly must have at
            least one value.

    Returns:
        The figure, with one axes per plotted metric.

    Raises:
        TypeError: If ``history`` is not a list of dicts, holds non-numeric values, or
            ``metrics`` is not a sequence of names.
        ValueError: If ``history`` is empty, an explicitly requested metric has no value,
            or ``path`` does not end in ``.png`` or is an existing folder.
        FileNotFoundError: If a folder in ``path`` is a file, so the PNG cannot be written.
    """
    entries = _history_entries(history)
    explicit = metrics is not _DEFAULT_METRICS
    names = _check_metrics(metrics)
    out = _check_path(path, "history.png")

    curves: list[tuple[str, tuple[list[float], list[float]], tuple[list[float], list[float]]]] = []
    for name in names:
        train = _column(entries, f"train_{name}")
        val = _column(entries, f"val_{name}")
        if not train[1] and not val[1]:
            if explicit:
                keys = sorted({k for entry in entries for k in entry})
                raise ValueError(
                    f"history has no values for metric {name!r} (keys 'train_{name}' or "
                    f"'val_{name}'); keys present: {keys}"
                )
            continue
        curves.append((name, train, val))
    if not curves:
        keys = sorted({k for entry in entries for k in entry})
        raise ValueError(
            f"history has no values for any of the metrics {list(names)}; keys present: {keys}"
        )

    # With a few epochs matplotlib would tick 1.25, 1.5, ...: epochs are whole numbers.
    whole_epochs = all(e.is_integer() for _, (tx, _), (vx, _) in curves for e in (*tx, *vx))
    val_epochs, val_losses = _column(entries, "val_loss")
    finite = [(v, e) for e, v in zip(val_epochs, val_losses, strict=True) if math.isfinite(v)]
    best = min(finite) if finite else None  # (loss, epoch); ties go to the earliest epoch

    fig = Figure(figsize=(5.0 * len(curves), 4.0), layout="constrained")
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (name, (tx, ty), (vx, vy)) in zip(axes, curves, strict=True):
        label = name.replace("_", " ")
        if ty:
            ax.plot(tx, ty, marker="o", markersize=3, color=_TRAIN_COLOR, label=f"train {label}")
        if vy:
            ax.plot(vx, vy, marker="o", markersize=3, color=_VAL_COLOR, label=f"val {label}")
        if best is not None:
            ax.axvline(
                best[1],
                color="gray",
                linestyle="--",
                linewidth=1,
                label=f"best val loss (epoch {best[1]:g})",
            )
            if name == "loss":
                ax.plot([best[1]], [best[0]], marker="*", markersize=12, color=_VAL_COLOR)
        ax.set_xlabel("epoch")
        if whole_epochs:
            # min_n_ticks=1: a single epoch gets one tick rather than fractional ones.
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    note = _stop_note(entries[-1], entries)
    if note is not None:
        fig.suptitle(note, fontsize="medium")
    return _save(fig, out)


# --------------------------------------------------------------------------- confusion matrix


def plot_confusion_matrix(
    cm: Any,
    classes: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    normalize: bool = True,
) -> Figure:
    """Draw a confusion matrix as a heat map with the class names on both axes.

    Args:
        cm: Square matrix of counts, rows true classes and columns predicted classes,
            as returned by :func:`fcnet.metrics.confusion_matrix` (tensor, array or
            nested lists).
        classes: One name per class, in label order.
        path: Where to write the figure as a PNG; nothing is written when ``None``.
        normalize: Colour and label each cell by its share of the true class (row
            percentages, the per-class recall on the diagonal), with the count below;
            when ``False`` colour and label by raw counts.

    Returns:
        The figure, with two axes: the matrix and its colour bar.

    Raises:
        TypeError: If ``cm`` is not numeric or ``classes`` is not a sequence of str.
        ValueError: If ``cm`` is not square, has negative or non-finite entries, or its
            size differs from the number of class names, or if ``path`` does not end
            in ``.png`` or is an existing folder.
        FileNotFoundError: If a folder in ``path`` is a file, so the PNG cannot be written.
    """
    matrix = _to_numpy(cm, "cm")
    _check_numeric(matrix, "cm")
    names = _check_classes(classes)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"cm must be a square 2-D matrix, got shape {matrix.shape}")
    if matrix.shape[0] != len(names):
        raise ValueError(
            f"cm is {matrix.shape[0]}x{matrix.shape[1]} but classes names {len(names)} classes"
        )
    counts = matrix.astype(np.float64)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("cm must hold finite, non-negative counts")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
    out = _check_path(path, "confusion_matrix.png")

    n = len(names)
    totals = counts.sum(axis=1, keepdims=True)
    # Rows of absent classes stay at 0 rather than NaN so the colour scale is unaffected.
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    values = shares if normalize else counts

    side = max(4.0, 0.6 * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, label="share of true class" if normalize else "samples")
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    grand = counts.sum()
    title = "Confusion matrix" + (" (row-normalised)" if normalize else "")
    if grand > 0:
        title += f", accuracy {np.trace(counts) / grand:.2%}"
    ax.set_title(title)

    # Cell labels become unreadable past a few dozen classes; the colours still tell.
    if n <= 30:
        fontsize = 8 if n <= 12 else 6
        threshold = 0.5 * (values.max() if values.max() > 0 else 1.0)
        integral = np.all(counts == np.round(counts))
        for i in range(n):
            for j in range(n):
                count = f"{int(counts[i, j])}" if integral else f"{counts[i, j]:.3g}"
                text = f"{100 * shares[i, j]:.1f}%\n({count})" if normalize else count
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if values[i, j] > threshold else "black",
                )
    return _save(fig, out)


# --------------------------------------------------------------------------- predictions


def plot_predictions_grid(
    images: Any,
    y_true: Any,
    y_pred: Any,
    classes: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    ncols: int = 8,
    max_images: int = 32,
) -> Figure:
    """Show images in a grid, each titled "predicted (true)", with mistakes in red.

    Args:
        images: Grayscale images of shape ``(N, 28, 28)``, ``(N, 1, 28, 28)`` or
            ``(N, 784)`` (any square size works), uint8 in ``[0, 255]`` or float.
        y_true: True labels, one per image.
        y_pred: Predicted labels, one per image.
        classes: One name per class, in label order.
        path: Where to write the figure as a PNG; nothing is written when ``None``.
        ncols: Images per row.
        max_images: Show only the first ``max_images`` images.

    Returns:
        The figure, with one axes per image shown.

    Raises:
        TypeError: If an argument has the wrong type (float labels, non-str names...).
        ValueError: If the shapes or lengths disagree, a label has no class name, or
            ``path`` does not end in ``.png`` or is an existing folder.
        FileNotFoundError: If a folder in ``path`` is a file, so the PNG cannot be written.
    """
    batch = _as_images(images, "images")
    names = _check_classes(classes)
    true = _check_label_range(y_true, "y_true", len(names))
    pred = _check_label_range(y_pred, "y_pred", len(names))
    if not len(batch) == len(true) == len(pred):
        raise ValueError(
            f"images, y_true and y_pred must have the same length, "
            f"got {len(batch)}, {len(true)} and {len(pred)}"
        )
    ncols = _check_positive_int(ncols, "ncols")
    max_images = _check_positive_int(max_images, "max_images")
    out = _check_path(path, "predictions.png")

    shown = min(len(batch), max_images)
    cols = min(ncols, shown)
    rows = math.ceil(shown / cols)
    fig = Figure(figsize=(1.6 * cols, 1.9 * rows), layout="constrained")
    wrong = 0
    for k in range(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(batch[k], **_imshow_kwargs(batch[k]))
        mistake = bool(pred[k] != true[k])
        wrong += mistake
        ax.set_title(
            f"{names[pred[k]]} ({names[true[k]]})",
            fontsize=7,
            color=_WRONG_COLOR if mistake else "black",
        )
        _style_frame(ax, _WRONG_COLOR if mistake else None)
    fig.suptitle(f"predicted (true): {wrong} of {shown} wrong", fontsize="medium")
    return _save(fig, out)


def plot_prediction(
    image: Any,
    proba: Any,
    classes: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    true_label: int | None = None,
) -> Figure:
    """Show one image beside a horizontal bar chart of its class probabilities.

    The predicted class (the largest probability) is drawn in green when it matches
    ``true_label`` and in red when it does not; with no ``true_label``, in blue.

    Args:
        image: One grayscale image of shape ``(28, 28)``, ``(1, 28, 28)`` or ``(784,)``
            (any square size works), uint8 or float.
        proba: Class probabilities of shape ``(len(classes),)`` or ``(1, len(classes))``,
            such as one row of :meth:`fcnet.Trainer.predict_proba`; each in ``[0, 1]``,
            summing to 1.
        classes: One name per class, in label order.
        path: Where to write the figure as a PNG; nothing is written when ``None``.
        true_label: The image's true class, if known.

    Returns:
        The figure, with two axes: the image and the bar chart.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``proba`` does not hold one probability per class, its values
            are outside ``[0, 1]`` or do not sum to 1, ``true_label`` has no class name,
            or ``path`` does not end in ``.png`` or is an existing folder.
        FileNotFoundError: If a folder in ``path`` is a file, so the PNG cannot be written.
    """
    pixels = _to_numpy(image, "image")
    if pixels.ndim not in (1, 2) and not (pixels.ndim == 3 and pixels.shape[0] == 1):
        raise ValueError(
            f"image must be one image of shape (28, 28), (1, 28, 28) or (784,), got {pixels.shape}"
        )
    # A batch of one: (784,) -> (1, 784) and (28, 28) -> (1, 28, 28); (1, 28, 28) already is.
    picture = _as_images(pixels if pixels.ndim == 3 else pixels[None], "image")[0]
    names = _check_classes(classes)
    probs = _to_numpy(proba, "proba")
    _check_numeric(probs, "proba")
    if probs.ndim == 2 and probs.shape[0] == 1:
        probs = probs[0]
    if probs.shape != (len(names),):
        raise ValueError(
            f"proba must hold one probability per class, shape ({len(names)},), got {probs.shape}"
        )
    probs = probs.astype(np.float64)
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"proba must hold probabilities in [0, 1], got {probs.tolist()}")
    # Loose tolerance: float16/bfloat16 softmax outputs are off by ~1e-3.
    if abs(probs.sum() - 1.0) > 1e-2:
        raise ValueError(
            f"proba must sum to 1 (pass probabilities, not logits), got sum {probs.sum():.4f}"
        )
    if true_label is not None:
        if not isinstance(true_label, numbers.Integral) or isinstance(true_label, bool):
            raise TypeError(
                f"true_label must be an int or None, got {type(true_label).__name__} {true_label!r}"
            )
        if not 0 <= true_label < len(names):
            raise ValueError(f"true_label must be in [0, {len(names)}), got {true_label}")
    out = _check_path(path, "prediction.png")

    n = len(names)
    predicted = int(probs.argmax())
    if true_label is None:
        color, title = _TRAIN_COLOR, f"predicted: {names[predicted]}"
    else:
        right = predicted == true_label
        color = _RIGHT_COLOR if right else _WRONG_COLOR
        title = f"predicted: {names[predicted]}\ntrue: {names[true_label]}"

    fig = Figure(figsize=(8.0, max(3.0, 0.35 * n + 1.0)), layout="constrained")
    img_ax, bar_ax = fig.subplots(1, 2, width_ratios=[1, 1.3])
    img_ax.imshow(picture, **_imshow_kwargs(picture))
    img_ax.set_title(title, color=color, fontsize="medium")
    img_ax.axis("off")

    bar_colors = ["lightgray"] * n
    if true_label is not None and true_label != predicted:
        bar_colors[true_label] = _RIGHT_COLOR
    bar_colors[predicted] = color
    positions = np.arange(n)
    bar_ax.barh(positions, probs, color=bar_colors)
    bar_ax.set_yticks(positions, labels=names)
    bar_ax.invert_yaxis()  # class 0 on top, as in the reference notebook
    bar_ax.set_xlim(0.0, 1.1)
    bar_ax.set_xlabel("probability")
    bar_ax.set_title("class probabilities", fontsize="medium")
    for pos, p in zip(positions, probs, strict=True):
        bar_ax.text(min(p, 1.0) + 0.01, pos, f"{p:.2f}", va="center", fontsize=7)
    return _save(fig, out)
