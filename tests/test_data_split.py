"""train_val_split: stratified, reproducible, disjoint, complete, with provenance."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fcnet.data import ArrayDataset, FashionMNIST, train_val_split
from fcnet.data.split import SplitSubset


def _dataset(counts=(50, 30, 20), classes=None) -> ArrayDataset:
    labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    rng = np.random.default_rng(1)
    labels = rng.permutation(labels)
    images = np.arange(len(labels) * 4, dtype=np.int64).reshape(-1, 2, 2).astype(np.float32)
    return ArrayDataset(images, labels, classes)


def test_stratified_counts_disjoint_complete():
    ds = _dataset(classes=["a", "b", "c"])
    train, val = train_val_split(ds, val_fraction=0.2, seed=0)
    assert isinstance(train, SplitSubset) and isinstance(val, SplitSubset)
    assert torch.bincount(val.labels).tolist() == [10, 6, 4]
    assert torch.bincount(train.labels).tolist() == [40, 24, 16]
    both = torch.cat([train.indices, val.indices])
    assert sorted(both.tolist()) == list(range(100))
    assert torch.equal(train.indices, train.indices.sort().values)
    # Samples are the parent's samples at those indices.
    assert torch.equal(val.images, ds.images[val.indices])
    assert torch.equal(val.labels, ds.labels[val.indices])
    assert train.classes == ["a", "b", "c"]
    assert val.seed == 0 and val.val_fraction == 0.2


def test_reproducible_and_seed_dependent():
    ds = _dataset()
    a = train_val_split(ds, 0.25, seed=3)[1].indices
    b = train_val_split(ds, 0.25, seed=3)[1].indices
    c = train_val_split(ds, 0.25, seed=4)[1].indices
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_provenance_is_json_ready_and_fingerprints_indices():
    ds = _dataset()
    train, val = train_val_split(ds, val_fraction=0.3, seed=7, stratify=False)
    prov = json.loads(json.dumps(val.provenance))
    assert prov == {
        "subset": "val",
        "seed": 7,
        "val_fraction": 0.3,
        "stratify": False,
        "parent": "ArrayDataset",
        "parent_length": 100,
        "length": 30,
        "indices_sha256": hashlib.sha256(val.indices.numpy().astype("<i8").tobytes()).hexdigest(),
    }
    assert train.provenance["subset"] == "train" and train.provenance["length"] == 70
    assert train.provenance["indices_sha256"] != prov["indices_sha256"]


def test_largest_remainder_keeps_total_exact():
    ds = _dataset(counts=(3, 3, 3, 1))  # 0.5 * 10 = 5, per class 1.5, 1.5, 1.5, 0.5
    train, val = train_val_split(ds, val_fraction=0.5, seed=0)
    counts = torch.bincount(val.labels, minlength=4).tolist()
    assert sum(counts) == 5 and all(c in (1, 2) for c in counts[:3]) and counts[3] in (0, 1)


def test_accepts_pairs_and_keeps_device_and_dtype():
    x = torch.arange(20, dtype=torch.uint8).reshape(10, 2)
    y = torch.tensor([0, 1] * 5)
    train, val = train_val_split((x, y), val_fraction=0.2, seed=0)
    assert train.images.dtype == torch.uint8 and len(val) == 2
    assert val.labels.tolist() == [0, 1]
    assert train.classes == ["0", "1"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"val_fraction": 0.0}, ValueError, r"val_fraction must be in \(0, 1\), got 0.0"),
        ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \(0, 1\), got 1.0"),
        ({"val_fraction": "0.2"}, TypeError, "val_fraction must be a number, got str"),
        ({"val_fraction": 0.001}, ValueError, "gives 0 validation and 100 training samples"),
        ({"val_fraction": 0.999}, ValueError, "gives 100 validation and 0 training"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an integer, got float"),
        ({"stratify": 1}, TypeError, "stratify must be True or False, got 1"),
    ],
)
def test_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        train_val_split(_dataset(), **kwargs)


def test_rejects_non_datasets():
    with pytest.raises(TypeError, match="dataset must be an fcnet data set"):
        train_val_split("data")


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32),
    stratify=st.booleans(),
)
def test_split_properties(counts, fraction, seed, stratify):
    ds = _dataset(counts=counts)
    n = len(ds)
    n_val = round(fraction * n)
    if not 1 <= n_val <= n - 1:
        with pytest.raises(ValueError):
            train_val_split(ds, fraction, seed, stratify)
        return
    train, val = train_val_split(ds, fraction, seed, stratify)
    assert len(val) == n_val and len(train) == n - n_val
    assert set(train.indices.tolist()).isdisjoint(val.indices.tolist())
    if stratify:
        got = torch.bincount(val.labels, minlength=len(counts)).numpy()
        assert np.all(np.abs(got - np.array(counts) * fraction) < 1.0)


@pytest.mark.integration
@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed",
)
def test_fashion_mnist_validation_has_1200_per_class():
    full = FashionMNIST("train", root="/usr/share/datasets/fashion-mnist", cache=False)
    train, val = train_val_split(full, val_fraction=0.2, seed=0)
    assert torch.bincount(val.labels).tolist() == [1200] * 10
    assert len(train) == 48000
    assert val.provenance["parent"] == "FashionMNIST(split='train')"
