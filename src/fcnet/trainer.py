"""The Trainer: fit, evaluate, predict and predict_proba for classifiers.

The data set lives on the training device as one tensor; a batch is an index slice of a
seeded permutation (:class:`fcnet.data.DeviceLoader`). Metrics are accumulated on the
device, so a training step never waits for it.

The loop's pieces are public and meant to be overridden: :meth:`Trainer.forward`,
:meth:`Trainer.compute_loss`, :meth:`Trainer.train_step` (forward, loss, backward,
optimizer step) and :meth:`Trainer.predict_step`. Everything else a training method
needs is a :class:`~fcnet.callbacks.Callback`. :meth:`Trainer.state_dict` holds all
that an exact resume needs; :mod:`fcnet.checkpoint` only stores it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import secrets
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnet import _inputs, _mlp_step, _state, distributed
from fcnet._device import (
    flush_denormal,
    intra_op_threads,
    resolve_precision,
    select_device,
    step_flops,
    training_threads,
)
from fcnet._fused import clear_grads, optimizer_step
from fcnet._rng import RngStream
from fcnet.callbacks import Callback, ModelCheckpoint, ProgressBar, load_callback_states
from fcnet.checkpoint import load_checkpoint
from fcnet.config import LOSSES, PRECISIONS, LossFunction, OptimizerFactory, TrainerConfig
from fcnet.data import BatchAugment, DeviceLoader, to_tensors
from fcnet.exceptions import CheckpointError, NonFiniteLossError
from fcnet.history import History
from fcnet.models import MLP, InputAdapter
from fcnet.optim import OPTIMIZERS, build_optimizer
from fcnet.schedules import Schedule

__all__ = ["LOSSES", "OPTIMIZERS", "PRECISIONS", "Trainer", "TrainerConfig"]

#: The version of :meth:`Trainer.state_dict`'s layout.
STATE_VERSION = 2


#: History notes of one fit (how it ended, what it dropped); a later fit starts without them.
_FIT_NOTES = ("interrupted", "interrupted_at", "stop_reason", "stopped_epoch",
              "best_epoch", "restored_best_epoch", "dropped_tail")


class Trainer:
    """Train and use a classifier that maps inputs to class scores.

    Args:
        model: Any module returning ``(N, classes)`` scores: logits, or log-probabilities
            for ``loss="nll"``. Models from :func:`fcnet.build_mlp` carry their own
            preprocessing (see :mod:`fcnet.models` for the input rule); other models get
            ``uint8`` inputs scaled to ``[0, 1]`` and other dtypes as ``float32``.
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (Nesterov momentum 0.9) or a factory
            ``params -> torch.optim.Optimizer`` (then ``lr`` and ``weight_decay`` only
            reach the named schedules). The named optimizers use torch's fused step
            where torch has one.
        lr: Learning rate (the peak rate for ``"onecycle"``).
        weight_decay: L2 penalty (decoupled for ``"adamw"``) on the weight matrices of the
            named optimizers; biases and normalisation parameters are not decayed.
        epochs: Passes over the training data in each :meth:`fit`.
        batch_size: Samples per optimisation step.
        loss: ``"cross_entropy"`` on logits, ``"nll"`` on log-probabilities, or a callable
            ``(outputs, targets) -> loss``; for other objectives override
            :meth:`compute_loss`.
        label_smoothing: Label smoothing in ``[0, 1)`` for ``"cross_entropy"``.
        class_weight: ``None``, ``"balanced"`` (each class weighed by ``n_samples /
            (classes * count)`` of the training labels, as in scikit-learn) or one loss
            factor per class. Sample weights come with the data: ``fit((X, y, w))``.
        scheduler: ``None``, ``"onecycle"``, ``"cosine"``, ``"step"``, a
            :class:`fcnet.schedules.Schedule` (e.g. ``OneCycle(pct_start=0.1)``), or a
            callable ``optimizer -> scheduler`` stepped once per epoch. A schedule spans
            one fit.
        augment: Batch augmentation for training batches, e.g.
            ``fcnet.data.RandomShift(2)``; it needs image-shaped inputs ``(N, H, W)`` or
            ``(N, C, H, W)``. :class:`fcnet.callbacks.DisableAugmentation` turns it off
            for the last epochs.
        callbacks: :class:`fcnet.callbacks.Callback` instances, called in order (a
            :class:`~fcnet.callbacks.ModelCheckpoint` after the others, so that it saves
            their updated state, and first at the end of training).
        device: ``"auto"`` (CUDA, then MPS, then CPU), or any torch device.
        seed: Seeds the data order, dropout and augmentation, drawn from the Trainer's own
            generators: the caller's global RNG state is left as it was. With the same
            seed and the same initial weights (``build_mlp(..., seed=...)``), a CPU run
            gives bit-identical weights. ``None`` draws a seed, recorded in
            ``history.meta["seed"]``.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``: the dtype of the matrix
            products (bf16: autocast, the weights stay float32). ``"bf16"`` is used for
            training, validation, evaluation and prediction. ``"auto"`` takes bf16 for
            training and validation where the hardware multiplies it faster than
            float32 (a CPU with AVX512-BF16 or AMX, for steps of at least 64 million
            floating-point operations; a CUDA GPU of compute capability 8.0 or newer)
            and float32 elsewhere, and always evaluates and predicts in
            float32 (the same predictions on every machine). :attr:`precision` says
            what the training steps use.
        progress: Add a :class:`~fcnet.callbacks.ProgressBar` unless one is in
            ``callbacks``.

    Attributes:
        config: The :class:`TrainerConfig` of the settings above.
        history: The :class:`~fcnet.history.History` of every epoch trained so far.
        should_stop: Set to ``True`` (e.g. by a callback) to stop after this epoch.
        epoch: Number of epochs completed, over every fit.
        batch_in_epoch: Batches completed in the epoch under way.
        final_epoch: The epoch at which the current (or last) fit ends.
        batches_per_epoch: Optimisation steps per epoch of the current fit.
        has_validation: Whether the current fit has validation data.
        augmenting: Whether this epoch's batches are augmented (callbacks may clear it in
            ``on_epoch_begin``).
        optimizer: The torch optimizer (``None`` before the first fit).
        scheduler: The torch scheduler of the current fit, or ``None``.
        eval_batch_size: Batch size of validation, evaluate and predict.
        precision: ``"fp32"`` or ``"bf16"``, what the ``precision`` setting resolved to.
        fused_step: Whether fits may take fcnet's own training step (class attribute,
            ``True``). For an fcnet MLP of Linear, ReLU and dropout layers trained with
            its cross-entropy (or nll) loss and Adam/AdamW on the CPU, with no step
            method overridden and no ``on_after_backward`` callback (and, under
            torchrun, no sample or class weights: the ranks' gradients are then summed
            by one all-reduce per step), the step is written out without autograd (see
            the performance guide): the same
            training method, several times fewer operations, different dropout draws.
            ``history.meta["step"]`` records ``"fused"`` or ``"autograd"``. Set it to
            ``False`` on an instance or a subclass to use autograd for every model.
        num_threads: CPU intra-op threads of a fit (class attribute, ``None``): ``None``
            takes one thread for training steps below 64 million floating-point
            operations (a second thread costs them more than it saves) and the
            caller's ``torch.get_num_threads()`` otherwise; an int sets the count.
            Either way the caller's setting is restored after the fit, and
            ``history.meta["threads"]`` records the count.
    """

    eval_batch_size: int = 1024
    fused_step: bool = True
    num_threads: int | None = None

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: str | OptimizerFactory = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 10,
        batch_size: int = 64,
        loss: str | LossFunction = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weight: Any = None,
        scheduler: Any = None,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        callbacks: Sequence[Callback] = (),
        device: str | torch.device = "auto",
        seed: int | None = None,
        precision: str = "auto",
        progress: bool = True,
    ) -> None:
        config = TrainerConfig(optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                               epochs=epochs, batch_size=batch_size, loss=loss,
                               label_smoothing=label_smoothing, class_weight=class_weight,
                               scheduler=scheduler,
                               precision=precision, seed=seed)
        self._setup(model, config, augment, callbacks, device, progress)

    @classmethod
    def from_config(cls, model: nn.Module, config: TrainerConfig, *,
                    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                    callbacks: Sequence[Callback] = (), device: str | torch.device = "auto",
                    progress: bool = True) -> Trainer:
        """A Trainer with the settings of ``config`` (a recipe's, for example)."""
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__}")
        trainer = cls.__new__(cls)
        trainer._setup(model, config, augment, callbacks, device, progress)
        return trainer

    def _setup(self, model: Any, config: TrainerConfig, augment: Any, callbacks: Any,
               device: Any, progress: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable aug(x, generator) or None, got "
                            f"{augment!r}")
        if isinstance(callbacks, Callback) or not isinstance(callbacks, Iterable):
            raise TypeError("callbacks must be a sequence of Callback instances")
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fcnet.callbacks.Callback instances, got "
                                f"{type(cb).__name__}")
        if not isinstance(progress, bool):
            raise TypeError(f"progress must be True or False, got {progress!r}")
        if progress and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.append(ProgressBar())
        self.config = config
        self.device = select_device(device)
        self.model = model.to(self.device)
        self.augment = augment
        self.callbacks: list[Callback] = callbacks
        self.history = History()
        self.should_stop = False
        self.epoch = 0
        self.batch_in_epoch = 0
        self.final_epoch = 0
        self.batches_per_epoch = 0
        self.has_validation = False
        self.augmenting = True
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.seed_used: int | None = None
        self._rng: RngStream | None = None
        self._fit_start_epoch = 0
        self._pending: dict[str, Any] | None = None  # a loaded state for the next fit
        self._data_info: dict[str, Any] = {}
        self._val: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._weights: torch.Tensor | None = None
        self.class_weights: torch.Tensor | None = None
        self._acc = self._zero_accumulators()
        self._interrupted = False
        self._warned_untrained = False
        self._plain_steps = 0
        self._group: distributed.Group | None = None
        self._ddp: nn.Module | None = None
        self._grad_scale = 1.0
        self._step_lr: float | None = None  # the learning rate of the last step taken
        self._validating = False
        self._shard = (0, 0)  # this rank's first row in the global batch, and its size
        self._mlp_step: _mlp_step.MLPStep | None = None
        self.precision = resolve_precision(config.precision, self.device,
                                           step_flops(self.model, config.batch_size))

    # ------------------------------------------------------------------ settings
    @property
    def epochs(self) -> int:
        """Epochs per fit (``config.epochs``)."""
        return self.config.epochs

    @property
    def batch_size(self) -> int:
        """Samples per optimisation step (``config.batch_size``)."""
        return self.config.batch_size

    @property
    def rank(self) -> int:
        """This process's rank in a distributed fit (0 otherwise)."""
        return 0 if self._group is None else self._group.rank

    @property
    def world_size(self) -> int:
        """Number of processes of the current fit (1 unless under torchrun)."""
        return 1 if self._group is None else self._group.world_size

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files and prints: rank 0, or the only process."""
        return self.rank == 0

    @property
    def metric_names(self) -> list[str]:
        """The keys every epoch's history entry of the next fit will hold.

        The Trainer's own, then those the callbacks declare in their ``provides``.
        """
        names = ["epoch", "train_loss", "train_accuracy"]
        if self.has_validation:
            names += ["val_loss", "val_accuracy"]
        names += ["lr", "seconds"]
        for cb in self.callbacks:
            names += [n for n in cb.provides if n not in names]
        return names

    # ------------------------------------------------------------------ the step
    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of :attr:`precision` (a no-op for fp32).

        With ``precision="auto"`` only the training steps (passes that record
        gradients) and validation take bf16; :meth:`evaluate` and the predictions run in
        float32, so that they do not depend on the machine.
        """
        if self.precision == "bf16" and (self.config.precision == "bf16"
                                         or torch.is_grad_enabled() or self._validating):
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """The inputs as the model takes them: as they are for an fcnet model (it carries
        its preprocessing), ``uint8`` scaled to ``[0, 1]`` and the rest as float for others."""
        if inputs.is_floating_point() or isinstance(
                next(iter(self.model.children()), None), InputAdapter):
            return inputs
        return inputs.float() / 255.0 if inputs.dtype == torch.uint8 else inputs.float()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's outputs for a batch, under the configured autocast.

        In a distributed fit, steps with gradients go through the
        ``DistributedDataParallel`` wrapper, which averages the gradients of the ranks.
        """
        model = self.model
        if self._ddp is not None and torch.is_grad_enabled():
            model = self._ddp
        with self.autocast():
            return model(self.prepare(inputs))

    def compute_loss(self, outputs: torch.Tensor, targets: torch.Tensor,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of a batch: the configured loss on float32 outputs.

        With class weights (``class_weight``) or sample ``weights`` it is the weighted
        mean ``sum(w_i * loss_i) / sum(w_i)``, where ``w_i`` is the sample's weight times
        its class's. Override it for another objective; :meth:`evaluate` and validation
        report it too.
        """
        outputs = outputs.float()
        loss, cw = self.config.loss, self.class_weights
        if not isinstance(loss, str):
            return loss(outputs, targets)
        if weights is None and cw is None:
            if loss == "cross_entropy":
                return F.cross_entropy(outputs, targets,
                                       label_smoothing=self.config.label_smoothing)
            return F.nll_loss(outputs, targets)
        if loss == "cross_entropy":
            per = F.cross_entropy(outputs, targets, label_smoothing=self.config.label_smoothing,
                                  reduction="none")
        else:
            per = F.nll_loss(outputs, targets, reduction="none")
        w = torch.ones_like(per) if cw is None else cw[targets]
        if weights is not None:
            w = w * weights
        return (per * w).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)

    def backward(self, loss: torch.Tensor) -> None:
        """Clear the gradients, backpropagate ``loss``, then call ``on_after_backward``.

        Raises:
            NonFiniteLossError: the loss is NaN or infinite (checked at every step on
                the CPU, where reading it is free; once per epoch elsewhere).
        """
        self._check_finite(loss)
        clear_grads(self.optimizer)
        # In a distributed fit each rank's mean loss is scaled by its share of the global
        # batch, so that the ranks' averaged gradient is that of the global batch's mean.
        (loss if self._grad_scale == 1.0 else loss * self._grad_scale).backward()
        self._call("on_after_backward")

    def _check_finite(self, loss: torch.Tensor) -> None:
        if self.device.type == "cpu" and not math.isfinite(loss.item()):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at epoch {self.epoch + 1}, batch "
                f"{self.batch_in_epoch}; lower the learning rate or check the data")

    def optimizer_step(self) -> None:
        """Update the weights, and step a per-batch schedule."""
        if self._plain_steps:
            # torch's own step first in each fit: it creates a new optimizer's state and
            # tells a new scheduler that the optimizer has stepped. Same result.
            self._plain_steps -= 1
            self.optimizer.step()
        elif self._mlp_step is None or not self._mlp_step.optimizer_step():
            optimizer_step(self.optimizer)
        if self.scheduler is not None and self._sched_interval == "batch":
            self._step_lr = self.optimizer.param_groups[0]["lr"]  # the one this step took
            self.scheduler.step()

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                   weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimisation step on a batch: forward, loss, backward, optimizer step.

        ``weights`` (the batch's sample weights) is passed only when the data has them,
        so an override that takes two arguments serves unweighted data.

        Returns:
            The batch's loss and the outputs, both detached; the outputs give the
            epoch's ``train_accuracy`` (return ``None`` to leave it out).
        """
        if self._mlp_step is not None and len(targets) <= self._mlp_step.batch_size:
            return self._fused_train_step(inputs, targets, weights)
        outputs = self.forward(inputs)
        loss = self._loss_of(outputs, targets, weights)
        self.backward(loss)
        self.optimizer_step()
        return loss.detach(), outputs.detach()

    def _fused_train_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                          weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`train_step` through :class:`fcnet._mlp_step.MLPStep` (same contract)."""
        step = self._mlp_step
        step.check()
        offset, total = self._shard if self._group is not None else (0, len(targets))
        loss, outputs, saved = step.forward_loss(inputs, targets, weights, self.class_weights,
                                                 self.epoch, self.batch_in_epoch,
                                                 offset=offset, total=total)
        self._check_finite(loss)
        step.backward(saved)
        if self._group is not None:  # each rank's share of the global batch's mean gradient
            self._group.sum_(step.flat_grad)
        self.optimizer_step()
        return loss, outputs

    def predict_step(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's float32 outputs for a batch, in evaluation (no-grad) mode."""
        return self.forward(inputs).float()

    # ------------------------------------------------------------------ data checks
    def _probe(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The model's outputs for two samples in evaluation mode (its mode is restored)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.forward((x[:2] if x.dim() > 1 else x).to(self.device))
        except (RuntimeError, ValueError, IndexError) as e:
            raise ValueError(f"{name} inputs of shape {tuple(x.shape)} do not fit the model: "
                             f"{e}") from e
        finally:
            self.model.train(was_training)
        return out  # checked by _inputs.check_outputs

    def _tensors(self, data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor, int,
                                                      torch.Tensor | None]:
        data, w = _inputs.split_weights(data, name)
        if isinstance(data, (tuple, list)):  # a whole table as the data: to_tensors says so
            _inputs.check_columns(self._recorded_columns(), data, name)
        x, y = to_tensors(data, name=name)
        _inputs.check_inputs(self.model, x, name)
        classes = _inputs.check_outputs(self.model, self._probe(x, name), self.config.loss)
        _inputs.check_labels(y, classes, name)
        if w is not None:
            _inputs.check_weights(w, len(y), name)
            if not isinstance(self.config.loss, str) and \
                    type(self).compute_loss is Trainer.compute_loss:
                raise ValueError(f"{name} has sample weights, which a callable loss cannot "
                                 f"take; use a named loss or override Trainer.compute_loss")
        return x, y, classes, w

    def _recorded_columns(self) -> tuple[str, ...] | None:
        """The training table's column names the model recorded, if any."""
        return getattr(getattr(self.model, "spec", None), "feature_names", None)

    def _as_input(self, x: Any) -> torch.Tensor:
        _inputs.check_columns(self._recorded_columns(), x, "x")
        x = _inputs.predict_input(x)
        _inputs.check_inputs(self.model, x, "x")
        spec = getattr(self.model, "spec", None)
        if spec is None:  # no feature count to check: try two samples, as fit does
            self._probe(x, "x")
        if getattr(spec, "input_dtype", 1) is None and not self._warned_untrained \
                and self.seed_used is None:
            self._warned_untrained = True
            warnings.warn("the model has not been trained (its spec records no training "
                          "input): these predictions come from its initial weights",
                          UserWarning, stacklevel=3)
        _inputs.warn_if_out_of_range(x, spec)
        return x

    # ------------------------------------------------------------------ building blocks
    def _make_scheduler(self, optimizer: torch.optim.Optimizer, steps: int) -> tuple[Any, str]:
        spec = self.config.scheduler
        if spec is None:
            return None, "epoch"
        if isinstance(spec, Schedule):
            return spec.build(optimizer, lr=self.config.lr, epochs=self.epochs,
                              steps_per_epoch=steps), spec.interval
        return spec(optimizer), "epoch"

    @staticmethod
    def _sums(acc: Mapping[str, Any]) -> torch.Tensor:
        """The epoch's loss sum, correct count and sample count as one float64 tensor."""
        seen = torch.tensor(float(acc["seen"]), dtype=torch.float64, device=acc["loss"].device)
        return torch.stack([acc["loss"], acc["correct"], seen])

    def _zero_accumulators(self) -> dict[str, Any]:
        zero = torch.zeros((), device=self.device, dtype=torch.float64)
        return {"loss": zero.clone(), "correct": zero.clone(), "seen": 0, "seconds": 0.0}

    def _ordered_callbacks(self) -> None:
        # Fixed once per fit: a checkpoint saves the state after every other callback has
        # updated it, and the training weights before any callback changes them at the end.
        ckpts = [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]
        others = [cb for cb in self.callbacks if not isinstance(cb, ModelCheckpoint)]
        self._order = others + ckpts
        self._end_order = ckpts + others

    def _call(self, hook: str, *args: Any) -> None:
        for cb in (self._end_order if hook == "on_train_end" else self._order):
            getattr(cb, hook)(self, *args)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as JSON values and tensors.

        The settings, the seed, the position (epoch and batch), the weights and the model
        spec, the optimizer and scheduler states, every callback's state, the Trainer's
        random streams, the running sums of the epoch under way, the history, and the
        shapes and provenance of the data. :mod:`fcnet.checkpoint` stores it.
        """
        spec = getattr(self.model, "spec", None)
        return {
            "format": "fcnet.trainer",
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "seed": self.seed_used,
            "position": {"epoch": self.epoch, "batch": self.batch_in_epoch,
                         "fit_start_epoch": self._fit_start_epoch,
                         "final_epoch": self.final_epoch},
            "batches_per_epoch": self.batches_per_epoch,
            "should_stop": bool(self.should_stop),
            "model_spec": spec.to_dict() if hasattr(spec, "to_dict") else None,
            "model": dict(self.model.state_dict()),
            "optimizer": None if self.optimizer is None else {
                "class": type(self.optimizer).__name__, "state": self.optimizer.state_dict()},
            "scheduler": None if self.scheduler is None else {
                "class": type(self.scheduler).__name__, "state": self.scheduler.state_dict()},
            "callbacks": [{"class": type(cb).__name__, "state": cb.state_dict()}
                          for cb in self.callbacks],
            "rng": None if self._rng is None else self._rng.state_dict(),
            "accumulators": dict(self._acc),
            **self._rank_states(),
            "history": self.history.to_dict(),
            "data": dict(self._data_info),
        }

    def _rank_states(self) -> dict[str, Any]:
        """Every rank's random stream and epoch sums, gathered (a collective: all ranks
        call :meth:`state_dict` together); nothing outside a distributed fit."""
        if self._group is None:
            return {}
        g = self._group
        rng = g.gather(self._rng.state_dict()["cpu"])
        sums = g.gather(self._sums(self._acc))
        return {"world_size": g.world_size, "ranks": [
            {"rng": {"cpu": r, "cuda": None}, "loss": t[0], "correct": t[1], "seen": int(t[2])}
            for r, t in zip(rng, sums, strict=True)]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a checkpoint's).

        The weights and the history are restored at once; the position, optimizer,
        scheduler, random streams and callbacks at the next :meth:`fit`, which checks the
        data and settings against the state before any step and continues the run
        exactly.

        Raises:
            CheckpointError: the state is malformed, or holds another model.
        """
        _state.check_state(state, self.model, STATE_VERSION)
        self._load_model_and_history(state)
        self._pending = dict(state)

    def _load_model_and_history(self, state: Mapping[str, Any]) -> None:
        where = f"checkpoint '{state.get('path', '?')}'"
        try:
            self.model.load_state_dict(state["model"])
        except (RuntimeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{where}: the weights do not fit this model: {e}") from None
        saved_spec = state.get("model_spec")
        if isinstance(self.model, MLP) and isinstance(saved_spec, dict) \
                and saved_spec.get("input_dtype") is not None:
            self.model.record_input(getattr(torch, saved_spec["input_dtype"]),
                                    saved_spec["input_range"], saved_spec.get("feature_names"))
        self.history = History.from_dict(state["history"])

    def _restore_pending(self, state: Mapping[str, Any]) -> None:
        where = f"checkpoint '{state.get('path', '?')}'"
        try:
            self.optimizer.load_state_dict(state["optimizer"]["state"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"]["state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where}: cannot restore the optimizer or scheduler: {e}") \
                from e
        load_callback_states(self.callbacks, state["callbacks"], where)
        acc = dict(state["accumulators"])
        rng = state["rng"]
        if self._group is not None:  # this rank's own stream and sums
            mine = state["ranks"][self._group.rank]
            acc.update(loss=mine["loss"], correct=mine["correct"], seen=mine["seen"])
            rng = mine["rng"]
        self._acc = {"loss": acc["loss"].to(self.device, torch.float64),
                     "correct": acc["correct"].to(self.device, torch.float64),
                     "seen": int(acc["seen"]), "seconds": float(acc["seconds"])}
        pos = state["position"]
        self.epoch, self.batch_in_epoch = pos["epoch"], pos["batch"]
        self._fit_start_epoch, self.final_epoch = pos["fit_start_epoch"], pos["final_epoch"]
        self.should_stop = bool(state["should_stop"])
        # The resumed run is not interrupted any more; record where it came back from.
        meta = self.history.meta
        meta.pop("interrupted", None)
        meta.pop("interrupted_at", None)
        meta.setdefault("resumed", []).append({"from": state.get("path"), "epoch": self.epoch,
                                               "batch": self.batch_in_epoch})
        self._rng.load_state_dict(rng)

    # ------------------------------------------------------------------ fit
    def fit(self, train: Any, val: Any = None, *, resume_from: Any = None,
            reset: bool = False) -> History:
        """Train the model for ``epochs`` epochs and return the :class:`History`.

        A second call continues: from the current weights and optimizer state, for
        ``epochs`` more epochs, appending to the same history (the schedule spans each
        fit anew). ``reset=True`` starts over from the current weights with a new
        optimizer and an empty history.

        Args:
            train: An fcnet dataset, a torch ``Dataset`` of ``(x, y)`` pairs, an
                ``(X, y)`` pair of tensors, numpy arrays or lists, or ``(X, y, w)`` with
                a sample weight per sample (the loss is then the weighted mean).
            val: Validation data in the same forms, evaluated after every epoch.
            resume_from: A checkpoint file or folder written by
                :class:`fcnet.callbacks.ModelCheckpoint`: training continues from that
                exact point and ends with the weights of an uninterrupted run. The
                settings must be the checkpoint's (a changed one is an error naming it).
            reset: Forget the previous fits' optimizer state, history and epoch count.

        Raises:
            TypeError, ValueError: bad data or a model that does not fit it, checked
                before any training step.
            CheckpointError: ``resume_from`` is unusable or differs from this run.
            NonFiniteLossError: the loss became NaN or infinite.
            KeyboardInterrupt: Ctrl-C; the epoch's sums are kept and a
                :class:`~fcnet.callbacks.ModelCheckpoint` saves the exact state first.
        """
        threads = self.num_threads
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or threads < 1):
            raise ValueError(f"num_threads must be None or an int >= 1, got {threads!r}")
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            raise TypeError(f"val is the validation data, got the number {val!r}; to hold "
                            f"out a fraction of the training data, split it first: "
                            f"train, val = fcnet.data.train_val_split((X, y), {val!r})")
        # fit(X, y) as in scikit-learn or Keras. A list of 2 or 3 is an (X, y[, w]) pair.
        inputs_like = _inputs.is_array(train) or (isinstance(train, list)
                                                  and len(train) not in (2, 3))
        labels_like = _inputs.is_array(val) or isinstance(val, list)
        if val is not None and inputs_like and labels_like:
            raise TypeError("fit takes the training data as one (X, y) pair: did you mean "
                            "fit((X, y))? The second argument is the validation data")
        if not isinstance(reset, bool):
            raise TypeError(f"reset must be True or False, got {reset!r}")
        x, y, classes, w = self._tensors(train, "train")
        xv = yv = wv = None
        if val is not None:
            xv, yv, _, wv = self._tensors(val, "val")
            # The training table's columns, when the model has none recorded yet.
            _inputs.check_columns(_inputs.column_names(train), val, "val")
        if self.augment is not None and x.dim() < 3:
            raise ValueError(
                f"augment works on images, but the train inputs have shape {tuple(x.shape)}; "
                f"pass them as (N, H, W) or (N, C, H, W), e.g. X.reshape(-1, 28, 28) (the "
                f"model flattens them), or train without augment")
        if isinstance(self.augment, BatchAugment):  # a setting the data cannot take fails now
            try:
                self.augment(x[:2], generator=torch.Generator().manual_seed(0))
            except (ValueError, TypeError) as e:
                raise ValueError(f"augment cannot take the train inputs ({x.dtype}, shape "
                                 f"{tuple(x.shape)}): {e}") from None
        # Everything this fit needs is built and checked first; the Trainer changes only
        # once nothing can fail any more, so a refused fit or resume leaves it as it was.
        state, unloaded = self._pending, False
        if resume_from is not None:
            state, unloaded = load_checkpoint(resume_from), True
            _state.check_state(state, self.model, STATE_VERSION)
        group = distributed.join(self.device, self.batch_size)
        try:
            world = 1 if group is None else group.world_size
            saved_world = world if state is None else state.get("world_size", 1)
            if saved_world != world:
                raise CheckpointError(
                    f"checkpoint '{state.get('path')}' was saved by {saved_world} processes, "
                    f"this fit runs on {world}; resume with the same world size")
            return self._fit(x, y, w, classes, xv, yv, wv, train, val, state, unloaded,
                             reset, group)
        finally:
            self._ddp, self._group, self._grad_scale = None, None, 1.0

    def _fit(self, x, y, w, classes, xv, yv, wv, train, val, state, unloaded, reset,
             group) -> History:
        """:meth:`fit` once the data is checked and the process group (if any) joined.

        Until the callbacks' ``on_train_begin`` and a resume's restore have passed, a
        failure (a callback refusing the settings, a checkpoint state a callback cannot
        take) puts the Trainer and the model back as they were: a refused fit leaves no
        trace, and no hook after ``on_train_begin`` runs, so nothing is saved.
        """
        undo = self._undo_point(with_weights=unloaded)
        started: list[bool] = []
        try:
            return self._begin_and_run(x, y, w, classes, xv, yv, wv, train, val, state,
                                       unloaded, reset, group, started)
        except BaseException:
            if not started:
                self._roll_back(undo)
            raise

    def _undo_point(self, *, with_weights: bool) -> dict[str, Any]:
        """What :meth:`_roll_back` needs to undo a fit that never started training."""
        spec = getattr(self.model, "spec", None)
        # The History object itself is kept (a caller may hold it): its length and notes.
        return {"attributes": dict(self.__dict__), "history": self.history,
                "entries": len(self.history), "meta": copy.deepcopy(self.history.meta),
                "spec": spec if isinstance(self.model, MLP) else None,
                "weights": None if not with_weights else
                {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def _roll_back(self, undo: Mapping[str, Any]) -> None:
        self.__dict__.clear()
        self.__dict__.update(undo["attributes"])
        history = self.history = undo["history"]
        del history[undo["entries"]:]
        history.meta.clear()
        history.meta.update(undo["meta"])
        if undo["weights"] is not None:
            self.model.load_state_dict(undo["weights"])
        spec = undo["spec"]
        if spec is not None:
            self.model.spec = spec
            adapter = next(iter(self.model.children()), None)
            if isinstance(adapter, InputAdapter):
                adapter.follow(spec)

    def _begin_and_run(self, x, y, w, classes, xv, yv, wv, train, val, state, unloaded,
                       reset, group, started: list[bool]) -> History:
        fresh = state is not None or reset or self.optimizer is None
        if state is not None:
            seed = int(state["seed"])
        elif self._rng is not None and not reset:
            seed = self.seed_used  # this Trainer's stream goes on across fits
        else:
            seed = self.config.seed if self.config.seed is not None else secrets.randbits(62)
        if group is not None:  # a seed drawn at random is rank 0's on every rank
            seed = int(group.broadcast_(torch.tensor([seed], dtype=torch.int64))[0])
        world = 1 if group is None else group.world_size
        # A last batch too small for every rank (or for BatchNorm's two samples per rank)
        # would crash or train on nothing: it is dropped.
        tail = len(y) % self.batch_size
        per_rank = 2 if _inputs.has_batch_norm(self.model) else 1
        if per_rank == 2 and min(len(y), self.batch_size) < 2 * world:
            raise ValueError(
                f"the model has BatchNorm (norm='batch'), which needs at least 2 samples "
                f"per batch{' on each of the ' + str(world) + ' processes' if world > 1 else ''}"
                f", but batch_size={self.batch_size} and train has {len(y)} samples; use a "
                f"batch_size >= {2 * world} and more samples, or norm='layer'")
        drop_tail = 0 < tail < per_rank * world and len(y) > tail
        loader = DeviceLoader(x, y, self.batch_size, shuffle=True, drop_last=drop_tail,
                              seed=seed, augment=self.augment, device=self.device)
        data_info = {"train": _inputs.describe_data(x, y, w, train),
                     "val": None if xv is None else _inputs.describe_data(xv, yv, wv, val)}
        optimizer = self.optimizer
        if fresh:  # a resumed run's optimizer takes the checkpoint's state
            optimizer = build_optimizer(self.config.optimizer, self.model.parameters(),
                                        lr=self.config.lr, weight_decay=self.config.weight_decay)
        scheduler, interval = self._make_scheduler(optimizer, len(loader))
        if state is not None:
            _state.check_resume(state, config=self.config.to_dict(), data=data_info,
                                batches_per_epoch=len(loader), optimizer=optimizer,
                                scheduler=scheduler)
            if unloaded:
                self._load_model_and_history(state)
        if group is not None:
            group.check_same({"settings": self.config.to_dict(), "data": data_info,
                              "initial weights": self.model.state_dict()})

        self._pending = None
        self.optimizer, self.scheduler, self._sched_interval = optimizer, scheduler, interval
        self._step_lr = None
        if state is None:
            if fresh:
                self.history, self.epoch = History(), 0
            self._fit_start_epoch = self.epoch
            self.final_epoch = self.epoch + self.epochs
            self.batch_in_epoch = 0
            self._acc = self._zero_accumulators()
            for note in _FIT_NOTES:  # notes of the previous fit (how it ended), not this one
                self.history.meta.pop(note, None)
        if state is not None or self._rng is None or reset or seed != self.seed_used \
                or group is not None:
            rank = 0 if group is None else group.rank
            self._rng = RngStream(distributed.derive_seed(seed, rank), self.device)
        self.seed_used = seed
        self.history.meta.setdefault("seed", seed)
        if drop_tail:
            self.history.meta["dropped_tail"] = (
                f"{tail} samples per epoch: a last batch needs {per_rank} per process"
                + (" (BatchNorm)" if per_rank == 2 else ""))
        self.should_stop = False
        self.class_weights = _inputs.class_weights(self.config.class_weight, y, classes,
                                                   self.device)
        self._weights = None if w is None else w.to(self.device)
        self._val = None if xv is None else (xv.to(self.device), yv.to(self.device),
                                             None if wv is None else wv.to(self.device))
        self.has_validation = xv is not None
        self.batches_per_epoch = len(loader)
        self._data_info = data_info
        self._plain_steps = 1  # see optimizer_step
        if group is not None:
            self._group = group
        if isinstance(self.model, MLP) and self.model.spec.input_dtype is None:
            lo, hi = float(x.min()), float(x.max())
            if x.dtype == torch.uint8:
                lo, hi = lo / 255.0, hi / 255.0
            self.model.record_input(x.dtype, (lo, hi), _inputs.column_names(train))
        self._ordered_callbacks()
        self._mlp_step = self._plan_step()
        if group is not None and self._mlp_step is None:
            # fcnet's own step sums the ranks' gradients itself; autograd's goes through
            # DistributedDataParallel.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.history.meta["step"] = "autograd" if self._mlp_step is None else "fused"
        self.history.meta["precision"] = self.precision
        threads = self.num_threads
        if threads is None:
            threads = training_threads(self.device,
                                       step_flops(self.model, self.batch_size // world))
        self.history.meta["threads"] = threads
        self._interrupted = False
        with self._sigint_guard(), intra_op_threads(threads), \
                flush_denormal(self.device.type == "cpu"), self._rng.active(), \
                torch.enable_grad():  # also under a caller's torch.no_grad()
            self._call("on_train_begin")
            if state is not None:
                self._restore_pending(state)
            started.append(True)
            try:
                self._run(loader)
            finally:
                self._val = None
                try:
                    self._call("on_train_end")
                finally:
                    if self._mlp_step is not None:
                        self._mlp_step.release()
                        self._mlp_step = None
        if self._interrupted:
            at = self.history.meta.get("interrupted_at", {})
            print(f"fcnet: training interrupted (Ctrl-C) at epoch {at.get('epoch')}, batch "
                  f"{at.get('batch')}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        return self.history

    #: Steps of these methods are replaced by fcnet's own step only when none is overridden.
    _STEP_METHODS = ("forward", "prepare", "autocast", "compute_loss", "backward",
                     "optimizer_step", "train_step")

    def _plan_step(self) -> _mlp_step.MLPStep | None:
        """fcnet's own training step for this fit, or ``None`` to step through autograd."""
        if not self.fused_step:
            return None
        if self._group is not None and (self._weights is not None
                                        or self.class_weights is not None):
            return None  # weighted means over the ranks: autograd's per-rank scaling
        if any(getattr(type(self), name) is not getattr(Trainer, name)
               for name in self._STEP_METHODS):
            return None
        if any(type(cb).on_after_backward is not Callback.on_after_backward
               for cb in self.callbacks):
            return None
        plan = _mlp_step.plan(self.model, self.optimizer, loss=self.config.loss,
                              label_smoothing=self.config.label_smoothing, device=self.device)
        if plan is None:
            return None
        return _mlp_step.MLPStep(plan, self.optimizer, precision=self.precision,
                                 label_smoothing=self.config.label_smoothing,
                                 batch_size=self.batch_size, seed=self.seed_used)

    @contextlib.contextmanager
    def _sigint_guard(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interrupted:  # a second Ctrl-C: give up at once
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _loss_share(self, yb: torch.Tensor, wb: torch.Tensor | None, part: slice) -> float:
        """The weight of this rank's rows in the global batch's (weighted) mean loss.

        By count, unless the built-in :meth:`compute_loss` takes a weighted mean (an
        overridden one is taken to average over its rows).
        """
        if (wb is None and self.class_weights is None) or \
                type(self).compute_loss is not Trainer.compute_loss:
            return (part.stop - part.start) / len(yb)
        w = self.class_weights[yb] if self.class_weights is not None else None
        if wb is not None:
            w = wb if w is None else w * wb
        mine, total = torch.stack([w[part].sum(), w.sum()]).tolist()  # one device sync
        return mine / total if total > 0 else 0.0

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm's running statistics): each rank's
        last forward pass updated its own."""
        for buffer in self.model.buffers():
            if buffer.is_floating_point() or buffer.dtype == torch.int64:
                self._group.broadcast_(buffer)

    def _run(self, loader: DeviceLoader) -> None:
        while self.epoch < self.final_epoch and not self.should_stop:
            number = self.epoch + 1
            start = self.batch_in_epoch
            self.model.train()
            self.augmenting = True
            self._call("on_epoch_begin", number)  # also when resuming inside the epoch
            loader.augment = self.augment if self.augmenting else None
            # Batch b holds the samples order[b * batch_size:(b + 1) * batch_size].
            order = None if self._weights is None else loader.order(self.epoch)
            bs = loader.batch_size
            t0 = time.perf_counter()
            for b, (xb, yb) in enumerate(loader.batches(self.epoch, start), start):
                self._call("on_batch_begin", b)
                wb = None if order is None else self._weights[order[b * bs:(b + 1) * bs]]
                weight = None  # this rank's share of the global batch's loss, times its size
                if self._group is not None:  # this rank's share of the global batch
                    part = distributed.shard(len(yb), self._group.world_size, self._group.rank)
                    share = self._loss_share(yb, wb, part)
                    self._grad_scale = share * self._group.world_size
                    weight = share * len(yb)
                    self._shard = (part.start, len(yb))
                    xb, yb = xb[part], yb[part]
                    wb = None if wb is None else wb[part]
                if wb is None:
                    loss, out = self.train_step(xb, yb)
                else:
                    loss, out = self.train_step(xb, yb, wb)
                n = len(yb)
                # add_ with alpha: one small op instead of three (mul, dtype copy, add).
                self._acc["loss"].add_(loss.float(), alpha=n if weight is None else weight)
                if out is not None:
                    self._acc["correct"] += (out.argmax(1) == yb).sum()
                self._acc["seen"] += n
                self.batch_in_epoch = b + 1
                self._call("on_batch_end", b, {"batch": b, "size": n, "loss": loss})
                if self._interrupted:
                    break
            self._acc["seconds"] += time.perf_counter() - t0
            if self._interrupted:
                self.history.meta["interrupted"] = True
                self.history.meta["interrupted_at"] = {"epoch": number,
                                                       "batch": self.batch_in_epoch}
                return
            self._end_epoch(number)

    def _end_epoch(self, number: int) -> None:
        acc = self._acc
        if self._group is not None:  # every rank reports the whole epoch
            sums = self._group.sum_(self._sums(acc))
            acc = {**acc, "loss": sums[0], "correct": sums[1], "seen": int(sums[2])}
            if _inputs.has_batch_norm(self.model):  # validated and kept alike everywhere
                self._sync_buffers()
        seen = max(acc["seen"], 1)
        train_loss = float(acc["loss"]) / seen
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(f"the training loss became non-finite during epoch "
                                     f"{number}; lower the learning rate or check the data")
        logs: dict[str, Any] = {"epoch": number, "train_loss": train_loss,
                                "train_accuracy": float(acc["correct"]) / seen}
        if self._val is not None:
            self._validating = True
            try:
                val = self._evaluate_tensors(*self._val)
            finally:
                self._validating = False
            logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
        # The rate of the epoch's last step (a per-batch schedule has moved on since).
        last = self._step_lr if self._sched_interval == "batch" else None
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"] if last is None else last)
        if self.scheduler is not None and self._sched_interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(logs.get("val_loss", train_loss))
            else:
                self.scheduler.step()
        logs["seconds"] = acc["seconds"]
        self.epoch = number
        self.batch_in_epoch = 0
        self._acc = self._zero_accumulators()
        self.history.append(logs)
        self._call("on_epoch_end", number, logs)
        if self._group is not None:  # a stop decided on one rank stops them all
            self.should_stop = self._group.any(self.should_stop)

    # ------------------------------------------------------------------ inference
    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Model outputs for ``x`` in eval mode, batch by batch, as float32 on the device."""
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = []
            with torch.inference_mode():
                for i in range(0, len(x), self.eval_batch_size):
                    xb = x[i:i + self.eval_batch_size].to(self.device, non_blocking=True)
                    chunks.append(self.predict_step(xb))
            return torch.cat(chunks)
        finally:
            self.model.train(was_training)

    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor,
                          w: torch.Tensor | None = None) -> dict[str, Any]:
        out = self._outputs(x)
        y = y.to(out.device)
        return {"loss": float(self._loss_of(out, y, w)),
                "accuracy": float((out.argmax(1) == y).sum()) / len(y), "n": len(y)}

    def evaluate(self, data: Any, *, return_outputs: bool = False) -> dict[str, Any]:
        """Return ``{"loss", "accuracy", "n", "per_class_accuracy"}`` on ``data``.

        ``data`` takes the same forms as ``train`` in :meth:`fit`. The loss is
        :meth:`compute_loss` (label smoothing included). With ``return_outputs=True``
        the dict also holds ``"probabilities"``, ``(N, classes)`` on the CPU, from the
        same pass. Like :meth:`predict`, it warns when the inputs lie far outside the
        range of values the model was trained on.
        """
        x, y, classes, w = self._tensors(data, "data")
        _inputs.warn_if_out_of_range(x, getattr(self.model, "spec", None), "data", 3)
        if self.class_weights is None and self.config.class_weight is not None:
            self.class_weights = _inputs.class_weights(self.config.class_weight, y, classes,
                                                       self.device)
        out = self._outputs(x)
        y = y.to(out.device)
        pred = out.argmax(1)
        total = torch.bincount(y, minlength=classes)
        hit = torch.bincount(y[pred == y], minlength=classes)
        per_class = (hit.double() / total.clamp(min=1).double()).tolist()
        result: dict[str, Any] = {
            "loss": float(self._loss_of(out, y, w)),
            "accuracy": float((pred == y).sum()) / len(y),
            "n": len(y),
            "per_class_accuracy": [v if t > 0 else None
                                   for v, t in zip(per_class, total.tolist(), strict=True)],
        }
        if return_outputs:
            result["probabilities"] = torch.softmax(out, dim=1).cpu()
        return result

    def _loss_of(self, out: torch.Tensor, y: torch.Tensor,
                 w: torch.Tensor | None) -> torch.Tensor:
        # Weights only when there are some: an override of compute_loss may take two.
        if w is None:
            return self.compute_loss(out, y)
        return self.compute_loss(out, y, w.to(out.device))

    def predict_scores(self, x: Any) -> torch.Tensor:
        """The model's raw outputs (logits, or log-probabilities), ``(N, classes)`` float32
        on the CPU, in evaluation mode and batches of :attr:`eval_batch_size`.

        ``x`` holds inputs only (no labels): a tensor, a numpy array or a nested list,
        ``(N, ...)``; see :mod:`fcnet.models` for how each dtype is read.
        """
        return self._outputs(self._as_input(x)).cpu()

    def predict_proba(self, x: Any) -> torch.Tensor:
        """Class probabilities, shape ``(N, classes)``, rows summing to 1, on the CPU.

        ``x`` takes the forms of :meth:`predict_scores`.
        """
        # Not through predict_scores: the input warnings point at the caller's line.
        out = self._outputs(self._as_input(x))
        return torch.softmax(out, dim=1).cpu()

    def predict(self, x: Any) -> torch.Tensor:
        """The predicted class of each sample, an int64 tensor of shape ``(N,)``."""
        return self.predict_proba(x).argmax(1)
