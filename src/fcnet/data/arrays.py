"""In-memory data sets: :class:`ArrayDataset` and :func:`to_tensors`.

Every fcnet data set is an :class:`ArrayDataset`: two tensors held in memory, ``images``
(the inputs, whatever their shape) and ``labels`` (int64), plus the class names. The
Trainer only ever needs those two tensors, and :func:`to_tensors` gets them out of
anything a user may pass (an fcnet data set, an ``(X, y)`` pair, a torch ``Dataset``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

__all__ = ["ArrayDataset", "to_tensors"]


def _to_tensor(value: Any, what: str) -> torch.Tensor:
    """Tensor view of a tensor, numpy array, or list/tuple; shares memory when it can."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{what} must be a torch.Tensor or a numpy array, got {type(value).__name__}"
        )
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{what} must have a numeric dtype, got numpy {value.dtype}")
    # torch.from_numpy cannot take foreign byte order or negative strides, and a read-only
    # array would give a tensor that silently aliases read-only memory: copy only then.
    if not value.dtype.isnative or not value.flags.writeable or any(s < 0 for s in value.strides):
        value = np.array(value, dtype=value.dtype.newbyteorder("="), order="C")
    return torch.from_numpy(value)


def _check_inputs(inputs: torch.Tensor, what: str) -> torch.Tensor:
    if inputs.dtype in (torch.bool,) or inputs.is_complex():
        raise TypeError(f"{what} must have a real numeric dtype, got {inputs.dtype}")
    if inputs.ndim < 1:
        raise ValueError(f"{what} must have a leading sample dimension, got a 0-d tensor")
    if inputs.dtype == torch.float64:
        # Models are float32; float64 inputs would only fail later, inside the first layer.
        inputs = inputs.to(torch.float32)
    return inputs


def _check_labels(labels: torch.Tensor, what: str) -> torch.Tensor:
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{what} must hold integer class indices, got dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(
            f"{what} must be 1-D (one class index per sample), got shape {tuple(labels.shape)}"
        )
    labels = labels.to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{what} must be >= 0, got {int(labels.min())}")
    return labels


def _check_pair(inputs: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if len(inputs) != len(labels):
        raise ValueError(
            f"{name}: inputs and labels must have the same length, got {len(inputs)} inputs "
            f"and {len(labels)} labels"
        )
    if len(inputs) == 0:
        raise ValueError(f"{name} is empty: need at least 1 sample")


class ArrayDataset(Dataset):
    """A labelled data set held in memory as two tensors.

    Args:
        inputs: ``(N, ...)`` samples, a tensor or numpy array of any real numeric dtype.
            Integer types (``uint8`` images) are kept; ``float64`` becomes ``float32``.
            Numpy arrays are shared, not copied, when torch can view them.
        labels: ``(N,)`` integer class indices (``>= 0``); stored as int64.
        classes: The class names, indexed by label. Defaults to
            ``["0", "1", ..., str(labels.max())]``.

    Attributes:
        images: The ``(N, ...)`` inputs (called ``images`` for every data set).
        labels: The ``(N,)`` int64 labels.
        classes: The class names.

    Raises:
        TypeError: ``inputs`` or ``labels`` is not a tensor/array, has a non-numeric
            dtype, or labels are not integers; ``classes`` is not a sequence of str.
        ValueError: Lengths differ, ``N == 0``, labels are not 1-D or negative, or
            ``classes`` has too few names for the labels.
    """

    def __init__(
        self,
        inputs: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        classes: Sequence[str] | None = None,
    ) -> None:
        name = type(self).__name__
        images = _check_inputs(_to_tensor(inputs, "inputs"), "inputs")
        labels_t = _check_labels(_to_tensor(labels, "labels"), "labels")
        _check_pair(images, labels_t, name)
        n_needed = int(labels_t.max()) + 1
        if classes is None:
            classes = [str(i) for i in range(n_needed)]
        else:
            if isinstance(classes, str) or not isinstance(classes, Sequence):
                raise TypeError(f"classes must be a sequence of str, got {type(classes).__name__}")
            bad = [c for c in classes if not isinstance(c, str)]
            if bad:
                raise TypeError(f"classes must hold str names, got {bad[0]!r}")
            if len(classes) < n_needed:
                raise ValueError(
                    f"classes names {len(classes)} classes but the labels go up to "
                    f"{n_needed - 1} (need at least {n_needed} names)"
                )
        self.images: torch.Tensor = images
        self.labels: torch.Tensor = labels_t
        self.classes: list[str] = list(classes)

    @property
    def inputs(self) -> torch.Tensor:
        """The inputs; the same tensor as :attr:`images`."""
        return self.images

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"index must be an integer, got {type(index).__name__}") from None
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {type(self).__name__} of length {n}")
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, input_shape={tuple(self.images.shape[1:])}, "
            f"dtype={self.images.dtype}, classes={len(self.classes)})"
        )


