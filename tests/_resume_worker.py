"""Subprocess worker for tests/test_resume.py: a small training run with checkpoints.

Usage::

    python tests/_resume_worker.py train  CKPT_DIR OUT_DIR   # trains, saving often
    python tests/_resume_worker.py resume CKPT_DIR OUT_DIR   # resumes, then runs a reference

The tests import :func:`make_trainer` and :func:`data` to resume in their own process.

``train`` saves a checkpoint every 2 batches (and sleeps a little per batch so that the
parent can kill or interrupt it mid-run) and prints
``interrupted`` or ``finished``. ``resume`` resumes from ``CKPT_DIR`` to the end and writes
its final weights to ``OUT_DIR/resumed.safetensors``, then trains the same run from
scratch without interruption and writes ``OUT_DIR/reference.safetensors``; both
histories go to ``OUT_DIR/*.json``. Every run uses one thread so that float results do
not depend on how work is split between threads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import safetensors.torch
import torch

from fcnet import Callback, EarlyStopping, ModelCheckpoint, Trainer, build_mlp

EPOCHS = 4
BATCH_SIZE = 16
SAVE_EVERY = 2


def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A separable 3-class problem, 300 train and 60 validation samples of 8 features."""
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(3, 8, generator=g) * 2
    y = torch.arange(360) % 3
    x = centers[y] + torch.randn(360, 8, generator=g) * 1.5
    return (x[:300], y[:300]), (x[300:], y[300:])


class _Slow(Callback):
    """Sleeps after each batch: the parent then has time to kill the run mid-epoch."""

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict) -> None:
        time.sleep(0.01)


def make_trainer(ckpt_dir: Path | None, slow: bool = False) -> Trainer:
    """The run under test: dropout, batch norm, Adam + OneCycle, early stopping."""
    torch.manual_seed(0)
    model = build_mlp([8, 32, 16, 3], dropout=0.2, norm="batch")
    callbacks: list[Callback] = [EarlyStopping(patience=10, restore_best=True)]
    if slow:
        callbacks.append(_Slow())
    if ckpt_dir is not None:
        callbacks.append(ModelCheckpoint(ckpt_dir, every_n_batches=SAVE_EVERY, keep_last=2))
    return Trainer(model, lr=1e-2, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=7,
                   scheduler="onecycle", callbacks=callbacks, progress=False)


def _write(trainer: Trainer, out: Path, name: str) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    safetensors.torch.save_file(state, str(out / f"{name}.safetensors"))
    trainer.history.to_json(out / f"{name}.json")


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    mode, ckpt_dir, out = argv[0], Path(argv[1]), Path(argv[2])
    train, val = data()
    if mode == "train":
        trainer = make_trainer(ckpt_dir, slow=True)
        trainer.fit(train, val)
        print("interrupted" if trainer.history.meta.get("interrupted") else "finished")
        return 0
    if mode == "resume":
        trainer = make_trainer(ckpt_dir)
        trainer.fit(train, val, resume_from=ckpt_dir)
        _write(trainer, out, "resumed")
        reference = make_trainer(None)
        reference.fit(train, val)
        _write(reference, out, "reference")
        return 0
    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
