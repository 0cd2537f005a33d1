"""Callbacks: hooks into the training loop of :class:`fcnet.Trainer`.

Every hook is called from one place in the Trainer, in the order the callbacks
were given (a :class:`ModelCheckpoint` last, and first in ``on_train_end``). A
callback's constructor only stores its arguments; learned state is reset in
:meth:`Callback.on_train_begin`, so one instance can serve several fits. To stop
training, a callback sets ``trainer.should_stop = True``. A callback reads and changes
the Trainer only through its public attributes and methods.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import os
import secrets
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch
from torch import nn
from tqdm.auto import tqdm

from fcnet import checkpoint
from fcnet._checks import check_int, is_number
from fcnet._io import atomic_write_text
from fcnet.exceptions import CheckpointError

if TYPE_CHECKING:
    from fcnet.trainer import Trainer

__all__ = [
    "Callback",
    "DisableAugmentation",
    "EarlyStopping",
    "GradientClipping",
    "ProgressBar",
    "EpochLogger",
    "HistoryLogger",
    "ModelCheckpoint",
    "WeightAveraging",
]


class Callback:
    """Base class with empty hooks; override the ones you need.

    ``logs`` passed to :meth:`on_epoch_end` is the epoch's dict, the same object that
    is appended to the history, so a callback may add keys to it. ``logs`` passed
    to :meth:`on_batch_end` holds ``batch`` (index within the epoch), ``size``
    (samples) and ``loss`` (a 0-d tensor on the training device; call ``.item()``
    only when needed, since it waits for the device).

    Callbacks that learn state during training implement :meth:`state_dict` and
    :meth:`load_state_dict` so that checkpoints can save and resume them. A callback
    that adds keys to the epoch's logs names them in :attr:`provides`, so that other
    callbacks can check before training that a key they monitor will exist.
    """

    #: History keys this callback adds to every epoch's logs.
    provides: tuple[str, ...] = ()

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once at the start of :meth:`Trainer.fit` (also when resuming)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once when fit ends: finished, stopped early or interrupted."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Called before the first batch of ``epoch`` (counted from 1), also when a run
        resumes inside that epoch (then ``trainer.batch_in_epoch > 0``)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Called after validation of ``epoch``, with that epoch's history entry."""

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        """Called before the optimisation step on ``batch`` (index within the epoch)."""

    def on_after_backward(self, trainer: Trainer) -> None:
        """Called between the backward pass and the optimizer step: the gradients are there."""

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict[str, Any]) -> None:
        """Called after the optimisation step on ``batch``."""

    def state_dict(self) -> dict[str, Any]:
        """Return the learned state to checkpoint (JSON values and tensors only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict`."""


class EarlyStopping(Callback):
    """Stop when a monitored metric has stopped improving.

    Args:
        monitor: History key to watch, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        patience: Number of epochs without improvement after which training stops
            (as in Keras): with ``patience=3``, a run whose best epoch is the first stops
            after epoch 4. ``0`` and ``1`` both stop at the first epoch that does not
            improve.
        min_delta: Smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` when the name contains
            "acc", else ``"min"``).
        restore_best: At the end of training, put back the weights of the best epoch.

    When it stops training it records ``stop_reason`` and ``stopped_epoch`` in
    ``history.meta`` (with ``best_epoch`` and ``best_score``), and ``stopped_early: True``
    and the same ``stop_reason`` in the last epoch's entry.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a non-empty str, got {monitor!r}")
        self.patience = check_int("patience", patience, 0)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise TypeError(f"min_delta must be a number, got {min_delta!r}")
        if not (min_delta >= 0 and math.isfinite(min_delta)):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be one of 'auto', 'min', 'max', got {mode!r}")
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.mode = mode
        self.restore_best = bool(restore_best)

    @property
    def resolved_mode(self) -> str:
        """``"min"`` or ``"max"``: :attr:`mode` with ``"auto"`` decided from the name."""
        return _resolve_mode(self.mode, self.monitor)

    def on_train_begin(self, trainer: Trainer) -> None:
        """Reset the state, and check that the monitored value will exist."""
        _check_monitor("EarlyStopping", self.monitor, trainer)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.resolved_mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Compare the monitored value with the best so far; stop after ``patience``."""
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which is not in the epoch's "
                f"logs; available: {sorted(logs)}"
            )
        value = float(logs[self.monitor])
        if math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = {
                    k: v.detach().clone() for k, v in trainer.model.state_dict().items()
                }
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            trainer.should_stop = True
            reason = (
                f"{self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
                if self.best is not None
                else f"{self.monitor} was never finite"
            )
            logs["stopped_early"] = True
            logs["stop_reason"] = reason
            trainer.history.meta.update(
                stop_reason=reason,
                stopped_epoch=epoch,
                best_epoch=self.best_epoch,
                best_score=self.best,
                monitor=self.monitor,
            )

    def on_train_end(self, trainer: Trainer) -> None:
        """Restore the best weights when asked to."""
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)
            trainer.history.meta["restored_best_epoch"] = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        """Counter, best score and epoch, and the best weights (as tensors)."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self.best_weights = state["best_weights"]


def _check_monitor(who: str, monitor: str, trainer: Trainer) -> None:
    """Fail before training when ``monitor`` is not a key the fit's epochs will have."""
    names = trainer.metric_names
    if monitor in names:
        return
    if monitor.startswith("val_") and not trainer.has_validation:
        raise ValueError(
            f"{who} monitors {monitor!r} but fit() got no validation data; pass val= or "
            f"monitor a training metric such as 'train_loss'")
    close = difflib.get_close_matches(monitor, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{who}(monitor={monitor!r}): this fit's epochs will have the keys "
                     f"{names}{hint}")