def to_tensors(data: Any, *, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """Gets ``(inputs, labels)`` tensors out of anything fcnet accepts as a data set.

    Accepted:

    * an :class:`ArrayDataset` (any fcnet data set): its ``images`` and ``labels``;
    * an ``(X, y)`` tuple or list of tensors or numpy arrays (arrays are shared, not
      copied, when torch can view them);
    * a :class:`torch.utils.data.TensorDataset` of exactly two tensors;
    * any other map-style torch ``Dataset`` yielding ``(x, y)`` pairs, materialised once
      through a ``DataLoader`` (``batch_size=1024``, default collate).

    Args:
        data: The data set.
        name: How to call ``data`` in error messages (e.g. ``"train"``).

    Returns:
        ``(inputs, labels)``: inputs ``(N, ...)`` (``float64`` turned into ``float32``),
        labels ``(N,)`` int64.

    Raises:
        TypeError: ``data`` is none of the above, or holds non-numeric inputs or
            non-integer labels.
        ValueError: Inputs and labels differ in length, the data set is empty, or the
            labels are not 1-D.
    """
    if isinstance(data, ArrayDataset):
        return data.images, data.labels
    if isinstance(data, TensorDataset):
        if len(data.tensors) != 2:
            raise TypeError(
                f"{name} must be a TensorDataset of 2 tensors (inputs, labels), "
                f"got {len(data.tensors)}"
            )
        inputs, labels = data.tensors
    elif isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise TypeError(
                f"{name} must be an (inputs, labels) pair, got a {type(data).__name__} "
                f"of length {len(data)}"
            )
        inputs, labels = data
        for part, what in ((inputs, "inputs"), (labels, "labels")):
            if not isinstance(part, (torch.Tensor, np.ndarray)):
                raise TypeError(
                    f"{name} {what} must be a torch.Tensor or a numpy array, "
                    f"got {type(part).__name__}"
                )
    elif isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        inputs, labels = _materialise(data, name)
    else:
        raise TypeError(
            f"{name} must be an fcnet data set, an (inputs, labels) pair of tensors or "
            f"numpy arrays, or a map-style torch Dataset; got {type(data).__name__}"
        )
    inputs = _check_inputs(_to_tensor(inputs, f"{name} inputs"), f"{name} inputs")
    labels = _check_labels(_to_tensor(labels, f"{name} labels"), f"{name} labels")
    _check_pair(inputs, labels, name)
    return inputs, labels


def _materialise(data: Dataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        n = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must have a length (a map-style Dataset), got {type(data).__name__}"
        ) from None
    if n == 0:
        raise ValueError(f"{name} is empty: need at least 1 sample")
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for batch in DataLoader(data, batch_size=1024, shuffle=False):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise TypeError(
                f"{name} must yield (input, label) pairs, got {type(batch).__name__} batches"
            )
        x, y = batch
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(
                f"{name} must yield tensors, arrays or numbers, got "
                f"{type(x).__name__} inputs and {type(y).__name__} labels"
            )
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)
