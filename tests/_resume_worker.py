"""Subprocess worker for tests/test_resume.py: a small training run with checkpoints.

Usage::

    python tests/_resume_worker.py CKPT_DIR HOLD_STEP RELEASE_FILE

It trains :func:`make_trainer`'s run, saving a checkpoint every 2 batches into
``CKPT_DIR`` and sleeping 10 ms after each batch, so that the parent can signal it at a
random moment mid-run. After global step ``HOLD_STEP`` it waits until ``RELEASE_FILE``
exists (the parent creates it once it has sent its signal): however slow the parent is
to send it, the run cannot end before the signal. It then prints ``finished`` and exits
with 0, or, after Ctrl-C (the Trainer saves, then re-raises ``KeyboardInterrupt``),
prints ``interrupted`` and exits with :data:`INTERRUPTED`.

The tests import :func:`make_trainer` and :func:`data` to resume the run in their own
process and to train an uninterrupted reference. Every run uses one thread and the CPU,
so that float results do not depend on how work is split between threads or devices.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from _separable import separable  # beside this script

from fcnet import Callback, EarlyStopping, ModelCheckpoint, Trainer, build_mlp

EPOCHS = 4
BATCH_SIZE = 16
SAVE_EVERY = 2
#: 300 training samples in batches of 16.
BATCHES_PER_EPOCH = 19
#: The exit status after Ctrl-C, as a shell reports a process ended by SIGINT.
INTERRUPTED = 130


def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A separable 3-class problem, 300 train and 60 validation samples of 8 features."""
    return separable(300, 60)


class _Pace(Callback):
    """Sleeps after each batch, and holds after step ``hold_step`` until ``release`` exists."""

    def __init__(self, hold_step: int, release: Path) -> None:
        self.hold_step = hold_step
        self.release = release

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict) -> None:
        time.sleep(0.01)
        if trainer.epoch * trainer.batches_per_epoch + batch + 1 != self.hold_step:
            return
        parent = os.getppid()
        while not self.release.exists() and os.getppid() == parent:  # the parent may die
            time.sleep(0.005)


def make_trainer(ckpt_dir: Path | None, callbacks: tuple[Callback, ...] = ()) -> Trainer:
    """The run under test: dropout, batch norm, Adam + OneCycle, early stopping."""
    model = build_mlp([8, 32, 16, 3], dropout=0.2, norm="batch", seed=0)
    cbs: list[Callback] = [EarlyStopping(patience=10, restore_best=True), *callbacks]
    if ckpt_dir is not None:
        cbs.append(ModelCheckpoint(ckpt_dir, every_n_batches=SAVE_EVERY, keep_last=2))
    return Trainer(model, lr=1e-2, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=7,
                   scheduler="onecycle", callbacks=cbs, device="cpu", progress=False)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    ckpt_dir, hold_step, release = Path(argv[0]), int(argv[1]), Path(argv[2])
    train, val = data()
    trainer = make_trainer(ckpt_dir, (_Pace(hold_step, release),))
    try:
        trainer.fit(train, val)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return INTERRUPTED
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
