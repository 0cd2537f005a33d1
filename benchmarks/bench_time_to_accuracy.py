"""Time to accuracy: seconds until the baseline network first reaches 87.42% test accuracy.

87.42% is the reference notebook's final test accuracy for the baseline network
(784-128-64-10, ReLU, dropout 0.25 after the first hidden layer: recipe ``baseline``,
the network the notebook trained). Both sides train on the same 48,000 images (the
80/20 split of the training set) and evaluate on the 10,000 TEST images after every
epoch, stopping as soon as they reach the target. Evaluating on the test set every epoch
and stopping on it would be selection on the test set in an accuracy study; here it is
only a stopwatch (how long until a given quality), which is its whole purpose.

Clocks start when training starts (data already in memory on both sides: loading from
disk is reported separately) and include the per-epoch test evaluations.

- notebook: its own pipeline (see ``_common.notebook_pipeline``) with its settings:
  batch 64, Adam lr 0.003, constant rate, up to ``--notebook-epochs`` epochs.
- fcnet: the same network via ``build_mlp`` and ``Trainer``, with the notebook's settings
  (first seed only: it takes minutes) and with the fastest settings found, over several
  seeds: batch 512, one-cycle schedule with peak lr 0.01 over 10 epochs, cross-entropy
  with label smoothing 0.1 on the logits (the same network: its LogSoftmax moves into
  the loss). See benchmarks/README.md for the settings tried.

Target: fcnet at most 10 s.

Examples::

    python benchmarks/bench_time_to_accuracy.py
    python benchmarks/bench_time_to_accuracy.py --quick          # fcnet only, 1 seed
    python benchmarks/bench_time_to_accuracy.py --skip-notebook --seeds 0 1 2 3 4
"""

from __future__ import annotations

import time
from typing import Any

import _common as C
import torch
from torch import nn

from fcnet import Trainer
from fcnet.callbacks import Callback

TARGET_SECONDS = 10.0

#: fcnet settings compared here; "fast" is the best found (see README.md). "output" picks
#: the network's head: "log_softmax" trains with NLLLoss, "logits" with cross-entropy.
CONFIGS: dict[str, dict[str, Any]] = {
    "notebook-settings": {"output": "log_softmax", "batch_size": 64, "lr": 3e-3,
                          "epochs": 25, "scheduler": None},
    "fast": {"output": "logits", "batch_size": 512, "lr": 1e-2, "epochs": 10,
             "scheduler": "onecycle", "label_smoothing": 0.1},
}


class _TestStopwatch(Callback):
    """Evaluates on the test set after each epoch; stops once the target is reached."""

    def __init__(self, test: Any, target: float) -> None:
        self.test = test
        self.target = target

    def on_train_begin(self, trainer: Trainer) -> None:
        self.epochs: list[dict[str, Any]] = []
        self._w0, self._c0 = time.perf_counter(), time.process_time()
        self._train_wall = 0.0

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        self._train_wall += logs["seconds"]
        accuracy = trainer.evaluate(self.test)["accuracy"]
        self.epochs.append({
            "epoch": epoch,
            "wall": time.perf_counter() - self._w0,
            "cpu": time.process_time() - self._c0,
            "train_loop_wall": self._train_wall,
            "test_accuracy": accuracy,
            "load": C.load_average()[0],
        })
        if accuracy >= self.target:
            trainer.should_stop = True


