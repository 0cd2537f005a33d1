"""Training recipes as typed configs, and a runner that trains one and writes its outputs.

A :class:`Recipe` is a frozen dataclass holding everything that defines a training run
on Fashion-MNIST: architecture, loss, optimiser, schedule, split and model selection.
:data:`RECIPES` holds the named recipes; the two seed recipes reproduce the reference
notebook (see ``SEED.md``):

- ``"baseline"``: 784-128-64-10, ReLU, dropout 0.25 after the first hidden layer,
  LogSoftmax + NLL, Adam at 3e-3, 25 epochs of batch 64 (notebook: 87.42% test). The
  notebook meant dropout after both hidden layers, but its network had one dropout layer
  (a reused ``OrderedDict`` key), and that network made the 87.42%;
  ``"baseline_as_described"`` is the two-dropout network it meant.
- ``"deep"``: 784-392-196-98-49-10, ReLU, dropout 0.25 after the first three hidden
  layers, LogSoftmax + NLL, Adam at 7e-4, 35 epochs of batch 64 (notebook: 88.65%).

Beyond the notebook, ``"best_split"`` is fcnet's best pure MLP, its settings chosen on
the validation split, and ``"best"`` refits those settings on all 60,000 training
images (``val_fraction=0``), where nothing is left to select an epoch by.

:func:`run_recipe` trains a recipe for one seed, evaluates it once on the test set and
writes the model, its history, its metrics and four figures into a folder;
:func:`main` is the command line (``fcnet-recipe`` or ``python -m fcnet.recipes``)::

    python -m fcnet.recipes baseline --seed 0 --out runs/baseline
    python -m fcnet.recipes deep --seeds 0 1 2 --out runs/deep

For the seed recipes, model selection follows the notebook, which saved a checkpoint
whenever the validation loss decreased and used that checkpoint for the test: training
runs for every epoch (no early stop), and at the end the weights of the epoch with the
lowest validation loss are put back (:class:`fcnet.EarlyStopping` with a patience
longer than the run and ``restore_best=True``). The test set is touched once, after
training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from fcnet._checks import check_choice, check_int, is_number
from fcnet._device import select_device
from fcnet._io import atomic_write_text
from fcnet.callbacks import Callback, EarlyStopping, EpochLogger, WeightAveraging
from fcnet.checkpoint import load_model, save_model
from fcnet.data import (
    Compose,
    FashionMNIST,
    RandomErasing,
    RandomFlip,
    RandomShift,
    train_val_split,
)
from fcnet.metrics import accuracy, classification_report, confusion_matrix, per_class_accuracy
from fcnet.models import MLP, MLPSpec
from fcnet.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_prediction,
    plot_predictions_grid,
)
from fcnet.trainer import LOSSES, OPTIMIZERS, SCHEDULERS, Trainer

__all__ = [
    "DEFAULT_THREADS",
    "RECIPES",
    "RUN_FILES",
    "Recipe",
    "get_recipe",
    "main",
    "run_recipe",
]

_PRECISIONS = ("fp32", "bf16")

#: CPU threads used by :func:`run_recipe` when ``threads=None`` (capped at the
#: number of cores). Measured on the project's 2-core CPU at batch 64: a second thread
#: made an epoch ~12% faster on an idle machine (1.30 against 1.47 s), but a step ~25x
#: slower while another process used the cores (63 against 2.5 ms at load 2.6; see
#: ``benchmarks/results/step_options.json`` and ``benchmarks/README.md``).
DEFAULT_THREADS = 1

#: Files that :func:`run_recipe` writes into its output folder.
RUN_FILES = (
    "model/model.safetensors",
    "model/model.json",
    "history.json",
    "metrics.json",
    "curves.png",
    "confusion_matrix.png",
    "predictions.png",
    "prediction.png",
)


# --------------------------------------------------------------------------- checks


def _check_float(name: str, value: Any, low: float, high: float, *, high_open: bool) -> float:
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    inside = low <= value < high if high_open else low <= value <= high
    if not (math.isfinite(value) and inside):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}, got {value!r}")
    return value


def _check_positive(name: str, value: Any) -> None:
    if not is_number(value) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


_AUGMENTS: dict[str, tuple[Callable[..., Callable], type, Any]] = {
    # name: (constructor, argument type, default argument)
    "flip": (lambda p: RandomFlip(p), float, 0.5),
    "shift": (lambda n: RandomShift(n), int, 2),
    "erase": (lambda p: RandomErasing(p), float, 0.5),
}


def _parse_augment(text: str) -> list[Callable]:
    """Build the batch augmentation described by ``text``, e.g. ``"flip,shift:2"``."""
    parts = [p.strip() for p in text.split(",")]
    augments = []
    for part in parts:
        name, _, arg = part.partition(":")
        if name not in _AUGMENTS:
            raise ValueError(
                f"augment must be a comma-separated list of {', '.join(sorted(_AUGMENTS))} "
                f"with an optional ':value' (e.g. 'flip,shift:2'), got {text!r}"
            )
        make, kind, default = _AUGMENTS[name]
        try:
            value = kind(arg) if arg else default
        except ValueError:
            raise ValueError(
                f"augment {name!r} takes a {kind.__name__} value, got {arg!r} in {text!r}"
            ) from None
        augments.append(make(value))
    return augments


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """A complete, typed description of one training run on Fashion-MNIST.

    Every field is validated on construction; make variants with
    :func:`dataclasses.replace` (``replace(RECIPES["deep"], epochs=50)``), which
    validates again. :meth:`to_dict` gives plain JSON data, saved in every run's
    ``metrics.json``, and :meth:`from_dict` rebuilds the recipe from it.

    Model selection: with ``restore_best`` the weights of the epoch with the best
    ``monitor`` value are restored at the end; ``patience=None`` trains every epoch
    (the notebook's policy), an integer stops after that many epochs without
    improvement.
    """

    name: str  # registry key, also the default output folder name
    sizes: tuple[int, ...]  # layer widths: 784 input features first, 10 classes last
    dropout: tuple[float, ...]  # dropout probability after each hidden layer (0: none)
    lr: float  # peak learning rate (the constant rate without a scheduler)
    epochs: int  # passes over the training split
    batch_size: int = 64  # samples per optimisation step
    activation: str = "relu"  # key of fcnet.models.ACTIVATIONS, after every hidden layer
    norm: str | None = None  # None, "batch" or "layer", before each activation
    output: str = "log_softmax"  # "logits" or "log_softmax" (the notebook's head)
    loss: str = "nll"  # "nll" on log-probabilities or "cross_entropy" on logits
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (Nesterov momentum 0.9)
    weight_decay: float = 0.0  # L2 penalty per step (decoupled for "adamw")
    scheduler: str | None = None  # None (constant lr), "onecycle", "cosine" or "step"
    scheduler_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)  # extras
    label_smoothing: float = 0.0  # in [0, 1); needs loss="cross_entropy"
    mixup: float = 0.0  # mixup's Beta(alpha, alpha) parameter; 0: off
    augment: str | None = None  # batch augmentation, e.g. "flip,shift:2"; None: none
    no_augment_epochs: int = 0  # the last epochs train without augment and mixup
    input_norm: tuple[float, float] | None = (0.5, 0.5)  # (mean, std) on [0, 1] pixels
    input_dropout: float = 0.0  # dropout probability on the input pixels (0: none)
    fast_dropout: bool = False  # fcnet.models.FastDropout instead of nn.Dropout
    val_fraction: float = 0.2  # share of the 60,000 training images held out, stratified;
    # 0 trains on all of them (a refit of settings chosen on a split; no validation)
    restore_best: bool = True  # put back the weights of the best epoch at the end
    monitor: str = "val_loss"  # history key that ranks epochs for restore_best/patience
    patience: int | None = None  # epochs without improvement before stopping; None: never
    precision: str = "fp32"  # "fp32" or "bf16" (autocast of the forward pass)
    ema_decay: float | None = None  # weight averaging per step (WeightAveraging); None: off
    threads: int | None = None  # CPU threads for run_recipe; None: DEFAULT_THREADS
    distill_weight: float = 0.5  # share of the loss distilled from run_recipe's teachers
    distill_temperature: float = 1.0  # softmax temperature of that distillation
    reference_accuracy: float | None = None  # the notebook's test accuracy, a fraction
    description: str = ""  # one line for --list and the run's metrics

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty str, got {self.name!r}")
        # MLPSpec checks sizes, dropout, activation, norm, output, input_norm and
        # input_dropout, and normalises them (tuples, one dropout float per layer).
        spec = MLPSpec(
            sizes=tuple(self.sizes) if isinstance(self.sizes, list) else self.sizes,
            dropout=tuple(self.dropout) if isinstance(self.dropout, list) else self.dropout,
            activation=self.activation,
            norm=self.norm,
            output=self.output,
            input_norm=(
                tuple(self.input_norm) if isinstance(self.input_norm, list) else self.input_norm
            ),
            input_dropout=self.input_dropout,
            fast_dropout=self.fast_dropout,
        )
        object.__setattr__(self, "sizes", spec.sizes)
        object.__setattr__(self, "dropout", spec.dropout)
        object.__setattr__(self, "input_norm", spec.input_norm)
        object.__setattr__(self, "input_dropout", spec.input_dropout)
        _check_positive("lr", self.lr)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_choice("loss", self.loss, LOSSES)
        if self.loss == "nll" and self.output != "log_softmax":
            # NLL on raw logits trains without error but optimises the wrong objective.
            raise ValueError(
                f"loss='nll' needs output='log_softmax', got output={self.output!r}; "
                f"use loss='cross_entropy' with logits"
            )
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not is_number(self.weight_decay) or not (
            math.isfinite(self.weight_decay) and self.weight_decay >= 0
        ):
            raise ValueError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )
        check_choice("scheduler", self.scheduler, (None, *SCHEDULERS))
        if not isinstance(self.scheduler_kwargs, Mapping):
            raise TypeError(
                f"scheduler_kwargs must be a mapping, got {type(self.scheduler_kwargs).__name__}"
            )
        if self.scheduler_kwargs and self.scheduler is None:
            raise ValueError(
                f"scheduler_kwargs needs a scheduler, got scheduler=None and "
                f"scheduler_kwargs={dict(self.scheduler_kwargs)!r}"
            )
        object.__setattr__(self, "scheduler_kwargs", dict(self.scheduler_kwargs))
        _check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        if self.label_smoothing and self.loss != "cross_entropy":
            raise ValueError(
                f"label_smoothing needs loss='cross_entropy', got loss={self.loss!r}"
            )
        if not is_number(self.mixup) or not (math.isfinite(self.mixup) and self.mixup >= 0):
            raise ValueError(f"mixup must be a finite number >= 0, got {self.mixup!r}")
        if self.augment is not None:
            if not isinstance(self.augment, str):
                raise TypeError(f"augment must be a str or None, got {self.augment!r}")
            _parse_augment(self.augment)
        check_int("no_augment_epochs", self.no_augment_epochs, 0)
        if self.no_augment_epochs and self.augment is None and not self.mixup:
            raise ValueError(
                f"no_augment_epochs={self.no_augment_epochs} needs augment or mixup to turn off"
            )
        if self.no_augment_epochs >= self.epochs:
            raise ValueError(
                f"no_augment_epochs ({self.no_augment_epochs}) must be below epochs "
                f"({self.epochs}), or the run never augments"
            )
        val = self.val_fraction
        if not is_number(val) or not 0 <= val < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val!r}")
        if val == 0 and (self.restore_best or self.patience is not None):
            raise ValueError(
                "val_fraction=0 leaves no validation data to pick the best epoch or to stop "
                "early; set restore_best=False and patience=None"
            )
        if not isinstance(self.restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {self.restore_best!r}")
        if not isinstance(self.monitor, str) or not self.monitor.startswith(("val_", "train_")):
            raise ValueError(
                f"monitor must be a history key such as 'val_loss' or 'val_accuracy', "
                f"got {self.monitor!r}"
            )
        if self.patience is not None:
            check_int("patience", self.patience, 0)
        check_choice("precision", self.precision, _PRECISIONS)
        if self.ema_decay is not None:
            if not is_number(self.ema_decay) or not 0 < self.ema_decay < 1:
                raise ValueError(f"ema_decay must be None or in (0, 1), got {self.ema_decay!r}")
            if self.restore_best:
                raise ValueError(
                    "ema_decay and restore_best exclude each other: the averaged weights "
                    "would replace the restored best epoch; set restore_best=False"
                )
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        _check_float("distill_weight", self.distill_weight, 0.0, 1.0, high_open=False)
        _check_positive("distill_temperature", self.distill_temperature)
        if self.reference_accuracy is not None:
            _check_float("reference_accuracy", self.reference_accuracy, 0.0, 1.0,
                         high_open=False)
        if not isinstance(self.description, str):
            raise TypeError(f"description must be a str, got {self.description!r}")

    @property
    def model_spec(self) -> MLPSpec:
        """The :class:`~fcnet.models.MLPSpec` of this recipe's network."""
        return MLPSpec(
            sizes=self.sizes,
            dropout=self.dropout,
            activation=self.activation,
            norm=self.norm,
            output=self.output,
            input_norm=self.input_norm,
            input_dropout=self.input_dropout,
            fast_dropout=self.fast_dropout,
        )

    def build_model(self) -> MLP:
        """Return a freshly initialised network (seed torch first for reproducibility)."""
        return self.model_spec.build()

    def make_augment(self) -> Callable | None:
        """Return the batch augmentation described by :attr:`augment`, or ``None``."""
        if self.augment is None:
            return None
        augments = _parse_augment(self.augment)
        return augments[0] if len(augments) == 1 else Compose(augments)

    def callbacks(self) -> list[Callback]:
        """Return fresh callbacks for :attr:`ema_decay`, :attr:`restore_best`, :attr:`patience`."""
        averaging: list[Callback] = (
            [] if self.ema_decay is None else [WeightAveraging(decay=self.ema_decay)]
        )
        if not self.restore_best and self.patience is None:
            return averaging
        # A patience longer than the run never triggers: best-epoch restore, no early stop.
        patience = self.epochs if self.patience is None else self.patience
        return [
            *averaging,
            EarlyStopping(monitor=self.monitor, patience=patience, restore_best=self.restore_best),
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return the recipe as JSON-ready data (lists instead of tuples)."""
        data = asdict(self)
        data.update(self.model_spec.to_dict())  # the architecture fields, as JSON lists
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Rebuild a recipe from :meth:`to_dict`'s output; unknown keys raise ValueError."""
        if not isinstance(data, Mapping):
            raise TypeError(f"recipe data must be a mapping, got {type(data).__name__}")
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"recipe has unknown fields {unknown}; allowed: {sorted(allowed)}")
        return cls(**data)


_BASELINE = Recipe(
    name="baseline",
    sizes=(784, 128, 64, 10),
    dropout=(0.25, 0.0),
    lr=3e-3,
    epochs=25,
    batch_size=64,
    reference_accuracy=0.8742,
    description="notebook baseline as it ran: 784-128-64-10, dropout 0.25 after the first "
    "hidden layer, Adam 3e-3, 25 epochs",
)

_BEST_SPLIT = Recipe(
    name="best_split",
    sizes=(784, 1024, 1024, 1024, 10),
    dropout=(0.3, 0.3, 0.3),
    input_dropout=0.1,
    activation="gelu",
    norm="batch",
    output="logits",
    loss="cross_entropy",
    label_smoothing=0.1,
    optimizer="adamw",
    lr=3e-3,
    weight_decay=0.05,
    scheduler="onecycle",
    # 10% warm-up to 3e-3, cosine down to 3e-5; no momentum cycling (as in the study).
    scheduler_kwargs={"pct_start": 0.1, "div_factor": 25.0, "final_div_factor": 4.0,
                      "cycle_momentum": False},
    epochs=60,
    batch_size=512,
    input_norm=(0.2860, 0.3530),  # mean and std of the training pixels in [0, 1]
    restore_best=False,
    ema_decay=0.999,
    description="pure MLP 784-1024x3-10, BatchNorm, GELU, dropout 0.3 (input 0.1), AdamW "
    "one-cycle, label smoothing 0.1, EMA 0.999, 60 epochs of batch 512 on the 48,000-image split",
)

# The tenth study's t1 refit (see RECIPES); best_budget and best_lean vary it.
_BEST_LONG = replace(
    _BEST_SPLIT,
    name="best_long",
    val_fraction=0.0,
    epochs=96,
    threads=2,
    fast_dropout=True,
    augment="flip,shift:1",
    no_augment_epochs=24,
    description="best's network on all 60,000 training images for 96 epochs: random "
    "flips and 1-pixel shifts, the last 24 epochs without them",
)

#: The named recipes. The seed recipes follow the reference notebook (``SEED.md``).
RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {
        # The network the notebook trained, which made its 87.42%: the notebook meant
        # dropout after both hidden layers, but its OrderedDict reused the key 'drop1',
        # so only the first hidden layer had dropout.
        "baseline": _BASELINE,
        "deep": Recipe(
            name="deep",
            sizes=(784, 392, 196, 98, 49, 10),
            dropout=(0.25, 0.25, 0.25, 0.0),
            lr=7e-4,
            epochs=35,
            batch_size=64,
            reference_accuracy=0.8865,
            description="notebook deep: 784-392-196-98-49-10, dropout 0.25 x3, Adam 7e-4, "
            "35 epochs",
        ),
        # The baseline as the notebook meant it: dropout after both hidden layers (the
        # layer names here are generated, so a second dropout layer cannot vanish).
        "baseline_as_described": replace(
            _BASELINE,
            name="baseline_as_described",
            dropout=(0.25, 0.25),
            description="the notebook's baseline as it was meant: dropout 0.25 after both "
            "hidden layers",
        ),
        # Beyond the notebook: wide, batch-normalised, GELU, AdamW with a one-cycle
        # schedule, label smoothing, input dropout and an EMA of the weights. Every
        # setting was chosen on the 12,000-image validation split with this recipe
        # (benchmarks/results/best_mlp_exploration.md).
        "best_split": _BEST_SPLIT,
        # The same settings refit on all 60,000 training images (sklearn's refit):
        # 48 epochs of 60,000 images are as many samples (and steps) as 60 of 48,000,
        # so the schedule stays that of the selected run. Two threads: alone on the
        # 2-core machine an epoch runs ~1.27x faster than with one. FastDropout: the
        # same dropout with masks drawn from NumPy instead of torch's one-at-a-time
        # bernoulli_, which took a third of a 2-thread step (95 against 67 ms per
        # step, alternating); its seeded runs differ from nn.Dropout's.
        "best": replace(
            _BEST_SPLIT,
            name="best",
            val_fraction=0.0,
            epochs=48,
            threads=2,
            fast_dropout=True,
            description="best_split's settings refit on all 60,000 training images for "
            "48 epochs (as many steps as best_split's 60 epochs of 48,000), FastDropout",
        ),
        # The tenth study's t1 refit: best's network and optimiser on twice the schedule,
        # random flips and 1-pixel shifts for the first three quarters, then the last
        # quarter on the images as they are. Chosen on the validation split with
        # benchmarks/explore_best_mlp.py (120 epochs of 48,000 images, the last 30
        # clean; benchmarks/results/tenth_study_rules.md); 96 epochs of 60,000 are as
        # many steps, and 24 clean epochs the same share.
        "best_long": _BEST_LONG,
        # best_long cut to the 15-minute budget at the machine's slow speed (~12 s an
        # epoch with two threads, where best_long took 1,098 and 1,177 s): the eleventh
        # study's t4, chosen on the validation split among the settings that fit 900 s
        # (80 epochs of 48,000 images, the last 20 clean: +0.15 and +0.36 points over
        # best_split's settings; benchmarks/results/eleventh_study_rules.md). 64 epochs
        # of 60,000 are as many steps, and 16 clean epochs the same share.
        "best_budget": replace(
            _BEST_LONG,
            name="best_budget",
            epochs=64,
            no_augment_epochs=16,
            description="best_long's schedule cut to 64 epochs to fit 15 minutes on a "
            "slow 2-core CPU: random flips and 1-pixel shifts, the last 16 epochs without them",
        ),
        # best_long with two hidden layers instead of three: 36% fewer multiply-adds per
        # image, so the long schedule fits the budget at the slow speed. The eleventh
        # study's t5: 120 epochs of 48,000 images, the last 30 clean, as good as
        # best_long's t1 on the validation split (0.9202 / 0.9232 against 0.9196 /
        # 0.9233; benchmarks/results/eleventh_study_rules.md).
        "best_lean": replace(
            _BEST_LONG,
            name="best_lean",
            sizes=(784, 1024, 1024, 10),
            dropout=(0.3, 0.3),
            description="best_long with two hidden layers of 1024 instead of three: 96 "
            "epochs, random flips and 1-pixel shifts, the last 24 epochs without them",
        ),
    }
)


