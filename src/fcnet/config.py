"""The Trainer's own settings as data: :class:`TrainerConfig`, validated in one place."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from fcnet._checks import check_choice, check_int, is_int, is_number
from fcnet.optim import OPTIMIZERS
from fcnet.schedules import Schedule, schedule_from

__all__ = ["LOSSES", "PRECISIONS", "TrainerConfig"]

#: Loss names accepted by :class:`fcnet.Trainer`.
LOSSES = ("cross_entropy", "nll")
#: Arithmetic of the forward pass: ``"bf16"`` autocasts it to bfloat16.
PRECISIONS = ("auto", "fp32", "bf16")

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _nonneg_float(name: str, value: Any) -> float:
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_class_weight(value: Any, loss: Any) -> Any:
    if value is None or value == "balanced":
        pass
    elif isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"class_weight must be None, 'balanced' or a sequence of one weight per "
                        f"class, got {value!r}")
    else:
        value = tuple(_nonneg_float("class_weight", v) for v in value)
        if not any(value):
            raise ValueError(f"class_weight must hold a weight > 0, got {list(value)}")
    if value is not None and not isinstance(loss, str):
        raise ValueError("class_weight needs loss='cross_entropy' or 'nll'; a callable loss "
                         "weighs the classes itself")
    return value


def _describe(value: Any) -> Any:
    """A JSON-ready record of a setting: names and numbers as they are, callables by name."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Schedule):
        return value.to_dict()
    return f"callable {getattr(value, '__qualname__', type(value).__qualname__)}"


@dataclass(frozen=True)
class TrainerConfig:
    """The Trainer's own settings, validated in one place.

    :class:`fcnet.Trainer` builds one from its keyword arguments; a recipe holds one and
    builds its Trainer with :meth:`fcnet.Trainer.from_config`. Every field is checked on
    construction; variants come from :func:`dataclasses.replace`.
    """

    optimizer: str | OptimizerFactory = "adam"  # name, or a factory params -> Optimizer
    lr: float = 1e-3  # learning rate (the peak rate of a one-cycle schedule)
    weight_decay: float = 0.0  # L2 penalty on weight matrices (decoupled for "adamw")
    epochs: int = 10  # passes over the training data per fit
    batch_size: int = 64  # samples per optimisation step
    loss: str | LossFunction = "cross_entropy"  # "cross_entropy", "nll" or a callable
    label_smoothing: float = 0.0  # in [0, 1); with loss="cross_entropy"
    class_weight: Any = None  # None, "balanced" or one weight per class (a loss factor)
    scheduler: Any = None  # None, a name, a fcnet.schedules.Schedule or a callable
    precision: str = "auto"  # "auto", "fp32" or "bf16" (see fcnet.Trainer)
    seed: int | None = None  # seed of data order, dropout and augmentation; None: drawn

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, str):
            check_choice("optimizer", self.optimizer, OPTIMIZERS)
        elif not callable(self.optimizer):
            raise TypeError(f"optimizer must be a name or a factory params -> Optimizer, got "
                            f"{self.optimizer!r}")
        object.__setattr__(self, "lr", _nonneg_float("lr", self.lr))
        object.__setattr__(self, "weight_decay", _nonneg_float("weight_decay", self.weight_decay))
        object.__setattr__(self, "epochs", check_int("epochs", self.epochs, 1))
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, 1))
        if isinstance(self.loss, str):
            check_choice("loss", self.loss, LOSSES)
        elif not callable(self.loss):
            raise TypeError(f"loss must be a name or a callable (outputs, targets) -> loss, "
                            f"got {self.loss!r}")
        smoothing = _nonneg_float("label_smoothing", self.label_smoothing)
        if smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {smoothing!r}")
        if smoothing and self.loss != "cross_entropy":
            raise ValueError(f"label_smoothing needs loss='cross_entropy', got loss={self.loss!r}")
        object.__setattr__(self, "label_smoothing", smoothing)
        object.__setattr__(self, "class_weight", _check_class_weight(self.class_weight,
                                                                     self.loss))
        object.__setattr__(self, "scheduler", schedule_from(self.scheduler))
        check_choice("precision", self.precision, PRECISIONS)
        if self.seed is not None:
            if not is_int(self.seed):
                raise TypeError(f"seed must be an int or None, got {type(self.seed).__name__} "
                                f"{self.seed!r}")
            if not 0 <= self.seed < 2**63:
                raise ValueError(f"seed must be in [0, 2**63), got {self.seed!r}")
            object.__setattr__(self, "seed", int(self.seed))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings; callables are recorded by name (they cannot be rebuilt)."""
        return {f.name: _describe(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainerConfig:
        """Rebuild a config from :meth:`to_dict`'s output; unknown keys raise ValueError."""
        if not isinstance(data, Mapping):
            raise TypeError(f"config data must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"config has unknown fields {unknown}")
        return cls(**data)