def _outcome(epochs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    first = next((e for e in epochs if e["test_accuracy"] >= target), None)
    last = epochs[-1] if epochs else {}
    return {
        "reached": first is not None,
        "epoch": first["epoch"] if first else None,
        "seconds": first["wall"] if first else None,
        "cpu_seconds": first["cpu"] if first else None,
        "train_loop_seconds": first["train_loop_wall"] if first else None,
        "test_accuracy": first["test_accuracy"] if first else last.get("test_accuracy"),
        "epochs_run": len(epochs),
        "load": last.get("load"),
        "per_epoch": epochs,
    }


def fcnet_time_to_accuracy(train: Any, test: Any, config: dict[str, Any], seed: int,
                           target: float = C.NOTEBOOK_TEST_ACCURACY) -> dict[str, Any]:
    """Train the baseline network with ``config`` until ``target`` test accuracy.

    ``config`` holds ``output`` (see :data:`CONFIGS`) and Trainer arguments.
    """
    settings = dict(config)
    output = settings.pop("output", "log_softmax")
    torch.manual_seed(seed)
    model = C.fcnet_baseline_model(output)
    watch = _TestStopwatch(test, target)
    trainer = Trainer(model, loss="nll" if output == "log_softmax" else "cross_entropy",
                      seed=seed, device="cpu", progress=False, callbacks=[watch], **settings)
    trainer.fit(train)
    return _outcome(watch.epochs, target)


def notebook_time_to_accuracy(pipe: C.NotebookPipeline, max_epochs: int, seed: int,
                              target: float = C.NOTEBOOK_TEST_ACCURACY) -> dict[str, Any]:
    """Train the notebook's network in its pipeline until ``target`` test accuracy."""
    torch.manual_seed(seed)
    model = C.notebook_model(as_run=True)
    criterion = nn.NLLLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    epochs: list[dict[str, Any]] = []
    w0, c0 = time.perf_counter(), time.process_time()
    train_wall = 0.0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        C.notebook_train_epoch(model, optimizer, criterion, pipe.train_loader)
        train_wall += time.perf_counter() - t0
        _, accuracy = C.notebook_evaluate(model, criterion, pipe.test_loader)
        epochs.append({"epoch": epoch, "wall": time.perf_counter() - w0,
                       "cpu": time.process_time() - c0, "train_loop_wall": train_wall,
                       "test_accuracy": accuracy, "load": C.load_average()[0]})
        print(f"  notebook epoch {epoch}: test accuracy {accuracy:.4f}, "
              f"{epochs[-1]['wall']:.1f} s, load {epochs[-1]['load']:.2f}", flush=True)
        if accuracy >= target:
            break
    return _outcome(epochs, target)


_COLUMNS = [
    ("pipeline", "pipeline", "s"),
    ("config", "settings", "s"),
    ("seed", "seed", "d"),
    ("reached", "reached", "s"),
    ("epoch", "epoch", "d"),
    ("seconds", "seconds", ".2f"),
    ("cpu_seconds", "cpu s", ".2f"),
    ("test_accuracy", "test acc", ".4f"),
    ("load", "load", ".2f"),
]


def main() -> None:
    """Command-line entry point."""
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="fcnet seeds (default 0 1 2; quick: 0)")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=None,
                        help="fcnet settings to run (default all; quick: fast)")
    parser.add_argument("--skip-notebook", action="store_true",
                        help="do not run the notebook's pipeline (it takes minutes)")
    parser.add_argument("--notebook-epochs", type=int, default=25,
                        help="give up on the notebook after this many epochs (quick: 1)")
    args = parser.parse_args()
    started = time.time()
    threads = C.set_threads(args.threads)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    configs = args.configs or (["fast"] if args.quick else sorted(CONFIGS))
    print(f"time to {C.NOTEBOOK_TEST_ACCURACY:.2%} test accuracy, threads={threads}, "
          f"load {C.load_average()}")
    with C.Clock() as load_clock:
        train, _, test = C.fcnet_data(None, seed=0)
    rows: list[dict[str, Any]] = []
    for name in configs:
        for seed in seeds if name == "fast" else seeds[:1]:
            out = fcnet_time_to_accuracy(train, test, CONFIGS[name], seed)
            row = {"pipeline": "fcnet", "config": name, "seed": seed, **out,
                   "settings": CONFIGS[name]}
            rows.append(row)
            C.print_table([row], _COLUMNS)
    notebook_load = None
    if not args.skip_notebook:
        with C.torchvision_root() as root:
            with C.Clock() as nb_clock:
                pipe = C.notebook_pipeline(root, seed=args.seed)
            notebook_load = nb_clock.wall
            max_epochs = 1 if args.quick else args.notebook_epochs
            out = notebook_time_to_accuracy(pipe, max_epochs, args.seed)
        rows.append({"pipeline": "notebook", "config": "notebook", "seed": args.seed, **out})
    C.print_table(rows, _COLUMNS, title="time to accuracy")
    fast = [r for r in rows if r["config"] == "fast"]
    summary: dict[str, Any] = {}
    if fast:
        secs = [r["seconds"] for r in fast if r["reached"]]
        summary = {
            "fast_reached": f"{len(secs)}/{len(fast)} seeds",
            "fast_seconds": C.summarize(secs) if secs else None,
            "fast_cpu_seconds": C.summarize([r["cpu_seconds"] for r in fast if r["reached"]])
            if secs else None,
            "target_seconds": TARGET_SECONDS,
            "target_met": bool(secs) and len(secs) == len(fast)
            and max(secs) <= TARGET_SECONDS,
        }
        print(f"\nfast settings: reached in {summary['fast_reached']}; seconds "
              f"{summary['fast_seconds']}; target <= {TARGET_SECONDS:.0f} s: "
              f"{'met' if summary['target_met'] else 'NOT met'}")
    C.write_result("time_to_accuracy", {
        "target_accuracy": C.NOTEBOOK_TEST_ACCURACY,
        "threads": threads,
        "data_load_seconds": {"fcnet": load_clock.wall, "notebook": notebook_load},
        "runs": rows,
        "summary": summary,
    }, quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