def _check_writable(who: str, arg: str, folder: Path) -> None:
    """Fail before training when files cannot be created in ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{who}: cannot write into {arg} '{folder}' ({e.strerror or e}); "
                         f"choose a folder you can write to") from None


def _resolve_mode(mode: str, monitor: str) -> str:
    # "auto": accuracies are maximised, everything else (losses) minimised.
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


def _format_logs(logs: dict[str, Any]) -> str:
    parts = []
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        value = logs.get(key)
        if isinstance(value, float):
            fmt = ".2e" if key == "lr" else (".1f" if key == "seconds" else ".4f")
            parts.append(f"{key}={value:{fmt}}")
    return " ".join(parts)


class EpochLogger(Callback):
    """Print one line per epoch: ``epoch 3/25 train_loss=0.41 ... val_accuracy=0.86``.

    Args:
        file: Where to write; standard output by default.
    """

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Print the epoch's metrics."""
        if trainer.is_global_zero:
            out = self.file or sys.stdout
            print(f"epoch {epoch}/{trainer.final_epoch} {_format_logs(logs)}", file=out,
                  flush=True)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch (rate, time left, running loss) on a terminal.

    On a terminal or in a notebook (``tqdm.auto``) it draws a live bar that ends as the
    epoch's summary line; when the output is not a terminal (a run piped to a file, CI)
    it draws no bar and writes one plain line per epoch instead, so the log still says
    what the run did.

    Args:
        file: Where to write; standard error by default.
        enabled: ``None`` draws the bar only on a terminal; ``True``/``False`` force it.
        refresh_seconds: Minimum time between redraws. Each redraw reads the running
            loss from the device, so it is kept rare.
    """

    def __init__(
        self, file: TextIO | None = None, enabled: bool | None = None, refresh_seconds: float = 0.2
    ) -> None:
        if enabled is not None and not isinstance(enabled, bool):
            raise TypeError(f"enabled must be None, True or False, got {enabled!r}")
        if not is_number(refresh_seconds) or not refresh_seconds >= 0:
            raise ValueError(f"refresh_seconds must be a number >= 0, got {refresh_seconds!r}")
        self.file = file
        self.enabled = enabled
        self.refresh_seconds = float(refresh_seconds)

    def _stream(self) -> TextIO:
        return self.file or sys.stderr

    def _active(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        isatty = getattr(self._stream(), "isatty", None)
        return bool(isatty and isatty())

    def on_train_begin(self, trainer: Trainer) -> None:
        """Decide whether to draw a bar or write plain lines (only rank 0 writes)."""
        self._on = self._active() and trainer.is_global_zero
        self._quiet = not trainer.is_global_zero
        self._bar: Any = None

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Open the epoch's bar at the batch the epoch starts from."""
        self._running: list[torch.Tensor] = []
        self._loss_sum, self._seen, self._last_read = 0.0, 0, 0.0
        if not self._on:
            return
        self._bar = tqdm(total=trainer.batches_per_epoch, initial=trainer.batch_in_epoch,
                         desc=f"epoch {epoch}/{trainer.final_epoch}", file=self._stream(),
                         mininterval=self.refresh_seconds, leave=True, unit="batch",
                         dynamic_ncols=True)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict[str, Any]) -> None:
        """Advance the bar; show the running loss at most every ``refresh_seconds``."""
        if self._bar is None:
            return
        self._running.append(logs["loss"] * logs["size"])
        self._seen += logs["size"]
        self._bar.update(1)
        now = time.monotonic()
        if now - self._last_read >= self.refresh_seconds or self._bar.n >= self._bar.total:
            self._last_read = now
            self._loss_sum += float(torch.stack(self._running).sum())
            self._running.clear()
            self._bar.set_postfix_str(f"loss={self._loss_sum / max(self._seen, 1):.4f}",
                                      refresh=False)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Close the bar with the epoch's summary, or write the summary line."""
        line = f"epoch {epoch}/{trainer.final_epoch} {_format_logs(logs)}"
        if self._bar is not None:
            self._bar.set_postfix_str(_format_logs(logs), refresh=False)
            self._bar.close()
            self._bar = None
        elif not self._quiet:
            print(line, file=self._stream(), flush=True)

    def on_train_end(self, trainer: Trainer) -> None:
        """Close a bar left open by an interruption."""
        if getattr(self, "_bar", None) is not None:
            self._bar.close()
            self._bar = None


