"""Where one thread and float32 stop paying: fcnet's training step over a range of sizes.

The Trainer runs CPU training steps of fewer than ``fcnet._device.SMALL_STEP_FLOPS``
floating-point operations on one thread, and with ``precision="auto"`` in float32 (bf16
above it, where the CPU has bf16 units). This script measures that crossover: for MLPs
from the baseline network at batch 64 to a 1024-wide one at batch 512, milliseconds per
training step with 1 and 2 threads, float32 and bf16, each in a fresh process (fcnet's
own step, 3 epochs of random pixels, the faster two epochs kept).

``--busy`` measures the case the one-thread rule is for, a machine whose other work
takes a core: every cell runs, float32 only, while a second process spins on one core
(``results/step_policy_busy.json``).

``--floor`` times, on one thread, what no implementation of an epoch of the notebook's
network (784-128-64-10, batch 64, 48,000 training and 12,000 validation images) can
skip: the step's matrix products (forward, weight and input gradients), torch's fused
Adam kernel on all the parameters, and the validation pass's products
(``results/step_floor.json``).

``--compile`` asks whether ``torch.compile`` pays for that network's step: the step's
arithmetic (fcnet's own step as a function of tensors: the input scaling, the products,
ReLU and dropout masks, log-softmax and the loss, ``softmax - target``, the weight and
input gradients) run 750 times on one thread, eagerly and compiled by inductor
(``fullgraph=True``, static shapes), with the time the compilation took
(``results/step_compile.json``). Adam and the drawing of the masks are left out: they
are the same in both.

    .venv/bin/python benchmarks/bench_step_policy.py            # --quick, --rounds N
    .venv/bin/python benchmarks/bench_step_policy.py --busy     # with a core taken
    .venv/bin/python benchmarks/bench_step_policy.py --floor    # an epoch's unavoidable work
    .venv/bin/python benchmarks/bench_step_policy.py --compile  # eager against compiled
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common as C  # noqa: N812 (the benchmarks' shared module)

SHAPES = [([784, 128, 64, 10], 64), ([784, 128, 64, 10], 256), ([784, 256, 128, 10], 128),
          ([784, 512, 256, 10], 128), ([784, 512, 256, 10], 256), ([784, 1024, 1024, 10], 64),
          ([784, 1024, 1024, 10], 512)]
VARIANTS = [(1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]
BUSY_VARIANTS = [(1, "fp32"), (2, "fp32")]
_SPIN = "while True:\n    pass\n"  # what takes a core in --busy


@contextlib.contextmanager
def busy_core(busy: bool) -> Iterator[None]:
    """Run the block while another process spins on one core (when ``busy``)."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", _SPIN])
    try:
        time.sleep(0.2)  # let it start spinning
        yield
    finally:
        spinner.kill()
        spinner.wait()


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


