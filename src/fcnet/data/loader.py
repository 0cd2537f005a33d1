"""The device loader: the whole data set in one tensor on the device, batches by slicing.

A data set of the Fashion-MNIST size (47 MB as uint8) fits on any accelerator, so it is
moved there once; each batch is then an index gather by a slice of a permutation, and
augmentation runs on the whole batch. No worker processes, no per-sample Python.

All randomness is a pure function of ``(seed, epoch, batch index)``: the permutation of
an epoch and the augmentation of each batch are drawn from CPU generators seeded from
those numbers, so they are identical on every device, and a run resumed in the middle of
an epoch (``batches(epoch, start=k)``) sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from fcnet._checks import is_int
from fcnet._device import select_device
from fcnet._rng import mix_seed
from fcnet.data.arrays import to_tensors

__all__ = ["DeviceLoader"]

# Stream tags keep the permutation and augmentation seeds of a run independent.
_ORDER_STREAM = 0
_AUGMENT_STREAM = 1
#: Bytes of inputs gathered at once for shuffled batches (see ``DeviceLoader._iterate``):
#: few enough that a chunk is still in the CPU's cache when its batches are used.
_GATHER_BYTES = 256 << 10


class DeviceLoader:
    """Batches of a data set held as one tensor on the training device.

    Args:
        inputs: ``(N, ...)`` inputs, a tensor or numpy array (uint8 stays uint8).
        labels: ``(N,)`` integer labels.
        batch_size: Samples per batch, >= 1.
        shuffle: Whether each epoch visits the samples in a new seeded order.
        drop_last: Whether to drop the last, smaller batch of an epoch.
        seed: Seed of the permutations and augmentations, >= 0.
        augment: A batch augmentation ``aug(x, generator) -> Tensor`` (see
            :mod:`fcnet.data.augment`) applied to every batch, or None. It must not
            modify its input in place: without shuffling, batches are views of the data.
        device: Where to keep the data; where ``inputs`` already is when None.
        image_shape: The image shape, ``(H, W)`` or ``(C, H, W)``, for flat ``(N, F)``
            inputs; required when they are augmented.

    Attributes:
        inputs: The inputs, on ``device``.
        labels: The int64 labels, on ``device``.
        epoch: The epoch :meth:`__iter__` will give next.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: A bad value: ``batch_size < 1``, negative seed, mismatched lengths,
            flat inputs augmented without a matching ``image_shape``, or
            ``drop_last`` leaving no batch at all.
    """

    def __init__(
        self,
        inputs: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        if not is_int(batch_size):
            raise TypeError(f"batch_size must be an integer, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for flag, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, got {value!r}")
        if not is_int(seed):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if augment is not None and not callable(augment):
            raise TypeError(
                f"augment must be a callable aug(x, generator) or None, got "
                f"{type(augment).__name__}"
            )
        inputs_t, labels_t = to_tensors((inputs, labels), name="DeviceLoader data")
        n = len(labels_t)
        if drop_last and n < batch_size:
            raise ValueError(
                f"batch_size {batch_size} with drop_last=True leaves no batch for {n} samples"
            )
        self.image_shape = self._check_image_shape(inputs_t, augment, image_shape)

        # select_device: an unknown or unavailable device is a ValueError that says so.
        target = inputs_t.device if device is None else select_device(device)
        # Moved once; every later batch is a gather on the device itself.
        self.inputs: torch.Tensor = inputs_t.to(target)
        self.labels: torch.Tensor = labels_t.to(target)
        self.device: torch.device = target
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.augment = augment
        self.epoch = 0

    @staticmethod
    def _check_image_shape(
        inputs: torch.Tensor, augment: Any, image_shape: Sequence[int] | None
    ) -> tuple[int, ...] | None:
        if image_shape is None:
            if augment is not None and inputs.ndim < 3:
                raise ValueError(
                    f"augmenting flat inputs of shape {tuple(inputs.shape)} needs "
                    f"image_shape=(H, W) or (C, H, W), got None"
                )
            return None
        if (
            isinstance(image_shape, (str, bytes))
            or not isinstance(image_shape, Sequence)
            or not all(is_int(d) and d >= 1 for d in image_shape)
            or len(image_shape) not in (2, 3)
        ):
            raise ValueError(
                f"image_shape must be (H, W) or (C, H, W) of positive integers, got {image_shape!r}"
            )
        shape = tuple(int(d) for d in image_shape)
        sample = tuple(inputs.shape[1:])
        if math.prod(shape) != math.prod(sample):
            raise ValueError(
                f"image_shape {shape} does not fit inputs of shape {tuple(inputs.shape)} "
                f"({math.prod(sample)} values per sample)"
            )
        return shape

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self) -> int:
        """Samples per epoch (after ``drop_last``)."""
        n = len(self.labels)
        return len(self) * self.batch_size if self.drop_last else n

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of an epoch, on the device.

        A pure function of ``(seed, epoch)``: generated on the CPU with a seeded
        generator, so it is identical on every device. ``arange(N)`` without shuffling.

        Args:
            epoch: The epoch, >= 0.

        Returns:
            An int64 permutation of ``range(N)``.
        """
        self._check_epoch(epoch)
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        generator = torch.Generator()
        generator.manual_seed(mix_seed(self.seed, epoch, _ORDER_STREAM))
        return torch.randperm(n, generator=generator).to(self.device)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches ``start, start + 1, ...`` of an epoch, augmented if asked.

        Args:
            epoch: The epoch, >= 0.
            start: The first batch to give, in ``[0, len(self)]`` (to resume mid-epoch).

        Returns:
            An iterator of ``(inputs, labels)`` batches on the device.

        Raises:
            ValueError: ``epoch`` or ``start`` is out of range.
        """
        self._check_epoch(epoch)
        if not is_int(start):
            raise TypeError(f"start must be an integer, got {type(start).__name__}")
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in [0, {len(self)}], got {start}")
        return self._iterate(epoch, start)

    def _iterate(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order(epoch) if self.shuffle else None
        bs, n = self.batch_size, self.num_samples
        # Shuffled batches are cut from chunks gathered in one op each: a gather per
        # batch has a fixed cost that is a sizeable share of a small model's step. Same
        # samples, same order, so the same results.
        sample_bytes = max(1, self.inputs[:1].nelement() * self.inputs.element_size())
        chunk = max(1, _GATHER_BYTES // (bs * sample_bytes))  # batches per gather
        xs = ys = None
        first = 0
        for b in range(start, len(self)):
            lo, hi = b * bs, min((b + 1) * bs, n)
            if order is None:
                x, y = self.inputs[lo:hi], self.labels[lo:hi]  # views: no copy
            else:
                if (b - start) % chunk == 0:
                    first = lo
                    index = order[lo:min(lo + chunk * bs, n)]  # n: not past drop_last's cut
                    # index_select: same rows as indexing, a fraction of its time.
                    xs = self.inputs.index_select(0, index)
                    ys = self.labels.index_select(0, index)
                x, y = xs[lo - first:hi - first], ys[lo - first:hi - first]
            if self.augment is not None:
                generator = torch.Generator()
                generator.manual_seed(mix_seed(self.seed, epoch, _AUGMENT_STREAM, b))
                shaped = x if self.image_shape is None else x.reshape(len(x), *self.image_shape)
                x = self.augment(shaped, generator).reshape(x.shape)
            yield x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of :attr:`epoch`, which then advances by one."""
        iterator = self.batches(self.epoch)
        self.epoch += 1
        return iterator

    @staticmethod
    def _check_epoch(epoch: Any) -> None:
        if not is_int(epoch):
            raise TypeError(f"epoch must be an integer, got {type(epoch).__name__}")
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(n={len(self.labels)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
            f"augment={self.augment!r}, device={self.device})"
        )