class HistoryLogger(Callback):
    """Write the history to a CSV or JSON file after every epoch (atomically).

    Args:
        path: Target file; its suffix (``.csv`` or ``.json``) picks the format.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".json"):
            raise ValueError(f"path must end in .csv or .json, got {str(path)!r}")
        self.path = Path(path)

    def on_train_begin(self, trainer: Trainer) -> None:
        """Check before training that the file can be written (by rank 0, which writes)."""
        if not trainer.is_global_zero:
            return
        if self.path.is_dir():
            raise ValueError(f"HistoryLogger: path '{self.path}' is a folder; give a file "
                             f"path ending in .csv or .json")
        if not self.path.parent.is_dir():
            raise ValueError(f"HistoryLogger: the folder of path '{self.path}' does not "
                             f"exist; create it first")
        _check_writable("HistoryLogger", "the folder of path", self.path.parent)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Rewrite the file with every epoch so far."""
        self._write(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        """Write once more so run-level notes (early stop, interruption) are kept."""
        self._write(trainer)

    def _write(self, trainer: Trainer) -> None:
        if not trainer.is_global_zero:
            return
        history = trainer.history
        if self.path.suffix.lower() == ".json":
            history.to_json(self.path)
            return
        keys: list[str] = []
        for row in history:
            keys.extend(k for k in row if k not in keys)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.path, buf.getvalue())


