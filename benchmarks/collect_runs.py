"""Collect finished recipe runs into one results file: per-seed figures, mean and spread.

Each argument is a run folder written by ``fcnet.recipes`` (it holds ``metrics.json``).
The script prints one row per run and the mean and sample standard deviation of the test
accuracy, and writes them, with the command line and machine facts, to
``benchmarks/results/NAME.json``. It only reads what the runs recorded.

Examples::

    python benchmarks/collect_runs.py best runs/best/seed0 runs/best/seed1 runs/best/seed2
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import _common as C

_COLUMNS = [
    ("seed", "seed", "d"),
    ("test_accuracy", "test acc", ".4f"),
    ("val_accuracy", "val acc", ".4f"),
    ("epochs_run", "epochs", "d"),
    ("wall_seconds", "wall s", ".0f"),
    ("threads", "threads", "d"),
]


def collect(run_dirs: list[Path]) -> dict[str, Any]:
    """Read ``metrics.json`` of every run; return the rows and the test accuracy summary.

    Raises:
        FileNotFoundError: a folder has no ``metrics.json``.
        ValueError: the runs are of different recipes.
    """
    rows = []
    for run in run_dirs:
        path = run / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{run} is not a finished recipe run: no metrics.json")
        m = json.loads(path.read_text())
        rows.append({
            "run": str(run),
            "recipe": m["recipe"]["name"],
            "seed": m["seed"],
            "test_accuracy": m["test_accuracy"],
            "val_accuracy": m["val_accuracy"],
            "epochs_run": m["epochs_run"],
            "train_samples": m["train_samples"],
            "wall_seconds": m["wall_seconds"],
            "train_seconds": m["train_seconds"],
            "threads": m["threads"],
            "torch_version": m["torch_version"],
            "created": m["created"],
        })
    names = sorted({r["recipe"] for r in rows})
    if len(names) != 1:
        raise ValueError(f"the runs must be of one recipe, got {names}")
    accs = [r["test_accuracy"] for r in rows]
    return {
        "recipe": names[0],
        "runs": rows,
        "test_accuracy_mean": statistics.fmean(accs),
        "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "std": "sample standard deviation (n - 1)",
        "wall_seconds_min_max": [min(r["wall_seconds"] for r in rows),
                                 max(r["wall_seconds"] for r in rows)],
    }


def main() -> None:
    """Command-line entry point."""
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("name", help="results file name: benchmarks/results/NAME.json")
    parser.add_argument("runs", type=Path, nargs="+", help="recipe run folders")
    parser.add_argument("--note", default="", help="how the runs were made (load, threads)")
    args = parser.parse_args()
    started = time.time()
    result = collect(args.runs)
    result["note"] = args.note
    C.print_table(result["runs"], _COLUMNS, title=result["recipe"])
    print(f"\ntest accuracy {result['test_accuracy_mean']:.4f} +- "
          f"{result['test_accuracy_std']:.4f} over {len(args.runs)} runs")
    C.write_result(args.name, result, quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
