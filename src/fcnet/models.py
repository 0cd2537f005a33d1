"""Fully-connected classifiers: :func:`build_mlp` and the :class:`MLPSpec` behind it.

Every network is an :class:`MLP`, a :class:`torch.nn.Sequential` whose layers have
unique names that say what they are (``input``, ``hidden1``, ``norm1``, ``act1``,
``drop1``, ..., ``output``). The names are generated from positions, never typed
by hand, so a layer cannot be silently replaced by a later one with the same key
(the mistake that left the reference notebook with a single dropout layer).

The first layer, :class:`InputAdapter`, flattens the input and carries the
preprocessing: raw ``uint8`` images are scaled to ``[0, 1]`` and then, when
``input_norm=(mean, std)`` is given, normalised as ``(x - mean) / std``. Because it
is part of the model, the preprocessing is saved and restored with the weights.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from fcnet._checks import check_choice, is_int, is_number

__all__ = ["ACTIVATIONS", "NORMS", "OUTPUTS", "InputAdapter", "MLP", "MLPSpec", "build_mlp"]

#: Activation names accepted by :func:`build_mlp`, with the module each one builds.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "mish": nn.Mish,
}

#: Normalisation layers accepted by :func:`build_mlp` (``None`` means none).
NORMS: tuple[str | None, ...] = (None, "batch", "layer")

#: Output heads accepted by :func:`build_mlp`.
OUTPUTS: tuple[str, ...] = ("logits", "log_softmax")


def _check_sizes(sizes: Any) -> tuple[int, ...]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(
            f"sizes must be a sequence of layer widths such as [784, 128, 10], "
            f"got {type(sizes).__name__} {sizes!r}"
        )
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must hold at least 2 layer widths (inputs and classes), got {list(sizes)!r}"
        )
    for i, size in enumerate(sizes):
        if not is_int(size):
            raise TypeError(
                f"sizes must hold integers, got {size!r} ({type(size).__name__}) "
                f"at position {i} of {list(sizes)!r}"
            )
        if size < 1:
            raise ValueError(
                f"sizes must hold positive integers, got {size!r} at position {i} "
                f"of {list(sizes)!r}"
            )
    return tuple(int(s) for s in sizes)


def _check_dropout(dropout: Any, n_hidden: int) -> tuple[float, ...]:
    if is_number(dropout):
        values = [dropout] * n_hidden
        given: Any = dropout
    elif isinstance(dropout, Sequence) and not isinstance(dropout, (str, bytes)):
        values = list(dropout)
        given = values
        if len(values) != n_hidden:
            raise ValueError(
                f"dropout must have one value per hidden layer ({n_hidden}), "
                f"got {len(values)} values {values!r}"
            )
    else:
        raise TypeError(
            f"dropout must be a float or a sequence of floats, one per hidden layer, "
            f"got {type(dropout).__name__} {dropout!r}"
        )
    for p in values:
        if not is_number(p):
            raise TypeError(f"dropout values must be floats, got {p!r} in {given!r}")
        if not (0.0 <= float(p) < 1.0):  # also rejects NaN
            raise ValueError(f"dropout must be in [0, 1), got {p!r}")
    return tuple(float(p) for p in values)


def _check_input_norm(input_norm: Any) -> tuple[float, float] | None:
    if input_norm is None:
        return None
    if (
        isinstance(input_norm, (str, bytes))
        or not isinstance(input_norm, Sequence)
        or len(input_norm) != 2
        or not all(is_number(v) for v in input_norm)
    ):
        raise TypeError(f"input_norm must be None or a pair (mean, std), got {input_norm!r}")
    mean, std = (float(v) for v in input_norm)
    if not math.isfinite(mean) or not math.isfinite(std) or std <= 0:
        raise ValueError(
            f"input_norm must be (mean, std) with finite mean and std > 0, got {input_norm!r}"
        )
    return mean, std


@dataclass(frozen=True)
class MLPSpec:
    """Everything needed to rebuild an :class:`MLP`, as plain JSON-ready data.

    Create one through :func:`build_mlp` (``model.spec``) or directly; the
    constructor validates every field. ``spec.build()`` returns a freshly
    initialised model with exactly this architecture.
    """

    sizes: tuple[int, ...]  # layer widths: input features first, classes last
    dropout: tuple[float, ...]  # dropout probability after each hidden layer
    activation: str = "relu"  # key of ACTIVATIONS
    norm: str | None = None  # None, "batch" or "layer", before each activation
    output: str = "logits"  # "logits" or "log_softmax"
    input_norm: tuple[float, float] | None = None  # (mean, std) after scaling uint8 to [0, 1]
    input_dropout: float = 0.0  # dropout probability on the input features (0: none)

    def __post_init__(self) -> None:
        sizes = _check_sizes(self.sizes)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "dropout", _check_dropout(self.dropout, len(sizes) - 2))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("norm", self.norm, NORMS)
        check_choice("output", self.output, OUTPUTS)
        object.__setattr__(self, "input_norm", _check_input_norm(self.input_norm))
        p = self.input_dropout
        if not is_number(p):
            raise TypeError(f"input_dropout must be a float, got {type(p).__name__} {p!r}")
        if not 0.0 <= float(p) < 1.0:  # also rejects NaN
            raise ValueError(f"input_dropout must be in [0, 1), got {p!r}")
        object.__setattr__(self, "input_dropout", float(p))

    @property
    def in_features(self) -> int:
        """Number of input features (``sizes[0]``)."""
        return self.sizes[0]

    @property
    def num_classes(self) -> int:
        """Number of outputs (``sizes[-1]``)."""
        return self.sizes[-1]

    def build(self) -> MLP:
        """Return a new, randomly initialised :class:`MLP` with this architecture."""
        return MLP(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serialisable dict (lists instead of tuples)."""
        data = asdict(self)
        data["sizes"] = list(self.sizes)
        data["dropout"] = list(self.dropout)
        data["input_norm"] = None if self.input_norm is None else list(self.input_norm)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPSpec:
        """Rebuild a spec from :meth:`to_dict`'s output; unknown keys raise ValueError."""
        if not isinstance(data, Mapping):
            raise TypeError(f"spec must be a mapping, got {type(data).__name__}")
        allowed = {"sizes", "dropout", "activation", "norm", "output", "input_norm",
                   "input_dropout"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"spec has unknown fields {unknown}; allowed: {sorted(allowed)}")
        missing = sorted({"sizes", "dropout"} - set(data))
        if missing:
            raise ValueError(f"spec is missing the fields {missing}")
        kwargs = dict(data)
        for key in ("sizes", "dropout", "input_norm"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


class InputAdapter(nn.Module):
    """First layer of every :class:`MLP`: flatten, scale raw images, normalise.

    ``uint8`` input is taken as raw pixels and divided by 255; any other dtype is
    used as it is. Then ``(x - mean) / std`` is applied (identity by default). The
    input is flattened to ``(N, in_features)``; a wrong feature count raises a
    ValueError naming the expected and the received shape.
    """

    def __init__(self, in_features: int, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` flattened to ``(N, in_features)``, scaled and normalised."""
        if x.dim() == 0:
            raise ValueError(f"model input must have a batch dimension, got a scalar {x!r}")
        x = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"model expects {self.in_features} input features per sample, "
                f"got {x.shape[1]} (input of shape {tuple(x.shape)} after flattening)"
            )
        # One multiply and one add on a fresh tensor: (x / s - mean) / std folded into
        # x * scale + shift, with s = 255 for raw pixels and 1 otherwise. Equal up to
        # float rounding; the small ops on 0-d tensors cost less than two extra passes.
        scale, shift = self.std.reciprocal(), self.mean / self.std
        if x.dtype == torch.uint8:
            scale = scale * (1.0 / 255.0)
        if x.dtype != self.mean.dtype:
            return x.to(self.mean.dtype).mul_(scale).sub_(shift)  # the copy is ours to change
        return (x * scale).sub_(shift)

    def extra_repr(self) -> str:
        """Show the feature count and normalisation in ``repr(model)``."""
        return f"in_features={self.in_features}, mean={self.mean.item():g}, std={self.std.item():g}"


class MLP(nn.Sequential):
    """A fully-connected classifier built from an :class:`MLPSpec`.

    It is a plain :class:`torch.nn.Sequential`; ``model.spec`` holds the spec that
    rebuilds it (used by :func:`fcnet.save_model` and checkpoints).
    """

    def __init__(self, spec: MLPSpec) -> None:
        if not isinstance(spec, MLPSpec):
            raise TypeError(f"spec must be an MLPSpec, got {type(spec).__name__}")
        mean, std = spec.input_norm if spec.input_norm is not None else (0.0, 1.0)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["input"] = InputAdapter(spec.in_features, mean, std)
        if spec.input_dropout > 0:
            layers["drop0"] = nn.Dropout(spec.input_dropout)
        hidden = spec.sizes[1:-1]
        prev = spec.in_features
        for i, (width, p) in enumerate(zip(hidden, spec.dropout, strict=True), start=1):
            layers[f"hidden{i}"] = nn.Linear(prev, width)
            if spec.norm == "batch":
                layers[f"norm{i}"] = nn.BatchNorm1d(width)
            elif spec.norm == "layer":
                layers[f"norm{i}"] = nn.LayerNorm(width)
            layers[f"act{i}"] = ACTIVATIONS[spec.activation]()
            if p > 0:
                layers[f"drop{i}"] = nn.Dropout(p)
            prev = width
        layers["output"] = nn.Linear(prev, spec.num_classes)
        if spec.output == "log_softmax":
            layers["log_softmax"] = nn.LogSoftmax(dim=1)
        super().__init__(layers)
        self.spec = spec

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def build_mlp(
    sizes: Sequence[int],
    dropout: float | Sequence[float] = 0.0,
    *,
    activation: str = "relu",
    norm: str | None = None,
    output: str = "logits",
    input_norm: tuple[float, float] | None = None,
    input_dropout: float = 0.0,
) -> MLP:
    """Build a fully-connected classifier.

    Args:
        sizes: Layer widths, input features first and classes last, e.g.
            ``[784, 128, 64, 10]`` for two hidden layers. At least two entries, all
            positive integers.
        dropout: Dropout probability in ``[0, 1)`` after every hidden layer, or a
            sequence with one value per hidden layer. ``0`` adds no dropout layer.
        activation: One of ``"relu"``, ``"gelu"``, ``"silu"``, ``"tanh"``,
            ``"leaky_relu"``, ``"elu"``, ``"mish"``.
        norm: ``None``, ``"batch"`` (BatchNorm1d) or ``"layer"`` (LayerNorm), placed
            between each hidden Linear layer and its activation.
        output: ``"logits"`` (use with cross-entropy) or ``"log_softmax"`` (the
            LogSoftmax + NLLLoss style of the reference notebook).
        input_norm: ``(mean, std)`` applied to the input after raw ``uint8`` pixels
            are scaled to ``[0, 1]``; ``(0.5, 0.5)`` maps pixels to ``[-1, 1]``.
        input_dropout: Dropout probability in ``[0, 1)`` on the input features (a
            layer ``drop0`` after ``input``); ``0`` adds none.

    Returns:
        An :class:`MLP` (a :class:`torch.nn.Sequential`) that accepts ``(N, F)`` or
        any ``(N, ...)`` input with ``F`` elements per sample, and returns
        ``(N, sizes[-1])``.

    Raises:
        TypeError: ``sizes`` or ``dropout`` has the wrong type.
        ValueError: a value is out of range or a name is unknown; the message names
            the argument, the value and what is allowed.

    Example:
        >>> model = build_mlp([784, 128, 64, 10], dropout=0.25)
        >>> [name for name, _ in model.named_children()]
        ['input', 'hidden1', 'act1', 'drop1', 'hidden2', 'act2', 'drop2', 'output']
    """
    sizes_t = _check_sizes(sizes)
    spec = MLPSpec(
        sizes=sizes_t,
        dropout=_check_dropout(dropout, len(sizes_t) - 2),
        activation=activation,
        norm=norm,
        output=output,
        input_norm=input_norm,
        input_dropout=input_dropout,
    )
    return spec.build()