class WeightAveraging(Callback):
    """Keep an exponential moving average (EMA) of the weights; use it at the end.

    After every optimisation step, ``avg = decay * avg + (1 - decay) * weights`` for every
    floating-point parameter and buffer (BatchNorm statistics included). With
    ``warmup=True`` the decay starts low and rises as ``min(decay, (1 + t) / (10 + t))``
    after ``t`` steps, so early, poor weights fade out quickly. When training ends
    (finished, stopped early or interrupted) the averaged weights replace the model's,
    and ``history.meta["weight_averaging"]`` records it. Validation during training
    still sees the raw weights.

    Put it before :class:`EarlyStopping` with ``restore_best=True`` only if you want
    the best raw weights to win: callbacks' ``on_train_end`` run in order.

    Args:
        decay: Weight of the old average per step, in ``(0, 1)``.
        warmup: Ramp the decay up over the first steps.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)):
            raise TypeError(f"decay must be a number, got {decay!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)

    def on_train_begin(self, trainer: Trainer) -> None:
        """Start the average from the current weights."""
        self.updates = 0
        self.average = {
            k: v.detach().clone()
            for k, v in trainer.model.state_dict().items()
            if v.is_floating_point()
        }

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict[str, Any]) -> None:
        """Fold the new weights into the average (one fused update, no sync)."""
        self.updates += 1
        decay = self.decay
        if self.warmup:
            decay = min(decay, (1 + self.updates) / (10 + self.updates))
        state = trainer.model.state_dict()
        keys = list(self.average)
        torch._foreach_lerp_(
            [self.average[k] for k in keys], [state[k].detach() for k in keys], 1.0 - decay
        )

    def on_train_end(self, trainer: Trainer) -> None:
        """Load the averaged weights into the model."""
        if self.updates == 0:
            return
        trainer.model.load_state_dict(self.average, strict=False)
        trainer.history.meta["weight_averaging"] = {"decay": self.decay, "updates": self.updates}

    def state_dict(self) -> dict[str, Any]:
        """The average and the step count."""
        return {"updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.updates = int(state["updates"])
        self.average = state["average"]


class ModelCheckpoint(Callback):
    """Save the full training state, so that a run can resume exactly where it was.

    Each checkpoint is a folder ``dirpath/epochEEEE-batchBBBBBB/`` (``EEEE`` epochs done,
    ``BBBBBB`` batches done in the next one) with ``state.safetensors``, ``state.json``
    and, written last, ``manifest.json``; ``dirpath/latest.json`` names the newest one.
    Where another run's checkpoint already has that name, the folder's name ends in
    ``-<run id>`` instead, so no run replaces another's checkpoints. A checkpoint holds
    the weights, optimizer and scheduler state, every callback's
    :meth:`~Callback.state_dict`, the RNG states, the position, the running epoch sums,
    the history, the model spec and the data shapes. Resume with
    ``trainer.fit(train, val, resume_from=dirpath)``; the run then ends with exactly the
    weights of an uninterrupted one. The format is described in ``docs/checkpoints.rst``.

    Writes are atomic (a hidden temporary folder, fsynced, then renamed), and older
    checkpoints of the run are pruned only once the new one is on disk, so a crash at any
    moment leaves the previous checkpoint intact. A checkpoint whose weights hold NaN or
    infinite values is not written (a ``RuntimeWarning`` says so): the last good one stays.

    A checkpoint is also written when training ends (finished, stopped early or
    interrupted by Ctrl-C) at a point not yet saved. The Trainer calls this callback after
    all others in every hook but ``on_train_end``, where it comes first, so it records
    their updated state and the training weights before ``EarlyStopping`` restores the
    best ones.

    Args:
        dirpath: Folder for the checkpoints (created when training starts).
        every_n_epochs: Save after every ``every_n_epochs``-th epoch.
        keep_last: How many of this run's checkpoints to keep in ``dirpath``.
        save_best: Also keep the checkpoint of the best epoch by ``monitor`` in
            ``dirpath/best/`` (a folder of one checkpoint, loadable by ``resume_from``
            and by :func:`fcnet.load_model`).
        monitor: History key that decides the best epoch, e.g. ``"val_loss"``.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` when ``monitor`` contains
            "acc", else ``"min"``).
        every_n_batches: Also save every ``every_n_batches`` training steps (counted
            over the whole run), mid-epoch included; ``None``: only at epoch ends.

    Attributes:
        best: Best monitored value so far (``None`` before the first epoch).
        best_epoch: Epoch of :attr:`best`.
        last_path: Folder of the last checkpoint written (``None`` before the first).
    """

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        every_n_epochs: int = 1,
        keep_last: int = 2,
        save_best: bool = True,
        monitor: str = "val_loss",
        mode: str = "auto",
        every_n_batches: int | None = None,
    ) -> None:
        if isinstance(dirpath, bool) or not isinstance(dirpath, (str, os.PathLike)):
            raise TypeError(
                f"dirpath must be a str or os.PathLike folder path, got "
                f"{type(dirpath).__name__} {dirpath!r}"
            )
        if str(dirpath) == "":
            raise ValueError("dirpath must be a folder path, got ''")
        self.dirpath = Path(dirpath)
        self._check_dirpath()
        self.every_n_epochs = _check_positive(
            "every_n_epochs", every_n_epochs, "1 saves after every epoch"
        )
        self.keep_last = _check_positive("keep_last", keep_last, "1 keeps only the newest")
        if every_n_batches is not None:
            every_n_batches = _check_positive(
                "every_n_batches", every_n_batches, "None saves only at epoch ends"
            )
        self.every_n_batches = every_n_batches
        if not isinstance(save_best, bool):
            raise TypeError(f"save_best must be True or False, got {save_best!r}")
        self.save_best = save_best
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a non-empty str, got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be one of 'auto', 'min', 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode

    def _check_dirpath(self) -> None:
        if self.dirpath.exists() and not self.dirpath.is_dir():
            raise ValueError(f"dirpath must be a folder, but '{self.dirpath}' is a file")

    @property
    def resolved_mode(self) -> str:
        """``"min"`` or ``"max"``: :attr:`mode` with ``"auto"`` decided from the name."""
        return _resolve_mode(self.mode, self.monitor)

    def on_train_begin(self, trainer: Trainer) -> None:
        """Check the folder (it must be writable) and the monitored value; start a new run."""
        self._check_dirpath()
        if self.save_best and self.monitor.startswith("val_") and not trainer.has_validation:
            raise ValueError(
                f"ModelCheckpoint monitors {self.monitor!r} for save_best but fit() got no "
                f"validation data; pass val=, monitor a training metric such as "
                f"'train_loss', or set save_best=False"
            )
        if self.save_best:
            _check_monitor("ModelCheckpoint", self.monitor, trainer)
        if trainer.is_global_zero:
            _check_writable("ModelCheckpoint", "dirpath", self.dirpath)
        # A fresh id per run: pruning only ever removes checkpoints of the same run.
        # Resuming restores the id of the run that wrote the checkpoint.
        self.run_id = secrets.token_hex(8)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.last_saved: tuple[int, int] | None = None
        self.last_path: Path | None = None

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict[str, Any]) -> None:
        """Save every ``every_n_batches`` steps."""
        if self.every_n_batches is None:
            return
        step = trainer.epoch * trainer.batches_per_epoch + batch + 1  # over the whole run
        if step % self.every_n_batches == 0:
            self._save(trainer, regular=True, best=False)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Save every ``every_n_epochs`` epochs, and to ``best/`` when the monitor improves."""
        improved = False
        if self.save_best:
            if self.monitor not in logs:
                raise ValueError(
                    f"ModelCheckpoint monitors {self.monitor!r}, which is not in the epoch's "
                    f"logs; available: {sorted(logs)}"
                )
            value = logs[self.monitor]
            improved = isinstance(value, (int, float)) and math.isfinite(value) and (
                self.best is None
                or (value < self.best if self.resolved_mode == "min" else value > self.best)
            )
        regular = epoch % self.every_n_epochs == 0
        if regular or improved:
            self._save(trainer, regular=regular, best=improved,
                       score=float(logs[self.monitor]) if improved else None)

    def on_train_end(self, trainer: Trainer) -> None:
        """Save the final or interrupted state unless it was just saved.

        Nothing is saved when fit ends with an error (e.g. a non-finite loss): the last
        good checkpoint stays the latest.
        """
        interrupted = bool(trainer.history.meta.get("interrupted"))
        finished = trainer.epoch >= trainer.final_epoch or trainer.should_stop
        position = (trainer.epoch, trainer.batch_in_epoch)
        if not (interrupted or finished):
            return
        name = checkpoint.checkpoint_name(*position)
        # Every rank must decide alike (saving gathers from all of them), and only rank 0
        # sees the folder when the ranks do not share a file system.
        mine = self.dirpath / checkpoint.run_checkpoint_name(self.dirpath, name, self.run_id)
        if position == self.last_saved and (trainer.world_size > 1 or mine.is_dir()):
            return
        self._save(trainer, regular=True, best=False)

    def _save(self, trainer: Trainer, *, regular: bool, best: bool,
              score: float | None = None) -> None:
        epoch, batch = trainer.epoch, trainer.batch_in_epoch
        bad = _first_nonfinite(trainer.model)
        if bad is not None:
            warnings.warn(
                f"ModelCheckpoint: not saving at epoch {epoch}, batch {batch}: the weight "
                f"{bad!r} holds NaN or infinite values; the last good checkpoint is kept",
                RuntimeWarning, stacklevel=3,
            )
            return
        if best:
            self.best, self.best_epoch = score, trainer.epoch
        if regular:
            self.last_saved = (epoch, batch)
        name = checkpoint.checkpoint_name(epoch, batch)
        state = trainer.state_dict()  # on every rank: it gathers each rank's random stream
        if not trainer.is_global_zero:
            return
        files = checkpoint.encode_checkpoint(state, run_id=self.run_id, position=(epoch, batch))
        if regular:
            self.last_path = checkpoint.publish_checkpoint(
                self.dirpath, name, files, run_id=self.run_id, keep_last=self.keep_last)
        if best:
            checkpoint.publish_checkpoint(self.dirpath / "best", name, files,
                                          run_id=self.run_id, keep_last=1)

    def state_dict(self) -> dict[str, Any]:
        """The run id, the best score and epoch, and the last position saved."""
        return {
            "run_id": self.run_id,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "last_saved": None if self.last_saved is None else list(self.last_saved),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.run_id = str(state["run_id"])
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        last = state["last_saved"]
        self.last_saved = None if last is None else (int(last[0]), int(last[1]))


def load_callback_states(callbacks: list[Callback], saved: list[Any], where: str) -> None:
    """Give each callback the state that a checkpoint saved for it.

    States are matched by class and order within the class, so adding or dropping a
    stateless callback (e.g. the ProgressBar) between runs does not matter; a callback
    without a saved state starts afresh, and a saved state without its callback is
    ignored, each with a warning.

    Raises:
        CheckpointError: a saved state does not fit its callback.
    """
    def keyed(items):
        seen: dict[str, int] = {}
        out = {}
        for cls, value in items:
            k = seen.get(cls, 0)
            seen[cls] = k + 1
            out[(cls, k)] = value
        return out

    saved_by_key = keyed((c["class"], c["state"]) for c in saved)
    mine_by_key = keyed((type(cb).__name__, cb) for cb in callbacks)
    for key, cb in mine_by_key.items():
        if key in saved_by_key:
            try:
                cb.load_state_dict(saved_by_key[key])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise CheckpointError(f"{where}: cannot restore the state of {key[0]}: "
                                      f"{e!r}") from e
        elif cb.state_dict():
            warnings.warn(f"{where} has no state for the callback {key[0]}; it starts afresh",
                          UserWarning, stacklevel=4)
    for key, value in saved_by_key.items():
        if key not in mine_by_key and value:
            warnings.warn(f"{where} holds the state of a {key[0]} callback that this Trainer "
                          f"does not have; that state is ignored", UserWarning, stacklevel=4)


def _first_nonfinite(model: nn.Module) -> str | None:
    """Name of the first floating tensor of ``model.state_dict()`` holding NaN or inf."""
    named = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(v).all() for _, v in named])
    if bool(finite.all()):  # one device sync for the whole model
        return None
    return named[int((~finite).nonzero()[0])][0]


class GradientClipping(Callback):
    """Clip the global norm of the gradients before every optimizer step.

    Args:
        max_norm: The largest allowed L2 norm of all gradients together, > 0.
    """

    def __init__(self, max_norm: float) -> None:
        if not is_number(max_norm) or not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")
        self.max_norm = float(max_norm)

    def on_after_backward(self, trainer: Trainer) -> None:
        """Scale the gradients down to ``max_norm`` when their norm is above it."""
        nn.utils.clip_grad_norm_(trainer.model.parameters(), self.max_norm)


class DisableAugmentation(Callback):
    """Train the last ``last_epochs`` epochs of a fit without the Trainer's ``augment``.

    A network that learnt from shifted or flipped images then fits the images it will be
    tested on, at the schedule's low final learning rates (as YOLOX's last epochs do).
    Whether an epoch is augmented depends on its number only, so a resumed run augments
    the same epochs.

    Args:
        last_epochs: How many epochs at the end of each fit run without augmentation.
    """

    def __init__(self, last_epochs: int) -> None:
        self.last_epochs = check_int("last_epochs", last_epochs, 1)

    def on_train_begin(self, trainer: Trainer) -> None:
        """Check that there is an augmentation to turn off, and epochs left to augment."""
        if trainer.augment is None:
            raise ValueError("DisableAugmentation needs a Trainer with augment=...; remove the "
                             "callback or pass an augmentation")
        if self.last_epochs >= trainer.epochs:
            raise ValueError(
                f"DisableAugmentation(last_epochs={self.last_epochs}) must be below the "
                f"Trainer's epochs ({trainer.epochs}), or the fit never augments")

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Clear ``trainer.augmenting`` in the last epochs."""
        if epoch > trainer.final_epoch - self.last_epochs:
            trainer.augmenting = False


def _check_positive(name: str, value: Any, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1 ({hint}), got {value!r}")
    return value
