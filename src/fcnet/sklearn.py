"""A scikit-learn classifier on fcnet: :class:`FCNetClassifier`.

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from fcnet.sklearn import FCNetClassifier
>>> clf = make_pipeline(StandardScaler(), FCNetClassifier(hidden_sizes=(64,)))

It is built only on fcnet's public API: :func:`fcnet.build_mlp` makes the network,
:class:`fcnet.Trainer` trains it, :class:`fcnet.EarlyStopping` stops it, and
:func:`fcnet.save_model` / :func:`fcnet.load_model` store it without pickle. Labels of
any kind scikit-learn accepts (strings, non-contiguous integers) are mapped to the
network's outputs ``0..K-1`` through ``classes_``. Needs scikit-learn
(``pip install 'fcnet[sklearn]'``). See ``docs/sklearn.rst``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import secrets
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils.multiclass import (
        check_classification_targets,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.validation import check_is_fitted
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fcnet.sklearn needs scikit-learn: pip install 'fcnet[sklearn]'") from e

try:
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # scikit-learn < 1.6 validates through the estimator's own method
    def _sk_validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)

import torch

from fcnet import (
    Callback,
    EarlyStopping,
    History,
    Trainer,
    __version__,
    build_mlp,
    load_model,
    save_model,
)
from fcnet.schedules import Schedule, schedule_from
from fcnet.trainer import TrainerConfig

__all__ = ["EXPECTED_FAILED_CHECKS", "FCNetClassifier"]

#: ``format`` field of the ``estimator.json`` that :meth:`FCNetClassifier.save` writes.
ESTIMATOR_FORMAT = "fcnet.sklearn"
#: Version of that file's layout; files with a higher one are refused.
ESTIMATOR_FORMAT_VERSION = 1
ESTIMATOR_JSON = "estimator.json"
MODEL_FOLDER = "model"

#: Checks of :func:`sklearn.utils.estimator_checks.check_estimator` that do not apply, with
#: the reason; passed as ``expected_failed_checks`` (and declared in the tags for
#: scikit-learn < 1.6).
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "training is stochastic float32 optimisation: an integer sample weight k gives the "
        "same objective as k copies of the sample, but not predictions equal to rtol=1e-7 "
        "(minibatches hold other samples, and the sums are rounded in another order); the "
        "equivalence is tested to a looser tolerance with full-batch training"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "as check_sample_weight_equivalence_on_dense_data (sparse input is made dense)"
    ),
}

_AUTO_BATCH = 200  # batch_size="auto": min(200, n_samples), as scikit-learn's MLPClassifier
_FEATURE_ATTRIBUTES = ("n_features_in_", "feature_names_in_")  # set by validate_data


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class FCNetClassifier(ClassifierMixin, BaseEstimator):
    """A fully-connected network classifier (an fcnet MLP) with scikit-learn's interface.

    The input width comes from ``X``, the output width from the classes (two outputs for
    a binary problem); training minimises the cross-entropy with :class:`fcnet.Trainer`.
    Every parameter is stored as given and validated in :meth:`fit`.

    Args:
        hidden_sizes: Widths of the hidden layers, e.g. ``(128, 64)``; ``()`` gives a
            linear (multinomial logistic) model.
        dropout: Dropout probability after every hidden layer, or one per hidden layer.
        activation: ``"relu"``, ``"gelu"``, ``"silu"``, ``"tanh"``, ``"leaky_relu"``,
            ``"elu"``, ``"mish"`` or ``"geglu"`` (see :func:`fcnet.build_mlp`).
        norm: ``None``, ``"batch"`` or ``"layer"`` normalisation before each activation.
        epochs: Maximum number of passes over the training data per :meth:`fit` (as
            ``max_iter`` in scikit-learn's MLPClassifier); training stops earlier when the
            monitored loss stops improving (``n_iter_no_change``, ``tol``).
        batch_size: Samples per optimisation step, or ``"auto"``: ``min(200, n_samples)``.
        lr: Learning rate (the peak rate of a one-cycle schedule).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (Nesterov momentum 0.9) or a factory
            ``params -> torch.optim.Optimizer``.
        weight_decay: L2 penalty on the weight matrices (decoupled for ``"adamw"``);
            scikit-learn's ``alpha``.
        label_smoothing: Label smoothing of the cross-entropy, in ``[0, 1)``.
        scheduler: Learning-rate schedule over one fit: ``None``, ``"onecycle"``,
            ``"cosine"``, ``"step"``, a :class:`fcnet.schedules.Schedule` or a callable
            ``optimizer -> scheduler``.
        class_weight: ``None``, ``"balanced"`` (each class weighed by ``n_samples /
            (n_classes * count)``) or a dict ``label -> weight`` (labels left out weigh 1).
        early_stopping: Hold out ``validation_fraction`` of the training data (stratified
            by class) and stop when its loss has not improved by ``tol`` for
            ``n_iter_no_change`` epochs; the weights of the best epoch are kept. Without
            it, training stops on the same rule applied to the training loss, keeping
            the last weights. Not used by :meth:`partial_fit`.
        validation_fraction: Share of the training data held out, in ``(0, 1)``.
        n_iter_no_change: Epochs without improvement before training stops.
        tol: Smallest decrease of the monitored loss that counts as an improvement.
        callbacks: More :class:`fcnet.Callback` instances for the Trainer (e.g.
            ``fcnet.GradientClipping(1.0)``), or ``None``.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``, as for :class:`fcnet.Trainer`
            (``"auto"``: bf16 training where the hardware has fast bf16 and the steps
            are large; predictions in float32).
        random_state: ``None`` (fresh seeds at every fit), an int (reproducible fits), or
            a ``numpy.random.RandomState`` / ``Generator`` to draw the seeds from. It
            seeds the initial weights, the data order and dropout, and the validation
            split; numpy's and torch's global generators are never used.
        device: ``"cpu"``, ``"auto"`` (CUDA, then MPS, then CPU), ``"cuda"``, ...
        verbose: ``0`` is silent; ``1`` or more shows a progress bar (one line per
            epoch when the output is not a terminal).
        warm_start: Let :meth:`fit` continue from the fitted weights instead of starting
            over (same classes and features required).

    Attributes:
        classes_: The class labels, sorted; output ``i`` of the network is ``classes_[i]``.
        n_features_in_: Number of features seen in :meth:`fit`.
        feature_names_in_: Column names of ``X`` when it was a DataFrame with string
            column names (absent otherwise).
        model_: The fitted :class:`fcnet.MLP`.
        history_: The :class:`fcnet.History` of the Trainer (one dict per epoch).
        n_iter_: Epochs trained by the current Trainer.
        loss_curve_: The training loss of each of those epochs.
        best_loss_: The best monitored loss: validation loss with ``early_stopping``,
            training loss otherwise.
        validation_scores_: Validation accuracy of each epoch with ``early_stopping``,
            else ``None``.
        best_validation_score_: The best of ``validation_scores_``, or ``None``.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (100,),
        *,
        dropout: float | Sequence[float] = 0.0,
        activation: str = "relu",
        norm: str | None = None,
        epochs: int = 200,
        batch_size: int | str = 64,
        lr: float = 1e-3,
        optimizer: Any = "adam",
        weight_decay: float = 0.0,
        label_smoothing: float = 0.0,
        scheduler: Any = None,
        class_weight: str | Mapping[Any, float] | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        callbacks: Sequence[Callback] | None = None,
        precision: str = "auto",
        random_state: Any = None,
        device: str | torch.device = "cpu",
        verbose: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.activation = activation
        self.norm = norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.scheduler = scheduler
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.callbacks = callbacks
        self.precision = precision
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: dense or sparse (densified) input, no NaN."""
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6 reads this instead
        return {"allow_nan": False, "_xfail_checks": dict(EXPECTED_FAILED_CHECKS)}

    # ------------------------------------------------------------------ parameters
    def _hidden(self) -> tuple[int, ...]:
        sizes = self.hidden_sizes
        if _is_int(sizes):
            sizes = (sizes,)
        if isinstance(sizes, np.ndarray) and sizes.ndim == 1:  # as MLPClassifier takes
            sizes = sizes.tolist()
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
            raise TypeError(f"hidden_sizes must be a sequence of layer widths such as (64, 32), "
                            f"got {type(sizes).__name__} {sizes!r}")
        for size in sizes:
            if not _is_int(size):
                raise TypeError(f"hidden_sizes must hold integers, got {size!r} in {sizes!r}")
            if size < 1:
                raise ValueError(f"hidden_sizes must hold widths >= 1, got {size!r} in "
                                 f"{sizes!r}")
        return tuple(int(s) for s in sizes)

    def _check_params(self) -> None:
        """Refuse bad values of the parameters that are the estimator's own.

        The network's and the Trainer's settings are checked by :func:`fcnet.build_mlp`
        and :class:`fcnet.TrainerConfig`, before any training.
        """
        self._hidden()
        bs = self.batch_size
        if not (bs == "auto" or _is_int(bs)):
            raise TypeError(f"batch_size must be an int or 'auto', got {bs!r}")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, Mapping)):
            raise TypeError(f"class_weight must be None, 'balanced' or a dict label -> weight, "
                            f"got {cw!r}")
        for flag in ("early_stopping", "warm_start"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        vf = self.validation_fraction
        if not _is_number(vf) or not 0 < vf < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {vf!r}")
        n = self.n_iter_no_change
        if not _is_int(n):
            raise TypeError(f"n_iter_no_change must be an int, got {n!r}")
        if n < 1:
            raise ValueError(f"n_iter_no_change must be >= 1, got {n!r}")
        if not _is_number(self.tol) or not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if not (_is_int(self.verbose) or isinstance(self.verbose, bool)) or self.verbose < 0:
            raise ValueError(f"verbose must be an int >= 0, got {self.verbose!r}")
        rs = self.random_state
        if _is_int(rs):
            if not 0 <= rs < 2**32:
                raise ValueError(f"random_state must be in [0, 2**32), got {rs!r}")
        elif not (rs is None or isinstance(rs, (np.random.RandomState, np.random.Generator))):
            raise TypeError(f"random_state must be None, an int, a numpy RandomState or "
                            f"Generator, got {rs!r}")
        if self.callbacks is not None and (
                isinstance(self.callbacks, Callback) or not isinstance(self.callbacks, Sequence)):
            raise TypeError(f"callbacks must be None or a list of fcnet.Callback instances, got "
                            f"{self.callbacks!r}")

    def _seeds(self) -> tuple[int, int, int]:
        """Seeds of the initial weights, the Trainer and the validation split."""
        rs = self.random_state
        if rs is None:
            return secrets.randbits(32), secrets.randbits(32), secrets.randbits(32)
        if isinstance(rs, np.random.RandomState):
            return tuple(int(v) for v in rs.randint(0, 2**31 - 1, size=3))  # type: ignore
        if isinstance(rs, np.random.Generator):
            return tuple(int(v) for v in rs.integers(0, 2**32, size=3))  # type: ignore
        return tuple(int(v) for v in np.random.SeedSequence(int(rs)).generate_state(3))  # type: ignore

    def _class_weight_list(self, partial: bool, classes: np.ndarray) -> Any:
        cw = self.class_weight
        if cw is None:
            return None
        if cw == "balanced":
            if partial:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit, which sees one "
                    "batch at a time; compute the weights from a sample of the labels, e.g. "
                    "dict(zip(classes, sklearn.utils.class_weight.compute_class_weight("
                    "'balanced', classes=classes, y=y))), and pass that dict")
            return "balanced"
        known = set(classes.tolist())
        unknown = [k for k in cw if k not in known]
        if unknown:
            raise ValueError(f"class_weight has labels {unknown} that are not among the classes "
                             f"{classes.tolist()}")
        return [cw.get(c, 1.0) for c in classes.tolist()]

    def _trainer_config(self, partial: bool, seed: int | None,
                        classes: np.ndarray) -> TrainerConfig:
        bs = _AUTO_BATCH if self.batch_size == "auto" else self.batch_size
        return TrainerConfig(
            optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
            epochs=1 if partial else self.epochs, batch_size=bs,
            label_smoothing=self.label_smoothing,
            class_weight=self._class_weight_list(partial, classes), scheduler=self.scheduler,
            precision=self.precision, seed=seed)

    def _stopper(self, partial: bool) -> EarlyStopping | None:
        if partial:
            return None
        monitor = "val_loss" if self.early_stopping else "train_loss"
        return EarlyStopping(monitor=monitor, patience=self.n_iter_no_change,
                             min_delta=float(self.tol), restore_best=bool(self.early_stopping))

    def _trainer_key(self, config: TrainerConfig, partial: bool) -> tuple[Any, ...]:
        """What must be unchanged for a fit to go on with the same Trainer."""
        mode = ("partial",) if partial else ("fit", bool(self.early_stopping),
                                             self.n_iter_no_change, float(self.tol))
        return (dataclasses.replace(config, seed=None), mode, self.verbose > 0,
                str(self.device))

    def _reusable(self, key: tuple[Any, ...]) -> bool:
        trainer = getattr(self, "_trainer", None)
        if trainer is None or getattr(self, "_key", None) != key:
            return False
        mine = list(self.callbacks or [])
        return len(trainer.callbacks) >= len(mine) and all(
            a is b for a, b in zip(mine, trainer.callbacks, strict=False))

    # ------------------------------------------------------------------ data
    def _validate_X(self, X: Any, y: Any = "no_validation", *, reset: bool) -> Any:
        """X as a dense C-contiguous float32 array (and y checked), through scikit-learn's
        validation: feature count and names, finite values, at least one sample."""
        # Formats other than these (dok, lil, ...) become csr: scikit-learn cannot check
        # them for NaN and would warn so.
        kwargs = {"accept_sparse": ["csr", "csc", "coo"], "dtype": np.float32,
                  "reset": reset}
        if isinstance(y, str) and y == "no_validation":
            X = _sk_validate_data(self, X, **kwargs)
        else:
            X, y = _sk_validate_data(self, X, y, **kwargs)
        if hasattr(X, "toarray"):  # the network is dense: so is its input
            X = X.toarray()
            if not np.isfinite(X).all():  # scikit-learn cannot check every sparse format
                raise ValueError("Input X contains NaN or infinity")
        X = np.require(X, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        return X if isinstance(y, str) and y == "no_validation" else (X, y)

    @staticmethod
    def _check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        if _is_number(sample_weight):
            w = np.full(n, float(sample_weight))
        else:
            try:
                w = np.asarray(sample_weight, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise TypeError(f"sample_weight must be numbers, one per sample: {e}") from None
        if w.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, one weight per sample, got shape "
                             f"{w.shape}")
        if len(w) != n:
            raise ValueError(f"sample_weight has {len(w)} weights, but X has {n} samples")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("sample_weight must hold finite weights >= 0")
        if not (w > 0).any():
            raise ValueError("sample_weight must contain at least one non-zero weight; got "
                             "all zeros")
        return w

    def _classes(self, y: np.ndarray, classes: Any, first: bool, partial: bool) -> np.ndarray:
        """The fit's ``classes_``: new on a first fit, else checked against the fitted ones."""
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"FCNetClassifier handles binary and multiclass targets, got a "
                             f"{kind} y")
        # unique_labels refuses a mix of strings and numbers, as in fit's y.
        given = None
        if classes is not None:
            try:
                given = unique_labels(classes)
            except ValueError as e:
                raise ValueError(f"classes: {e}") from None
        if not first:
            if given is not None and not np.array_equal(given, self.classes_):
                raise ValueError(f"classes={given.tolist()} differs from the classes of the "
                                 f"previous fit {self.classes_.tolist()}")
            if not partial and not np.array_equal(np.unique(y), self.classes_):
                raise ValueError(f"warm_start needs y with the classes of the previous fit "
                                 f"{self.classes_.tolist()}, got {np.unique(y).tolist()}")
            return self.classes_
        if partial and given is None:
            raise ValueError("classes must be passed on the first call to partial_fit (every "
                             "label the estimator will see)")
        found = given if partial else np.unique(y)
        if len(found) < 2:
            raise ValueError(f"y holds one class ({found.tolist()}); a classifier needs at "
                             f"least 2 classes")
        return found

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FCNetClassifier:
        """Train a new network on ``X``, ``y`` (or go on with ``warm_start``).

        Args:
            X: Training inputs, ``(n_samples, n_features)``: an array, a sparse matrix
                (made dense) or a DataFrame of numbers.
            y: Class labels, ``(n_samples,)``: any labels scikit-learn accepts.
            sample_weight: One weight >= 0 per sample; the loss is the weighted mean.

        Returns:
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, classes=None, partial=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None,
                    sample_weight: Any = None) -> FCNetClassifier:
        """Train one epoch on ``X``, ``y``, going on from the previous call.

        Successive calls with the same settings go on with the same Trainer (optimizer
        state, history, epoch count); after a change of a setting, or after :meth:`fit`,
        a new Trainer goes on from the current weights.

        Args:
            X: Inputs of this batch of data.
            y: Their labels, all among ``classes``.
            classes: Every label of the problem; required on the first call.
            sample_weight: One weight >= 0 per sample.

        Returns:
            The estimator.
        """
        return self._fit(X, y, sample_weight, classes=classes, partial=True)

    def _fit(self, X: Any, y: Any, sample_weight: Any, *, classes: Any,
             partial: bool) -> FCNetClassifier:
        self._check_params()
        fitted = getattr(self, "_trainer", None) is not None
        first = not fitted or not (partial or self.warm_start)
        if not first:
            self._check_same_network(partial)
        # scikit-learn's validation records n_features_in_ and feature_names_in_ at once;
        # a fit refused later must not leave them behind.
        before = {k: self.__dict__[k] for k in _FEATURE_ATTRIBUTES if k in self.__dict__}
        try:
            return self._fit_validated(X, y, sample_weight, classes=classes,
                                       partial=partial, first=first)
        except BaseException:  # the fitted attributes are only set once training is done
            for k in _FEATURE_ATTRIBUTES:
                self.__dict__.pop(k, None)
            self.__dict__.update(before)
            raise

    def _check_same_network(self, partial: bool) -> None:
        """Refuse a warm start whose network parameters no longer describe ``model_``."""
        spec = self.model_.spec
        hidden = self._hidden()
        dropout = self.dropout
        dropout = tuple(float(dropout) for _ in hidden) if _is_number(dropout) else tuple(
            float(d) for d in dropout)
        now = {"hidden_sizes": hidden, "dropout": dropout, "activation": self.activation,
               "norm": self.norm}
        fitted = {"hidden_sizes": tuple(spec.sizes[1:-1]), "dropout": tuple(spec.dropout),
                  "activation": spec.activation, "norm": spec.norm}
        changed = [f"{k}={now[k]!r} (fitted: {fitted[k]!r})" for k in now
                   if now[k] != fitted[k]]
        if changed:
            raise ValueError(
                f"{'partial_fit' if partial else 'warm_start'} goes on with the fitted "
                f"network, but {', '.join(changed)}; "
                + ("call fit to build the new network" if partial else
                   "set warm_start=False to build the new network")
                + ", or set these parameters back")

    def _fit_validated(self, X: Any, y: Any, sample_weight: Any, *, classes: Any,
                       partial: bool, first: bool) -> FCNetClassifier:
        X, y = self._validate_X(X, y, reset=first)
        w = self._check_sample_weight(sample_weight, len(y))
        classes_ = self._classes(y, classes, first, partial)
        y_enc = _encode_labels(y, classes_)
        if w is not None:
            # A zero weight takes the sample out of the objective; take it out of the
            # batches too. Equal weights are the unweighted loss.
            keep = w > 0
            X, y_enc, w = X[keep], y_enc[keep], w[keep]
            w = None if np.all(w == w[0]) else (w / w.mean()).astype(np.float32)
        model_seed, trainer_seed, split_seed = self._seeds()
        config = self._trainer_config(partial, trainer_seed, classes_)
        model = self.model_ if not first else build_mlp(
            [X.shape[1], *self._hidden(), len(classes_)], self.dropout,
            activation=self.activation, norm=self.norm, seed=model_seed)

        train: tuple[Any, ...] = (X, y_enc) if w is None else (X, y_enc, w)
        val = None
        if self.early_stopping and not partial:
            train, val = self._split(X, y_enc, w, split_seed)
        if self.norm == "batch" and len(train[1]) < 2:
            raise ValueError("norm='batch' needs at least 2 training samples per fit, got "
                             f"{len(train[1])}")

        key = self._trainer_key(config, partial)
        if first or not self._reusable(key):
            callbacks = list(self.callbacks or [])
            stopper = self._stopper(partial)
            if stopper is not None:
                callbacks.append(stopper)
            trainer = Trainer.from_config(model, config, callbacks=callbacks,
                                          device=self.device, progress=self.verbose > 0)
        else:
            trainer = self._trainer
        history = trainer.fit(train, val)
        if not partial and "stop_reason" not in history.meta:
            monitor = "validation loss" if self.early_stopping else "training loss"
            warnings.warn(
                f"FCNetClassifier: all epochs={self.epochs} epochs ran and the {monitor} "
                f"was still improving by more than tol={self.tol} within "
                f"n_iter_no_change={self.n_iter_no_change} epochs; it may not have "
                f"converged: raise epochs", ConvergenceWarning, stacklevel=4)

        self._trainer, self._key = trainer, key
        self.classes_ = classes_
        self.model_ = trainer.model
        self.history_ = trainer.history
        self.n_iter_ = trainer.epoch
        self.loss_curve_ = [e["train_loss"] for e in trainer.history]
        has_val = any("val_loss" in e for e in trainer.history)
        if has_val:
            self.validation_scores_ = [e.get("val_accuracy") for e in trainer.history]
            self.best_validation_score_ = max(v for v in self.validation_scores_
                                              if v is not None)
            self.best_loss_ = min(e["val_loss"] for e in trainer.history if "val_loss" in e)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_)
        return self

    def _split(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None,
               seed: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The stratified, seeded hold-out of ``early_stopping``."""
        try:
            train_idx, val_idx = train_test_split(
                np.arange(len(y)), test_size=self.validation_fraction, stratify=y,
                random_state=seed)
        except ValueError as e:
            raise ValueError(
                f"early_stopping holds out validation_fraction={self.validation_fraction} of "
                f"the {len(y)} training samples, stratified by class, which this data does "
                f"not allow: {e}") from None
        parts = []
        for idx in (train_idx, val_idx):
            parts.append((X[idx], y[idx]) if w is None else (X[idx], y[idx], w[idx]))
        return parts[0], parts[1]

    # ------------------------------------------------------------------ predict
    def _log_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        with warnings.catch_warnings():
            # No scikit-learn estimator warns of inputs outside the training range (the
            # rows of a test fold often are); the Trainer's warning would be noise here.
            warnings.filterwarnings("ignore", message=r"x holds values in .* far outside")
            logits = self._trainer.predict_scores(torch.from_numpy(X)).double()
        return torch.log_softmax(logits, dim=1).numpy()

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of the class probabilities, ``(n_samples, n_classes)``, columns in
        ``classes_`` order (computed in float64 from the network's outputs)."""
        return self._log_proba(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)`` float64, rows summing to 1,
        columns in ``classes_`` order."""
        return np.exp(self._log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each sample, ``(n_samples,)``."""
        best = np.argmax(self._log_proba(X), axis=1)
        return self.classes_[best]

    # ------------------------------------------------------------------ save / load
    def _params_to_json(self) -> tuple[dict[str, Any], list[str]]:
        stored, dropped = {}, []
        for name, value in self.get_params(deep=False).items():
            if name == "hidden_sizes" and not _is_int(value):
                value = [int(v) for v in value]
            elif name == "dropout" and not _is_number(value):
                value = [float(v) for v in value]
            elif name == "class_weight" and isinstance(value, Mapping):
                value = {"pairs": [[_label_to_json(k), float(v)] for k, v in value.items()]}
            elif name == "scheduler" and isinstance(value, Schedule):
                value = value.to_dict()
            elif name == "device":
                value = str(value)
            elif isinstance(value, np.generic):
                value = value.item()
            if not _is_json(value):
                dropped.append(name)
                continue
            stored[name] = value
        return stored, dropped

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the fitted estimator into the folder ``path``, without pickle.

        The folder receives ``model/`` (:func:`fcnet.save_model`: safetensors weights and
        the network's spec) and ``estimator.json`` (the parameters, ``classes_``, the
        feature names and the history). Parameters that are not JSON values (callables,
        callback objects, a RandomState) are not stored; a warning names them, and the
        loaded estimator has their defaults.

        Returns:
            The folder's path.

        Raises:
            NotFittedError: the estimator is not fitted.
            TypeError: a class label is not a string, number or bool.
        """
        check_is_fitted(self)
        folder = Path(os.fspath(path))
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"path must be a folder, but '{folder}' is a file")
        params, dropped = self._params_to_json()
        if dropped:
            warnings.warn(f"save() stores parameters as JSON and leaves out {dropped}; the "
                          f"loaded estimator has their defaults", UserWarning, stacklevel=2)
        meta = {
            "format": ESTIMATOR_FORMAT,
            "format_version": ESTIMATOR_FORMAT_VERSION,
            "fcnet_version": __version__,
            "sklearn_version": sklearn.__version__,
            "class": type(self).__name__,
            "params": params,
            "classes": {"dtype": self.classes_.dtype.str if self.classes_.dtype != object
                        else "object", "values": [_label_to_json(c) for c in self.classes_]},
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": (None if not hasattr(self, "feature_names_in_")
                                 else [str(c) for c in self.feature_names_in_]),
            "n_iter": int(self.n_iter_),
            "history": self.history_.to_dict(),
        }
        text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.model_, folder / MODEL_FOLDER)
        tmp = folder / f".{ESTIMATOR_JSON}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / ESTIMATOR_JSON)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             device: str | torch.device | None = None) -> FCNetClassifier:
        """Load an estimator written by :meth:`save`, ready to predict.

        Args:
            path: The folder :meth:`save` wrote.
            device: Where to put the network; ``None`` takes the saved ``device``
                parameter.

        A later :meth:`partial_fit` (or :meth:`fit` with ``warm_start``) goes on from the
        loaded weights with a new optimizer.

        Raises:
            FileNotFoundError: ``path`` holds no ``estimator.json``.
            ValueError: the file is not an FCNetClassifier of a format this fcnet reads.
            fcnet.CheckpointError: the model files are corrupted or do not match.
        """
        folder = Path(os.fspath(path))
        file = folder / ESTIMATOR_JSON
        if not file.is_file():
            raise FileNotFoundError(f"no {ESTIMATOR_JSON} in '{folder}' (a folder written by "
                                    f"FCNetClassifier.save)")
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{file} is not valid JSON: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != ESTIMATOR_FORMAT:
            raise ValueError(f"{file} is not an fcnet.sklearn estimator file")
        version = meta.get("format_version")
        if not _is_int(version) or version > ESTIMATOR_FORMAT_VERSION:
            raise ValueError(f"{file} has format version {version!r}; this fcnet reads up to "
                             f"{ESTIMATOR_FORMAT_VERSION}")
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{file} holds a {meta.get('class')!r}, not a {cls.__name__}")
        params = dict(meta["params"])
        if isinstance(params.get("hidden_sizes"), list):
            params["hidden_sizes"] = tuple(params["hidden_sizes"])
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = {k: v
                                      for k, v in params["class_weight"]["pairs"]}
        if isinstance(params.get("scheduler"), dict):
            params["scheduler"] = schedule_from(params["scheduler"])
        est = cls(**params)
        classes = meta["classes"]
        values = classes["values"]
        est.classes_ = np.array(values, dtype=object if classes["dtype"] == "object"
                                else np.dtype(classes["dtype"]))
        est.n_features_in_ = int(meta["n_features_in"])
        if meta.get("feature_names_in") is not None:
            est.feature_names_in_ = np.array(meta["feature_names_in"], dtype=object)
        device = est.device if device is None else device
        model = load_model(folder / MODEL_FOLDER, device=device)
        if model.spec.in_features != est.n_features_in_ or \
                model.spec.num_classes != len(est.classes_):
            raise ValueError(f"{folder}: the model ({model.spec.in_features} inputs, "
                             f"{model.spec.num_classes} outputs) does not match "
                             f"{ESTIMATOR_JSON} ({est.n_features_in_} features, "
                             f"{len(est.classes_)} classes)")
        est.model_ = model
        est._trainer = Trainer(model, device=device, progress=False)
        est._key = None  # a later fit goes on with a new Trainer
        est.history_ = History.from_dict(meta["history"])
        est.n_iter_ = int(meta["n_iter"])
        est.loss_curve_ = [e.get("train_loss") for e in est.history_]
        val_scores = [e.get("val_accuracy") for e in est.history_ if "val_loss" in e]
        if val_scores:
            est.validation_scores_ = val_scores
            est.best_validation_score_ = max(v for v in val_scores if v is not None)
            est.best_loss_ = min(e["val_loss"] for e in est.history_ if "val_loss" in e)
        else:
            est.validation_scores_ = est.best_validation_score_ = None
            losses = [v for v in est.loss_curve_ if v is not None]
            est.best_loss_ = min(losses) if losses else None
        return est


def _encode_labels(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``y`` as indices into the sorted ``classes``; a label not among them is refused."""
    index = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    unknown = classes[index] != y
    if unknown.any():
        raise ValueError(f"y holds labels {np.unique(y[unknown]).tolist()} that are not among "
                         f"the classes {classes.tolist()}")
    return index.astype(np.int64)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _label_to_json(label: Any) -> Any:
    """A class label as a JSON value (numpy scalars as Python ones)."""
    value = label.item() if isinstance(label, np.generic) else label
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"class label {label!r} cannot be saved as JSON")
    if not isinstance(value, (str, bool, int, float)):
        raise TypeError(f"save() stores class labels as JSON strings, numbers or bools, got "
                        f"{type(label).__name__} {label!r}")
    return value

