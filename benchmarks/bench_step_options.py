"""The Trainer's hot path: milliseconds per training step under different options.

Each variant trains the baseline network (784-128-64-10, dropout 0.25) through
``Trainer.fit`` on random ``uint8`` images for a fixed number of batches; the first
batches are warm-up. Variants alternate round by round in one process (A, B, C, A, B, C,
...) and the median over rounds is reported, with the best round beside it.

Variants:

- ``fused``: what the Trainer does by default (Adam with ``fused=True`` where torch has it);
- ``foreach``, ``single-tensor``: Adam's other implementations, through an optimizer
  factory;
- ``fused, 2 threads``: the default with two intra-op threads;
- ``bf16``: ``precision="bf16"`` (autocast);
- ``compiled`` (with ``--compile``): ``torch.compile(model)``; its first fit, which
  compiles, is timed separately.

Examples::

    python benchmarks/bench_step_options.py
    python benchmarks/bench_step_options.py --batch-size 512 --compile
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import _common as C
import torch

from fcnet import Trainer, build_mlp
from fcnet.callbacks import Callback


class _BatchClock(Callback):
    """Records the time at the end of every batch."""

    def on_train_begin(self, trainer: Trainer) -> None:
        self.stamps: list[float] = []

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict[str, Any]) -> None:
        self.stamps.append(time.perf_counter())


def _adam(foreach: bool | None, fused: bool | None) -> Callable[..., torch.optim.Optimizer]:
    return functools.partial(torch.optim.Adam, lr=3e-3, foreach=foreach, fused=fused)


#: name -> (Trainer keyword arguments, threads)
VARIANTS: dict[str, tuple[dict[str, Any], int]] = {
    "fused": ({}, 1),
    "foreach": ({"optimizer": _adam(True, None)}, 1),
    "single-tensor": ({"optimizer": _adam(False, None)}, 1),
    "fused, 2 threads": ({}, 2),
    "bf16": ({"precision": "bf16"}, 1),
}


def step_ms(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int,
            warmup: int = 5, **trainer_kwargs: Any) -> float:
    """Milliseconds per step of one fit over ``data``, after ``warmup`` steps."""
    clock = _BatchClock()
    kwargs = {"lr": 3e-3, **trainer_kwargs}
    trainer = Trainer(model, batch_size=batch_size, epochs=1, seed=0, device="cpu",
                      progress=False, callbacks=[clock], **kwargs)
    trainer.fit(data)
    timed = clock.stamps[warmup - 1:]
    return 1e3 * (timed[-1] - timed[0]) / (len(timed) - 1)


def compare(variants: dict[str, tuple[dict[str, Any], int]], batch_size: int, steps: int,
            rounds: int, compile_model: bool = False) -> list[dict[str, Any]]:
    """Alternate the variants for ``rounds`` rounds; return one row per variant."""
    gen = torch.Generator().manual_seed(0)
    n = batch_size * (steps + 5)
    data = (torch.randint(0, 256, (n, 784), dtype=torch.uint8, generator=gen),
            torch.randint(0, 10, (n,), generator=gen))
    models = {}
    for name in variants:
        torch.manual_seed(0)
        models[name] = build_mlp([784, 128, 64, 10], 0.25, input_norm=(0.5, 0.5))
    times: dict[str, list[float]] = {name: [] for name in variants}
    loads: dict[str, list[float]] = {name: [] for name in variants}
    extra: dict[str, dict[str, Any]] = {}
    if compile_model:
        torch.manual_seed(0)
        compiled = torch.compile(build_mlp([784, 128, 64, 10], 0.25, input_norm=(0.5, 0.5)))
        with C.Clock() as first:
            step_ms(compiled, data, batch_size)
        models["compiled"] = compiled
        variants = {**variants, "compiled": ({}, 1)}
        times["compiled"], loads["compiled"] = [], []
        extra["compiled"] = {"first_fit_seconds_with_compilation": first.wall}
    threads_before = torch.get_num_threads()
    try:
        for _ in range(rounds):
            for name, (kwargs, threads) in variants.items():
                C.set_threads(threads)
                times[name].append(step_ms(models[name], data, batch_size, **kwargs))
                loads[name].append(C.load_average()[0])
    finally:
        torch.set_num_threads(threads_before)
    base = statistics.median(times["fused"]) if "fused" in times else None
    rows = []
    for name in variants:
        median = statistics.median(times[name])
        rows.append({
            "variant": name,
            "batch_size": batch_size,
            "ms_per_step_median": median,
            "ms_per_step_best": min(times[name]),
            "relative_to_fused": median / base if base else None,
            "rounds": len(times[name]),
            "load": statistics.median(loads[name]),
            **extra.get(name, {}),
        })
    return rows


_COLUMNS = [
    ("variant", "variant", "s"),
    ("batch_size", "batch", "d"),
    ("ms_per_step_median", "ms/step (median)", ".3f"),
    ("ms_per_step_best", "ms/step (best)", ".3f"),
    ("relative_to_fused", "x fused", ".2f"),
    ("load", "load", ".2f"),
]


def main() -> None:
    """Command-line entry point."""
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64, 512],
                        help="batch sizes (default 64 512)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile(model) (compiling takes a minute)")
    args = parser.parse_args()
    started = time.time()
    rounds = 3 if args.quick else 15
    print(f"Trainer step options, load {C.load_average()}")
    rows = []
    for batch_size in args.batch_size:
        steps = max(10, 6400 // batch_size) if not args.quick else 10
        batch_rows = compare(VARIANTS, batch_size, steps, rounds, args.compile)
        C.print_table(batch_rows, _COLUMNS, title=f"batch {batch_size}, {steps} timed steps")
        rows += batch_rows
    C.write_result("step_options", {"runs": rows}, quick=args.quick, out=args.out,
                   started=started)


if __name__ == "__main__":
    main()
