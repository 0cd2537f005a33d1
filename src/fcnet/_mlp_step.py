"""The training step of an fcnet MLP written out: forward, loss, backward and Adam, no autograd.

For the networks fcnet is for, most of an autograd step is not arithmetic: it is the
graph being recorded and walked, a dozen small tensors allocated and freed, one dispatch
per op, ``bernoulli_`` drawing dropout masks one Mersenne-twister number at a time, and
an optimizer step that visits every parameter tensor. :class:`MLPStep` does the same
mathematics as a handful of large ops:

* the weights and biases of the Linear layers, their gradients and Adam's two averages
  live in one flat tensor each (the parameters and the optimizer state are views into
  them, so ``model.state_dict()``, ``optimizer.state_dict()`` and checkpoints see them as
  usual), and one fused Adam/AdamW kernel call updates them all;
* a hidden layer's ReLU and dropout become one mask, kept for the backward pass; the
  masks come from 16-bit slices of 64-bit draws of torch's CPU generator (the Trainer's
  stream), an element being kept where its draw is below ``round((1 - p) * 65536)``, kept
  elements scaled by the inverse of that rounded keep probability (as
  :class:`fcnet.models.FastDropout` does);
* cross-entropy's gradient is ``softmax - target`` (with label smoothing, class and
  sample weights as :meth:`fcnet.Trainer.compute_loss` defines the loss), and each
  layer's gradients are two matrix products into the flat gradient buffer;
* with ``precision="bf16"`` the products take bfloat16 copies of the weights (refreshed
  from the float32 master weights before every step) and bfloat16 activations, as
  ``torch.autocast`` would, and the gradients are accumulated into float32.

A step is deterministic on the CPU. Its masks are other random draws than
``nn.Dropout``'s and its products are summed in another order than autograd's, so a
seeded run is not bit-for-bit the run that autograd would make; it is the same training
method. :func:`plan` says whether a model, loss and optimizer can take this step; the
Trainer falls back to autograd for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Adam, AdamW, Optimizer

from fcnet._fused import hooks_free
from fcnet._rng import mix_seed
from fcnet.models import MLP, FastDropout, InputAdapter

__all__ = ["MLPStep", "plan"]

_LEVELS = 65536  # dropout: a 16-bit draw below the threshold keeps the element
_DROPOUT_STREAM = 2  # after the data order's and augmentation's streams (fcnet.data.loader)
_MASK_ELEMENTS = 1 << 21  # dropout draws made at once


@dataclass
class _Layer:
    linear: nn.Linear
    relu: bool  # hidden layers: ReLU after the product; the output layer: none
    keep: int  # dropout threshold among _LEVELS after the activation; _LEVELS: no dropout


@dataclass
class Plan:
    """What :class:`MLPStep` will compute for a model (returned by :func:`plan`)."""

    adapter: InputAdapter
    input_keep: int
    layers: list[_Layer]
    log_softmax: bool  # the model ends in LogSoftmax (trained with the nll loss)


def _keep(module: nn.Module) -> int | None:
    """The dropout threshold of a Dropout module, or ``None`` if it cannot be one."""
    p = float(module.p)
    if p == 0 or not module.training:
        return _LEVELS
    threshold = round((1.0 - p) * _LEVELS)
    return threshold if 0 < threshold < _LEVELS else None


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _has_hooks(module: nn.Module) -> bool:
    """Whether ``module`` has hooks (its own, or torch's global module hooks)."""
    if any(getattr(module, name, None) for name in _HOOKS):
        return True
    return any(getattr(nn.modules.module, f"_global{name}", None) for name in _HOOKS)


def plan(model: nn.Module, optimizer: Optimizer | None, *, loss: Any,
         label_smoothing: float, device: torch.device) -> Plan | None:
    """The step for ``model`` trained with ``loss`` and ``optimizer``, or ``None``.

    Covered: an fcnet :class:`~fcnet.models.MLP` on the CPU of Linear layers with ReLU
    and (``nn.Dropout`` or ``FastDropout``) dropout, optionally input dropout, ending in
    logits with ``loss="cross_entropy"`` or in LogSoftmax with ``loss="nll"``; float32
    parameters, all trainable; one parameter group of torch's fused Adam or AdamW
    (``amsgrad``, ``maximize`` off), no hooks on the modules or the optimizer.
    """
    if device.type != "cpu" or type(model) is not MLP or not isinstance(loss, str):
        return None
    if type(optimizer) not in (Adam, AdamW) or not hooks_free(optimizer):
        return None
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("amsgrad") or group.get("maximize") or (
                group.get("capturable") or group.get("differentiable")):
            return None
        if not all(isinstance(group[k], float) for k in ("lr", "weight_decay", "eps")) \
                or not all(isinstance(b, float) for b in group["betas"]):
            return None
    modules = list(model.children())
    if any(_has_hooks(m) for m in [model, *modules]):
        return None
    if not modules or type(modules[0]) is not InputAdapter:
        return None
    adapter, rest = modules[0], modules[1:]
    input_keep = _LEVELS
    if rest and type(rest[0]) in (nn.Dropout, FastDropout):
        keep = _keep(rest[0])
        if keep is None:
            return None
        input_keep, rest = keep, rest[1:]
    layers: list[_Layer] = []
    log_softmax = False
    i = 0
    while i < len(rest):
        linear = rest[i]
        if type(linear) is not nn.Linear:
            return None
        i += 1
        relu, keep = False, _LEVELS
        if i < len(rest) and type(rest[i]) is nn.ReLU:
            relu, i = True, i + 1
            if i < len(rest) and type(rest[i]) in (nn.Dropout, FastDropout):
                keep = _keep(rest[i])
                if keep is None:
                    return None
                i += 1
        layers.append(_Layer(linear, relu, keep))
        if not relu:  # the output layer: only a LogSoftmax may follow
            if i < len(rest):
                if type(rest[i]) is not nn.LogSoftmax or rest[i].dim not in (1, -1) \
                        or i + 1 != len(rest):
                    return None
                log_softmax, i = True, i + 1
            break
    if not layers or layers[-1].relu or i != len(rest):
        return None
    if loss != ("nll" if log_softmax else "cross_entropy") or (log_softmax and label_smoothing):
        return None
    params = [p for layer in layers for p in (layer.linear.weight, layer.linear.bias)
              if p is not None]
    in_groups = [p for group in optimizer.param_groups for p in group["params"]]
    if {id(p) for p in params} != {id(p) for p in in_groups} or len(params) != len(
            in_groups) or len(params) != len(list(model.parameters())):
        return None
    if not all(p.dtype == torch.float32 and p.requires_grad and p.device.type == "cpu"
               and not p.is_sparse for p in params):
        return None
    return Plan(adapter, input_keep, layers, log_softmax)


def _flatten(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One flat copy of ``tensors`` and views of it shaped like each."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]) if tensors else torch.empty(0)
    views, offset = [], 0
    for t in tensors:
        views.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return flat, views


class MLPStep:
    """The training step of one fit: holds the flat buffers while the fit runs.

    The parameters are laid out group after group of the optimizer's parameter groups,
    so that each group is one slice of the flat buffers and one kernel call.

    Args:
        plan: What :func:`plan` returned for the model.
        optimizer: Its Adam or AdamW optimizer.
        precision: ``"fp32"`` or ``"bf16"`` for the products.
        label_smoothing: Of the cross-entropy loss.
    """

    def __init__(self, plan: Plan, optimizer: Optimizer, *, precision: str,
                 label_smoothing: float, batch_size: int, seed: int) -> None:
        self.plan = plan
        self.compute_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        # Dropout sites: the input, then each hidden layer's output.
        self._site_keeps = [plan.input_keep] + [layer.keep for layer in plan.layers[:-1]]
        widths = [plan.layers[0].linear.in_features] + [
            layer.linear.out_features for layer in plan.layers[:-1]]
        self._keeps = [k for k in self._site_keeps if k != _LEVELS]
        self._widths = [w for k, w in zip(self._site_keeps, widths, strict=True)
                        if k != _LEVELS]
        per_batch = self.batch_size * sum(self._widths)
        self._chunk = max(1, _MASK_ELEMENTS // per_batch) if per_batch else 0
        self._chunk_id: tuple[int, int] | None = None
        self._chunk_masks: list[torch.Tensor] = []
        # The input's mask is applied in float32, the hidden layers' in the compute dtype;
        # the backward pass scales by the value the mask holds in that dtype.
        dtypes = [torch.float32] + [self.compute_dtype] * (len(self._site_keeps) - 1)
        self._mask_dtypes = [d for k, d in zip(self._site_keeps, dtypes, strict=True)
                             if k != _LEVELS]
        self._scales = [None if k == _LEVELS else float(torch.tensor(_LEVELS / k, dtype=d))
                        for k, d in zip(self._site_keeps, dtypes, strict=True)]
        adapter = plan.adapter
        self._features = adapter.in_features
        self._pixel_scale = adapter.std.reciprocal() * (1.0 / 255.0)
        self._shift = adapter.mean / adapter.std
        self._minus_one = torch.full((self.batch_size, 1), -(1.0 - float(label_smoothing)),
                                     dtype=torch.float32)
        self.optimizer = optimizer
        self.smoothing = float(label_smoothing)
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self._groups: list[tuple[int, int, int]] = []  # (start, stop, first param index)
        start = index = 0
        for group in optimizer.param_groups:
            stop = start + sum(p.numel() for p in group["params"])
            self._groups.append((start, stop, index))
            start, index = stop, index + len(group["params"])
        self._state_views: tuple[torch.Tensor, ...] | None = None
        self._attach_params()

    # ---------------------------------------------------------------- flat buffers
    def _attach_params(self) -> None:
        """Make the parameters and their gradients views of one flat tensor each."""
        self.flat, views = _flatten(self.params)
        self.flat_grad = torch.zeros_like(self.flat)
        self.flat_lowp = None
        if self.compute_dtype != torch.float32:
            self.flat_lowp = torch.empty(self.flat.shape, dtype=self.compute_dtype)
        compute: dict[int, torch.Tensor] = {}
        offset = 0
        for p, view in zip(self.params, views, strict=True):
            p.data = view
            p.grad = self.flat_grad[offset:offset + p.numel()].view_as(p)
            source = self.flat if self.flat_lowp is None else self.flat_lowp
            compute[id(p)] = source[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        self._param_ptrs = self._ptrs(self.params)
        self._grad_ptrs = self._ptrs([p.grad for p in self.params])

        def pair(linear: nn.Linear, table: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
            bias = linear.bias
            return table(linear.weight), None if bias is None else table(bias)

        self._weights = [pair(layer.linear, lambda p: compute[id(p)])
                         for layer in self.plan.layers]
        self._grads = [pair(layer.linear, lambda p: p.grad) for layer in self.plan.layers]

    @staticmethod
    def _ptrs(tensors: list[Any]) -> tuple[int, ...]:
        return tuple(-1 if t is None else t.data_ptr() for t in tensors)

    def _attach_state(self) -> bool:
        """Make Adam's averages and step counts views of flat tensors (after its first step)."""
        state = self.optimizer.state
        entries = [state.get(p) for p in self.params]
        if not all(e and {"exp_avg", "exp_avg_sq", "step"} <= set(e) for e in entries):
            return False
        steps = [e["step"] for e in entries]
        if not all(isinstance(s, torch.Tensor) and s.dim() == 0 and s.dtype == torch.float32
                   for s in steps) or len({float(s) for s in steps}) != 1:
            return False
        self.flat_avg, avgs = _flatten([e["exp_avg"] for e in entries])
        self.flat_sq, sqs = _flatten([e["exp_avg_sq"] for e in entries])
        self.steps = torch.stack([s.detach() for s in steps])
        for i, e in enumerate(entries):
            e["exp_avg"], e["exp_avg_sq"], e["step"] = avgs[i], sqs[i], self.steps[i]
        self._state_views = tuple(t for e in entries
                                  for t in (e["exp_avg"], e["exp_avg_sq"], e["step"]))
        self._kernel_args = [([self.flat[a:b]], [self.flat_grad[a:b]], [self.flat_avg[a:b]],
                               [self.flat_sq[a:b]], [], [self.steps[first]])
                              for a, b, first in self._groups]
        return True

    def _state_intact(self) -> bool:
        views = self._state_views
        if views is None:
            return False
        state = self.optimizer.state
        for i, p in enumerate(self.params):
            e = state.get(p)
            if e is None or e.get("exp_avg") is not views[3 * i] or (
                    e.get("exp_avg_sq") is not views[3 * i + 1]) or (
                    e.get("step") is not views[3 * i + 2]):
                return False
        return True

    def check(self) -> None:
        """Re-attach the buffers if something outside replaced a parameter or gradient."""
        if self._ptrs(self.params) != self._param_ptrs or self._ptrs(
                [p.grad for p in self.params]) != self._grad_ptrs:
            self._attach_params()
            self._state_views = None

    def release(self) -> None:
        """Give every parameter, gradient and optimizer state tensor its own memory again."""
        for p in self.params:
            p.data = p.data.clone()
            if p.grad is not None:
                p.grad = p.grad.clone()
        # Also after check() re-attached the parameters: averages attached before are
        # still views of the earlier flat buffers.
        for p in self.params:
            e = self.optimizer.state.get(p)
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if e and isinstance(e.get(key), torch.Tensor) and e[key]._is_view():
                    e[key] = e[key].clone()
        self._state_views = None

    # ---------------------------------------------------------------- the step
    def _masks(self, n: int, epoch: int, batch: int, offset: int = 0
               ) -> list[torch.Tensor | None]:
        """The dropout masks of a batch (``None`` where a site has no dropout).

        Masks are drawn for a chunk of batches at once, from a generator seeded by the
        run's seed, the epoch and the chunk's position, and kept as ``0`` or
        ``1 / keep-probability`` in the compute dtype.
        """
        chunk = batch // self._chunk
        if self._chunk_id != (epoch, chunk):
            generator = torch.Generator().manual_seed(
                mix_seed(self.seed, epoch, _DROPOUT_STREAM, chunk))
            rows = self._chunk * self.batch_size
            width = sum(self._widths)
            draws = torch.empty((rows * width + 3) // 4, dtype=torch.int64)
            draws.random_(-(2**63), 2**63 - 1, generator=generator)
            table = draws.view(torch.int16)[:rows * width].view(self._chunk, self.batch_size,
                                                                width)
            masks, column = [], 0
            for keep, w, dtype in zip(self._keeps, self._widths, self._mask_dtypes, strict=True):
                kept = table[:, :, column:column + w] < (keep - _LEVELS // 2)
                masks.append(kept.to(dtype).mul_(_LEVELS / keep))
                column += w
            self._chunk_masks, self._chunk_id = masks, (epoch, chunk)
        row = batch - chunk * self._chunk
        whole = offset == 0 and n == self.batch_size
        picked = [m[row] if whole else m[row, offset:offset + n] for m in self._chunk_masks]
        if len(picked) == len(self._site_keeps):
            return picked
        it = iter(picked)
        return [None if keep == _LEVELS else next(it) for keep in self._site_keeps]

    def forward_loss(self, inputs: torch.Tensor, targets: torch.Tensor,
                     weights: torch.Tensor | None, class_weights: torch.Tensor | None,
                     epoch: int, batch: int, *, offset: int = 0, total: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Forward pass and loss of batch ``batch`` of epoch ``epoch`` (both from 0).

        In a distributed fit the inputs are rows ``offset, offset + 1, ...`` of a global
        batch of ``total`` rows: they take those rows' dropout masks, and the gradient is
        their share of the global batch's mean (summed over the ranks afterwards).
        Weighted losses are only taken whole (``total`` = the batch).

        Returns ``(loss, outputs, saved)``: the mean loss of these rows as a 0-d tensor,
        what the model returns (logits, or log-probabilities for a LogSoftmax model) as
        float32, and what :meth:`backward` needs.
        """
        if self.flat_lowp is not None:
            self.flat_lowp.copy_(self.flat)
        plan, cdt = self.plan, self.compute_dtype
        n = len(targets)
        masks = (self._masks(n, epoch, batch, offset) if self._chunk
                 else [None] * len(self._site_keeps))
        flat = inputs.reshape(n, -1) if inputs.dim() > 1 else inputs
        if flat.dtype == torch.uint8 and flat.dim() == 2 and flat.shape[1] == self._features \
                and not plan.adapter.integer_features:
            # The input layer's arithmetic (exact uint8 -> float32, times its scale, minus
            # its shift) in two ops instead of its checks and small tensor ops.
            h = torch.mul(flat, self._pixel_scale).sub_(self._shift)
        else:
            with torch.no_grad():
                h = plan.adapter(inputs)
        if masks[0] is not None:  # in float32, before the cast, as under autocast
            h = h * masks[0]
        if h.dtype != cdt:
            h = h.to(cdt)
        acts = [h]
        last = len(plan.layers) - 1
        for i in range(last + 1):
            weight, bias = self._weights[i]
            z = torch.addmm(bias, h, weight.t()) if bias is not None else h @ weight.t()
            if i == last:
                break
            h = z.relu_()
            if masks[i + 1] is not None:
                h = h.mul_(masks[i + 1])
            acts.append(h)
        logits = z.float()
        logp = torch.log_softmax(logits, 1)
        eps = self.smoothing
        scale: Any = 1.0 / (n if total is None else total)
        if weights is None and class_weights is None and not eps:
            loss = F.nll_loss(logp, targets)
        else:
            per = logp.gather(1, targets.view(-1, 1)).view(-1).neg_()
            if eps:
                per = per.mul_(1.0 - eps).sub_(logp.sum(1), alpha=eps / logp.shape[1])
            if weights is None and class_weights is None:
                loss = per.mean()
            else:
                w = torch.ones_like(per) if class_weights is None else class_weights[targets]
                if weights is not None:
                    w = w * weights
                total = w.sum().clamp_min(torch.finfo(w.dtype).tiny)
                loss = per.mul(w).sum().div_(total)
                scale = w.div_(total).view(-1, 1)
        outputs = logp if plan.log_softmax else logits
        return loss, outputs, (logp, targets, scale, acts, masks)

    def backward(self, saved: Any) -> None:
        """The gradients of the loss, written into the parameters' ``.grad`` (the flat buffer)."""
        logp, targets, scale, acts, masks = saved
        n, k = logp.shape
        grad = logp.exp()  # softmax
        eps = self.smoothing
        if eps:
            grad.sub_(eps / k)
        grad.scatter_add_(1, targets.view(-1, 1), self._minus_one[:n])
        grad.mul_(scale)
        cdt = self.compute_dtype
        for i in range(len(self.plan.layers) - 1, -1, -1):
            gw, gb = self._grads[i]
            d = grad if grad.dtype == cdt else grad.to(cdt)
            if cdt == torch.float32:
                torch.mm(d.t(), acts[i], out=gw)
            else:
                gw.copy_(d.t() @ acts[i])
            if gb is not None:
                torch.sum(d, 0, dtype=torch.float32, out=gb)
            if i > 0:
                # ReLU's gradient where its output (after dropout) is positive; dropout's
                # scale on the elements it kept.
                grad = torch.ops.aten.threshold_backward(d @ self._weights[i][0], acts[i], 0)
                if masks[i] is not None:
                    grad.mul_(self._scales[i])

    @torch.no_grad()
    def optimizer_step(self) -> bool:
        """One Adam/AdamW step on the flat buffers; ``False`` if it must be torch's own."""
        groups = self.optimizer.param_groups
        if not hooks_free(self.optimizer) or len(groups) != len(self._groups):
            return False
        if self._ptrs([p.grad for p in self.params]) != self._grad_ptrs:
            return False  # the gradients are not in the flat buffer (an autograd step)
        if not self._state_intact() and not self._attach_state():
            return False
        for group in groups:
            if not all(isinstance(v, float) for v in (group["lr"], *group["betas"])):
                return False
        decoupled = type(self.optimizer) is AdamW
        self.steps.add_(1)
        for group, args in zip(groups, self._kernel_args, strict=True):
            kernel = (torch._fused_adamw_ if group.get("decoupled_weight_decay", decoupled)
                      else torch._fused_adam_)
            beta1, beta2 = group["betas"]
            kernel(*args, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                   grad_scale=None, found_inf=None)
        return True