def floor(sizes: list[int], batch: int, train: int, val: int, eval_batch: int = 1024,
          repeats: int = 5) -> dict[str, float]:
    """Seconds per epoch of the products, the Adam kernel and the validation products.

    One thread, float32, random data laid out like a shuffled epoch's batches (each
    batch a new slice of the inputs); medians over ``repeats`` epochs.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    pairs = list(zip(sizes[:-1], sizes[1:], strict=False))
    weights = [torch.randn(o, i, generator=g) for i, o in pairs]
    biases = [torch.randn(o, generator=g) for _, o in pairs]
    grads = [torch.empty_like(w) for w in weights]
    x = torch.randn(train, sizes[0], generator=g)
    acts = [torch.randn(batch, i, generator=g) for i, _ in pairs]  # layer inputs
    deltas = [torch.randn(batch, o, generator=g) for _, o in pairs]  # output gradients
    steps = train // batch

    def products() -> None:
        for s in range(steps):
            xb = x[s * batch:(s + 1) * batch]
            for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
                torch.addmm(b, xb if k == 0 else acts[k], w.t())
            for k in range(len(weights) - 1, -1, -1):
                torch.mm(deltas[k].t(), xb if k == 0 else acts[k], out=grads[k])
                if k:
                    deltas[k] @ weights[k]

    n = sum(w.numel() + b.numel() for w, b in zip(weights, biases, strict=True))
    p, gr, m, v = (torch.randn(n, generator=g) for _ in range(4))
    v.abs_()
    step = torch.tensor(1.0)

    def adam() -> None:
        for _ in range(steps):
            torch._fused_adam_([p], [gr], [m], [v], [], [step], amsgrad=False, lr=1e-3,
                               beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                               maximize=False, grad_scale=None, found_inf=None)

    xv = torch.randn(val, sizes[0], generator=g)

    def validation() -> None:
        for s in range(0, val, eval_batch):
            h = xv[s:s + eval_batch]
            for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
                h = torch.addmm(b, h, w.t())
                if k < len(weights) - 1:
                    h = h.relu_()

    out: dict[str, float] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, fn in (("products", products), ("adam", adam), ("validation", validation)):
            fn()  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[f"{name}_seconds"] = statistics.median(times)
    finally:
        torch.set_num_threads(before)
    out["sum_seconds"] = sum(out.values())
    return out


def step_function(sizes: list[int], keep: float = 0.75) -> Any:
    """The step's arithmetic as a function of tensors: ``(x, y, masks, *params)`` to the
    loss and the gradients (last layer first: weight, bias, ...), as fcnet's step
    computes them; ``masks`` hold 0 or ``1 / keep``.
    """
    import torch
    import torch.nn.functional as F

    layers = len(sizes) - 1
    scale = torch.tensor(1 / 255)

    def step(xb, yb, ms, *ps):
        h = xb.float() * scale
        acts = [h]
        for k in range(layers):
            z = torch.addmm(ps[2 * k + 1], h, ps[2 * k].t())
            if k < layers - 1:
                h = z.relu() * ms[k]
                acts.append(h)
        logp = torch.log_softmax(z, 1)
        loss = F.nll_loss(logp, yb)
        d = (logp.exp() - F.one_hot(yb, sizes[-1]).float()) * (1.0 / len(yb))
        grads = []
        for k in range(layers - 1, -1, -1):
            grads += [d.t() @ acts[k], d.sum(0)]
            if k:
                d = torch.ops.aten.threshold_backward(d @ ps[2 * k], acts[k], 0) / keep
        return loss, grads

    return step


def compiled(sizes: list[int], batch: int, steps: int, repeats: int = 3,
             modes: tuple[str, ...] = ("eager", "compiled")) -> dict[str, Any]:
    """Seconds for ``steps`` steps of the step's arithmetic, eager and compiled.

    One thread, float32, uint8 inputs, dropout 0.25 after each hidden layer (the masks
    drawn beforehand, as fcnet draws a chunk's at once); medians over ``repeats``.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    pairs = list(zip(sizes[:-1], sizes[1:], strict=False))
    params = []
    for i, o in pairs:
        params += [torch.randn(o, i, generator=g) * i ** -0.5, torch.zeros(o)]
    x = torch.randint(0, 256, (steps, batch, sizes[0]), dtype=torch.uint8, generator=g)
    y = torch.randint(0, sizes[-1], (steps, batch), generator=g)
    masks = [(torch.rand(steps, batch, o, generator=g) < 0.75).float() / 0.75
             for _, o in pairs[:-1]]
    step = step_function(sizes)

    def epoch(fn) -> None:
        for s in range(steps):
            fn(x[s], y[s], [m[s] for m in masks], *params)

    out: dict[str, Any] = {"steps": steps}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for mode in modes:
            fn = step
            if mode == "compiled":
                t0 = time.perf_counter()
                try:
                    fn = torch.compile(step, fullgraph=True, dynamic=False)
                    fn(x[0], y[0], [m[0] for m in masks], *params)
                except Exception as e:  # no C++ compiler, an unsupported op, ...
                    out["compile_error"] = f"{type(e).__name__}: {e}"[:500]
                    continue
                out["compile_seconds"] = time.perf_counter() - t0
            epoch(fn)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                epoch(fn)
                times.append(time.perf_counter() - t0)
            out[f"{mode}_seconds"] = statistics.median(times)
            out[f"{mode}_all_seconds"] = times
    finally:
        torch.set_num_threads(before)
    if "eager_seconds" in out and "compiled_seconds" in out:
        saved = out["eager_seconds"] - out["compiled_seconds"]
        out["saved_seconds_per_epoch"] = saved
        out["epochs_to_repay_compile"] = (out["compile_seconds"] / saved if saved > 0
                                          else None)
    return out


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per cell")
    parser.add_argument("--floor", action="store_true",
                        help="one thread: an epoch's products, Adam kernel and validation")
    parser.add_argument("--busy", action="store_true",
                        help="float32 only, with another process spinning on one core")
    parser.add_argument("--compile", action="store_true",
                        help="one thread: the step's arithmetic eager and torch.compile'd")
    parser.add_argument("--worker", nargs=5, help="(internal) sizes batch threads precision n")
    args = parser.parse_args()
    if args.worker:
        sizes, batch, threads, precision, n = args.worker
        print(json.dumps({"ms": worker(json.loads(sizes), int(batch), int(threads), precision,
                                       int(n))}))
        return
    started = time.time()
    if args.compile:
        sizes, batch = SHAPES[0]
        steps = 64 if args.quick else 48_000 // batch
        # An empty inductor cache, so that the compile time is a first compilation's.
        with tempfile.TemporaryDirectory() as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            out = compiled(sizes, batch, steps, repeats=1 if args.quick else 5)
        out["inductor_cache"] = "empty at the start (a new folder)"
        print(f"{sizes} batch {batch}, {steps} steps, one thread: "
              + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in out.items() if not k.endswith("all_seconds")))
        C.write_result("step_compile", {"sizes": sizes, "batch": batch, "threads": 1,
                                        "dropout": 0.25, **out},
                       quick=args.quick, out=args.out, started=started)
        return
    if args.floor:
        sizes, batch = SHAPES[0]
        train, val = (4096, 1024) if args.quick else (48_000, 12_000)
        out = floor(sizes, batch, train, val, repeats=1 if args.quick else 5)
        print(f"{sizes} batch {batch}, {train} + {val} images, one thread: "
              + ", ".join(f"{k.removesuffix('_seconds')} {v:.3f} s" for k, v in out.items()))
        C.write_result("step_floor", {"sizes": sizes, "batch": batch, "train_samples": train,
                                      "val_samples": val, "threads": 1, **out},
                       quick=args.quick, out=args.out, started=started)
        return
    shapes = SHAPES[:2] if args.quick else SHAPES
    samples = 1024 if args.quick else 8192
    rounds = 1 if args.quick else args.rounds
    variants = BUSY_VARIANTS if args.busy else VARIANTS
    rows = []
    for sizes, batch in shapes:
        row = {"sizes": sizes, "batch": batch, "mflop_per_step": step_flops(sizes, batch) / 1e6}
        for threads, precision in variants:
            ms = []
            for _ in range(rounds):
                with busy_core(args.busy):
                    out = subprocess.run(
                        [sys.executable, str(Path(__file__).resolve()), "--worker",
                         json.dumps(sizes), str(batch), str(threads), precision, str(samples)],
                        capture_output=True, text=True, check=True)
                ms.append(json.loads(out.stdout.strip().splitlines()[-1])["ms"])
            row[f"{threads}t_{precision}_ms"] = min(ms)
            row[f"{threads}t_{precision}_all_ms"] = ms
        best = min(variants, key=lambda v: row[f"{v[0]}t_{v[1]}_ms"])
        row["fastest"] = f"{best[0]} thread(s), {best[1]}"
        rows.append(row)
        print(f"{sizes} batch {batch}: {row['mflop_per_step']:.0f} MFLOP/step; "
              + ", ".join(f"{t}t {p} {row[f'{t}t_{p}_ms']:.2f} ms" for t, p in variants)
              + f"; fastest {row['fastest']}", flush=True)
    from fcnet._device import SMALL_STEP_FLOPS

    C.write_result("step_policy_busy" if args.busy else "step_policy",
                   {"rows": rows, "rounds": rounds, "samples": samples,
                    "small_step_flops": SMALL_STEP_FLOPS, "busy_core": args.busy},
                   quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
