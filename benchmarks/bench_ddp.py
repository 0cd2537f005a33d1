"""Data-parallel scaling on one machine: 1 process x 2 threads against 2 ranks x 1 thread.

For two workloads on the 48,000 Fashion-MNIST training images (Adam, no dropout, no
validation), each configuration trains ``--epochs`` epochs in a fresh run and the median
seconds per epoch after the first are reported:

* ``baseline``: 784-128-64-10 at batch 64 (the reference notebook's network);
* ``wide``: 784-1024-1024-10 at batch 512.

``batch_size`` is the global batch in both configurations, so they take the same steps.
Scaling efficiency is ``t(1 process) / t(2 ranks)`` over the ideal of 1 for the same two
cores (two threads in one process against one thread in each of two processes): above 1
the ranks use the cores better than intra-op threads do. Configurations alternate round
by round, so a change in the machine's speed touches both.

Run::

    python benchmarks/bench_ddp.py               # writes benchmarks/results/ddp.json
    python benchmarks/bench_ddp.py --quick
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

WORKLOADS = {"baseline": ([784, 128, 64, 10], 64), "wide": ([784, 1024, 1024, 10], 512)}


def _child(out: Path, workload: str, epochs: int, limit: int | None) -> None:
    """One timed run (a torchrun rank, or the single process)."""
    import torch

    from fcnet import Callback, Trainer, build_mlp
    from fcnet.data import FashionMNIST

    sizes, batch = WORKLOADS[workload]
    data = FashionMNIST(split="train")
    x, y = data.images[:48000], data.labels[:48000]
    if limit:
        x, y = x[:limit], y[:limit]
    times: list[float] = []

    class Clock(Callback):
        def on_epoch_begin(self, trainer, epoch):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, trainer, epoch, logs):
            times.append(time.perf_counter() - self.t0)

    trainer = Trainer(build_mlp(sizes, seed=0), lr=1e-3, epochs=epochs, batch_size=batch,
                      seed=0, device="cpu", progress=False, callbacks=[Clock()])
    trainer.fit((x, y))
    if trainer.is_global_zero:
        out.write_text(json.dumps({"epoch_seconds": times, "threads": torch.get_num_threads(),
                                   "world_size": trainer.world_size,
                                   "train_loss": trainer.history[-1]["train_loss"]}))


def _run(config: str, workload: str, epochs: int, limit: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        me = [str(Path(__file__).resolve()), "--child", workload, str(out), str(epochs),
              str(limit or 0)]
        env = dict(os.environ)
        env.pop("WORLD_SIZE", None)
        if config == "1x2":
            env["OMP_NUM_THREADS"] = "2"
            cmd = [sys.executable, *me]
        else:
            env["OMP_NUM_THREADS"] = "1"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node=2", *me]
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=3600)
        return json.loads(out.read_text())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, workload, out, epochs, limit = sys.argv
        _child(Path(out), workload, int(epochs), int(limit) or None)
        return
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is "
                        "not timed)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    args = parser.parse_args()
    started = time.time()
    epochs, rounds, limit = (2, 1, 4096) if args.quick else (args.epochs, args.rounds, None)
    rows = []
    for workload in WORKLOADS:
        seconds: dict[str, list[float]] = {"1x2": [], "2x1": []}
        loss = {}
        for _ in range(rounds):
            for config in seconds:
                result = _run(config, workload, epochs, limit)
                seconds[config] += result["epoch_seconds"][1:]
                loss[config] = result["train_loss"]
        one, two = (statistics.median(seconds[c]) for c in ("1x2", "2x1"))
        sizes, batch = WORKLOADS[workload]
        rows.append({"workload": workload, "sizes": sizes, "batch_size": batch,
                     "seconds_1proc_2threads": one, "seconds_2ranks_1thread": two,
                     "speedup_2ranks": one / two, "train_loss_1proc": loss["1x2"],
                     "train_loss_2ranks": loss["2x1"], "epoch_seconds": seconds})
    C.print_table(rows, [("workload", "workload", "s"), ("batch_size", "batch", "d"),
                         ("seconds_1proc_2threads", "1 proc x 2 thr s/epoch", ".3f"),
                         ("seconds_2ranks_1thread", "2 ranks x 1 thr s/epoch", ".3f"),
                         ("speedup_2ranks", "2 ranks / 1 proc", ".2f")],
                  title=f"CPU: {C.machine_info().get('cpu_model')}")
    C.write_result("ddp", {"epochs": epochs, "rounds": rounds, "train_limit": limit,
                           "rows": rows}, quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
