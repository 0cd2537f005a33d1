"""Learning-rate schedules for :class:`fcnet.Trainer`, as small typed configurations.

A schedule is data (its fields, JSON-ready through :meth:`~Schedule.to_dict`) that
builds a torch scheduler for one fit, once the number of steps is known:

>>> from fcnet.schedules import OneCycle
>>> schedule = OneCycle(pct_start=0.1)
>>> schedule.to_dict()["name"]
'onecycle'

``Trainer(scheduler=...)`` takes a name (``"onecycle"``, ``"cosine"``, ``"step"``: the
defaults of these classes), an instance, or any callable ``optimizer -> scheduler``
(stepped once per epoch; a ``ReduceLROnPlateau`` is stepped with the epoch's
``val_loss``, or ``train_loss`` without validation data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from fcnet._checks import check_int, is_number

__all__ = ["SCHEDULES", "Cosine", "OneCycle", "Schedule", "Step", "schedule_from"]


def _positive(name: str, value: Any) -> None:
    if not is_number(value) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


class Schedule:
    """Base of the named schedules: ``build`` a torch scheduler, stepped per ``interval``."""

    name: ClassVar[str] = ""
    #: ``"batch"``: stepped after every optimisation step; ``"epoch"``: after each epoch.
    interval: ClassVar[str] = "batch"

    def build(self, optimizer: torch.optim.Optimizer, *, lr: float, epochs: int,
              steps_per_epoch: int) -> Any:
        """Return the torch scheduler of one fit of ``epochs`` x ``steps_per_epoch`` steps."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **fields}``, for recipes and checkpoints."""
        return {"name": self.name, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class OneCycle(Schedule):
    """:class:`torch.optim.lr_scheduler.OneCycleLR` up to the Trainer's ``lr`` and down again.

    Args:
        pct_start: Share of the steps spent warming up.
        div_factor: The first rate is ``lr / div_factor``.
        final_div_factor: The last rate is the first one divided by this.
        cycle_momentum: Cycle Adam's beta1 (or SGD's momentum) inversely to the rate.
    """

    name: ClassVar[str] = "onecycle"
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    cycle_momentum: bool = True

    def __post_init__(self) -> None:
        if not is_number(self.pct_start) or not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start!r}")
        _positive("div_factor", self.div_factor)
        _positive("final_div_factor", self.final_div_factor)
        if not isinstance(self.cycle_momentum, bool):
            raise TypeError(f"cycle_momentum must be True or False, got {self.cycle_momentum!r}")

    def build(self, optimizer, *, lr, epochs, steps_per_epoch):
        """A OneCycleLR over every step of the fit."""
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch,
            pct_start=self.pct_start, div_factor=self.div_factor,
            final_div_factor=self.final_div_factor, cycle_momentum=self.cycle_momentum)


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine decay from the Trainer's ``lr`` to ``min_lr`` over every step of the fit."""

    name: ClassVar[str] = "cosine"
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if not is_number(self.min_lr) or not (math.isfinite(self.min_lr) and self.min_lr >= 0):
            raise ValueError(f"min_lr must be a finite number >= 0, got {self.min_lr!r}")

    def build(self, optimizer, *, lr, epochs, steps_per_epoch):
        """A CosineAnnealingLR over every step of the fit."""
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch, eta_min=self.min_lr)


@dataclass(frozen=True)
class Step(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs (default: a third of them)."""

    name: ClassVar[str] = "step"
    interval: ClassVar[str] = "epoch"
    step_size: int | None = None
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.step_size is not None:
            check_int("step_size", self.step_size, 1)
        _positive("gamma", self.gamma)

    def build(self, optimizer, *, lr, epochs, steps_per_epoch):
        """A StepLR, stepped after each epoch."""
        size = self.step_size if self.step_size is not None else max(1, epochs // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=size, gamma=self.gamma)


#: The named schedules, by the name ``Trainer(scheduler=...)`` and recipes use.
SCHEDULES: Mapping[str, type[Schedule]] = {c.name: c for c in (OneCycle, Cosine, Step)}


def schedule_from(value: Any) -> Any:
    """A :class:`Schedule` from a name or a :meth:`Schedule.to_dict` dict; others unchanged.

    Raises:
        ValueError: an unknown name or field.
        TypeError: neither None, a name, a dict, a Schedule nor a callable.
    """
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, Mapping):
        name = value.get("name")
        if name not in SCHEDULES:
            raise ValueError(
                f"scheduler must be None, one of {', '.join(map(repr, SCHEDULES))}, a "
                f"fcnet.schedules.Schedule or a callable optimizer -> scheduler, got {name!r}"
            )
        cls = SCHEDULES[name]
        allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: v for k, v in value.items() if k != "name"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ValueError(
                f"scheduler {name!r} has no fields {unknown}; it has {sorted(allowed)}")
        return cls(**kwargs)
    if callable(value):
        return value
    raise TypeError(f"scheduler must be None, a name, a Schedule or a callable, got {value!r}")
