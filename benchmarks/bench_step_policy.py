"""Where one thread and float32 stop paying: fcnet's training step over a range of sizes.

The Trainer runs CPU training steps of fewer than ``fcnet._device.SMALL_STEP_FLOPS``
floating-point operations on one thread, and with ``precision="auto"`` in float32 (bf16
above it, where the CPU has bf16 units). This script measures that crossover: for MLPs
from the baseline network at batch 64 to a 1024-wide one at batch 512, milliseconds per
training step with 1 and 2 threads, float32 and bf16, each in a fresh process (fcnet's
own step, 3 epochs of random pixels, the faster two epochs kept).

    .venv/bin/python benchmarks/bench_step_policy.py            # --quick, --rounds N
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common as C  # noqa: N812 (the benchmarks' shared module)

SHAPES = [([784, 128, 64, 10], 64), ([784, 128, 64, 10], 256), ([784, 256, 128, 10], 128),
          ([784, 512, 256, 10], 128), ([784, 512, 256, 10], 256), ([784, 1024, 1024, 10], 64),
          ([784, 1024, 1024, 10], 512)]
VARIANTS = [(1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]


def step_flops(sizes: list[int], batch: int) -> float:
    """The step's FLOPs as the Trainer counts them: ``6 * batch * sum(in * out)``."""
    return 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def worker(sizes: list[int], batch: int, threads: int, precision: str, samples: int) -> float:
    """Milliseconds per training step (the fastest two of three epochs, averaged)."""
    import torch

    from fcnet import Trainer, build_mlp

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    n = max(samples, batch * 40)
    x = torch.randint(0, 256, (n, sizes[0]), dtype=torch.uint8, generator=g)
    y = torch.randint(0, sizes[-1], (n,), generator=g)
    trainer = Trainer(build_mlp(sizes, dropout=0.25, seed=0), epochs=3, batch_size=batch,
                      seed=0, progress=False, precision=precision)
    trainer.num_threads = threads  # the count measured, not the Trainer's own choice
    history = trainer.fit((x, y))
    assert history.meta["step"] == "fused" and history.meta["threads"] == threads
    seconds = sorted(e["seconds"] for e in history)[:2]
    return statistics.mean(seconds) / trainer.batches_per_epoch * 1e3


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per cell")
    parser.add_argument("--worker", nargs=5, help="(internal) sizes batch threads precision n")
    args = parser.parse_args()
    if args.worker:
        sizes, batch, threads, precision, n = args.worker
        print(json.dumps({"ms": worker(json.loads(sizes), int(batch), int(threads), precision,
                                       int(n))}))
        return
    started = time.time()
    shapes = SHAPES[:2] if args.quick else SHAPES
    samples = 1024 if args.quick else 8192
    rounds = 1 if args.quick else args.rounds
    rows = []
    for sizes, batch in shapes:
        row = {"sizes": sizes, "batch": batch, "mflop_per_step": step_flops(sizes, batch) / 1e6}
        for threads, precision in VARIANTS:
            ms = []
            for _ in range(rounds):
                out = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(sizes),
                     str(batch), str(threads), precision, str(samples)],
                    capture_output=True, text=True, check=True)
                ms.append(json.loads(out.stdout.strip().splitlines()[-1])["ms"])
            row[f"{threads}t_{precision}_ms"] = min(ms)
            row[f"{threads}t_{precision}_all_ms"] = ms
        best = min(VARIANTS, key=lambda v: row[f"{v[0]}t_{v[1]}_ms"])
        row["fastest"] = f"{best[0]} thread(s), {best[1]}"
        rows.append(row)
        print(f"{sizes} batch {batch}: {row['mflop_per_step']:.0f} MFLOP/step; "
              + ", ".join(f"{t}t {p} {row[f'{t}t_{p}_ms']:.2f} ms" for t, p in VARIANTS)
              + f"; fastest {row['fastest']}", flush=True)
    from fcnet._device import SMALL_STEP_FLOPS

    C.write_result("step_policy", {"rows": rows, "rounds": rounds, "samples": samples,
                                   "small_step_flops": SMALL_STEP_FLOPS},
                   quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