def get_recipe(name: str) -> Recipe:
    """Return the registered recipe called ``name``.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: no recipe has that name; the message lists the names there are.
    """
    if not isinstance(name, str):
        raise TypeError(f"recipe name must be a str, got {type(name).__name__} {name!r}")
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


# --------------------------------------------------------------------------- runner


def _check_out_dir(out_dir: Any, overwrite: bool) -> Path:
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__} {out_dir!r}")
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"out_dir {str(path)!r} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(
            f"out_dir {str(path)!r} is not empty; choose a new folder or pass overwrite=True "
            f"(--overwrite) to replace the run files in it"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"out_dir {str(path)!r} cannot be created: {str(parent)!r} is a file"
                )
            break
    return path


def _check_run_args(
    recipe: Any,
    out_dir: Any,
    seed: Any,
    data_root: Any,
    epochs: Any,
    limit_train: Any,
    threads: Any,
    overwrite: Any,
    quiet: Any,
    device: Any = "auto",
) -> tuple[Recipe, Path]:
    """Validate every argument of :func:`run_recipe`; return the recipe and the folder."""
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    elif not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe or a recipe name, got {type(recipe).__name__}")
    for flag, value in (("overwrite", overwrite), ("quiet", quiet)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    path = _check_out_dir(out_dir, overwrite)
    check_int("seed", seed, 0)
    if epochs is not None:
        check_int("epochs", epochs, 1)
        if epochs <= recipe.no_augment_epochs:
            raise ValueError(
                f"epochs={epochs} leaves recipe {recipe.name!r} no augmented epoch: it trains "
                f"its last {recipe.no_augment_epochs} epochs without augmentation; pass more "
                f"epochs, or a recipe made with dataclasses.replace(..., no_augment_epochs=...)"
            )
    if limit_train is not None:
        total = FashionMNIST.split_sizes["train"]
        check_int("limit_train", limit_train, 10)
        if limit_train > total:
            raise ValueError(
                f"limit_train must be at most the {total} training images, got {limit_train}"
            )
    if threads is not None:
        check_int("threads", threads, 1)
    select_device(device)  # an unknown or unavailable device fails here, not after loading
    if data_root is not None:
        if not isinstance(data_root, (str, os.PathLike)):
            raise TypeError(f"data_root must be a path or None, got {type(data_root).__name__}")
        if not Path(data_root).expanduser().is_dir():
            raise FileNotFoundError(f"data_root {str(data_root)!r} is not an existing folder")
    return recipe, path


def _load_teachers(teachers: Any) -> list[dict[str, Any]]:
    """Load run_recipe's teachers: each a run folder (holding ``model``) or a model folder.

    Returns one dict per teacher: ``path``, ``model`` and, from a run folder's
    ``metrics.json``, ``train_seconds`` and ``split`` (``None`` when unknown)."""
    if isinstance(teachers, (str, bytes, os.PathLike)) or not isinstance(teachers, Sequence):
        raise TypeError(f"teachers must be a sequence of paths, got {type(teachers).__name__}")
    if not teachers:
        raise ValueError("teachers is empty; pass None for no distillation")
    loaded = []
    for t in teachers:
        if not isinstance(t, (str, os.PathLike)):
            raise TypeError(f"each teacher must be a path, got {type(t).__name__} {t!r}")
        path = Path(t).expanduser()
        run = path if (path / "model").is_dir() else None
        model = load_model(path / "model" if run is not None else path)
        if (model.spec.in_features, model.spec.num_classes) != (784, 10):
            raise ValueError(
                f"teacher {str(path)!r} maps {model.spec.in_features} features to "
                f"{model.spec.num_classes} classes; Fashion-MNIST needs 784 and 10"
            )
        info: dict[str, Any] = {"path": str(path), "model": model, "train_seconds": None,
                                "split": None}
        if run is not None and (run / "metrics.json").is_file():
            metrics = json.loads((run / "metrics.json").read_text())
            info["train_seconds"] = metrics.get("train_seconds")
            info["split"] = (metrics.get("split") or {}).get("train")
        loaded.append(info)
    return loaded


def _check_teacher_splits(teachers: list[dict[str, Any]], train: Any) -> None:
    """A teacher that trained on images this run holds out would leak them into its
    validation figures: with a split, every teacher must come from a run on the same
    training images."""
    # As metrics.json records it (JSON turns tuples into lists).
    want = json.loads(json.dumps(getattr(train, "provenance", "all")))
    for t in teachers:
        if t["split"] != want:
            raise ValueError(
                f"teacher {t['path']!r} was not trained on this run's training split "
                f"({t['split']!r} against {want!r}); with a validation split, teach only "
                f"with runs of the same recipe split and seed, or refit (val_fraction=0)"
            )


def _write_plots(out: Path, history: Any, cm: torch.Tensor, test: Any, pred: torch.Tensor,
                 proba: torch.Tensor) -> None:
    classes = list(test.classes)
    plot_history(history, out / "curves.png")
    plot_confusion_matrix(cm, classes, out / "confusion_matrix.png")
    plot_predictions_grid(test.images[:32], test.labels[:32], pred[:32], classes,
                          out / "predictions.png")
    # The first test image the model gets wrong shows the most: which classes competed.
    wrong = (pred != test.labels).nonzero().flatten()
    k = int(wrong[0]) if len(wrong) else 0
    plot_prediction(test.images[k], proba[k], classes, out / "prediction.png",
                    true_label=int(test.labels[k]))


def run_recipe(
    recipe: Recipe | str,
    *,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    data_root: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    limit_train: int | None = None,
    threads: int | None = None,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    quiet: bool = False,
    teachers: Sequence[str | os.PathLike[str]] | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` with one seed, test it once, and write the run into ``out_dir``.

    The 60,000 training images are split (stratified, seeded by ``seed``) into
    training and validation; the network is trained for the recipe's epochs, one
    line per epoch printed to standard output, and the weights chosen by the recipe's
    model selection are evaluated once on the 10,000 test images. The last line
    printed is ``test_accuracy=0.XXXX``.

    ``out_dir`` receives the files in :data:`RUN_FILES`: the folder ``model`` written by
    :func:`fcnet.checkpoint.save_model` (``model.safetensors`` and ``model.json``, the
    spec that rebuilds the network; load it with :func:`fcnet.checkpoint.load_model`),
    ``history.json``,
    ``metrics.json`` (test accuracy and loss, per-class accuracy, confusion matrix,
    classification report, seed, timings, versions, the recipe) and the figures
    ``curves.png``, ``confusion_matrix.png``, ``predictions.png`` and ``prediction.png``
    (the first misclassified test image beside its class probabilities). A run never
    mixes with an earlier one: ``out_dir`` must be missing or empty unless
    ``overwrite=True``, which replaces the run files and leaves other files alone.

    Args:
        recipe: A :class:`Recipe` or the name of one in :data:`RECIPES`.
        out_dir: Folder for the run's files; created if missing.
        seed: Seeds the split, the initial weights, the batch order and dropout.
        data_root: Folder holding the Fashion-MNIST files; ``None`` searches the usual
            places (see :class:`fcnet.data.FashionMNIST`).
        epochs: Train for this many epochs instead of the recipe's.
        limit_train: Use a stratified, seeded subset of this many of the 60,000
            training images (before the split); for quick checks.
        threads: CPU threads for torch during the run (restored afterwards);
            ``None`` uses the recipe's :attr:`Recipe.threads` or else
            :data:`DEFAULT_THREADS`, capped at the current setting.
        device: ``"auto"`` (CUDA, then MPS, then CPU) or any torch device.
        overwrite: Allow a non-empty ``out_dir``.
        quiet: Print nothing.
        teachers: Trained networks to distil from (see :class:`fcnet.Trainer`'s
            ``teacher``), with the recipe's :attr:`Recipe.distill_weight` and
            :attr:`Recipe.distill_temperature`: run folders written by this function
            (their training time is added to the run's) or model folders. With a
            validation split, each must be a run on the same training images.

    Returns:
        The contents of ``metrics.json``, plus ``"out_dir"``.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range, or the recipe name is unknown (the
            message lists the known names).
        NotADirectoryError: ``out_dir`` (or a parent) exists as a file.
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: ``data_root`` does not exist, the data is not found, or a
            teacher has no saved model.

    Example:
        >>> result = run_recipe("baseline", out_dir="runs/b0", seed=0)  # doctest: +SKIP
        >>> round(result["test_accuracy"], 2)  # doctest: +SKIP
        0.87
    """
    recipe, out = _check_run_args(recipe, out_dir, seed, data_root, epochs, limit_train,
                                  threads, overwrite, quiet, device)
    taught = _load_teachers(teachers) if teachers is not None else []
    if epochs is not None:
        recipe = replace(recipe, epochs=epochs)
    previous_threads = torch.get_num_threads()
    n_threads = threads
    if n_threads is None:  # the recipe's choice, else the default; never above the setting
        n_threads = min(recipe.threads or DEFAULT_THREADS, previous_threads)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    start = time.perf_counter()
    torch.set_num_threads(n_threads)
    try:
        full = FashionMNIST(split="train", root=data_root)
        test = FashionMNIST(split="test", root=data_root)
        pool: Any = full
        if limit_train is not None and limit_train < len(full):
            _, pool = train_val_split(full, val_fraction=limit_train / len(full), seed=seed)
        if recipe.val_fraction:
            train, val = train_val_split(pool, val_fraction=recipe.val_fraction, seed=seed)
        else:  # a refit on every training image: nothing held out
            train, val = pool, None
        if taught and val is not None:
            _check_teacher_splits(taught, train)

        torch.manual_seed(seed)  # the initial weights
        model = recipe.build_model()
        callbacks = recipe.callbacks()
        if not quiet:
            callbacks.append(EpochLogger())
        trainer = Trainer(
            model,
            optimizer=recipe.optimizer,
            lr=recipe.lr,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            loss=recipe.loss,
            callbacks=callbacks,
            device=device,
            seed=seed,
            weight_decay=recipe.weight_decay,
            label_smoothing=recipe.label_smoothing,
            mixup=recipe.mixup,
            scheduler=recipe.scheduler,
            scheduler_kwargs=recipe.scheduler_kwargs,
            precision=recipe.precision,
            augment=recipe.make_augment(),
            no_augment_epochs=recipe.no_augment_epochs,
            progress=False,  # EpochLogger already prints one line per epoch
            teacher=[t["model"] for t in taught] or None,
            distill_weight=recipe.distill_weight,
            distill_temperature=recipe.distill_temperature,
        )
        say(
            f"recipe {recipe.name}: sizes {list(recipe.sizes)}, dropout {list(recipe.dropout)}, "
            f"{model.num_parameters:,} parameters; seed {seed}; {len(train)} train / "
            f"{0 if val is None else len(val)} val / {len(test)} test; "
            f"device {trainer.device}, {n_threads} threads"
            + (f"; distilling from {len(taught)} teachers (weight {recipe.distill_weight}, "
               f"temperature {recipe.distill_temperature})" if taught else "")
        )
        fit_start = time.perf_counter()
        history = trainer.fit(train, val)
        train_seconds = time.perf_counter() - fit_start

        best_epoch = history.meta.get("restored_best_epoch")
        selected = history[best_epoch - 1] if best_epoch else history[-1]
        if best_epoch:
            say(f"restored the weights of epoch {best_epoch} (best {recipe.monitor}="
                f"{selected[recipe.monitor]:.4f})")

        # Validation scores of the weights actually kept (the restored best epoch, or the
        # weight average, which no epoch's history entry describes).
        val_eval = trainer.evaluate(val) if val is not None else {"accuracy": None, "loss": None}
        # The test set is used here, once, after every training decision is made.
        test_eval, test_out = trainer._evaluate(test)  # one pass: figures and predictions
        proba = torch.softmax(test_out, dim=1).cpu()  # as predict_proba gives them
        pred = proba.argmax(1)
        classes = list(test.classes)
        cm = confusion_matrix(test.labels, pred, num_classes=len(classes))
        test_accuracy = accuracy(test.labels, pred)
        per_class = per_class_accuracy(test.labels, pred, num_classes=len(classes)).tolist()

        out.mkdir(parents=True, exist_ok=True)
        save_model(model, out / "model")
        history.to_json(out / "history.json")
        _write_plots(out, history, cm, test, pred, proba)
        wall_seconds = time.perf_counter() - start
        metrics: dict[str, Any] = {
            "recipe": recipe.to_dict(),
            "seed": seed,
            "test_accuracy": test_accuracy,
            "test_loss": test_eval["loss"],
            "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
            "confusion_matrix": cm.tolist(),
            "classification_report": classification_report(test.labels, pred, classes),
            "selected_epoch": int(selected["epoch"]),
            "epochs_run": len(history),
            "val_accuracy": val_eval["accuracy"],
            "val_loss": val_eval["loss"],
            "train_samples": len(train),
            "val_samples": len(val) if val is not None else 0,
            "test_samples": len(test),
            "limit_train": limit_train,
            "split": {"train": getattr(train, "provenance", "all"),
                      "val": val.provenance if val is not None else None},
            "data": str(full.folder),
            "wall_seconds": wall_seconds,
            "train_seconds": train_seconds,
            "threads": n_threads,
            "teachers": [{"path": t["path"], "train_seconds": t["train_seconds"]}
                         for t in taught],
            # All the training behind this model: its own and its teachers'.
            "total_train_seconds": (
                None if any(t["train_seconds"] is None for t in taught)
                else train_seconds + sum(t["train_seconds"] for t in taught)
            ),
            "device": str(trainer.device),
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    finally:
        torch.set_num_threads(previous_threads)
    say(f"wrote {out} in {wall_seconds:.1f} s")
    say(f"test_accuracy={test_accuracy:.4f}")
    return {**metrics, "out_dir": str(out)}


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcnet-recipe",
        description="Train a named fcnet recipe on Fashion-MNIST and write the run "
        "(model, history, metrics, figures) into a folder.",
    )
    parser.add_argument("recipe", nargs="?", help=f"one of: {', '.join(sorted(RECIPES))}")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                       help="run each seed into OUT/seed<k> and print mean and std")
    parser.add_argument("--out", type=Path,
                        help="output folder (default runs/<recipe>-<timestamp>)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--limit-train", type=int, metavar="N",
                        help="use only N of the 60,000 training images (quick checks)")
    parser.add_argument("--threads", type=int,
                        help=f"CPU threads (default: the recipe's own, else {DEFAULT_THREADS}; "
                        "never more than torch's setting)")
    parser.add_argument("--data-root", type=Path, help="folder holding the Fashion-MNIST files")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow a non-empty output folder (replaces the run files)")
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    parser.add_argument("--teachers", type=Path, nargs="+", metavar="RUN",
                        help="distil from these trained runs (or model folders) with the "
                        "recipe's distill_weight and distill_temperature")
    parser.add_argument("--distill-weight", type=float, metavar="W",
                        help="with --teachers: override the recipe's distill_weight")
    parser.add_argument("--distill-temperature", type=float, metavar="T",
                        help="with --teachers: override the recipe's distill_temperature")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    return parser


def _default_out(name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / f"{name}-{stamp}"
    k = 1
    while out.exists():  # two runs started in the same second
        k += 1
        out = Path("runs") / f"{name}-{stamp}-{k}"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``fcnet-recipe RECIPE [--seed N | --seeds N ...] [--out DIR] ...``.

    With ``--seeds`` each seed is written to ``OUT/seed<k>``, ``OUT/summary.json``
    collects the results, and the last line is
    ``test_accuracy_mean=0.XXXX test_accuracy_std=0.XXXX seeds=...`` (sample standard
    deviation). Bad arguments exit with status 2 and a message before any training.

    Returns:
        The exit status, 0 on success.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name in sorted(RECIPES):
            print(f"{name}: {RECIPES[name].description}")
        return 0
    if args.recipe is None:
        parser.error(f"a recipe name is required; known recipes: {', '.join(sorted(RECIPES))}")
    seeds = args.seeds if args.seeds is not None else [args.seed]
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds must be distinct, got {seeds}")
    out = args.out if args.out is not None else _default_out(str(args.recipe))
    multi = args.seeds is not None
    dirs = [out / f"seed{s}" for s in seeds] if multi else [out]
    options = dict(data_root=args.data_root, epochs=args.epochs, limit_train=args.limit_train,
                   threads=args.threads, overwrite=args.overwrite, quiet=args.quiet)
    recipe: Recipe | str = args.recipe
    try:
        distill = {k: v for k, v in (("distill_weight", args.distill_weight),
                                     ("distill_temperature", args.distill_temperature))
                   if v is not None}
        if distill and args.teachers is None:
            raise ValueError("--distill-weight and --distill-temperature need --teachers")
        if args.teachers is not None:
            _load_teachers(args.teachers)
            recipe = replace(get_recipe(args.recipe), **distill)
        for s, d in zip(seeds, dirs, strict=True):
            _check_run_args(recipe, d, s, device=args.device, **options)
        if multi and (out / "summary.json").exists() and not args.overwrite:
            raise FileExistsError(
                f"{str(out / 'summary.json')!r} exists; choose a new --out or pass --overwrite"
            )
    except (TypeError, ValueError, OSError) as e:
        parser.error(str(e))

    results = []
    for s, d in zip(seeds, dirs, strict=True):
        result = run_recipe(recipe, out_dir=d, seed=s, device=args.device,
                            teachers=args.teachers, **options)
        results.append(result)
    if not multi:
        if args.quiet:
            print(f"test_accuracy={results[0]['test_accuracy']:.4f}")
        return 0
    accs = [r["test_accuracy"] for r in results]
    mean = statistics.fmean(accs)
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    summary = {
        "recipe": args.recipe,
        "seeds": seeds,
        "test_accuracy": accs,
        "val_accuracy": [r["val_accuracy"] for r in results],
        "wall_seconds": [r["wall_seconds"] for r in results],
        "test_accuracy_mean": mean,
        "test_accuracy_std": std,
        "std": "sample standard deviation (n - 1)",
        "torch_version": torch.__version__,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"test_accuracy_mean={mean:.4f} test_accuracy_std={std:.4f} "
          f"seeds={','.join(map(str, seeds))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
