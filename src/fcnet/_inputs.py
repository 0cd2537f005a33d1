"""The Trainer's checks of data, inputs and model outputs, made before any work starts."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from fcnet._checks import is_array_like
from fcnet.data import as_input_tensor
from fcnet.models import MLP

__all__ = ["check_columns", "check_inputs", "check_labels", "check_outputs", "column_names",
           "describe_data", "has_batch_norm", "is_array", "predict_input",
           "warn_if_out_of_range"]


def is_array(value: Any) -> bool:
    """A tensor, a numpy array or a table (what a scikit-learn user passes as X or y)."""
    return isinstance(value, torch.Tensor) or type(value).__module__.startswith("numpy") \
        or is_array_like(value)


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` holds a BatchNorm layer (which needs two samples per batch)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_inputs(model: nn.Module, x: torch.Tensor, name: str) -> None:
    """Refuse empty inputs, NaN or infinite values, and a feature count the model lacks."""
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} is empty: got inputs of shape {tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} inputs contain {bad} NaN or infinite values")
    in_features = getattr(getattr(model, "spec", None), "in_features", None)
    per_sample = math.prod(x.shape[1:]) if x.dim() > 1 else x.shape[0]
    if in_features is not None and per_sample != in_features:
        hint = ""
        if x.dim() == 1 and in_features == 1:
            hint = (f"; if these are {x.shape[0]} samples of one feature, give them as a "
                    f"column: X.reshape(-1, 1)")
        raise ValueError(f"{name} inputs have {per_sample} features per sample (shape "
                         f"{tuple(x.shape)}), but the model expects {in_features}{hint}")


def column_names(data: Any) -> tuple[str, ...] | None:
    """The column names of inputs given as a table (``data`` or the X of ``(X, y[, w])``).

    ``None`` unless the inputs are a DataFrame whose column names are all strings (as
    scikit-learn records them).
    """
    x = data[0] if isinstance(data, (tuple, list)) and len(data) in (2, 3) else data
    columns = getattr(x, "columns", None)
    if columns is None or not is_array_like(x):
        return None
    names = list(columns)
    return tuple(names) if names and all(isinstance(c, str) for c in names) else None


def check_columns(expected: tuple[str, ...] | None, data: Any, name: str) -> None:
    """Refuse a table whose columns are not the training table's, in its order."""
    got = column_names(data)
    if expected is None or got is None or got == expected:
        return
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    way_out = ("select the training columns in their order, e.g. "
               "X[list(trainer.model.spec.feature_names)]")
    if not missing and not extra:
        first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        raise ValueError(f"{name} has the training columns in another order (column {first} "
                         f"is {got[first]!r}, in training {expected[first]!r}); {way_out}")
    parts = ([f"missing {missing[:5]}"] if missing else []) + (
        [f"not seen in training {extra[:5]}"] if extra else [])
    raise ValueError(f"{name}'s columns are not the training data's ({'; '.join(parts)}); "
                     f"{way_out}")


def check_outputs(model: nn.Module, out: Any, loss: Any) -> int:
    """The number of classes, from the model's outputs for two samples.

    A tuple or dict instead of scores, outputs that are not ``(N, classes)``, a stale
    ``model.spec``, a single output, and ``loss="nll"`` on logits are each refused with
    the way out.
    """
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"the model must return a tensor of (N, classes) scores, got a "
            f"{type(out).__name__}; wrap it in a module that returns the scores, or "
            f"override Trainer.forward")
    if out.dim() != 2:
        raise ValueError(f"the model must return (N, classes) scores, got output of shape "
                         f"{tuple(out.shape)}")
    if isinstance(model, MLP):
        stale = model.spec_mismatch()
        if stale is not None:
            raise ValueError(
                f"model.spec no longer describes the model's layers ({stale}); build the "
                f"new network with fcnet.build_mlp, or set model.spec to an MLPSpec that "
                f"matches it")
    classes = out.shape[1]
    if classes < 2:
        raise ValueError(
            f"the model has {classes} output; a classifier needs one output per class "
            f"(2 for a binary problem, e.g. build_mlp([features, 64, 2]))")
    if loss == "nll":
        head = getattr(getattr(model, "spec", None), "output", None)
        sums = out.float().exp().sum(1)
        # bf16 log-probabilities (autocast) carry 8 bits: their sums stray by up to ~1%.
        tol = 1e-3 if out.dtype in (torch.float32, torch.float64) else 3e-2
        if head == "logits" or not torch.allclose(sums, torch.ones_like(sums), atol=tol):
            raise ValueError(
                "loss='nll' needs log-probabilities, but the model returns logits (its rows "
                "are not log-softmax); use loss='cross_entropy', or build the model with "
                "output='log_softmax'")
    return classes


