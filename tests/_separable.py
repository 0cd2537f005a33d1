"""A small separable 3-class problem of 8 features, shared by the subprocess workers."""

from __future__ import annotations

import torch


def separable(n_train: int, n_val: int):
    """``((x, y), (x_val, y_val))``: three Gaussian blobs, the same on every call."""
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(3, 8, generator=g) * 2
    y = torch.arange(n_train + n_val) % 3
    x = centers[y] + torch.randn(n_train + n_val, 8, generator=g) * 1.5
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
