"""Hardware efficiency: achieved training FLOP/s of fcnet against the machine's matmul peak.

For MLPs ``784 -> W -> W -> 10`` (no dropout) of width ``W`` and batch size ``B``, the
Trainer runs a short fit on random ``uint8`` images; the achieved rate is
``6 x parameters x samples per second`` (forward 2, backward 4 FLOPs per parameter and
sample, the usual convention; the first layer needs no input gradient, so the true count
is a little lower and the figure slightly flattering). The first batches are warm-up and
not timed.

The peak is the best rate of a plain ``n x n`` matmul (``torch.mm``, fp32 and bf16) with
the same thread count, measured before, between and after the grid; efficiency is the
achieved rate over the best fp32 peak seen. bf16 runs use ``Trainer(precision="bf16")``
(autocast); on CPUs without AVX512-BF16/AMX, bf16 is emulated and slower.

Target: at least 60% of the fp32 matmul peak for W >= 1024 and B >= 512 (fp32).

Examples::

    python benchmarks/bench_flops.py --quick
    python benchmarks/bench_flops.py --widths 1024 2048 --batches 512 1024 --threads 2
"""

from __future__ import annotations

import math
import time
from typing import Any

import _common as C
import torch

from fcnet import Trainer, build_mlp
from fcnet.callbacks import Callback

TARGET_FRACTION = 0.60


