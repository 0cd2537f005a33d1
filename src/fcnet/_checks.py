"""Argument checks shared by the public entry points, with uniform messages."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["check_choice", "check_int", "is_array_like", "is_int", "is_number"]


def is_array_like(value: Any) -> bool:
    """Whether ``value`` is a table or array NumPy converts (pandas, polars, xarray, ...).

    Tensors, numpy arrays, lists and scalars are not: fcnet takes those directly.
    """
    return not isinstance(value, (torch.Tensor, np.ndarray, list, tuple, str, bytes,
                                  numbers.Number)) and hasattr(value, "__array__")


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools (which are ints in Python)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for real numbers (ints, floats, numpy scalars), False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, or raise TypeError/ValueError naming ``name``."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise ValueError naming ``name``, the value and the choices unless it is allowed."""
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {shown}, got {value!r}")
