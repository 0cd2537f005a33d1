"""The optimizer step and gradient reset of :class:`fcnet.Trainer`, without torch's wrapper.

For a small MLP most of ``torch.optim.Adam(fused=True).step()`` is Python around one
kernel: a profiling context, hook loops, state checks and grouping by device and dtype
(for the baseline network 784-128-64-10, about two thirds of the step; the figures are
on the results page). :func:`optimizer_step` makes the same two calls that torch's fused
Adam and AdamW make, with the same arguments, so the result is bit for bit the same, and
falls back to ``optimizer.step()`` for anything it does not cover: other optimizers,
hooks, the first step (which creates the state), options such as ``amsgrad``, and a
torch without the kernels.

:func:`clear_grads` is ``optimizer.zero_grad(set_to_none=True)`` without its profiling
context.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Adam, AdamW, Optimizer
from torch.optim import optimizer as _optimizer_module

_KERNELS = {False: getattr(torch, "_fused_adam_", None),
            True: getattr(torch, "_fused_adamw_", None)}


def hooks_free(optimizer: Optimizer) -> bool:
    """Whether no step hook (the optimizer's or torch's global ones) is registered."""
    hook_dicts = (
        getattr(optimizer, "_optimizer_step_pre_hooks", None),
        getattr(optimizer, "_optimizer_step_post_hooks", None),
        getattr(_optimizer_module, "_global_optimizer_pre_hooks", None),
        getattr(_optimizer_module, "_global_optimizer_post_hooks", None),
    )
    # A torch that keeps its hooks elsewhere gets the plain step.
    return all(hooks is not None and len(hooks) == 0 for hooks in hook_dicts)


_Call = tuple[Any, list[list[torch.Tensor]], dict[str, Any]]  # kernel, tensor lists, options


def _calls(optimizer: Optimizer) -> list[_Call] | None:
    """The kernel calls that equal ``optimizer.step()``, or ``None`` where they may not."""
    if type(optimizer) not in (Adam, AdamW) or not hooks_free(optimizer):
        return None
    if getattr(optimizer, "grad_scale", None) is not None or getattr(
        optimizer, "found_inf", None
    ) is not None:
        return None
    calls = []
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("amsgrad") or group.get("maximize") or (
            group.get("capturable") or group.get("differentiable")
        ):
            return None
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if not all(isinstance(v, float) for v in (lr, beta1, beta2)):
            return None  # tensor hyper-parameters: torch moves them between devices
        decoupled = bool(group.get("decoupled_weight_decay", type(optimizer) is AdamW))
        kernel = _KERNELS[decoupled]
        if kernel is None:
            return None
        params, grads, avgs, sqs, steps = [], [], [], [], []
        kind = None
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = optimizer.state.get(p)
            if not state or grad.is_sparse or p.is_complex():
                return None  # the first step creates the state; the rest is torch's
            if kind is None:
                kind = (p.device, p.dtype)
            if (p.device, p.dtype) != kind or grad.dtype != p.dtype:
                return None  # torch would split the tensors into one call per kind
            params.append(p)
            grads.append(grad)
            avgs.append(state["exp_avg"])
            sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if params:
            kwargs = {"amsgrad": False, "lr": lr, "beta1": beta1, "beta2": beta2,
                      "weight_decay": group["weight_decay"], "eps": group["eps"],
                      "maximize": False, "grad_scale": None, "found_inf": None}
            calls.append((kernel, [params, grads, avgs, sqs, [], steps], kwargs))
    return calls


@torch.no_grad()
def optimizer_step(optimizer: Optimizer) -> None:
    """Do ``optimizer.step()``; for torch's fused Adam/AdamW, by calling the kernel directly.

    Every check is made before any tensor changes, so a step is either the direct one
    or torch's own, never a mix.
    """
    calls = _calls(optimizer)
    if calls is None:
        optimizer.step()
        return
    for kernel, tensors, kwargs in calls:
        torch._foreach_add_(tensors[-1], 1)
        kernel(*tensors, **kwargs)


def clear_grads(optimizer: Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)``, directly unless the class overrides it."""
    if type(optimizer).zero_grad is not Optimizer.zero_grad:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
