"""Worker for tests/test_distributed.py, launched by torchrun (or alone, as the 1-process
reference): a small seeded run that saves checkpoints, optionally killing rank 1 mid-epoch.

Usage::

    torchrun --standalone --nproc_per_node=2 tests/_ddp_worker.py OUT [--kill-at STEP]
    torchrun --standalone --nproc_per_node=2 tests/_ddp_worker.py OUT --rank-paths
    torchrun --standalone --nproc_per_node=2 tests/_ddp_worker.py OUT --bad-setups

``--rank-paths`` gives fcnet's files rank-named paths, to show that only rank 0 writes;
``--bad-setups`` runs fits that must be refused (or stopped) alike on every rank and
writes what each rank saw to ``OUT/bad-rank<r>.json``; ``--variants`` runs an unseeded,
a BatchNorm and two weighted fits and writes ``OUT/variants-rank<r>.*``.

Each process writes its final weights and history to ``OUT/result-rank<r>.safetensors``
and ``OUT/result-rank<r>.json`` (the test's own files); fcnet writes its checkpoints to
``OUT/ckpt`` and its history to ``OUT/history.json``. A run whose checkpoint folder holds a
checkpoint resumes from it, the pattern a script needs under ``torchrun --max-restarts``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import safetensors.torch
import torch
from _separable import separable  # beside this script

from fcnet import (
    Callback,
    EarlyStopping,
    EpochLogger,
    HistoryLogger,
    ModelCheckpoint,
    Trainer,
    build_mlp,
)
from fcnet.checkpoint import find_latest_checkpoint

EPOCHS = 4
BATCH_SIZE = 32


def data():
    """330 training samples: the last batch of 32 is partial, so it is shared unevenly."""
    return separable(330, 60)


class KillAt(Callback):
    """SIGKILLs rank 1 at a global step, on the first attempt only."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        first = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        step = trainer.epoch * trainer.batches_per_epoch + batch + 1
        if first and trainer.rank == 1 and step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class StopOnRankOne(Callback):
    """Sets should_stop after epoch 2 on rank 1 only."""

    def on_epoch_end(self, trainer, epoch, logs):
        if trainer.rank == 1 and epoch == 2:
            trainer.should_stop = True


def bad_setups(out: Path, rank: int) -> None:
    """Fits every rank must refuse alike, and a stop decided on one rank only."""
    train, val = data()
    seen = {}

    def attempt(name, make, data_=train):
        try:
            trainer = make()
            trainer.fit(data_)
            seen[name] = {"epochs": len(trainer.history)}
        except Exception as e:  # the test reads the message
            seen[name] = {"error": f"{type(e).__name__}: {e}"}

    attempt("batch", lambda: Trainer(build_mlp([8, 3], seed=0), batch_size=33, progress=False))
    # Each new process is seeded at random: an unseeded model differs between ranks.
    attempt("weights", lambda: Trainer(build_mlp([8, 3]), epochs=1, progress=False))
    short = (train[0][: 300 - 30 * rank], train[1][: 300 - 30 * rank])
    attempt("data", lambda: Trainer(build_mlp([8, 3], seed=0), epochs=1, progress=False),
            short)
    attempt("lr", lambda: Trainer(build_mlp([8, 3], seed=0), lr=1e-3 * (1 + rank), epochs=1,
                                  progress=False))
    attempt("stop", lambda: Trainer(build_mlp([8, 3], seed=0), epochs=5, progress=False,
                                    callbacks=[StopOnRankOne()]))
    (out / f"bad-rank{rank}.json").write_text(json.dumps(seen))


def variants(out: Path, rank: int) -> None:
    """An unseeded fit, a BatchNorm fit and weighted fits: what each rank ends with."""
    train, val = data()
    x, y = train
    seen = {}
    unseeded = Trainer(build_mlp([8, 16, 3], [0.3], seed=0), epochs=1, batch_size=BATCH_SIZE,
                       progress=False, precision="fp32")
    unseeded.fit(train)
    seen["unseeded_seed"] = unseeded.seed_used
    results = {}
    batch_norm = Trainer(build_mlp([8, 16, 3], norm="batch", seed=0), epochs=2,
                         batch_size=BATCH_SIZE, seed=7, progress=False, precision="fp32")
    seen["batch_norm_val_loss"] = [e["val_loss"] for e in batch_norm.fit(train, val)]
    results.update({f"batch_norm.{k}": v for k, v in batch_norm.model.state_dict().items()})
    weights = torch.where(torch.arange(len(y)) % 3 == 0, 10.0, 1.0)
    for name, extra, data_ in (("sample", {}, (x, y, weights)),
                               ("class", {"class_weight": [1.0, 5.0, 10.0]}, train)):
        trainer = Trainer(build_mlp([8, 16, 3], seed=0), epochs=2, batch_size=BATCH_SIZE,
                          seed=7, progress=False, precision="fp32", **extra)
        seen[f"{name}_train_loss"] = [e["train_loss"] for e in trainer.fit(data_)]
        results.update({f"{name}.{k}": v for k, v in trainer.model.state_dict().items()})
    safetensors.torch.save_file({k: v.contiguous() for k, v in results.items()},
                                str(out / f"variants-rank{rank}.safetensors"))
    (out / f"variants-rank{rank}.json").write_text(json.dumps(seen))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--rank-paths", action="store_true")
    parser.add_argument("--bad-setups", action="store_true")
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    if args.bad_setups:
        bad_setups(args.out, rank)
        return
    if args.variants:
        variants(args.out, rank)
        return
    tag = f"-rank{rank}" if args.rank_paths else ""
    ckpt = args.out / f"ckpt{tag}"
    model = build_mlp([8, 32, 16, 3], seed=0)
    callbacks = [EarlyStopping(patience=10), ModelCheckpoint(ckpt, every_n_batches=2),
                 HistoryLogger(args.out / f"history{tag}.json"), EpochLogger()]
    if args.kill_at:
        callbacks.append(KillAt(args.kill_at))
    # float32: the ranks' summed gradients equal the whole batch's up to summation order
    # (bf16 products of half batches round differently from the whole batch's).
    trainer = Trainer(model, lr=1e-2, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=7,
                      scheduler="onecycle", callbacks=callbacks, progress=False,
                      precision="fp32")
    train, val = data()
    resume = ckpt if ckpt.is_dir() and find_latest_checkpoint(ckpt) else None
    trainer.fit(train, val, resume_from=resume)
    weights = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    safetensors.torch.save_file(weights, str(args.out / f"result-rank{rank}.safetensors"))
    result = {"history": [{k: v for k, v in e.items() if k != "seconds"}
                          for e in trainer.history],
              "world_size": int(os.environ.get("WORLD_SIZE", "1")),
              "resumed": trainer.history.meta.get("resumed", []),
              "accuracy": trainer.evaluate(val)["accuracy"]}
    (args.out / f"result-rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