def check_labels(y: torch.Tensor, classes: int, name: str) -> None:
    """Refuse labels outside ``[0, classes)``, saying how to map them."""
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        raise ValueError(
            f"{name} labels must be in [0, {classes - 1}] for a model with {classes} "
            f"outputs, got labels in [{lo}, {hi}]; map them to 0..K-1 (e.g. classes, y = "
            f"numpy.unique(labels, return_inverse=True)) and give the model K outputs")


def predict_input(x: Any) -> torch.Tensor:
    """Prediction inputs as a tensor; an ``(inputs, labels)`` pair is refused."""
    if isinstance(x, (tuple, list)) and len(x) == 2 and is_array(x[0]) and is_array(x[1]):
        raise TypeError("x must be inputs only, not an (inputs, labels) pair; pass x[0] "
                        "(evaluate takes the pair)")
    return as_input_tensor(x, "x")


def warn_if_out_of_range(x: torch.Tensor, spec: Any, name: str = "x",
                         stacklevel: int = 4) -> None:
    """Warn when ``x`` lies far outside the value range the model was trained on."""
    trained = getattr(spec, "input_range", None)
    if trained is None or x.numel() == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if (x.dtype == torch.uint8 and not spec.integer_features) or \
            (spec.pixels and not x.is_floating_point()):
        lo, hi = lo / 255.0, hi / 255.0
    span = max(trained[1] - trained[0], 1e-12)
    if lo < trained[0] - span or hi > trained[1] + span:
        warnings.warn(
            f"{name} holds values in [{lo:g}, {hi:g}], far outside the range the model was "
            f"trained on [{trained[0]:g}, {trained[1]:g}] (dtype {spec.input_dtype}); scale "
            f"the inputs as in training (uint8 pixels, or floats in that range)",
            UserWarning, stacklevel=stacklevel)


def describe_data(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
                  source: Any) -> dict[str, Any]:
    """Shapes, dtype and split provenance of a fit's data, as a checkpoint records them."""
    provenance = getattr(source, "provenance", None)
    return {"inputs": list(x.shape), "dtype": str(x.dtype).removeprefix("torch."),
            "labels": list(y.shape), "weighted": w is not None,
            "provenance": provenance if isinstance(provenance, dict) else None}


def split_weights(data: Any, name: str) -> tuple[Any, torch.Tensor | None]:
    """``(X, y, sample_weight)`` into ``((X, y), weights)``; other data as it is."""
    if not (isinstance(data, (tuple, list)) and len(data) == 3):
        return data, None
    w = as_input_tensor(data[2], f"{name} sample weights")
    if w.dim() != 1:
        raise ValueError(f"{name} sample weights must be 1-D, one per sample, got shape "
                         f"{tuple(w.shape)}")
    return (data[0], data[1]), w.float()


def check_weights(w: torch.Tensor, n: int, name: str) -> None:
    """Refuse sample weights of another length, negative, non-finite or all zero."""
    if len(w) != n:
        raise ValueError(f"{name} has {n} samples but {len(w)} sample weights")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not bool((w > 0).any()):
        raise ValueError(f"{name} sample weights must be finite and >= 0, with one > 0; got "
                         f"values in [{float(w.min()):g}, {float(w.max()):g}]")


def class_weights(spec: Any, y: torch.Tensor, classes: int,
                  device: torch.device) -> torch.Tensor | None:
    """The per-class loss factors of ``class_weight`` for training labels ``y``.

    ``"balanced"`` weighs each class by ``n_samples / (classes * count)``, as
    scikit-learn does; a class absent from ``y`` gets weight 0 there.
    """
    if spec is None:
        return None
    if spec == "balanced":
        counts = torch.bincount(y, minlength=classes).double()
        weights = torch.where(counts > 0, len(y) / (classes * counts.clamp(min=1)), 0.0)
    else:
        if len(spec) != classes:
            raise ValueError(f"class_weight has {len(spec)} weights, but the model has "
                             f"{classes} classes; give one weight per class")
        weights = torch.tensor(spec, dtype=torch.float64)
    return weights.float().to(device)
