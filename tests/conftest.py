"""Shared fixtures: fixed seeds for every test, small synthetic data sets."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


def pytest_configure(config):
    # The suite trains many tiny models; one thread is faster for them on a small CPU
    # and keeps timings steady when other jobs share the machine.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fixed_seeds():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def blobs():
    """A small separable 3-class problem: (X float32 (300, 8), y int64 (300,))."""
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(3, 8, generator=g) * 4
    y = torch.arange(300) % 3
    x = centers[y] + torch.randn(300, 8, generator=g)
    return x, y


@pytest.fixture
def tiny_images():
    """Fake raw images like Fashion-MNIST's: (uint8 (256, 28, 28), int64 labels in 0..9)."""
    g = torch.Generator().manual_seed(2)
    y = torch.arange(256) % 10
    x = torch.randint(0, 60, (256, 28, 28), generator=g, dtype=torch.uint8)
    # Make the class visible: a bright row whose position is the label.
    x[torch.arange(256), y * 2 + 4, :] = 250
    return x, y
