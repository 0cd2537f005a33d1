"""Batch-level tensor augmentations: whole batches at once, no per-sample Python.

Every augmentation is a callable ``aug(x, generator) -> Tensor`` taking a batch of images
of shape ``(N, H, W)`` or ``(N, C, H, W)`` (any leading layout ``(N, ..., H, W)``),
``uint8`` or floating point, on any device, and returning a batch of the same shape and
dtype. Per-sample random parameters (``N`` numbers, not images) are drawn from
``generator`` on the generator's device and then moved to the batch's device, so a CPU
generator seeded by :class:`~fcnet.data.DeviceLoader` gives identical augmentations on
every device and for a run resumed mid-epoch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["BatchAugment", "Compose", "RandomErasing", "RandomFlip", "RandomShift"]


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check_batch(x: Any, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} takes a batch tensor, got {type(x).__name__}")
    if x.ndim < 3:
        raise ValueError(
            f"{who} takes a batch of images (N, H, W) or (N, C, H, W), got shape {tuple(x.shape)}"
        )
    return x


def _check_probability(p: Any, name: str = "p") -> float:
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"{name} must be a number, got {type(p).__name__}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return float(p)


def _check_range(value: Any, name: str, low: float, high: float | None) -> tuple[float, float]:
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be a (min, max) pair of numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    top = "inf" if high is None else high
    if not (low < lo <= hi and (high is None or hi <= high)):
        raise ValueError(f"{name} must satisfy {low} < min <= max <= {top}, got {value!r}")
    return lo, hi


def _per_sample(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshapes an (N,) tensor to broadcast over the other dimensions of ``x``."""
    return mask.view(-1, *([1] * (x.ndim - 1)))


class BatchAugment:
    """Base class of the batch augmentations (see the module docstring)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augments a batch.

        Args:
            x: ``(N, ..., H, W)`` images, uint8 or floating point.
            generator: Source of the randomness; the global generator when None.

        Returns:
            The augmented batch, same shape, dtype and device as ``x``.
        """
        x = _check_batch(x, type(self).__name__)
        if len(x) == 0:
            return x
        return self.apply(x, generator)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Augments a validated, non-empty batch (subclasses implement this)."""
        raise NotImplementedError


class RandomFlip(BatchAugment):
    """Flips each image horizontally with probability ``p``.

    Args:
        p: Probability of flipping each image, in [0, 1].
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability(p)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        flip = torch.rand(len(x), generator=generator, device=_gen_device(generator),
                          dtype=torch.float32) < self.p
        flip = _per_sample(flip.to(x.device), x)
        return torch.where(flip, x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class RandomShift(BatchAugment):
    """Shifts each image by a random whole number of pixels along each axis.

    Shifts are drawn uniformly from ``[-max_shift, max_shift]`` independently for rows
    and columns. Pixels shifted in are zero (``padding_mode="zeros"``) or copies of the
    nearest border pixel (``"border"``).

    Args:
        max_shift: The largest shift in pixels, >= 0.
        padding_mode: ``"zeros"`` or ``"border"``.
    """

    def __init__(self, max_shift: int = 2, padding_mode: str = "zeros") -> None:
        if not isinstance(max_shift, numbers.Integral) or isinstance(max_shift, bool):
            raise TypeError(f"max_shift must be an integer, got {type(max_shift).__name__}")
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        if padding_mode not in ("zeros", "border"):
            raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
        self.max_shift = int(max_shift)
        self.padding_mode = padding_mode

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        m = self.max_shift
        if m == 0:
            return x
        n, h, w = len(x), x.shape[-2], x.shape[-1]
        shifts = torch.randint(
            -m, m + 1, (2, n), generator=generator, device=_gen_device(generator)
        ).to(x.device)
        x4 = x.reshape(n, -1, h, w)
        c = x4.shape[1]
        # Output pixel i reads input pixel i - shift: one gather per axis, for all
        # samples at once.
        rows = torch.arange(h, device=x.device) - shifts[0, :, None]
        cols = torch.arange(w, device=x.device) - shifts[1, :, None]
        if self.padding_mode == "zeros":
            x4 = F.pad(x4, (m, m, m, m))
            rows, cols = rows + m, cols + m
        else:
            rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
        out = x4.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, x4.shape[-1]))
        out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
        return out.reshape(x.shape)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, padding_mode={self.padding_mode!r})"


class RandomErasing(BatchAugment):
    """Erases one random rectangle in each image with probability ``p`` (Cutout).

    As torchvision's ``RandomErasing``: the rectangle covers a fraction of the image
    drawn uniformly from ``scale``, with an aspect ratio (height / width) drawn
    log-uniformly from ``ratio``. Instead of retrying rectangles that do not fit, their
    sides are clipped to the image, which keeps the whole batch in a few tensor ops.

    Args:
        p: Probability of erasing in each image, in [0, 1].
        scale: ``(min, max)`` fraction of the image area, within (0, 1].
        ratio: ``(min, max)`` aspect ratio, positive.
        value: The fill value; for uint8 batches an integer in [0, 255].
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.2),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float = 0,
    ) -> None:
        self.p = _check_probability(p)
        self.scale = _check_range(scale, "scale", 0.0, 1.0)
        self.ratio = _check_range(ratio, "ratio", 0.0, None)
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"value must be a number, got {type(value).__name__}")
        self.value = value

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not x.is_floating_point():
            info = torch.iinfo(x.dtype)
            if self.value != int(self.value) or not info.min <= self.value <= info.max:
                raise ValueError(
                    f"value must be an integer in [{info.min}, {info.max}] for a {x.dtype} "
                    f"batch, got {self.value}"
                )
        n, h, w = len(x), x.shape[-2], x.shape[-1]
        u = torch.rand(5, n, generator=generator, device=_gen_device(generator),
                       dtype=torch.float32)
        u = u.to(device="cpu", dtype=torch.float64)
        area = (self.scale[0] + (self.scale[1] - self.scale[0]) * u[0]) * (h * w)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
        eh = torch.sqrt(area * aspect).round().clamp(1, h)
        ew = torch.sqrt(area / aspect).round().clamp(1, w)
        top = torch.floor(u[2] * (h - eh + 1))
        left = torch.floor(u[3] * (w - ew + 1))
        erase = u[4] < self.p
        box = torch.stack([top, top + eh, left, left + ew]).to(torch.int64).to(x.device)
        erase = erase.to(x.device)
        r = torch.arange(h, device=x.device)
        c = torch.arange(w, device=x.device)
        in_rows = (r >= box[0, :, None]) & (r < box[1, :, None])  # (N, H)
        in_cols = (c >= box[2, :, None]) & (c < box[3, :, None])  # (N, W)
        mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
        mask = mask.view(n, *([1] * (x.ndim - 3)), h, w)
        return x.masked_fill(mask, self.value)

    def __repr__(self) -> str:
        return (
            f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value})"
        )


class Compose(BatchAugment):
    """Applies augmentations in order, sharing one generator.

    Args:
        augments: Callables ``aug(x, generator) -> Tensor``.
    """

    def __init__(self, augments: Sequence[Callable[..., torch.Tensor]]) -> None:
        if isinstance(augments, (str, bytes)) or not isinstance(augments, Sequence):
            raise TypeError(
                f"augments must be a sequence of callables, got {type(augments).__name__}"
            )
        for i, aug in enumerate(augments):
            if not callable(aug):
                raise TypeError(
                    f"augments must hold callables aug(x, generator), got "
                    f"{type(aug).__name__} at position {i}"
                )
        self.augments = list(augments)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        for aug in self.augments:
            x = aug(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.augments!r})"
