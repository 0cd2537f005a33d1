"""Validation accuracy of finished split runs with test-time dropout averaging (MC dropout).

Each argument is a run folder written by ``fcnet.recipes`` for a recipe with a validation
split (``best_split``, ``baseline``, ...). The script rebuilds the run's validation split
from its seed and recipe, then prints the accuracy of the model in evaluation mode beside
the accuracy of the class probabilities averaged over 1, 4, 8, 16 and 32 passes with
dropout switched on (BatchNorm stays in evaluation mode). The test set is not read.

Examples::

    python benchmarks/mc_dropout_val.py runs/final/best_split_seed0 runs/final/best_split_seed1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnet import load_model
from fcnet.data import FashionMNIST, to_tensors, train_val_split

PASSES = (1, 4, 8, 16, 32)


def mc_dropout(run: Path, full: Any, passes: tuple[int, ...] = PASSES) -> dict:
    """Return the run's validation accuracy without and with dropout averaging.

    ``full`` is the data set the run split (the 60,000 Fashion-MNIST training images).
    """
    metrics = json.loads((run / "metrics.json").read_text())
    fraction = metrics["recipe"]["val_fraction"]
    if not fraction:
        raise ValueError(f"{run} was trained without a validation split")
    _, val = train_val_split(full, val_fraction=fraction, seed=metrics["seed"])
    x, y = to_tensors(val)[:2]
    model = load_model(run / "model").eval()
    result: dict = {"run": str(run), "recorded_val_accuracy": metrics["val_accuracy"]}
    with torch.no_grad():
        result["eval_mode"] = (model(x).argmax(1) == y).float().mean().item()
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.train()
        torch.manual_seed(0)
        total = torch.zeros(len(y), int(model.spec.num_classes))
        for k in range(1, max(passes) + 1):
            total += torch.softmax(model(x), 1)
            if k in passes:
                result[f"dropout_{k}_passes"] = (total.argmax(1) == y).float().mean().item()
    return result


def main() -> None:
    """Print one JSON line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished split runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full = FashionMNIST(split="train")
    for run in args.runs:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                          for k, v in mc_dropout(run, full).items()}), flush=True)


if __name__ == "__main__":
    main()
