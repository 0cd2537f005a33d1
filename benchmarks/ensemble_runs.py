"""Test accuracy of an ensemble of finished recipe runs (their averaged probabilities).

Each argument is a run folder written by ``fcnet.recipes`` (``model/`` and
``metrics.json``). The script loads every model, averages the class probabilities the
models give the 10,000 test images, and prints each model's test accuracy beside the
ensemble's. The ensemble's training time is the sum of the runs' training times, all
counted. No choice is made here: every run given is used, with equal weight.

Examples::

    python benchmarks/ensemble_runs.py runs/best/seed0 runs/best/seed1 runs/best/seed2
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import _common as C
import torch

from fcnet import load_model
from fcnet.data import FashionMNIST


def ensemble(run_dirs: list[Path], data_root: Path | None = None) -> dict:
    """Return per-run and ensemble test accuracy of the runs in ``run_dirs``.

    Raises:
        FileNotFoundError: a folder lacks ``model/`` or ``metrics.json``.
    """
    for run in run_dirs:
        for name in ("model", "metrics.json"):
            if not (run / name).exists():
                raise FileNotFoundError(f"{run} is not a finished recipe run: no {name}")
    test = FashionMNIST(split="test", root=data_root)
    rows = []
    total = torch.zeros(len(test.labels), 10, dtype=torch.float64)
    for run in run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        model = load_model(run / "model").eval()
        with torch.inference_mode():
            proba = torch.softmax(model(test.images).double(), dim=1)
        total += proba
        rows.append({
            "run": str(run),
            "recipe": metrics["recipe"]["name"],
            "seed": metrics["seed"],
            "test_accuracy": (proba.argmax(1) == test.labels).double().mean().item(),
            "recorded_test_accuracy": metrics["test_accuracy"],
            "train_seconds": metrics["train_seconds"],
            "wall_seconds": metrics["wall_seconds"],
        })
    accuracy = (total.argmax(1) == test.labels).double().mean().item()
    return {
        "runs": rows,
        "ensemble_test_accuracy": accuracy,
        "ensemble_train_seconds": sum(r["train_seconds"] for r in rows),
        "ensemble_wall_seconds": sum(r["wall_seconds"] for r in rows),
    }


def main() -> None:
    """Command-line entry point."""
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("runs", type=Path, nargs="+", help="recipe run folders")
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    started = time.time()
    result = ensemble(args.runs, args.data_root)
    C.print_table(result["runs"], [("run", "run", "s"), ("seed", "seed", "d"),
                                   ("test_accuracy", "test acc", ".4f"),
                                   ("train_seconds", "train s", ".0f")])
    print(f"\nensemble of {len(args.runs)}: test accuracy {result['ensemble_test_accuracy']:.4f}, "
          f"training time counted {result['ensemble_train_seconds']:.0f} s")
    C.write_result("ensemble", result, quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
