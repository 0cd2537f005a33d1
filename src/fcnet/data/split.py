"""Reproducible, stratified train/validation splits that remember where they came from."""

from __future__ import annotations

import hashlib
import numbers
from typing import Any

import numpy as np
import torch

from fcnet.data.arrays import ArrayDataset, to_tensors

__all__ = ["SplitSubset", "train_val_split"]


class SplitSubset(ArrayDataset):
    """One side of a :func:`train_val_split`: the selected samples of a parent data set.

    The samples are copied out of the parent (one gather, done once) so the subset is
    a plain in-memory data set like any other.

    Attributes:
        indices: The parent indices of the samples, ascending (int64).
        seed: The seed of the split.
        val_fraction: The fraction of the parent that went to validation.
        provenance: A JSON-ready dict (``subset``, ``seed``, ``val_fraction``,
            ``stratify``, ``parent``, ``parent_length``, ``length``,
            ``indices_sha256``) for checkpoints to record.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: list[str],
        indices: torch.Tensor,
        provenance: dict[str, Any],
    ) -> None:
        super().__init__(images, labels, classes)
        self.indices: torch.Tensor = indices
        self.seed: int = provenance["seed"]
        self.val_fraction: float = provenance["val_fraction"]
        self.provenance: dict[str, Any] = provenance


def indices_sha256(indices: torch.Tensor | np.ndarray) -> str:
    """sha256 of indices as little-endian int64: a fingerprint independent of platform."""
    array = np.asarray(indices, dtype="<i8")
    return hashlib.sha256(array.tobytes()).hexdigest()


def _describe(dataset: Any) -> str:
    name = type(dataset).__name__
    split = getattr(dataset, "split", None)
    return f"{name}(split={split!r})" if isinstance(split, str) else name


def _allocate(counts: np.ndarray, n_val: int, fraction: float) -> np.ndarray:
    """Per-class validation counts summing to ``n_val``, each as close to
    ``fraction * count`` as possible (largest remainders, ties to the lower class)."""
    exact = counts * fraction
    base = np.floor(exact).astype(np.int64)
    remainder = n_val - int(base.sum())
    if remainder > 0:
        order = np.lexsort((np.arange(len(counts)), -(exact - base)))
        base[order[:remainder]] += 1
    return base


def train_val_split(
    dataset: Any,
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[SplitSubset, SplitSubset]:
    """Splits a data set into disjoint training and validation subsets.

    ``round(val_fraction * N)`` samples go to validation. With ``stratify`` each class
    gives its share (largest-remainder rounding, so Fashion-MNIST's 60,000 training
    images with ``val_fraction=0.2`` give exactly 1,200 validation images per class).
    The split is a pure function of the labels, ``val_fraction``, ``seed`` and
    ``stratify``: the same call gives the same indices on every machine.

    Args:
        dataset: An fcnet data set, or anything :func:`fcnet.data.to_tensors` takes.
        val_fraction: Fraction of the samples that go to validation, in (0, 1).
        seed: Seed of the shuffle, a non-negative integer.
        stratify: Whether to keep the class proportions in both subsets.

    Returns:
        ``(train, val)``, two :class:`SplitSubset`; together they hold every sample
        exactly once.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``val_fraction`` is outside (0, 1), ``seed`` is negative, or one side
            of the split would be empty.
    """
    if not isinstance(val_fraction, numbers.Real) or isinstance(val_fraction, bool):
        raise TypeError(f"val_fraction must be a number, got {type(val_fraction).__name__}")
    val_fraction = float(val_fraction)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not isinstance(stratify, bool):
        raise TypeError(f"stratify must be True or False, got {stratify!r}")

    images, labels = to_tensors(dataset, name="dataset")
    classes = (
        list(dataset.classes)
        if isinstance(dataset, ArrayDataset)
        else [str(i) for i in range(int(labels.max()) + 1)]
    )
    n = len(labels)
    n_val = round(val_fraction * n)
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"val_fraction={val_fraction} of {n} samples gives {n_val} validation and "
            f"{n - n_val} training samples; both must be at least 1"
        )

    rng = np.random.default_rng(seed)
    label_array = labels.cpu().numpy()
    if stratify:
        # Stable sort: each class's indices in ascending order, independent of the seed.
        by_class = np.argsort(label_array, kind="stable")
        counts = np.bincount(label_array)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        per_class = _allocate(counts, n_val, val_fraction)
        val_parts = []
        for start, count, take in zip(starts, counts, per_class, strict=True):
            if take:
                members = by_class[start : start + count]
                val_parts.append(rng.permutation(members)[:take])
        val_idx = np.concatenate(val_parts)
    else:
        val_idx = rng.permutation(n)[:n_val]
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    val_idx = np.flatnonzero(is_val)
    train_idx = np.flatnonzero(~is_val)

    common = {
        "seed": seed,
        "val_fraction": val_fraction,
        "stratify": stratify,
        "parent": _describe(dataset),
        "parent_length": n,
    }
    subsets = []
    for side, idx in (("train", train_idx), ("val", val_idx)):
        index = torch.from_numpy(idx.astype(np.int64))
        gather = index.to(images.device)
        provenance = {
            "subset": side,
            **common,
            "length": len(idx),
            "indices_sha256": indices_sha256(idx),
        }
        subsets.append(SplitSubset(images[gather], labels[gather], classes, index, provenance))
    return subsets[0], subsets[1]
