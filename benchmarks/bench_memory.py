"""Peak resident memory (ru_maxrss) of the baseline recipe, each run in a fresh process.

Three child processes, one after the other:

- ``import``: ``import torch, fcnet`` only (the floor every run pays);
- ``fcnet``: load Fashion-MNIST, split 48,000 / 12,000, train the baseline network
  (batch 64, Adam lr 0.003) for a few epochs with validation, evaluate on the test set;
- ``notebook``: the reference notebook's pipeline (torchvision data sets, PIL transforms,
  DataLoader) training the same network for the same epochs.

Each child reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux) when it
finishes. Target: fcnet under 1.5 GB.

Examples::

    python benchmarks/bench_memory.py              # 3 epochs
    python benchmarks/bench_memory.py --quick      # 1 epoch, no notebook child
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET_BYTES = 1.5e9
CHILDREN = ("import", "fcnet", "notebook")


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def child(kind: str, epochs: int, threads: int, source: Path | None = None,
          limit: int | None = None) -> dict[str, Any]:
    """Run one measured workload in this process and return its peak RSS and timing.

    Args:
        kind: ``"import"``, ``"fcnet"`` or ``"notebook"``.
        epochs: Training epochs.
        threads: torch intra-op threads.
        source: Folder of the four .gz IDX files (``None``: the real data set).
        limit: Train on only this many images (smoke tests).
    """
    import torch

    import fcnet  # noqa: F401  (its import cost is part of every run)

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    info: dict[str, Any] = {"kind": kind, "epochs": epochs}
    if kind == "fcnet":
        import _common as C

        from fcnet import Trainer

        train, val, test = C.fcnet_data(source, seed=0)
        train_data: Any = train if limit is None else (train.images[:limit],
                                                       train.labels[:limit])
        torch.manual_seed(0)
        trainer = Trainer(C.fcnet_baseline_model(), loss="nll", lr=3e-3, batch_size=64,
                          epochs=epochs, seed=0, device="cpu", progress=False)
        trainer.fit(train_data, val)
        info["test_accuracy"] = trainer.evaluate(test)["accuracy"]
    elif kind == "notebook":
        import _common as C

        folder = C.DEBIAN_FASHION_MNIST if source is None else source
        with C.torchvision_root(folder) as root:
            pipe = C.notebook_pipeline(root, seed=0, limit=limit)
            torch.manual_seed(0)
            model = C.notebook_model(as_run=True)
            criterion = torch.nn.NLLLoss()
            optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
            for _ in range(epochs):
                C.notebook_train_epoch(model, optimizer, criterion, pipe.train_loader)
                C.notebook_evaluate(model, criterion, pipe.valid_loader)
            info["test_accuracy"] = C.notebook_evaluate(model, criterion, pipe.test_loader)[1]
    elif kind != "import":
        raise ValueError(f"kind must be one of {', '.join(CHILDREN)}, got {kind!r}")
    info["work_seconds"] = time.perf_counter() - t0  # after the imports
    info["peak_rss_bytes"] = peak_rss_bytes()
    return info


def run_child(kind: str, epochs: int, threads: int) -> dict[str, Any]:
    """Run :func:`child` in a fresh Python process and return what it reports."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
           "--epochs", str(epochs), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {kind!r} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Command-line entry point."""
    import _common as C

    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs (3; quick 1)")
    parser.add_argument("--child", choices=CHILDREN, default=None,
                        help="internal: run one workload in this process and print JSON")
    args = parser.parse_args()
    epochs = args.epochs or (1 if args.quick else 3)
    if args.child:
        print(json.dumps(child(args.child, epochs, args.threads)))
        return
    started = time.time()
    kinds = ("import", "fcnet") if args.quick else CHILDREN
    print(f"peak RSS, {epochs} epoch(s), threads={args.threads}, load {C.load_average()}")
    rows = []
    for kind in kinds:
        row = run_child(kind, epochs, args.threads)
        row["peak_rss_mib"] = row["peak_rss_bytes"] / 2**20
        row["load"] = C.load_average()[0]
        rows.append(row)
        C.print_table([row], _COLUMNS)
    C.print_table(rows, _COLUMNS, title="peak resident memory")
    fcnet_row = next(r for r in rows if r["kind"] == "fcnet")
    met = fcnet_row["peak_rss_bytes"] < TARGET_BYTES
    print(f"\nfcnet peak RSS {fcnet_row['peak_rss_bytes'] / 1e9:.2f} GB "
          f"(target < {TARGET_BYTES / 1e9:.1f} GB: {'met' if met else 'NOT met'})")
    C.write_result("memory", {"threads": args.threads, "epochs": epochs, "runs": rows,
                              "target_bytes": TARGET_BYTES, "target_met": met},
                   quick=args.quick, out=args.out, started=started)


_COLUMNS = [
    ("kind", "run", "s"),
    ("epochs", "epochs", "d"),
    ("peak_rss_mib", "peak RSS MiB", ",.0f"),
    ("work_seconds", "work s", ".1f"),
    ("test_accuracy", "test acc", ".4f"),
    ("load", "load", ".2f"),
]


if __name__ == "__main__":
    main()
