"""The Trainer's named optimizers: Adam, AdamW and SGD, set up as MLPs train best."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "build_optimizer"]

#: Optimizer names accepted by :class:`fcnet.Trainer`.
OPTIMIZERS = ("adam", "adamw", "sgd")

_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def _can_fuse(optimizer_cls: type[torch.optim.Optimizer], params: Sequence[torch.Tensor]) -> bool:
    """Whether this torch has a fused step of ``optimizer_cls`` for ``params``."""
    if "fused" not in inspect.signature(optimizer_cls).parameters:
        return False
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # an older torch without fused CPU kernels
        return False
    devices = set(_get_fused_kernels_supported_devices()) & {"cpu", "cuda"}
    return bool(params) and all(p.device.type in devices and p.is_floating_point()
                                for p in params)


def build_optimizer(spec: str | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                    params: Iterable[nn.Parameter], *, lr: float,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer that ``spec`` names (or makes) over the trainable ``params``.

    Named optimizers decay only the weight matrices (biases and normalisation scales,
    the 1-D tensors, are not decayed, as in timm and most training recipes), use
    Nesterov momentum 0.9 for ``"sgd"``, and take torch's fused step where torch has one
    (the same update up to float rounding, in one kernel instead of a dozen small ops per
    tensor). A factory gets the parameters and returns its own optimizer.

    Raises:
        ValueError: an unknown name.
        TypeError: a factory returned something else than a torch optimizer.
    """
    params = [p for p in params if p.requires_grad]
    if callable(spec):
        opt = spec(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory must return a torch.optim.Optimizer, got "
                            f"{type(opt).__name__}")
        return opt
    if spec not in _CLASSES:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or a "
                         f"factory params -> Optimizer, got {spec!r}")
    cls = _CLASSES[spec]
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    groups: Any = params
    if weight_decay > 0:
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    if spec == "sgd":
        kwargs.update(momentum=0.9, nesterov=True)
    if _can_fuse(cls, params):
        kwargs["fused"] = True
    return cls(groups, **kwargs)
