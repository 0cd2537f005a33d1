"""Explore pure-MLP training recipes for Fashion-MNIST on a small CPU (research for issue 4).

Plain PyTorch, independent of the fcnet Trainer. The whole data set is one tensor, a batch is
an index slice of a ``randperm`` and augmentation works on whole batches.

Selection is done on a stratified 48,000 / 12,000 split of the training images; the test set
is only evaluated when ``--test`` is given (finalists only).

Examples::

    python benchmarks/explore_best_mlp.py --widths 1024 1024 1024 --epochs 10
    python benchmarks/explore_best_mlp.py --throughput --widths 2048 2048 2048
    python benchmarks/explore_best_mlp.py --widths 1024 1024 1024 --epochs 60 \\
        --shift 2 --flip --ema 0.999 --tta --test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gzip
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fcnet.models import GEGLU, FastDropout

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")


def load_idx(name: str, offset: int) -> np.ndarray:
    """Read one gzipped IDX file as a flat uint8 array, skipping its header."""
    with gzip.open(DATA_DIR / name, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_data(seed: int, refit: bool = False) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return float images in [0, 1] (N, 28, 28) and labels for train / val / test; with
    ``refit``, train is all 60,000 training images and there is no val."""
    xtr = load_idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    ytr = load_idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xte = load_idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    yte = load_idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    # Stratified 80/20 split: 1,200 validation images per class.
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in range(10):
        idx = np.flatnonzero(ytr == c)
        val_idx.append(rng.permutation(idx)[: len(idx) // 5])
    val_mask = np.zeros(len(ytr), dtype=bool)
    if not refit:
        val_mask[np.concatenate(val_idx)] = True

    def to_t(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y)

    data = {"train": to_t(xtr[~val_mask], ytr[~val_mask]), "test": to_t(xte, yte)}
    if not refit:
        data["val"] = to_t(xtr[val_mask], ytr[val_mask])
    return data


class Maxout(nn.Module):
    """Maxout (Goodfellow et al., 2013) with two pieces: the larger of adjacent features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(len(x), -1, 2).amax(dim=2)


def build(
    widths: list[int], norm: str, act: str, dropout: float, in_drop: float, fast: bool = False,
    heads: int = 1,
) -> nn.Module:
    """Flatten -> [Linear -> norm -> act -> dropout] * len(widths) -> Linear(10). With the
    two-input units (``glu``, ``maxout``) each Linear has twice ``w`` outputs. With
    ``heads`` > 1 it takes ``heads`` images side by side and gives 10 logits for each
    (see :class:`Mimo`)."""
    acts = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "glu": GEGLU, "maxout": Maxout}
    pieces = 2 if act in ("glu", "maxout") else 1
    drop = FastDropout if fast else nn.Dropout
    layers: list[nn.Module] = [nn.Flatten()]
    if in_drop > 0:
        layers.append(drop(in_drop))
    prev = 784 * heads
    for w in widths:
        # Bias is redundant right before BatchNorm.
        layers.append(nn.Linear(prev, pieces * w, bias=norm != "batch"))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(pieces * w))
        elif norm == "layer":
            layers.append(nn.LayerNorm(pieces * w))
        layers.append(acts[act]())
        if dropout > 0:
            layers.append(drop(dropout))
        prev = w
    layers.append(nn.Linear(prev, 10 * heads))
    return nn.Sequential(*layers)


class Mimo(nn.Module):
    """Multi-input multi-output (Havasi et al., 2021, "Training independent subnetworks
    for robust prediction"): one fully-connected network takes ``m`` images side by side
    and classifies each with its own 10 outputs, so ``m`` subnetworks that share the
    hidden units learn at once. In training, (B, m, 28, 28) inputs give (B, m, 10) logits;
    a (B, 28, 28) batch is an evaluation: the image fills every slot and the output is the
    log of the heads' mean probabilities, one forward pass of one network."""

    def __init__(self, net: nn.Module, m: int) -> None:
        super().__init__()
        self.net, self.m = net, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            out = self.net(x[:, None].expand(-1, self.m, -1, -1).reshape(len(x), -1))
            logp = F.log_softmax(out.view(len(x), self.m, -1), dim=2)
            return torch.logsumexp(logp, dim=1) - math.log(self.m)
        return self.net(x.reshape(len(x), -1)).view(len(x), self.m, -1)


def mimo_batch(
    x: torch.Tensor, y: torch.Tensor, m: int, repeat: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch of a :class:`Mimo` network: slot 0 holds the batch, each other
    slot a shuffle of it, except that a ``repeat`` share of the rows repeats slot 0's image
    (input repetition, which lets the subnetworks share features). Returns the
    (B, m, 28, 28) images and their (B, m) labels."""
    b = len(x)
    idx = [torch.arange(b)]
    for _ in range(1, m):
        perm = torch.randperm(b, generator=gen)
        same = torch.rand(b, generator=gen) < repeat
        idx.append(torch.where(same, idx[0], perm))
    index = torch.stack(idx, dim=1)
    return x[index], y[index]


class Whiten(nn.Module):
    """Fixed ZCA whitening of the flattened pixels: ``(x - mu) @ W`` with
    ``W = U diag((lambda + eps) ** -power) U^T`` from the training images' covariance
    (``power`` 0.5: ZCA). A negative ``power`` colours instead: it scales each principal
    direction by its standard deviation to the power ``-2 * power``, so strong directions
    grow relative to weak ones; the output is then scaled to unit mean variance per pixel.
    A fully-connected layer whose weights are computed once and never trained."""

    def __init__(self, x: torch.Tensor, eps: float, power: float = 0.5) -> None:
        super().__init__()
        x = x.reshape(len(x), -1).double()
        mu = x.mean(0)
        xc = x - mu
        lam, u = torch.linalg.eigh(xc.T @ xc / len(x))
        lam = lam.clamp_min(0)
        scale = (lam + eps) ** -power
        if power != 0.5:
            scale = scale / (lam * scale**2).mean().sqrt()
        w = (u * scale) @ u.T
        self.register_buffer("mu", mu.float())
        self.register_buffer("w", w.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(len(x), -1) - self.mu) @ self.w


def augment(x: torch.Tensor, args: argparse.Namespace, gen: torch.Generator) -> torch.Tensor:
    """Batch augmentation on (B, 28, 28) images: flip, integer shift, random erasing."""
    b = x.shape[0]
    if args.flip:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None], x.flip(-1), x)
    if args.shift > 0:
        p = args.shift
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=gen)
        ar = torch.arange(28)
        rows = (dy[:, None] + ar)[:, :, None]
        cols = (dx[:, None] + ar)[:, None, :]
        x = padded[torch.arange(b)[:, None, None], rows, cols]
    if args.scale > 0:
        # Brightness: each image times a factor drawn from U(1 - scale, 1 + scale), kept
        # in [0, 1]; the pixels stay where they are.
        f = 1 + args.scale * (2 * torch.rand(b, generator=gen) - 1)
        x = (x * f[:, None, None]).clamp_(0, 1)
    if args.erase > 0:
        # One rectangle per chosen image, side lengths 4..12 px, filled with zeros.
        sel = torch.rand(b, generator=gen) < args.erase
        h = torch.randint(4, 13, (b,), generator=gen)
        w = torch.randint(4, 13, (b,), generator=gen)
        y0 = (torch.rand(b, generator=gen) * (29 - h)).long()
        x0 = (torch.rand(b, generator=gen) * (29 - w)).long()
        ar = torch.arange(28)
        rmask = (ar[None] >= y0[:, None]) & (ar[None] < (y0 + h)[:, None])
        cmask = (ar[None] >= x0[:, None]) & (ar[None] < (x0 + w)[:, None])
        mask = rmask[:, :, None] & cmask[:, None, :] & sel[:, None, None]
        x = x.masked_fill(mask, 0.0)
    return x


def mixed_loss(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, yb2: torch.Tensor | None,
    lam: float, ls: float, target: torch.Tensor | None = None, kd: float = 0.0,
    temp: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy of ``model(xb)``; with mixup, ``lam`` of it against ``yb`` and the rest
    against ``yb2``. With teacher probabilities ``target`` for the batch as the model sees it,
    ``kd`` of the loss is distillation (see :func:`distill_loss`)."""
    out = model(xb)
    if out.dim() == 3:  # a Mimo network's (B, m, 10) logits against (B, m) labels
        out, yb = out.reshape(-1, out.shape[-1]), yb.reshape(-1)
    loss = F.cross_entropy(out, yb, label_smoothing=ls)
    if yb2 is not None:
        loss = lam * loss + (1 - lam) * F.cross_entropy(out, yb2, label_smoothing=ls)
    if target is not None:
        loss = distill_loss(loss, out, target, kd, temp)
    return loss


def rdrop_loss(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, ls: float, alpha: float
) -> torch.Tensor:
    """R-Drop (Liang et al., 2021): two passes with different dropout masks, the mean of
    their cross-entropies plus ``alpha`` times their symmetric KL divergence."""
    out = model(torch.cat([xb, xb]))
    o1, o2 = out.chunk(2)
    ce = 0.5 * (F.cross_entropy(o1, yb, label_smoothing=ls)
                + F.cross_entropy(o2, yb, label_smoothing=ls))
    l1, l2 = F.log_softmax(o1, 1), F.log_softmax(o2, 1)
    kl = 0.5 * (F.kl_div(l1, l2, log_target=True, reduction="batchmean")
                + F.kl_div(l2, l1, log_target=True, reduction="batchmean"))
    return ce + alpha * kl


@torch.no_grad()
def teacher_probs(teachers: list[nn.Module], xb: torch.Tensor, temp: float) -> torch.Tensor:
    """The teachers' mean class probabilities at temperature ``temp`` (evaluation mode)."""
    return torch.stack([F.softmax(t.eval()(xb) / temp, 1) for t in teachers]).mean(0)


def distill_loss(
    hard: torch.Tensor, out: torch.Tensor, target: torch.Tensor, alpha: float, temp: float = 1.0
) -> torch.Tensor:
    """``(1 - alpha)`` of the label loss ``hard`` (computed on the logits ``out``) plus
    ``alpha`` of the KL divergence from the teachers' probabilities ``target`` (taken at
    temperature ``temp``) to ``softmax(out / temp)``, times ``temp ** 2`` so that its
    gradients keep their scale as ``temp`` grows (Hinton et al., 2015)."""
    if alpha <= 0:
        return hard
    logp = F.log_softmax(out / temp, 1)
    soft = F.kl_div(logp, target, reduction="batchmean") * temp**2
    return (1 - alpha) * hard + alpha * soft


def self_distill_loss(
    model: nn.Module, teacher: nn.Module, xb: torch.Tensor, yb: torch.Tensor, ls: float,
    alpha: float,
) -> torch.Tensor:
    """Mean-teacher self-distillation: ``(1 - alpha)`` of the label loss plus ``alpha`` of
    the cross-entropy against the EMA model's probabilities (evaluation mode, no dropout)."""
    out = model(xb)
    loss = F.cross_entropy(out, yb, label_smoothing=ls)
    if alpha <= 0:
        return loss
    return distill_loss(loss, out, teacher_probs([teacher], xb, 1.0), alpha)


@torch.no_grad()
def report_teachers(teachers: list[nn.Module], x: torch.Tensor, y: torch.Tensor, mean: float,
                    std: float) -> None:
    """Print each teacher's validation accuracy and that of their mean probabilities."""
    xs = (x - mean) / std
    probs = [F.softmax(t.eval()(xs), 1) for t in teachers]
    for i, p in enumerate(probs):
        print(f"teacher {i} val_acc {(p.argmax(1) == y).float().mean().item():.4f}")
    ens = torch.stack(probs).mean(0)
    print(f"ENSEMBLE of {len(probs)} val_acc {(ens.argmax(1) == y).float().mean().item():.4f}")


def load_teachers(paths: list[Path], args: argparse.Namespace, xtr: torch.Tensor) -> list:
    """The networks saved by ``--save`` at ``paths``, checked to share this run's split."""
    teachers = []
    for path in paths:
        saved = torch.load(path, weights_only=False)
        targs = argparse.Namespace(**{"refit": False, **saved["args"]})
        if (targs.split_seed, targs.gamma, targs.refit) != (args.split_seed, args.gamma,
                                                            args.refit):
            raise SystemExit(
                f"{path}: teacher trained on split {targs.split_seed} (refit {targs.refit}) "
                f"with gamma {targs.gamma}; this run uses {args.split_seed} (refit "
                f"{args.refit}), {args.gamma}")
        if saved.get("kind") == "cnn":
            from cnn_teacher import build_teacher  # a convolutional teacher, never a student

            teacher = build_teacher(targs)
        else:
            teacher = make_model(targs, xtr)
        teacher.load_state_dict(saved["state"])
        teachers.append(teacher.eval())
    return teachers


def mutual_loss(
    model: nn.Module, peer: nn.Module, xb: torch.Tensor, yb: torch.Tensor, ls: float,
    weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deep mutual learning (Zhang et al., 2018): two networks train side by side on the
    same batch; each adds ``weight`` times the KL divergence from the other's (detached)
    probabilities to its cross-entropy. Returns the two losses, whose gradients touch
    disjoint parameters, so their sum can be back-propagated once."""
    oa, ob = model(xb), peer(xb)
    la, lb = F.log_softmax(oa, 1), F.log_softmax(ob, 1)
    kl_a = F.kl_div(la, lb.detach(), log_target=True, reduction="batchmean")
    kl_b = F.kl_div(lb, la.detach(), log_target=True, reduction="batchmean")
    loss_a = F.cross_entropy(oa, yb, label_smoothing=ls) + weight * kl_a
    loss_b = F.cross_entropy(ob, yb, label_smoothing=ls) + weight * kl_b
    return loss_a, loss_b


def unit_l2(v: torch.Tensor) -> torch.Tensor:
    """``v`` with each sample (first dimension) scaled to L2 length 1."""
    flat = v.flatten(1)
    return (flat / (flat.norm(dim=1, keepdim=True) + 1e-12)).view_as(v)


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Leave BatchNorm running statistics unchanged by the forward passes inside."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom


def adversarial_backward(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, ls: float, eps: float,
    weight: float, norm: str = "linf",
) -> torch.Tensor:
    """Adversarial training (Goodfellow et al., 2015): ``1 - weight`` of the cross-entropy
    of the batch plus ``weight`` of that of the batch moved by ``eps`` along the gradient
    of the loss with respect to the input (its sign for ``"linf"``, the gradient scaled to
    L2 length ``eps`` per image for ``"l2"``). ``eps`` is in the units of ``xb``. The
    weight gradients of both passes are accumulated here (two forward and two backward
    passes; the first also yields the input gradient); returns the detached loss."""
    xr = xb.detach().requires_grad_(True)
    clean = F.cross_entropy(model(xr), yb, label_smoothing=ls)
    params = [p for p in model.parameters() if p.requires_grad]
    g, *grads = torch.autograd.grad(clean, [xr, *params])
    with torch.no_grad():
        for p, gp in zip(params, grads, strict=True):
            gp = gp * (1 - weight)
            p.grad = gp if p.grad is None else p.grad + gp
    step = eps * (g.sign() if norm == "linf" else unit_l2(g))
    adv = F.cross_entropy(model(xb.detach() + step), yb, label_smoothing=ls)
    (weight * adv).backward()
    return ((1 - weight) * clean + weight * adv).detach()


def vat_backward(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, ls: float, eps: float,
    weight: float, xi: float, gen: torch.Generator,
) -> torch.Tensor:
    """Virtual adversarial training (Miyato et al., 2018): the cross-entropy of the batch
    plus ``weight`` times the KL divergence of the model's probabilities at ``x + r`` from
    those at ``x``, where ``r`` (L2 length ``eps`` per image, in the units of ``xb``) is
    the direction one power iteration (from a random direction scaled to ``xi``) finds
    the output most sensitive to. The clean probabilities are those of the training pass
    (dropout on), held constant. BatchNorm running statistics are left as the clean pass
    set them. Accumulates the weight gradients; returns the detached loss."""
    out = model(xb)
    ce = F.cross_entropy(out, yb, label_smoothing=ls)
    ce.backward()
    logp = F.log_softmax(out.detach(), 1)
    with frozen_bn_stats(model):
        d = (xi * unit_l2(torch.randn(xb.shape, generator=gen))).requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(xb + d), 1), logp, log_target=True,
                      reduction="batchmean")
        (g,) = torch.autograd.grad(kl, d)
        lds = F.kl_div(F.log_softmax(model(xb + eps * unit_l2(g)), 1), logp, log_target=True,
                       reduction="batchmean")
        (weight * lds).backward()
    return (ce + weight * lds).detach()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` over parameters and float buffers."""
    for pe, pm in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if pe.dtype.is_floating_point:
            pe.mul_(decay).add_(pm, alpha=1 - decay)
        else:
            pe.copy_(pm)


def sam_second_pass(model: nn.Module, batch_loss, rho: float) -> None:
    """Sharpness-aware minimisation (Foret et al., 2021): replace the gradients by those at
    ``w + rho * g / ||g||``. BatchNorm running statistics are left as the first pass set them."""
    params = [p for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        scale = rho / (norm + 1e-12)
        eps = [p.grad * scale for p in params]
        for p, e in zip(params, eps, strict=True):
            p.add_(e)
    for p in params:
        p.grad = None
    with frozen_bn_stats(model):
        batch_loss().backward()
    with torch.no_grad():
        for p, e in zip(params, eps, strict=True):
            p.sub_(e)


def swa_first_step(total: int, args: argparse.Namespace) -> int:
    """The step from which ``--swa-start`` holds the learning rate and averages."""
    return int(args.swa_start * total)


def lr_at(step: int, total: int, args: argparse.Namespace) -> float:
    """One-cycle: linear warm-up then cosine (or linear) decay to lr * final_div. With
    ``--swa-start`` the decay ends at ``--swa-lr`` at that point, which then stays."""
    lo = args.lr * args.final_div
    if args.swa_start > 0:
        total, lo = swa_first_step(total, args), args.swa_lr
        if step >= total:
            return lo
    warm = max(1, int(args.warmup * total))
    if step < warm:
        return args.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    if args.sched == "linear":
        return lo + (args.lr - lo) * (1 - t)
    return lo + (args.lr - lo) * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: float, std: float, tta: bool
) -> tuple[float, float]:
    """Return (loss, accuracy); with ``tta`` the logits of the image and its flip are averaged."""
    model.eval()
    logits = []
    for i in range(0, len(x), 2000):
        xb = (x[i : i + 2000] - mean) / std
        out = model(xb)
        if tta:
            out = 0.5 * (out + model(xb.flip(-1)))
        logits.append(out)
    out = torch.cat(logits)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def throughput(args: argparse.Namespace) -> None:
    """Print training samples/s (forward + backward + AdamW step) for the configured model."""
    model = build(args.widths, args.norm, args.act, args.dropout, args.in_drop, args.fast_dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch_size, 28, 28)
    y = torch.randint(0, 10, (args.batch_size,))
    model.train()
    for n_steps, timed in ((3, False), (args.tp_steps, True)):
        t0 = time.perf_counter()
        for _ in range(n_steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if timed:
            dt = time.perf_counter() - t0
            sps = n_steps * args.batch_size / dt
            print(
                f"widths={args.widths} bs={args.batch_size} norm={args.norm} "
                f"params={sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
                f"samples/s={sps:.0f} s/epoch(48k)={48000 / sps:.1f}"
            )


def make_model(args: argparse.Namespace, xtr: torch.Tensor) -> nn.Module:
    """The configured network, behind a whitening layer fitted on ``xtr`` if ``--whiten``,
    or ``--mimo`` subnetworks in one network."""
    m = getattr(args, "mimo", 1)  # networks saved before --mimo existed have one head
    model = build(args.widths, args.norm, args.act, args.dropout, args.in_drop, args.fast_dropout,
                  heads=m)
    if m > 1:
        return Mimo(model, m)
    if args.whiten > 0:
        # The whitening layer takes the [0, 1] pixels itself.
        model = nn.Sequential(Whiten(xtr, args.whiten), *model)
    elif args.color > 0:
        model = nn.Sequential(Whiten(xtr, 1e-6, -args.color), *model)
    return model


def make_optimizer(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW (decoupled decay) or SGD with Nesterov momentum (L2 decay), with weight decay
    on the weight matrices only (none on biases and norms)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.wd},
              {"params": no_decay, "weight_decay": 0.0}]
    if args.opt == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, args.beta2))


def train(args: argparse.Namespace) -> None:
    """Train one model with the configured recipe and print per-epoch validation accuracy."""
    t_start = time.perf_counter()
    # CPU time is logged next to wall time because the machine is shared; note that it is
    # inflated too when threads are oversubscribed, so it is no exact quiet-machine proxy.
    c_start = time.process_time()
    data = load_data(args.split_seed, refit=args.refit)
    if args.gamma != 1.0:
        # Per-pixel intensity curve x ** gamma (gamma < 1 lifts dark detail).
        data = {k: (x.pow(args.gamma), y) for k, (x, y) in data.items()}
    xtr, ytr = data["train"]
    xva, yva = data.get("val", (None, None))  # none with --refit
    mean, std = xtr.mean().item(), xtr.std().item()
    gen = torch.Generator().manual_seed(args.seed)
    # Building the teachers draws initial weights too: seed after them.
    teachers = load_teachers(args.kd_teacher, args, xtr) if args.kd_teacher else None
    if args.teachers_only:
        report_teachers(teachers, xva, yva, mean, std)
        return
    torch.manual_seed(args.seed)
    model = make_model(args, xtr)
    if args.whiten > 0 or args.color > 0:
        mean, std = 0.0, 1.0  # the whitening layer centres and scales
    opt = make_optimizer(model, args)
    ema = copy.deepcopy(model) if args.ema > 0 else None
    cached = None
    if teachers:
        # In evaluation mode a teacher is a fixed function: on un-augmented images its
        # probabilities are computed once instead of at every step.
        cached = torch.cat([teacher_probs(teachers, (xtr[i : i + 2000] - mean) / std,
                                          args.kd_temp) for i in range(0, len(xtr), 2000)])
    peer = peer_opt = peer_ema = None
    if args.mutual > 0:
        torch.manual_seed(args.seed + 1000)  # the peer starts from other weights
        peer = make_model(args, xtr)
        peer_opt = make_optimizer(peer, args)
        peer_ema = copy.deepcopy(peer) if ema is not None else None
    swa, n_swa = None, 0
    n = len(xtr)
    steps_per_epoch = n // args.batch_size  # drop the last partial batch
    total = steps_per_epoch * args.epochs
    step = 0
    best = (0.0, 0)
    for epoch in range(1, args.epochs + 1):
        t_ep = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot_loss = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            aug_on = epoch <= args.epochs - args.clean_epochs
            augmented = False
            if aug_on:
                # augment() hands back its input itself when no augmentation is on.
                xa = augment(xb, args, gen)
                augmented, xb = xa is not xb, xa
            xb = (xb - mean) / std
            if args.mimo > 1:
                xb, yb = mimo_batch(xb, yb, args.mimo, args.mimo_repeat, gen)
            lam = 1.0
            if aug_on and args.mixup > 0 and torch.rand(1, generator=gen).item() < args.mix_prob:
                lam = float(
                    np.random.default_rng(step + args.seed * 7919).beta(args.mixup, args.mixup)
                )
                perm_b = torch.randperm(len(xb), generator=gen)
                if args.cutmix:
                    # Box with area fraction 1 - lam, same box for the whole batch.
                    cut = math.sqrt(1 - lam)
                    ch, cw = int(28 * cut), int(28 * cut)
                    cy, cx = np.random.default_rng(step).integers(0, 28, 2)
                    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, 28)
                    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, 28)
                    xb = xb.clone()
                    xb[:, y0:y1, x0:x1] = xb[perm_b, y0:y1, x0:x1]
                    lam = 1 - (y1 - y0) * (x1 - x0) / 784
                else:
                    xb = lam * xb + (1 - lam) * xb[perm_b]
                yb2 = yb[perm_b]
            target = None
            if teachers:
                changed = augmented or lam < 1.0
                target = (teacher_probs(teachers, xb, args.kd_temp) if changed
                          else cached[idx])
            for o in (opt, peer_opt) if peer_opt is not None else (opt,):
                for g in o.param_groups:
                    g["lr"] = lr_at(step, total, args)
            batch_loss = functools.partial(
                mixed_loss, model, xb, yb, yb2 if lam < 1.0 else None, lam, args.ls,
                target, args.kd_weight, args.kd_temp,
            )
            opt.zero_grad(set_to_none=True)
            if peer is not None:
                peer.train()
                loss, peer_loss = mutual_loss(model, peer, xb, yb, args.ls, args.mutual)
                peer_opt.zero_grad(set_to_none=True)
                loss = loss + peer_loss  # disjoint parameters: one backward serves both
            elif args.rdrop > 0:
                loss = rdrop_loss(model, xb, yb, args.ls, args.rdrop)
            elif args.self_distill > 0:
                ramp = min(1.0, step / max(1, args.sd_ramp * total))
                loss = self_distill_loss(model, ema, xb, yb, args.ls, args.self_distill * ramp)
            elif args.adv > 0:
                # --adv is in pixel units ([0, 1]); xb is standardised by std.
                loss = adversarial_backward(model, xb, yb, args.ls, args.adv / std,
                                            args.adv_weight, args.adv_norm)
            elif args.vat > 0:
                loss = vat_backward(model, xb, yb, args.ls, args.vat / std, args.vat_weight,
                                    args.vat_xi / std, gen)
            else:
                loss = batch_loss()
            if args.adv <= 0 and args.vat <= 0:  # those two back-propagate themselves
                loss.backward()
            if args.sam > 0:
                sam_second_pass(model, batch_loss, args.sam)
            opt.step()
            if peer_opt is not None:
                peer_opt.step()
            step += 1
            tot_loss += loss.item()
            if ema is not None and step >= args.ema_start * total:
                # Warm-up of the decay so early averages are not dominated by the init.
                d = min(args.ema, (1 + step) / (10 + step))
                ema_update(ema, model, d)
                if peer_ema is not None:
                    ema_update(peer_ema, peer, d)
        if args.swa_start > 0 and step > swa_first_step(total, args):
            # Stochastic weight averaging (Izmailov et al., 2018): an equal-weight mean
            # of the weights at the end of every epoch of the constant-rate phase.
            # update_bn below recomputes the BatchNorm statistics the average also takes.
            if swa is None:
                swa, n_swa = copy.deepcopy(model), 1
            else:
                n_swa += 1
                ema_update(swa, model, 1 - 1 / n_swa)
        ep_time = time.perf_counter() - t_ep
        msg = f"epoch {epoch:3d} loss {tot_loss / steps_per_epoch:.4f} "
        if xva is not None and (epoch % args.eval_every == 0 or epoch == args.epochs):
            _, acc = evaluate(model, xva, yva, mean, std, args.tta)
            msg += f"val {acc:.4f} "
            if ema is not None:
                _, eacc = evaluate(ema, xva, yva, mean, std, args.tta)
                msg += f"ema_val {eacc:.4f} "
                acc = eacc  # the EMA weights are what we would ship
            if peer is not None:
                _, pacc = evaluate(peer_ema if peer_ema is not None else peer, xva, yva,
                                   mean, std, args.tta)
                msg += f"peer_val {pacc:.4f} "
            best = max(best, (acc, epoch))
        msg += (
            f"({ep_time:.1f}s, total {time.perf_counter() - t_start:.0f}s, "
            f"cpu {time.process_time() - c_start:.0f}s)"
        )
        print(msg, flush=True)
    final = ema if ema is not None else model
    wall = time.perf_counter() - t_start
    cpu = time.process_time() - c_start
    name, times = "ema" if ema is not None else "model", f"wall {wall:.0f}s cpu {cpu:.0f}s"
    if xva is None:
        print(f"FINAL {name} {times}")
    else:
        vloss, vacc = evaluate(final, xva, yva, mean, std, args.tta)
        print(f"FINAL {name} val_acc {vacc:.4f} val_loss {vloss:.4f} {times} "
              f"best_val {best[0]:.4f} at epoch {best[1]}")
    if args.save:
        torch.save({"args": vars(args), "state": final.state_dict()}, args.save)
        print(f"saved {args.save}")
    if swa is not None:
        # The averaged weights need their own BatchNorm statistics: one pass over the
        # training images in training mode (dropout on, as during training).
        torch.optim.swa_utils.update_bn(
            [(xtr[i : i + 512] - mean) / std for i in range(0, n, 512)], swa
        )
        if xva is not None:
            sloss, sacc = evaluate(swa, xva, yva, mean, std, args.tta)
            print(f"SWA of {n_swa} epochs val_acc {sacc:.4f} val_loss {sloss:.4f}")
    if args.tta and xva is not None:
        _, v_notta = evaluate(final, xva, yva, mean, std, False)
        print(f"  (val without TTA {v_notta:.4f})")
    if args.test or args.refit:
        # The test set is read once, for one set of weights: with --refit there is no
        # validation split to choose between them, so the SWA average asked for is tested.
        tested, label = (swa, "SWA") if args.refit and swa is not None else (final, name)
        xte, yte = data["test"]
        tloss, tacc = evaluate(tested, xte, yte, mean, std, args.tta)
        print(f"TEST acc {tacc:.4f} loss {tloss:.4f} ({label} weights)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the recipe options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[1024, 1024, 1024])
    p.add_argument("--norm", choices=["batch", "layer", "none"], default="batch")
    p.add_argument("--act", choices=["relu", "gelu", "silu", "glu", "maxout"], default="gelu")
    p.add_argument("--dropout", type=float, default=0.2, help="after every hidden layer")
    p.add_argument("--in-drop", type=float, default=0.0, help="dropout on the input pixels")
    p.add_argument("--fast-dropout", action="store_true",
                   help="fcnet.models.FastDropout (other, faster CPU masks) instead of nn.Dropout")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256, help="samples per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--opt", choices=["adamw", "sgd"], default="adamw",
                   help="sgd: Nesterov momentum, --wd as L2 decay (try 5e-4)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--wd", type=float, default=0.05, help="AdamW decoupled weight decay")
    p.add_argument("--sched", choices=["cos", "linear"], default="cos")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of steps")
    p.add_argument("--final-div", type=float, default=0.01, help="final lr / peak lr")
    p.add_argument("--ls", type=float, default=0.1, help="label smoothing")
    p.add_argument("--flip", action="store_true", help="random horizontal flip")
    p.add_argument("--shift", type=int, default=0, help="max random shift in px")
    p.add_argument("--scale", type=float, default=0.0,
                   help="brightness jitter: multiply each image by U(1 - s, 1 + s)")
    p.add_argument("--erase", type=float, default=0.0, help="random-erasing probability")
    p.add_argument("--mixup", type=float, default=0.0, help="Beta(a, a) parameter; 0 = off")
    p.add_argument("--mix-prob", type=float, default=1.0, help="fraction of batches mixed")
    p.add_argument("--cutmix", action="store_true", help="cutmix instead of mixup")
    p.add_argument("--clean-epochs", type=int, default=0, help="last epochs without aug")
    p.add_argument("--gamma", type=float, default=1.0,
                   help="feed pixels (in [0, 1]) raised to this power; 1 = unchanged")
    p.add_argument("--whiten", type=float, default=0.0,
                   help="ZCA-whiten the pixels with this eps (fixed first layer); 0 = off")
    p.add_argument("--color", type=float, default=0.0,
                   help="fixed colouring layer: principal directions scaled by their std ** "
                   "(2 * COLOR), the opposite of whitening; 0 = off")
    p.add_argument("--mutual", type=float, default=0.0,
                   help="deep mutual learning with a peer network, KL weight; 0 = off "
                   "(the logged loss is then the sum of both networks')")
    p.add_argument("--sam", type=float, default=0.0, help="SAM radius rho; 0 = off")
    p.add_argument("--adv", type=float, default=0.0,
                   help="adversarial training radius in pixel units ([0, 1]); 0 = off")
    p.add_argument("--adv-weight", type=float, default=0.5,
                   help="share of the loss on the adversarial batch")
    p.add_argument("--adv-norm", choices=["linf", "l2"], default="linf",
                   help="linf: eps * sign(grad) (FGSM); l2: grad scaled to length eps")
    p.add_argument("--vat", type=float, default=0.0,
                   help="virtual adversarial training: L2 radius per image in pixel units; 0 = off")
    p.add_argument("--vat-weight", type=float, default=1.0, help="weight of the VAT term")
    p.add_argument("--vat-xi", type=float, default=0.1,
                   help="L2 length (pixel units) of the power iteration's probe")
    p.add_argument("--rdrop", type=float, default=0.0, help="R-Drop KL weight; 0 = off")
    p.add_argument("--self-distill", type=float, default=0.0,
                   help="weight of the EMA teacher's soft targets (needs --ema); 0 = off")
    p.add_argument("--sd-ramp", type=float, default=0.25,
                   help="fraction of steps over which --self-distill ramps up from 0")
    p.add_argument("--kd-teacher", type=Path, nargs="+", default=None,
                   help="distil from these networks (saved with --save on the same split)")
    p.add_argument("--kd-weight", type=float, default=0.5,
                   help="share of the loss that is distillation from --kd-teacher")
    p.add_argument("--kd-temp", type=float, default=1.0, help="distillation temperature")
    p.add_argument("--teachers-only", action="store_true",
                   help="print the --kd-teacher networks' validation accuracy, alone and "
                   "as an ensemble, and exit")
    p.add_argument("--save", type=Path, default=None,
                   help="save the final (EMA) network and these options here")
    p.add_argument("--swa-start", type=float, default=0.0,
                   help="fraction of steps after which the lr stays at --swa-lr and the "
                   "weights are averaged once per epoch (SWA); 0 = off; with --refit the "
                   "SWA weights are the ones tested")
    p.add_argument("--swa-lr", type=float, default=5e-4, help="the constant lr of SWA")
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay per step; 0 = off")
    p.add_argument("--ema-start", type=float, default=0.0, help="fraction of steps")
    p.add_argument("--mimo", type=int, default=1,
                   help="subnetworks in one network (multi-input multi-output); 1 = off")
    p.add_argument("--mimo-repeat", type=float, default=0.5,
                   help="share of rows whose every slot holds the same image (--mimo)")
    p.add_argument("--tta", action="store_true", help="average logits with the flipped image")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--test", action="store_true", help="also report TEST accuracy (finalists)")
    p.add_argument("--refit", action="store_true",
                   help="train on all 60,000 training images (no validation) and report TEST "
                   "accuracy once at the end")
    p.add_argument("--throughput", action="store_true", help="only measure samples/s")
    p.add_argument("--tp-steps", type=int, default=30)
    args = p.parse_args(argv)
    # The losses with a pass or a term of their own: at most one per run.
    special = sum(v > 0 for v in (args.sam, args.rdrop, args.self_distill, args.mutual,
                                  args.adv, args.vat))
    if special > 1:
        p.error("--sam, --rdrop, --self-distill, --mutual, --adv and --vat exclude each other")
    if (args.adv > 0 or args.vat > 0) and args.mixup > 0:
        p.error("--adv and --vat do not take mixup's second labels; drop --mixup")
    if args.mutual > 0 and args.mixup > 0:
        p.error("--mutual does not combine with --mixup")
    if (args.rdrop > 0 or args.self_distill > 0) and args.mixup > 0:
        p.error("--rdrop and --self-distill do not combine with --mixup")
    if args.kd_teacher and special:
        p.error("--kd-teacher combines only with the plain loss (and --mixup)")
    if args.teachers_only and not args.kd_teacher:
        p.error("--teachers-only needs --kd-teacher")
    if args.teachers_only and args.refit:
        p.error("--teachers-only reports validation accuracy; --refit has no validation split")
    if args.mimo < 1 or not 0 <= args.mimo_repeat <= 1:
        p.error(f"--mimo must be >= 1 and --mimo-repeat in [0, 1], got {args.mimo} and "
                f"{args.mimo_repeat}")
    if args.mimo > 1 and (special or args.mixup > 0 or args.kd_teacher or args.whiten > 0
                          or args.color > 0 or args.throughput or args.swa_start > 0):
        p.error("--mimo combines only with the plain loss, augmentation, EMA and --tta")
    if args.self_distill > 0 and args.ema <= 0:
        p.error("--self-distill needs --ema (the EMA model is the teacher)")
    return args


def main() -> None:
    """Entry point."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(vars(args), flush=True)
    if args.throughput:
        throughput(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
