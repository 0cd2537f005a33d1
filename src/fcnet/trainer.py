"""The Trainer: fit, evaluate, predict and predict_proba for classifiers.

The data set lives on the training device as one tensor; a batch is an index
slice of a seeded permutation (:class:`fcnet.data.DeviceLoader`). Metrics are
accumulated on the device, so a training step never waits for it.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fcnet._checks import check_int, is_number
from fcnet._device import flush_denormal, select_device
from fcnet._fused import clear_grads, optimizer_step
from fcnet.callbacks import Callback, ModelCheckpoint, ProgressBar
from fcnet.data import DeviceLoader, to_tensors
from fcnet.exceptions import NonFiniteLossError
from fcnet.history import History
from fcnet.models import InputAdapter

__all__ = ["Trainer", "OPTIMIZERS", "SCHEDULERS", "LOSSES"]

#: Optimizer names accepted by :class:`Trainer`.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Learning-rate schedule names accepted by :class:`Trainer`.
SCHEDULERS = ("onecycle", "cosine", "step")
#: Loss names accepted by :class:`Trainer`.
LOSSES = ("cross_entropy", "nll")
_PRECISIONS = ("fp32", "bf16")

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def _check_name_or_callable(arg: str, value: Any, names: Sequence[str], other: str) -> None:
    if isinstance(value, str):
        if value not in names:
            raise ValueError(
                f"{arg} must be one of {', '.join(map(repr, names))} or {other}, got {value!r}"
            )
    elif not callable(value):
        raise TypeError(f"{arg} must be a name or a callable, got {value!r}")


def _check_nonneg_float(name: str, value: Any) -> float:
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Integer input as float32: ``uint8`` pixels scaled to ``[0, 1]``, others as they are."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _check_teachers(teacher: Any) -> list[nn.Module]:
    if teacher is None:
        return []
    teachers = [teacher] if isinstance(teacher, nn.Module) else teacher
    if isinstance(teachers, (str, bytes)) or not isinstance(teachers, Sequence) or not teachers:
        raise TypeError(
            f"teacher must be None, a torch.nn.Module or a non-empty sequence of them, got "
            f"{type(teacher).__name__}"
        )
    for t in teachers:
        if not isinstance(t, nn.Module):
            raise TypeError(f"teacher must be torch.nn.Module instances, got {type(t).__name__}")
    return list(teachers)


def _can_fuse(optimizer_cls: type[torch.optim.Optimizer], params: Sequence[torch.Tensor]) -> bool:
    """Whether this torch has a fused step of ``optimizer_cls`` for ``params``.

    Only CPU and CUDA tensors of float dtypes qualify (MPS fused steps are a prototype);
    older torch versions without fused CPU kernels are detected through their own list.
    """
    if "fused" not in inspect.signature(optimizer_cls).parameters:
        return False
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return False
    devices = set(_get_fused_kernels_supported_devices()) & {"cpu", "cuda"}
    return bool(params) and all(
        p.device.type in devices and p.is_floating_point() for p in params
    )


class Trainer:
    """Train and use a classifier that maps inputs to class scores.

    Args:
        model: Any module returning ``(N, classes)`` scores: logits, or
            log-probabilities for ``loss="nll"``. Models from :func:`fcnet.build_mlp`
            take raw ``uint8`` images and carry their own preprocessing; for other
            models, ``uint8`` inputs are scaled to ``[0, 1]`` and other dtypes are
            converted to ``float32``.
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (with ``momentum`` and Nesterov),
            or a factory ``params -> torch.optim.Optimizer`` (then ``lr`` and
            ``weight_decay`` are only used by the named schedules). The named
            optimizers use torch's fused step where torch has one; for Adam and AdamW
            the Trainer calls its kernel itself, bit-identical to ``step()`` but
            without ~0.2 ms of Python per step, unless hooks or options need torch's
            own ``step()``. :attr:`optimizer` is a plain torch optimizer either way.
        lr: Learning rate (the peak rate for ``"onecycle"``). ``0`` is allowed.
        epochs: Number of passes over the training data.
        batch_size: Samples per optimisation step.
        loss: ``"cross_entropy"`` on logits, ``"nll"`` on log-probabilities, or a
            callable ``(outputs, targets) -> scalar loss``.
        callbacks: :class:`fcnet.callbacks.Callback` instances, called in order.
        device: ``"auto"`` (CUDA, then MPS, then CPU), or any torch device.
        seed: Seeds data order, dropout and augmentation. With the same seed and the
            same initial weights, a CPU run gives bit-identical weights. ``None``
            draws a seed, recorded in ``history.meta["seed"]``.
        weight_decay: L2 penalty (decoupled for ``"adamw"``) on the weight matrices of
            the named optimizers. Biases and normalisation parameters (the 1-D
            tensors) are not decayed, as in timm and most training recipes.
        momentum: Momentum for ``"sgd"``.
        label_smoothing: Label smoothing in ``[0, 1)`` for ``"cross_entropy"``.
        mixup: Mixup's ``alpha`` (``0``: off). Each training batch is replaced by
            ``lam * x + (1 - lam) * x[perm]`` for a random pairing ``perm`` and
            ``lam ~ Beta(alpha, alpha)``, and the loss by the same mix of the losses
            against both labels (Zhang et al., 2018). ``lam`` and ``perm`` come from
            torch's global generator, so ``seed`` fixes them. ``train_accuracy`` is
            then measured against the unpermuted labels.
        scheduler: ``None``, ``"onecycle"`` (per batch), ``"cosine"`` (per batch,
            down to 0), ``"step"`` (per epoch: ``lr * gamma`` every ``step_size``
            epochs), or a factory ``optimizer -> scheduler``.
        scheduler_kwargs: Extra arguments for a named schedule, e.g.
            ``{"step_size": 10, "gamma": 0.5}`` or ``{"pct_start": 0.25}``.
        scheduler_interval: ``"epoch"`` or ``"batch"``: when a scheduler from a
            factory is stepped. ``ReduceLROnPlateau`` is stepped with ``val_loss``
            (or ``train_loss`` without validation data).
        grad_clip: Clip the global gradient norm to this value (``None``: off).
        sam: Radius ``rho`` of sharpness-aware minimisation (Foret et al., 2021;
            ``0``: off). Each step then takes the gradient at the weights moved by
            ``rho`` along the batch's normalised gradient, ``w + rho * g / ||g||``,
            which costs a second forward and backward pass per step. BatchNorm
            running statistics are updated by the first pass only; the reported loss
            and accuracy are those of the first pass.
        precision: ``"fp32"`` or ``"bf16"`` (autocast for the forward pass).
        augment: Batch augmentation applied to training batches, e.g.
            ``fcnet.data.RandomShift(2)``.
        no_augment_epochs: The last this many epochs train on the batches as they
            are, without ``augment`` and ``mixup`` (as YOLOX's last epochs do): a
            network that learnt from shifted or mixed images then fits the images it
            will be tested on, at the schedule's low final learning rates. ``0``: off;
            otherwise ``augment`` or ``mixup`` must be on and it must be below
            ``epochs``.
        eval_batch_size: Batch size for validation, evaluate and predict.
        drop_last: Drop the last incomplete training batch of each epoch.
        progress: Add a :class:`~fcnet.callbacks.ProgressBar` (it draws only on a
            terminal) unless one is in ``callbacks``.
        teacher: A trained network, or a sequence of them, to distil from (Hinton et
            al., 2015; ``None``: off). The loss becomes ``(1 - distill_weight)`` of the
            label loss plus ``distill_weight`` times ``T ** 2`` times the KL divergence
            from the teachers' mean class probabilities at temperature
            ``T = distill_temperature`` to the model's, each taken on the batch as the
            model sees it (after augmentation and mixup). The teachers run in
            evaluation mode without gradients and are moved to ``device``; they must
            return ``(N, classes)`` logits or log-probabilities for the same inputs. Without
            ``augment`` and ``mixup`` their probabilities for the training set are
            computed once per :meth:`fit` instead of at every step. Validation and
            :meth:`evaluate` report the label loss alone.
        distill_weight: The distillation term's share of the loss, in ``[0, 1]``.
        distill_temperature: The softmax temperature ``T > 0`` of both sides of the
            distillation term; above 1 it brings out the small probabilities the
            teacher gives the wrong classes.
        flush_denormal: During :meth:`fit`, treat denormal floats as zero on the
            calling thread (see :func:`torch.set_flush_denormal`) and on torch's
            intra-op worker threads (restarted so that they copy the setting, on
            Linux with OpenMP); the previous setting is restored afterwards.
            Operations on denormals are much slower on x86 CPUs, and Adam's
            averages for dead units decay through that range: 8 epochs of the
            baseline recipe took 12-22% less CPU time with flushing, with the same
            validation accuracy.

    Attributes:
        history: The :class:`~fcnet.history.History` of the last (or current) fit.
        should_stop: Set to ``True`` (e.g. by a callback) to stop after this epoch.
        epoch: Number of completed epochs.
        optimizer: The torch optimizer of the current or last fit (``None`` before
            the first); :meth:`fit` makes a new one each time.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: str | OptimizerFactory = "adam",
        lr: float = 1e-3,
        epochs: int = 10,
        batch_size: int = 64,
        loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "cross_entropy",
        callbacks: Sequence[Callback] = (),
        device: str | torch.device = "auto",
        seed: int | None = None,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        label_smoothing: float = 0.0,
        mixup: float = 0.0,
        scheduler: str | SchedulerFactory | None = None,
        scheduler_kwargs: Mapping[str, Any] | None = None,
        scheduler_interval: str = "epoch",
        grad_clip: float | None = None,
        sam: float = 0.0,
        precision: str = "fp32",
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        no_augment_epochs: int = 0,
        eval_batch_size: int = 1024,
        drop_last: bool = False,
        progress: bool = True,
        teacher: nn.Module | Sequence[nn.Module] | None = None,
        distill_weight: float = 0.5,
        distill_temperature: float = 1.0,
        flush_denormal: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        _check_name_or_callable("optimizer", optimizer, OPTIMIZERS,
                                "a factory params -> Optimizer")
        self.lr = _check_nonneg_float("lr", lr)
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, 1)
        _check_name_or_callable("loss", loss, LOSSES, "a callable")
        label_smoothing = _check_nonneg_float("label_smoothing", label_smoothing)
        if label_smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        mixup = _check_nonneg_float("mixup", mixup)
        if label_smoothing and loss != "cross_entropy":
            raise ValueError(
                f"label_smoothing needs loss='cross_entropy', got loss={loss!r}"
            )
        if isinstance(callbacks, Callback) or not isinstance(callbacks, Iterable):
            raise TypeError("callbacks must be a sequence of Callback instances")
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be fcnet.callbacks.Callback instances, got "
                    f"{type(cb).__name__}"
                )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if seed is not None and not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed!r}")
        if isinstance(scheduler, str):
            if scheduler not in SCHEDULERS:
                raise ValueError(
                    f"scheduler must be None, one of {', '.join(map(repr, SCHEDULERS))} or "
                    f"a factory optimizer -> scheduler, got {scheduler!r}"
                )
        elif scheduler is not None and not callable(scheduler):
            raise TypeError(f"scheduler must be None, a name or a callable, got {scheduler!r}")
        if scheduler_interval not in ("epoch", "batch"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}"
            )
        if grad_clip is not None:
            grad_clip = _check_nonneg_float("grad_clip", grad_clip)
            if grad_clip == 0:
                raise ValueError("grad_clip must be > 0 or None, got 0")
        sam = _check_nonneg_float("sam", sam)
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable or None, got {augment!r}")
        no_augment_epochs = check_int("no_augment_epochs", no_augment_epochs, 0)
        if no_augment_epochs and augment is None and not mixup:
            raise ValueError(
                f"no_augment_epochs={no_augment_epochs} needs augment or mixup to turn off"
            )
        if no_augment_epochs >= self.epochs:
            raise ValueError(
                f"no_augment_epochs must be below epochs ({self.epochs}), got "
                f"{no_augment_epochs}: the run would never augment"
            )
        teachers = _check_teachers(teacher)
        if any(t is model for t in teachers):
            raise ValueError("the teacher must be another network than the model it teaches")
        distill_weight = _check_nonneg_float("distill_weight", distill_weight)
        if distill_weight > 1:
            raise ValueError(f"distill_weight must be in [0, 1], got {distill_weight!r}")
        distill_temperature = _check_nonneg_float("distill_temperature", distill_temperature)
        if distill_temperature == 0:
            raise ValueError("distill_temperature must be > 0, got 0")

        self.device = select_device(device)
        self.model = model.to(self.device)
        self.optimizer_spec = optimizer
        self.loss_spec = loss
        self.callbacks: list[Callback] = callbacks
        if progress and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            self.callbacks.append(ProgressBar())
        self.seed = seed
        self.weight_decay = _check_nonneg_float("weight_decay", weight_decay)
        self.momentum = _check_nonneg_float("momentum", momentum)
        self.label_smoothing = label_smoothing
        self.mixup = mixup
        self.scheduler_spec = scheduler
        self.scheduler_kwargs = dict(scheduler_kwargs or {})
        self.scheduler_interval = scheduler_interval
        self.grad_clip = grad_clip
        self.sam = sam
        self.precision = precision
        self.augment = augment
        self.no_augment_epochs = no_augment_epochs
        self._augmenting = True  # False in the last no_augment_epochs epochs of a fit
        self.drop_last = bool(drop_last)
        self.flush_denormal = bool(flush_denormal)
        self.teachers: list[nn.Module] = [t.to(self.device) for t in teachers]
        self.distill_weight = distill_weight
        self.distill_temperature = distill_temperature
        self._soft: torch.Tensor | None = None

        self.history = History()
        self.should_stop = False
        self.epoch = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.has_validation = False
        self.batches_per_epoch = 0

    # ------------------------------------------------------------------ input checks
    def _model_io(self) -> tuple[int | None, int | None]:
        spec = getattr(self.model, "spec", None)
        if spec is not None and hasattr(spec, "in_features"):
            return spec.in_features, spec.num_classes
        return None, None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self._prepare_for(self.model, x)

    @staticmethod
    def _prepare_for(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # fcnet models carry their preprocessing (InputAdapter); others get float input.
        if x.is_floating_point() or isinstance(next(iter(module.children()), None), InputAdapter):
            return x
        return _as_float(x)

    def _probe(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``module``'s outputs for the first two inputs, in evaluation mode (its mode is
        restored), to check a network against the data before any training."""
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return module(self._prepare_for(module, x[:2].to(self.device)))
        finally:
            module.train(was_training)

    def _check_inputs(self, x: torch.Tensor, name: str) -> None:
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"{name} is empty: got inputs of shape {tuple(x.shape)}")
        if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16,
                                                     torch.int32, torch.int64)):
            raise TypeError(f"{name} inputs must be numeric, got dtype {x.dtype}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{name} inputs contain {bad} NaN or infinite values")
        in_features, _ = self._model_io()
        if in_features is not None:
            per_sample = math.prod(x.shape[1:]) if x.dim() > 1 else x.shape[0]
            if per_sample != in_features:
                raise ValueError(
                    f"{name} inputs have {per_sample} features per sample (shape "
                    f"{tuple(x.shape)}), but the model expects {in_features}"
                )

    def _infer_num_classes(self, x: torch.Tensor, name: str) -> int:
        _, classes = self._model_io()
        if classes is not None:
            return classes
        try:
            out = self._probe(self.model, x)
        except (RuntimeError, ValueError) as e:
            raise ValueError(
                f"{name} inputs of shape {tuple(x.shape)} do not fit the model: {e}"
            ) from e
        if out.dim() != 2:
            raise ValueError(
                f"the model must return (N, classes) scores, got output of shape "
                f"{tuple(out.shape)} for {name} inputs of shape {tuple(x[:2].shape)}"
            )
        return out.shape[1]

    def _check_labels(self, y: torch.Tensor, num_classes: int, name: str) -> None:
        if y.dim() != 1:
            raise ValueError(f"{name} labels must be 1-D, got shape {tuple(y.shape)}")
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"{name} labels must be integers, got dtype {y.dtype}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} labels must be in [0, {num_classes - 1}] for a model with "
                f"{num_classes} outputs, got labels in [{lo}, {hi}]"
            )

    def _tensors(self, data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = to_tensors(data, name=name)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name} has {x.shape[0]} inputs but {y.shape[0]} labels; they must match"
            )
        self._check_inputs(x, name)
        classes = self._infer_num_classes(x, name)
        self._check_labels(y, classes, name)
        return x, y.long(), classes

    def _as_input(self, x: Any) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")
        if x.dtype == torch.float64:
            x = x.float()
        self._check_inputs(x, "x")
        return x

    # ------------------------------------------------------------------ building blocks
    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        spec = self.optimizer_spec
        if callable(spec):
            opt = spec(params)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(
                    f"the optimizer factory must return a torch.optim.Optimizer, got "
                    f"{type(opt).__name__}"
                )
            return opt
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[spec]
        kwargs: dict[str, Any] = {"lr": self.lr, "weight_decay": self.weight_decay}
        groups: Any = params
        if self.weight_decay > 0:
            # Decaying biases and norm scales only pulls them towards 0 for no gain.
            groups = [{"params": [p for p in params if p.ndim > 1]},
                      {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
            groups = [g for g in groups if g["params"]]
        if spec == "sgd":
            kwargs.update(momentum=self.momentum, nesterov=self.momentum > 0)
        if _can_fuse(cls, params):
            # One fused kernel per step instead of ~10 small ops per tensor: an Adam step
            # costs ~2.5-3x less on the CPU (benchmarks/README.md). The result differs
            # from the default step only by floating-point rounding.
            kwargs["fused"] = True
        return cls(groups, **kwargs)

    def _make_scheduler(self, optimizer: torch.optim.Optimizer, steps: int) -> tuple[Any, str]:
        spec, kw = self.scheduler_spec, dict(self.scheduler_kwargs)
        if spec is None:
            return None, "epoch"
        if callable(spec):
            return spec(optimizer), self.scheduler_interval
        if spec == "onecycle":
            kw.setdefault("max_lr", self.lr)
            kw.setdefault("total_steps", self.epochs * steps)
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, **kw), "batch"
        if spec == "cosine":
            kw.setdefault("T_max", self.epochs * steps)
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **kw), "batch"
        kw.setdefault("step_size", max(1, self.epochs // 3))
        kw.setdefault("gamma", 0.1)
        return torch.optim.lr_scheduler.StepLR(optimizer, **kw), "epoch"

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.loss_spec == "cross_entropy":
            return F.cross_entropy(out, y, label_smoothing=self.label_smoothing)
        if self.loss_spec == "nll":
            return F.nll_loss(out, y)
        return self.loss_spec(out, y)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _call(self, hook: str, *args: Any) -> None:
        callbacks = self.callbacks
        if any(isinstance(cb, ModelCheckpoint) for cb in callbacks):
            # A checkpoint must hold the state after every other callback has updated it
            # (EarlyStopping's counter), and the final training state before any callback
            # changes the weights at the end (EarlyStopping's restore_best); else resuming
            # from it would not be exact.
            ckpts = [cb for cb in callbacks if isinstance(cb, ModelCheckpoint)]
            others = [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
            callbacks = ckpts + others if hook == "on_train_end" else others + ckpts
        for cb in callbacks:
            getattr(cb, hook)(self, *args)

    def _seed_everything(self, seed: int) -> None:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)

    # ------------------------------------------------------------------ fit
    def fit(self, train: Any, val: Any = None, *, resume_from: Any = None) -> History:
        """Train the model and return its :class:`~fcnet.history.History`.

        Each call starts a fresh optimizer, schedule and history from the model's
        current weights; to continue an interrupted run exactly, use ``resume_from``.

        Args:
            train: An fcnet dataset, a torch ``Dataset`` of ``(x, y)`` pairs, or an
                ``(X, y)`` pair of tensors or numpy arrays.
            val: Validation data in the same forms, evaluated after every epoch.
            resume_from: A checkpoint file or folder written by
                :class:`fcnet.callbacks.ModelCheckpoint`; training continues from
                that exact point.

        Raises:
            ValueError: bad data (length mismatch, wrong feature count, labels outside
                the model's classes, NaN or infinite inputs, empty data), checked
                before any training step.
            NonFiniteLossError: the loss became NaN or infinite.
        """
        x, y, classes = self._tensors(train, "train")
        xv = yv = None
        if val is not None:
            xv, yv, _ = self._tensors(val, "val")
            self._check_labels(yv, classes, "val")
        self.has_validation = xv is not None
        self._check_teacher_outputs(x, classes)
        # Split provenance (train_val_split subsets), recorded in and checked by checkpoints.
        self._data_provenance = {"train": getattr(train, "provenance", None),
                                 "val": getattr(val, "provenance", None)}

        state = None
        if resume_from is not None:
            from fcnet.checkpoint import load_training_state

            state = load_training_state(resume_from)

        seed = self.seed if self.seed is not None else secrets.randbits(62)
        if state is not None:
            seed = int(state["seed"])
        self._seed_used = seed
        self._seed_everything(seed)
        loader = DeviceLoader(
            x, y, self.batch_size, shuffle=True, drop_last=self.drop_last, seed=seed,
            augment=self.augment, device=self.device,
        )
        self._val = None
        if xv is not None:
            self._val = (xv.to(self.device), yv.to(self.device))
        self.batches_per_epoch = len(loader)
        self.optimizer = self._make_optimizer()
        self.scheduler, self._sched_interval = self._make_scheduler(self.optimizer, len(loader))
        self.history = History(meta={"seed": seed})
        self.should_stop = False
        self.epoch = 0
        self._batch_in_epoch = 0
        self._acc = self._zero_accumulators()
        if state is not None:
            self._call_begin_then_restore(state, x, y)
        else:
            self._call("on_train_begin")
        self._loader = loader
        teacher_modes = [t.training for t in self.teachers]
        try:
            with self._sigint_guard(), flush_denormal(self.flush_denormal):
                for t in self.teachers:
                    t.eval()
                self._soft = None
                if self.teachers and self.augment is None and not self.mixup:
                    # In evaluation mode a teacher is a fixed function of its input: on
                    # un-augmented batches, one pass over the training set serves every step.
                    self._soft = torch.cat([
                        self._teacher_probs(loader.inputs[i:i + self.eval_batch_size])
                        for i in range(0, len(loader.inputs), self.eval_batch_size)
                    ])
                self._run(loader)
        finally:
            self._soft = None
            self._augmenting = True
            for t, mode in zip(self.teachers, teacher_modes, strict=True):
                t.train(mode)
            self._call("on_train_end")
        return self.history

    # ------------------------------------------------------------------ distillation
    def _check_teacher_outputs(self, x: torch.Tensor, classes: int) -> None:
        """Fail before training when a teacher does not take the inputs or gives another
        number of classes than the model."""
        for i, t in enumerate(self.teachers):
            try:
                out = self._probe(t, x)
            except (RuntimeError, ValueError) as e:
                raise ValueError(
                    f"teacher {i} does not take train inputs of shape {tuple(x.shape)}: {e}"
                ) from e
            if out.dim() != 2 or out.shape[1] != classes:
                raise ValueError(
                    f"teacher {i} returns outputs of shape {tuple(out.shape)} for 2 inputs; "
                    f"the model has {classes} classes"
                )

    def _teacher_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The teachers' mean class probabilities at the distillation temperature."""
        with torch.no_grad(), self._autocast():
            probs = [torch.softmax(t(self._prepare_for(t, x)).float() / self.distill_temperature,
                                   dim=1) for t in self.teachers]
        return probs[0] if len(probs) == 1 else torch.stack(probs).mean(0)

    def _distill(self, out: torch.Tensor, loss: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        """Mix the label loss with ``T ** 2`` times the KL divergence from ``soft``."""
        temp = self.distill_temperature
        kl = F.kl_div(F.log_softmax(out.float() / temp, dim=1), soft, reduction="batchmean")
        return (1.0 - self.distill_weight) * loss + self.distill_weight * temp * temp * kl

    def _call_begin_then_restore(self, state: dict[str, Any], x: torch.Tensor,
                                 y: torch.Tensor) -> None:
        self._call("on_train_begin")
        from fcnet.checkpoint import restore_trainer_state

        restore_trainer_state(self, state, x, y)

    def _zero_accumulators(self) -> dict[str, Any]:
        zero = torch.zeros((), device=self.device, dtype=torch.float64)
        return {"loss": zero.clone(), "correct": zero.clone(), "seen": 0, "seconds": 0.0}

    @contextlib.contextmanager
    def _sigint_guard(self):
        self._interrupted = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interrupted:  # second Ctrl-C: give up at once
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run(self, loader: DeviceLoader) -> None:
        self.model.train()
        while self.epoch < self.epochs and not self.should_stop:
            number = self.epoch + 1
            start_batch = self._batch_in_epoch
            if start_batch == 0:
                self._call("on_epoch_begin", number)
            t0 = time.perf_counter()
            self.model.train()
            # A pure function of the epoch, so a resumed run augments the same epochs.
            self._augmenting = number <= self.epochs - self.no_augment_epochs
            loader.augment = self.augment if self._augmenting else None
            # Batch b holds the samples order[b * batch_size:(b + 1) * batch_size].
            order = loader.order(self.epoch) if self._soft is not None else None
            bs = loader.batch_size
            for b, (xb, yb) in enumerate(loader.batches(self.epoch, start_batch), start_batch):
                self._call("on_batch_begin", b)
                soft = None if order is None else self._soft[order[b * bs:(b + 1) * bs]]
                loss = self._step(xb, yb, number, b, soft)
                self._batch_in_epoch = b + 1
                self._call("on_batch_end", b, {"batch": b, "size": len(yb), "loss": loss})
                if self._interrupted:
                    break
            self._acc["seconds"] += time.perf_counter() - t0
            if self._interrupted:
                self.history.meta["interrupted"] = True
                self.history.meta["interrupted_at"] = {"epoch": number,
                                                       "batch": self._batch_in_epoch}
                return
            self._end_epoch(number)

    def _forward_loss(self, xb: torch.Tensor, yb: torch.Tensor,
                      mix: tuple[float, torch.Tensor] | None,
                      soft: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            out = self.model(xb)
            loss = self._loss(out, yb)
            if mix is not None:
                lam, perm = mix
                loss = lam * loss + (1.0 - lam) * self._loss(out, yb[perm])
            if soft is not None:
                loss = self._distill(out, loss, soft)
        return out, loss

    def _sam_gradient(self, xb: torch.Tensor, yb: torch.Tensor,
                      mix: tuple[float, torch.Tensor] | None,
                      soft: torch.Tensor | None = None) -> None:
        """Replace the gradients by those at ``w + rho * g / ||g||`` (SAM's second pass)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return
        with torch.no_grad():
            grads = [p.grad for p in params]
            norm = torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))
            scale = self.sam / (norm + 1e-12)  # a tensor: no wait for the device
            eps = [g * scale.to(g.dtype) for g in grads]
            torch._foreach_add_(params, eps)
        # The second pass normalises with its batch's statistics but leaves the running
        # averages as the first pass set them.
        norms = [m for m in self.model.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        try:
            for m in norms:
                m.track_running_stats = False
            clear_grads(self.optimizer)
            self._forward_loss(xb, yb, mix, soft)[1].backward()
        finally:
            for m in norms:
                m.track_running_stats = True
            with torch.no_grad():
                torch._foreach_sub_(params, eps)

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, epoch: int, batch: int,
              soft: torch.Tensor | None = None) -> torch.Tensor:
        xb = self._prepare(xb)
        mix = None
        if self.mixup and self._augmenting:
            lam, perm = mix = self._mixup_draw(len(yb))
            if not xb.is_floating_point():  # raw input for an fcnet model's InputAdapter
                xb = _as_float(xb)
            xb = torch.lerp(xb[perm], xb, lam)  # lam * x + (1 - lam) * x[perm]
        if self.teachers and soft is None:  # the teachers see the batch as the model does
            soft = self._teacher_probs(xb)
        out, loss = self._forward_loss(xb, yb, mix, soft)
        if self.device.type == "cpu" and not math.isfinite(loss.item()):
            # On the CPU reading the loss is free; on accelerators it is checked per epoch.
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at epoch {epoch}, batch {batch}; "
                f"lower the learning rate or check the data"
            )
        clear_grads(self.optimizer)
        loss.backward()
        if self.sam:
            self._sam_gradient(xb, yb, mix, soft)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        optimizer_step(self.optimizer)
        if self.scheduler is not None and self._sched_interval == "batch":
            self.scheduler.step()
        loss = loss.detach()
        n = len(yb)
        # add_ with alpha: one small op instead of three (mul, dtype copy, add); each costs
        # ~10-20 us on a small CPU, where a whole step of the baseline MLP is ~2 ms.
        self._acc["loss"].add_(loss, alpha=n)
        self._acc["correct"] += (out.detach().argmax(1) == yb).sum()
        self._acc["seen"] += n
        return loss

    def _mixup_draw(self, n: int) -> tuple[float, torch.Tensor]:
        alpha = torch.tensor(self.mixup, dtype=torch.float64)
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        return lam, torch.randperm(n).to(self.device)

    def _end_epoch(self, number: int) -> None:
        acc = self._acc
        seen = max(acc["seen"], 1)
        train_loss = float(acc["loss"]) / seen
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"the training loss became non-finite during epoch {number}; "
                f"lower the learning rate or check the data"
            )
        logs: dict[str, Any] = {
            "epoch": number,
            "train_loss": train_loss,
            "train_accuracy": float(acc["correct"]) / seen,
        }
        if self._val is not None:
            val = self._evaluate_tensors(*self._val)
            logs["val_loss"] = val["loss"]
            logs["val_accuracy"] = val["accuracy"]
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None and self._sched_interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(logs.get("val_loss", train_loss))
            else:
                self.scheduler.step()
        logs["seconds"] = acc["seconds"]
        self.epoch = number
        self._batch_in_epoch = 0
        self._acc = self._zero_accumulators()
        self.history.append(logs)
        self._call("on_epoch_end", number, logs)

    # ------------------------------------------------------------------ inference
    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Model outputs for ``x`` in eval mode, batch by batch, as float32 on the device."""
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = []
            with torch.inference_mode(), self._autocast():
                for i in range(0, len(x), self.eval_batch_size):
                    xb = x[i:i + self.eval_batch_size].to(self.device, non_blocking=True)
                    chunks.append(self.model(self._prepare(xb)).float())
            return torch.cat(chunks)
        finally:
            self.model.train(was_training)

    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        out = self._outputs(x)
        y = y.to(out.device)
        loss = self._loss(out, y)
        correct = (out.argmax(1) == y).sum()
        return {"loss": float(loss), "accuracy": float(correct) / len(y), "n": len(y)}

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Return ``{"loss", "accuracy", "n", "per_class_accuracy"}`` on ``data``.

        ``data`` takes the same forms as ``train`` in :meth:`fit`. The loss is the
        training loss (label smoothing included).
        """
        return self._evaluate(data)[0]

    def _evaluate(self, data: Any) -> tuple[dict[str, Any], torch.Tensor]:
        """:meth:`evaluate`'s figures and the model outputs behind them (float32, on the
        device), for callers that also need the predictions without a second pass."""
        x, y, classes = self._tensors(data, "data")
        out = self._outputs(x)
        y = y.to(out.device)
        pred = out.argmax(1)
        per_class_total = torch.bincount(y, minlength=classes)
        per_class_hit = torch.bincount(y[pred == y], minlength=classes)
        per_class = (per_class_hit.double() / per_class_total.clamp(min=1).double()).tolist()
        per_class = [v if t > 0 else None for v, t in zip(per_class, per_class_total.tolist(),
                                                          strict=True)]
        return {
            "loss": float(self._loss(out, y)),
            "accuracy": float((pred == y).sum()) / len(y),
            "n": len(y),
            "per_class_accuracy": per_class,
        }, out

    def predict_proba(self, x: Any) -> torch.Tensor:
        """Return class probabilities, shape ``(N, classes)``, rows summing to 1, on the CPU.

        ``x`` is a tensor or numpy array: raw ``uint8`` images or floats, ``(N, ...)``.
        """
        out = self._outputs(self._as_input(x))
        return torch.softmax(out, dim=1).cpu()

    def predict(self, x: Any) -> torch.Tensor:
        """Return the predicted class of each sample as an int64 tensor of shape ``(N,)``."""
        return self.predict_proba(x).argmax(1)
