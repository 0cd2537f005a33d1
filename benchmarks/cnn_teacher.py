"""Train a small convolutional network as a *teacher* for a pure-MLP student (issue 4 research).

This network is not an fcnet model and is never called an MLP: it exists to ask whether the
MLP's validation plateau is its capacity or what it can learn from the labels. A student
learns from it with ``explore_best_mlp.py --kd-teacher cnn.pt``; the student stays fully
connected.

The data, split, standardisation and augmentation are ``explore_best_mlp``'s, so a teacher
saved here plugs into that script on the same split (``--split-seed``), or on all 60,000
images with ``--refit``.

Examples::

    python benchmarks/cnn_teacher.py --split-seed 1 --seed 1 --save cnn_s1.pt
    python benchmarks/cnn_teacher.py --refit --save cnn_full.pt    # reports test accuracy
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from explore_best_mlp import augment, evaluate, load_data, lr_at, make_optimizer
from torch import nn


class SmallCNN(nn.Module):
    """Three blocks of 3x3 convolution, BatchNorm, ReLU and 2x2 max-pooling (``c``, ``2c``,
    ``4c`` channels: 28 -> 14 -> 7 -> 3 pixels), then one linear layer to the ten logits.
    Takes standardised (N, 28, 28) images, as the MLPs of ``explore_best_mlp`` do."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for width in (c, 2 * c, 4 * c):
            layers += [nn.Conv2d(prev, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev * 9, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of (N, 28, 28) images."""
        x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x).flatten(1))


def build_teacher(args: argparse.Namespace) -> nn.Module:
    """The network a saved teacher's options describe, in channels-last layout (faster
    convolutions on CPU)."""
    return SmallCNN(args.channels).to(memory_format=torch.channels_last)


def train(args: argparse.Namespace) -> None:
    """Train the teacher, print validation (or, with ``--refit``, test) accuracy, save it."""
    t_start = time.perf_counter()
    data = load_data(args.split_seed, refit=args.refit)
    xtr, ytr = data["train"]
    mean, std = xtr.mean().item(), xtr.std().item()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = build_teacher(args)
    opt = make_optimizer(model, args)  # AdamW, decay on the weight tensors only
    steps_per_epoch = len(xtr) // args.batch_size
    total = steps_per_epoch * args.epochs
    step = 0
    for epoch in range(1, args.epochs + 1):
        t_ep = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            xb = (augment(xtr[idx], args, gen) - mean) / std
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, args)
            loss = F.cross_entropy(model(xb), ytr[idx], label_smoothing=args.ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            tot += loss.item()
        msg = f"epoch {epoch:3d} loss {tot / steps_per_epoch:.4f} "
        if "val" in data and (epoch % args.eval_every == 0 or epoch == args.epochs):
            msg += f"val {evaluate(model, *data['val'], mean, std, False)[1]:.4f} "
        print(msg + f"({time.perf_counter() - t_ep:.1f}s)", flush=True)
    wall = time.perf_counter() - t_start
    split = "test" if args.refit else "val"
    loss, acc = evaluate(model, *data[split], mean, std, False)
    print(f"FINAL teacher {split}_acc {acc:.4f} {split}_loss {loss:.4f} wall {wall:.0f}s")
    if args.save:
        torch.save({"kind": "cnn", "args": vars(args), "state": model.state_dict(),
                    "train_seconds": wall}, args.save)
        print(f"saved {args.save}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the teacher's options (named as in ``explore_best_mlp``, whose ``lr_at``,
    ``augment`` and ``make_optimizer`` read them)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=16, help="channels of the first block")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--wd", type=float, default=0.05, help="AdamW decoupled weight decay")
    p.add_argument("--ls", type=float, default=0.0, help="label smoothing")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--shift", type=int, default=2, help="max random shift in px")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--refit", action="store_true",
                   help="train on all 60,000 training images and report test accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", type=Path, default=None)
    args = p.parse_args(argv)
    for name in ("channels", "epochs", "batch_size", "eval_every", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.save is not None and not args.save.parent.is_dir():
        p.error(f"--save: no folder {args.save.parent}")
    # What explore_best_mlp's lr_at, augment and make_optimizer also read, fixed here.
    args.warmup, args.final_div, args.sched, args.swa_start = 0.1, 0.01, "cos", 0.0
    args.opt, args.beta2 = "adamw", 0.999
    args.scale, args.erase, args.gamma = 0.0, 0.0, 1.0
    return args


def main() -> None:
    """Entry point."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(vars(args), flush=True)
    train(args)


if __name__ == "__main__":
    main()