def matmul_peak(n: int = 2048, dtype: torch.dtype = torch.float32,
                seconds: float = 1.0) -> float:
    """Best FLOP/s of ``n x n @ n x n`` over repeated calls lasting about ``seconds``."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, packing buffers
    best = math.inf
    deadline = time.perf_counter() + seconds
    reps = 0
    while reps < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return 2 * n**3 / best


class _BatchClock(Callback):
    """Records the time at the end of every batch."""

    def on_train_begin(self, trainer: Trainer) -> None:
        self.stamps: list[float] = []

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict[str, Any]) -> None:
        self.stamps.append(time.perf_counter())


def train_rate(width: int, batch: int, precision: str = "fp32", steps: int = 4,
               warmup: int = 2, seed: int = 0) -> dict[str, Any]:
    """Train ``784-W-W-10`` for ``warmup + steps`` batches; return the achieved rate.

    Args:
        width: Hidden width ``W``.
        batch: Samples per step ``B``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        steps: Timed steps after the warm-up.
        warmup: Untimed first steps.
        seed: Seed of the data and the weights.
    """
    torch.manual_seed(seed)
    model = build_mlp([784, width, width, 10])
    params = model.num_parameters
    n = batch * (warmup + steps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 784), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    clock = _BatchClock()
    trainer = Trainer(model, lr=1e-4, batch_size=batch, epochs=1, seed=seed, device="cpu",
                      precision=precision, progress=False, callbacks=[clock])
    c0 = time.process_time()
    trainer.fit((x, y))
    cpu = time.process_time() - c0
    timed = clock.stamps[warmup - 1:] if warmup > 0 else clock.stamps
    seconds = timed[-1] - timed[0]
    samples = batch * (len(timed) - 1)
    return {
        "width": width,
        "batch": batch,
        "precision": precision,
        "parameters": params,
        "steps_timed": len(timed) - 1,
        "seconds_per_step": seconds / (len(timed) - 1),
        "samples_per_second": samples / seconds,
        "flops": 6 * params * samples / seconds,
        "fit_cpu_seconds": cpu,
        "load": C.load_average()[0],
    }


def _steps_for(width: int, batch: int, rate: float, seconds: float) -> int:
    """Timed steps that take about ``seconds`` at ``rate`` FLOP/s (3 to 30)."""
    per_step = 6 * (784 * width + width * width + 10 * width) * batch
    return max(3, min(30, round(seconds * rate / per_step)))


_COLUMNS = [
    ("width", "width", "d"),
    ("batch", "batch", "d"),
    ("precision", "prec", "s"),
    ("seconds_per_step", "s/step", ".4f"),
    ("gflops", "GFLOP/s", ".1f"),
    ("pct_fp32_peak", "% fp32 peak", ".0f"),
    ("pct_adjacent_peak", "% adj. peak", ".0f"),
    ("load", "load", ".2f"),
]


def main() -> None:
    """Command-line entry point."""
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=None,
                        help="hidden widths (default 512 1024 2048 4096; quick 1024 2048)")
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default 256 512 1024 4096; quick 512 1024)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                        default=["fp32", "bf16"])
    parser.add_argument("--seconds", type=float, default=None,
                        help="timed seconds per configuration (default 1.5; quick 0.6)")
    args = parser.parse_args()
    started = time.time()
    threads = C.set_threads(args.threads)
    widths = args.widths or ([1024, 2048] if args.quick else [512, 1024, 2048, 4096])
    batches = args.batches or ([512, 1024] if args.quick else [256, 512, 1024, 4096])
    seconds = args.seconds or (0.6 if args.quick else 1.5)
    peak_seconds = 0.5 if args.quick else 1.5

    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def measure_peaks() -> None:
        peaks["fp32"].append(matmul_peak(2048, torch.float32, peak_seconds))
        if "bf16" in args.precisions:
            peaks["bf16"].append(matmul_peak(2048, torch.bfloat16, peak_seconds))

    print(f"training FLOP/s vs matmul peak, threads={threads}, load {C.load_average()}")
    measure_peaks()
    print(f"matmul peak: fp32 {peaks['fp32'][-1] / 1e9:.1f} GFLOP/s"
          + (f", bf16 {peaks['bf16'][-1] / 1e9:.1f} GFLOP/s" if peaks["bf16"] else ""))
    rows: list[dict[str, Any]] = []
    for precision in args.precisions:
        for width in widths:
            # A fresh adjacent peak per width: the load of a shared machine drifts.
            adjacent = matmul_peak(2048, torch.float32, 0.3)
            peaks["fp32"].append(adjacent)
            for batch in batches:
                guess = max(peaks["fp32"]) * (0.2 if precision == "bf16" else 0.6)
                row = train_rate(width, batch, precision,
                                 steps=_steps_for(width, batch, guess, seconds),
                                 seed=args.seed)
                row["gflops"] = row["flops"] / 1e9
                row["adjacent_fp32_peak_gflops"] = adjacent / 1e9
                row["pct_adjacent_peak"] = 100 * row["flops"] / adjacent
                rows.append(row)
                C.print_table([row], _COLUMNS[:5] + [_COLUMNS[6], _COLUMNS[7]])
    measure_peaks()
    fp32_peak = max(peaks["fp32"])
    for row in rows:
        row["pct_fp32_peak"] = 100 * row["flops"] / fp32_peak
        if peaks["bf16"]:
            row["pct_bf16_peak"] = 100 * row["flops"] / max(peaks["bf16"])
    C.print_table(rows, _COLUMNS, title=f"best fp32 matmul peak {fp32_peak / 1e9:.1f} GFLOP/s"
                  + (f", bf16 {max(peaks['bf16']) / 1e9:.1f}" if peaks["bf16"] else ""))
    judged = [r for r in rows if r["precision"] == "fp32" and r["width"] >= 1024
              and r["batch"] >= 512]
    worst = min((r["pct_fp32_peak"] for r in judged), default=None)
    met = worst is not None and worst >= 100 * TARGET_FRACTION
    if worst is not None:
        print(f"\nfp32, width >= 1024, batch >= 512: lowest {worst:.0f}% of the fp32 peak "
              f"(target >= {100 * TARGET_FRACTION:.0f}%: {'met' if met else 'NOT met'})")
    C.write_result("flops", {
        "threads": threads,
        "matmul_peaks_gflops": {k: [v / 1e9 for v in vs] for k, vs in peaks.items()},
        "fp32_peak_gflops": fp32_peak / 1e9,
        "bf16_peak_gflops": max(peaks["bf16"]) / 1e9 if peaks["bf16"] else None,
        "runs": rows,
        "target_fraction": TARGET_FRACTION,
        "lowest_pct_in_target_region": worst,
        "target_met": met,
    }, quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
