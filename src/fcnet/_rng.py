"""Private random streams: the Trainer draws from its own generator state, never the caller's.

torch's dropout and ``randperm`` without a generator draw from the global generator of
their device. During :meth:`fcnet.Trainer.fit` the global state is swapped for the
Trainer's own stream and swapped back afterwards, so the caller's global RNG state is
the same after a fit as before it, and the Trainer's stream goes on where it stopped at
the next fit (and in a checkpoint).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["RngStream", "mix_seed"]


def mix_seed(*words: int) -> int:
    """A 63-bit seed from several integers, well mixed (numpy's SeedSequence).

    Streams that must not depend on how many numbers were drawn before them (the data
    order of an epoch, a batch's augmentation, a chunk of dropout masks) are seeded
    with it from the run's seed and their position, so a run resumed mid-epoch draws
    exactly what the uninterrupted run drew.
    """
    state = np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@contextlib.contextmanager
def callers_generators_kept() -> Iterator[None]:
    """Restore the global generators of torch (CPU), numpy and ``random`` after the block."""
    state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


def _cuda_index(device: torch.device) -> int | None:
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.current_device() if device.index is None else device.index


class RngStream:
    """The torch generator states of one training run: the CPU's and its CUDA device's.

    Args:
        seed: Seed of the stream.
        device: The training device (its CUDA generator joins the stream).
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.Generator().manual_seed(seed).get_state()
        self.cuda: torch.Tensor | None = None
        index = _cuda_index(device)
        if index is not None:
            gen = torch.Generator(device=f"cuda:{index}")
            gen.manual_seed(seed)
            self.cuda = gen.get_state()
        self._active = False

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make this stream torch's global state inside the block; restore the caller's after."""
        index = _cuda_index(self.device)
        caller_cpu = torch.get_rng_state()
        caller_cuda = torch.cuda.get_rng_state(index) if index is not None else None
        torch.set_rng_state(self.cpu)
        if index is not None and self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, index)
        self._active = True
        try:
            yield
        finally:
            self._active = False
            self.cpu = torch.get_rng_state()
            torch.set_rng_state(caller_cpu)
            if index is not None:
                self.cuda = torch.cuda.get_rng_state(index)
                torch.cuda.set_rng_state(caller_cuda, index)

    def state_dict(self) -> dict[str, Any]:
        """The current states (the live global ones while :meth:`active`)."""
        if self._active:
            index = _cuda_index(self.device)
            return {"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(index) if index is not None else None}
        return {"cpu": self.cpu.clone(), "cuda": None if self.cuda is None else self.cuda.clone()}

    @staticmethod
    def check_state(state: Any) -> None:
        """Raise ValueError unless ``state`` is what :meth:`state_dict` returns."""
        if not isinstance(state, dict) or not isinstance(state.get("cpu"), torch.Tensor):
            raise ValueError("the RNG state must hold a 'cpu' generator state tensor")
        torch.Generator().set_state(state["cpu"])  # raises on a malformed state
        if state.get("cuda") is not None and not isinstance(state["cuda"], torch.Tensor):
            raise ValueError("the RNG state's 'cuda' entry must be a tensor or None")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state returned by :meth:`state_dict`."""
        self.check_state(state)
        self.cpu = state["cpu"].clone()
        if state.get("cuda") is not None and _cuda_index(self.device) is not None:
            self.cuda = state["cuda"].clone()
        if self._active:
            torch.set_rng_state(self.cpu)
            index = _cuda_index(self.device)
            if index is not None and self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, index)
