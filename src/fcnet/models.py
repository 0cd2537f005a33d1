"""Fully-connected classifiers: :func:`build_mlp` and the :class:`MLPSpec` behind it.

Every network is an :class:`MLP`, a :class:`torch.nn.Sequential` whose layers have
unique names that say what they are (``input``, ``hidden1``, ``norm1``, ``act1``,
``drop1``, ..., ``output``). The names are generated from positions, never typed
by hand, so a layer cannot be silently replaced by a later one with the same key
(the mistake that left the reference notebook with a single dropout layer).

The first layer, :class:`InputAdapter`, flattens the input and carries the
preprocessing: raw pixels are scaled to ``[0, 1]`` and then, when
``input_norm=(mean, std)`` is given, normalised as ``(x - mean) / std``. Because it
is part of the model, the preprocessing is saved and restored with the weights.

The input rule, in one place:

* ``uint8`` input is raw pixels, divided by 255, unless the model was trained on
  another integer dtype (below).
* Other integer dtypes are pixels too (divided by 255, and refused outside ``[0, 255]``)
  when the model was trained on ``uint8`` pixels (``spec.input_dtype == "uint8"``, which
  :meth:`fcnet.Trainer.fit` records); otherwise they are plain numbers (ages, counts) and
  used as they are.
* A model trained on integers other than ``uint8`` (``int64`` pixel values read from a
  CSV, counts) reads every integer dtype as numbers, ``uint8`` included
  (``spec.integer_features``): the same values give the same predictions in any dtype.
* Floating-point input is used as it is.

:meth:`fcnet.Trainer.fit` also records the range of the values the first layer saw
(``spec.input_range``); :meth:`fcnet.Trainer.predict` warns when an input lies far
outside it (float pixels in ``[0, 255]`` given to a model trained on ``[0, 1]``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fcnet._checks import check_choice, check_int, is_int, is_number

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "OUTPUTS",
    "FastDropout",
    "GEGLU",
    "InputAdapter",
    "MLP",
    "MLPSpec",
    "build_mlp",
]


class GEGLU(nn.Module):
    """Gated GELU unit (Shazeer, 2020, "GLU Variants Improve Transformer"): ``a * gelu(b)``.

    It takes ``2 * w`` features and returns ``w``: the first half ``a`` times GELU of the
    second half ``b``. With ``activation="geglu"``, :func:`build_mlp` gives every hidden
    Linear layer (and its normalisation) twice the width named in ``sizes``, so ``sizes``
    still lists the width each hidden layer passes on. Still fully connected: one
    Linear layer feeds both halves.
    """

    #: Features taken per feature returned; the hidden Linear layer widens by this.
    pieces = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``a * gelu(b)`` for ``a, b = x.chunk(2, dim=-1)``."""
        a, b = x.chunk(2, dim=-1)
        return a * F.gelu(b)


#: Activation names accepted by :func:`build_mlp`, with the module each one builds.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "mish": nn.Mish,
    "geglu": GEGLU,
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
    if is_number(dropout) and n_hidden == 0 and dropout != 0:
        raise ValueError(
            f"dropout={dropout!r} applies to no layer: the network has no hidden layer; "
            f"add one (e.g. sizes [in, 64, classes]), use input_dropout, or pass dropout=0"
        )
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


_Norm = float | tuple[float, ...]  # one value for every input feature, or one per feature


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({type(value).__name__})"


def _norm_values(value: Any, what: str, in_features: int) -> _Norm:
    """One ``input_norm`` entry as a float or a tuple of ``in_features`` floats."""
    if isinstance(value, (str, bytes, bool, Mapping)) or value is None:
        raise TypeError(f"input_norm's {what} must be a number or one number per input "
                        f"feature, got {_short(value)}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"input_norm's {what} must be a number or one number per input "
                        f"feature, got {_short(value)}") from None
    scalar = values.ndim == 0  # a number, or a 0-d array or tensor (x.mean())
    values = values.reshape(-1)
    if not scalar and values.size != in_features:
        raise ValueError(f"input_norm's {what} has {values.size} values, but the model has "
                         f"{in_features} input features: give one number, or one per "
                         f"feature")
    bad = np.flatnonzero(~np.isfinite(values) | ((values <= 0) if what == "std" else False))
    if bad.size:
        i = int(bad[0])
        where = "" if scalar else (
            f" for feature {i}" + (f" (and {bad.size - 1} more)" if bad.size > 1 else ""))
        rule = "finite and > 0" if what == "std" else "finite"
        hint = (": a constant feature has std 0; use 1 for it, e.g. np.where(std > 0, std, 1), "
                "or compute both with fcnet.data.feature_norm"
                if where and what == "std" and values[i] == 0 else "")
        raise ValueError(f"input_norm's {what} must be {rule}, got {float(values[i])!r}{where}"
                         f"{hint}")
    return float(values[0]) if scalar else tuple(float(v) for v in values)


def _check_input_norm(input_norm: Any, in_features: int) -> tuple[_Norm, _Norm] | None:
    if input_norm is None:
        return None
    if (
        isinstance(input_norm, (str, bytes))
        or not isinstance(input_norm, Sequence)
        or len(input_norm) != 2
    ):
        raise TypeError(f"input_norm must be None or a pair (mean, std), got "
                        f"{_short(input_norm)}")
    return (_norm_values(input_norm[0], "mean", in_features),
            _norm_values(input_norm[1], "std", in_features))


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
    # (mean, std) after scaling uint8 to [0, 1]; each a float or one float per input feature
    input_norm: tuple[_Norm, _Norm] | None = None
    input_dropout: float = 0.0  # dropout probability on the input features (0: none)
    fast_dropout: bool = False  # FastDropout layers (fast CPU masks) instead of nn.Dropout
    # What the model was trained on, recorded by Trainer.fit (None: never trained):
    input_dtype: str | None = None  # dtype of the training inputs, e.g. "uint8", "float32"
    input_range: tuple[float, float] | None = None  # (min, max) after the pixel scaling
    feature_names: tuple[str, ...] | None = None  # the training DataFrame's column names

    def __post_init__(self) -> None:
        sizes = _check_sizes(self.sizes)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "dropout", _check_dropout(self.dropout, len(sizes) - 2))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("norm", self.norm, NORMS)
        check_choice("output", self.output, OUTPUTS)
        object.__setattr__(self, "input_norm", _check_input_norm(self.input_norm, sizes[0]))
        p = self.input_dropout
        if not is_number(p):
            raise TypeError(f"input_dropout must be a float, got {type(p).__name__} {p!r}")
        if not 0.0 <= float(p) < 1.0:  # also rejects NaN
            raise ValueError(f"input_dropout must be in [0, 1), got {p!r}")
        object.__setattr__(self, "input_dropout", float(p))
        if not isinstance(self.fast_dropout, bool):
            raise TypeError(f"fast_dropout must be True or False, got {self.fast_dropout!r}")
        if self.input_dtype is not None and not isinstance(self.input_dtype, str):
            raise TypeError(f"input_dtype must be a dtype name or None, got {self.input_dtype!r}")
        rng = self.input_range
        if rng is not None:
            if (isinstance(rng, (str, bytes)) or not isinstance(rng, Sequence) or len(rng) != 2
                    or not all(is_number(v) and math.isfinite(v) for v in rng)
                    or rng[0] > rng[1]):
                raise ValueError(f"input_range must be None or (min, max), got {rng!r}")
            object.__setattr__(self, "input_range", (float(rng[0]), float(rng[1])))
        names = self.feature_names
        if names is not None:
            if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or not all(
                    isinstance(n, str) for n in names):
                raise TypeError(f"feature_names must be None or a sequence of str, got "
                                f"{_short(names)}")
            if len(names) != sizes[0] or len(set(names)) != len(names):
                raise ValueError(f"feature_names must be {sizes[0]} distinct names (one per "
                                 f"input feature), got {len(names)} with "
                                 f"{len(set(names))} distinct")
            object.__setattr__(self, "feature_names", tuple(names))

    @property
    def pixels(self) -> bool:
        """Whether integer inputs of any dtype are raw pixels (trained on ``uint8``)."""
        return self.input_dtype == "uint8"

    @property
    def integer_features(self) -> bool:
        """Whether ``uint8`` inputs are numbers, not pixels (trained on another integer
        dtype, such as ``int64`` values read from a CSV file)."""
        return self.input_dtype in ("int8", "int16", "int32", "int64")

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
        """Return the spec as a JSON-serialisable dict (lists instead of tuples).

        ``feature_names`` is left out when it is ``None``.
        """
        data = asdict(self)
        data["sizes"] = list(self.sizes)
        data["dropout"] = list(self.dropout)
        data["input_norm"] = None if self.input_norm is None else [
            v if isinstance(v, float) else list(v) for v in self.input_norm]
        data["input_range"] = None if self.input_range is None else list(self.input_range)
        if self.feature_names is None:
            del data["feature_names"]  # files of other models stay as fcnet 0.3 reads them
        else:
            data["feature_names"] = list(self.feature_names)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPSpec:
        """Rebuild a spec from :meth:`to_dict`'s output; unknown keys raise ValueError."""
        if not isinstance(data, Mapping):
            raise TypeError(f"spec must be a mapping, got {type(data).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"spec has unknown fields {unknown}; allowed: {sorted(allowed)}")
        missing = sorted({"sizes", "dropout"} - set(data))
        if missing:
            raise ValueError(f"spec is missing the fields {missing}")
        kwargs = dict(data)
        for key in ("sizes", "dropout", "input_norm", "input_range", "feature_names"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


class InputAdapter(nn.Module):
    """First layer of every :class:`MLP`: flatten, scale raw pixels, normalise.

    ``uint8`` input is raw pixels and divided by 255, unless ``integer_features`` is set
    (a model trained on another integer dtype), which reads it as numbers. Other integer
    dtypes are divided by 255 too when ``pixels`` is set (a model trained on ``uint8``
    images), and must then lie in ``[0, 255]``; otherwise they are converted as they
    are, like floats. :meth:`follow` sets both flags from a spec's training record.
    Then ``(x - mean) / std`` is applied (identity by default), with ``mean`` and ``std``
    each one number or one per feature (of the flattened input; buffers of shape ``()``
    or ``(in_features,)``). The input is flattened to ``(N, in_features)``; a wrong
    feature count raises a ValueError naming the expected and the received shape.
    """

    def __init__(self, in_features: int, mean: float | Sequence[float] = 0.0,
                 std: float | Sequence[float] = 1.0, pixels: bool = False,
                 integer_features: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.pixels = bool(pixels)
        self.integer_features = bool(integer_features)
        mean, std = _check_input_norm((mean, std), in_features)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

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
        pixels = x.dtype == torch.uint8 and not self.integer_features
        if not pixels and self.pixels and not x.is_floating_point() and x.numel() > 0:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi > 255:
                raise ValueError(
                    f"the model was trained on uint8 pixels, so integer input is read as "
                    f"pixels in [0, 255]; got {str(x.dtype).removeprefix('torch.')} values in "
                    f"[{lo}, {hi}]. Pass the "
                    f"images as uint8, or floats scaled as in training"
                )
            pixels = True
        if pixels:
            scale = scale * (1.0 / 255.0)
        if x.dtype != self.mean.dtype:
            return x.to(self.mean.dtype).mul_(scale).sub_(shift)  # the copy is ours to change
        return (x * scale).sub_(shift)

    def extra_repr(self) -> str:
        """Show the feature count, normalisation and pixel rule in ``repr(model)``."""
        def show(t: torch.Tensor) -> str:
            return f"{t.item():g}" if t.dim() == 0 else f"per-feature ({t.numel()})"

        return (f"in_features={self.in_features}, mean={show(self.mean)}, "
                f"std={show(self.std)}, pixels={self.pixels}"
                + (", integer_features=True" if self.integer_features else ""))

    def follow(self, spec: MLPSpec) -> None:
        """Read integer input as ``spec``'s training record says (:attr:`MLPSpec.pixels`,
        :attr:`MLPSpec.integer_features`)."""
        self.pixels = spec.pixels
        self.integer_features = spec.integer_features


class FastDropout(nn.Dropout):
    """:class:`torch.nn.Dropout` whose CPU masks are drawn faster, from other random bits.

    On the CPU, ``torch.nn.Dropout`` draws its mask with ``bernoulli_``, one
    Mersenne-twister draw at a time on one thread: for a 512x1024 batch a sizeable part
    of a training step of the ``best`` recipe's network. This layer takes one 64-bit
    seed from torch's default CPU generator per call (so ``torch.manual_seed`` still
    fixes every mask), feeds it to NumPy's PCG64 and keeps an element where a 16-bit
    draw is below ``round((1 - p) * 65536)``, which takes a fraction of that time (the
    figures are on the results page).

    Differences from :class:`torch.nn.Dropout`, all documented trade-offs:

    * the masks are other random draws, so a seeded run differs from the same run with
      ``nn.Dropout`` (statistically it is the same method);
    * the keep probability is rounded to a multiple of ``2**-16`` (``p=0.3`` drops with
      probability 0.300003) and kept elements are scaled by the inverse of the rounded
      keep probability, so the expected output still equals the input;
    * for small tensors (64x128) it is no faster: a call's fixed cost outweighs the
      drawing it saves.

    Off the CPU, and in evaluation mode, it is exactly :func:`torch.nn.functional.dropout`.
    """

    _LEVELS = 65536  # keep an element where a uniform 16-bit draw is below the threshold

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``."""
        if not self.training or self.p == 0 or input.device.type != "cpu":
            return F.dropout(input, self.p, self.training, self.inplace)
        threshold = round((1.0 - self.p) * self._LEVELS)
        n = input.numel()
        if threshold == 0 or n == 0:
            return input.mul_(0) if self.inplace else input * 0
        seed = int(torch.empty((), dtype=torch.int64).random_())  # torch's generator
        draws = np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.uint16)[:n]
        keep = torch.from_numpy(draws < threshold).view(input.shape)
        mask = keep.to(input.dtype).mul_(self._LEVELS / threshold)
        return input.mul_(mask) if self.inplace else input * mask


class MLP(nn.Sequential):
    """A fully-connected classifier built from an :class:`MLPSpec`.

    It is a plain :class:`torch.nn.Sequential`; ``model.spec`` holds the spec that
    rebuilds it (used by :func:`fcnet.save_model` and checkpoints). After a layer is
    replaced by hand (a new head for fine-tuning), :meth:`spec_mismatch` says how the
    spec no longer describes the layers, and :func:`fcnet.save_model` refuses to save.

    TorchScript (``torch.jit.script``, deprecated in torch) cannot compile the input
    layer's checks; export through :func:`torch.export.export` or ONNX instead.
    """

    def __init__(self, spec: MLPSpec) -> None:
        if not isinstance(spec, MLPSpec):
            raise TypeError(f"spec must be an MLPSpec, got {type(spec).__name__}")
        mean, std = spec.input_norm if spec.input_norm is not None else (0.0, 1.0)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["input"] = InputAdapter(spec.in_features, mean, std, pixels=spec.pixels,
                                       integer_features=spec.integer_features)
        dropout = FastDropout if spec.fast_dropout else nn.Dropout
        if spec.input_dropout > 0:
            layers["drop0"] = dropout(spec.input_dropout)
        hidden = spec.sizes[1:-1]
        prev = spec.in_features
        f32 = torch.float32  # whatever torch's default dtype: the input layer gives float32
        # A gated unit takes several features per feature it returns (GEGLU: two).
        pieces = getattr(ACTIVATIONS[spec.activation], "pieces", 1)
        for i, (width, p) in enumerate(zip(hidden, spec.dropout, strict=True), start=1):
            layers[f"hidden{i}"] = nn.Linear(prev, pieces * width, dtype=f32)
            if spec.norm == "batch":
                layers[f"norm{i}"] = nn.BatchNorm1d(pieces * width, dtype=f32)
            elif spec.norm == "layer":
                layers[f"norm{i}"] = nn.LayerNorm(pieces * width, dtype=f32)
            layers[f"act{i}"] = ACTIVATIONS[spec.activation]()
            if p > 0:
                layers[f"drop{i}"] = dropout(p)
            prev = width
        layers["output"] = nn.Linear(prev, spec.num_classes, dtype=f32)
        if spec.output == "log_softmax":
            layers["log_softmax"] = nn.LogSoftmax(dim=1)
        super().__init__(layers)
        self.spec = spec

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def spec_mismatch(self) -> str | None:
        """How :attr:`spec` fails to describe the current layers, or ``None`` if it does.

        Compares the names and shapes of the state dict that :attr:`spec` builds with the
        model's own (built on the meta device, so it costs no memory).
        """
        with torch.device("meta"):
            expected = self.spec.build().state_dict()
        actual = self.state_dict()
        problems = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                problems.append(f"{key} missing")
            elif key not in expected:
                problems.append(f"{key} not in the spec")
            elif tuple(expected[key].shape) != tuple(actual[key].shape):
                problems.append(f"{key} has shape {tuple(actual[key].shape)}, the spec "
                                f"gives {tuple(expected[key].shape)}")
        return "; ".join(problems) or None

    def record_input(self, dtype: torch.dtype, value_range: tuple[float, float],
                     feature_names: Sequence[str] | None = None) -> None:
        """Record what the model is trained on: the input dtype, value range and columns.

        :meth:`fcnet.Trainer.fit` calls this; it updates :attr:`spec` (so the record is
        saved with the model) and the input layer's pixel rule. ``feature_names`` are
        the training DataFrame's column names (``None`` for other inputs); later inputs
        given as DataFrames must have these columns in this order.
        """
        name = str(dtype).removeprefix("torch.")
        self.spec = replace(self.spec, input_dtype=name,
                            input_range=(float(value_range[0]), float(value_range[1])),
                            feature_names=None if feature_names is None else tuple(
                                feature_names))
        adapter = self[0]
        if isinstance(adapter, InputAdapter):
            adapter.follow(self.spec)


def build_mlp(
    sizes: Sequence[int],
    dropout: float | Sequence[float] = 0.0,
    *,
    activation: str = "relu",
    norm: str | None = None,
    output: str = "logits",
    input_norm: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
    input_dropout: float = 0.0,
    fast_dropout: bool = False,
    seed: int | None = None,
) -> MLP:
    """Build a fully-connected classifier.

    Args:
        sizes: Layer widths, input features first and classes last, e.g.
            ``[784, 128, 64, 10]`` for two hidden layers. At least two entries, all
            positive integers.
        dropout: Dropout probability in ``[0, 1)`` after every hidden layer, or a
            sequence with one value per hidden layer. ``0`` adds no dropout layer.
        activation: One of ``"relu"``, ``"gelu"``, ``"silu"``, ``"tanh"``,
            ``"leaky_relu"``, ``"elu"``, ``"mish"``, or ``"geglu"`` (:class:`GEGLU`,
            whose hidden Linear layers get twice the width in ``sizes``).
        norm: ``None``, ``"batch"`` (BatchNorm1d) or ``"layer"`` (LayerNorm), placed
            between each hidden Linear layer and its activation.
        output: ``"logits"`` (use with cross-entropy) or ``"log_softmax"`` (the
            LogSoftmax + NLLLoss style of the reference notebook).
        input_norm: ``(mean, std)`` applied to the input after raw ``uint8`` pixels
            are scaled to ``[0, 1]``; ``(0.5, 0.5)`` maps pixels to ``[-1, 1]``. Each
            of the two is one number for every feature or one per feature (a sequence
            or array of ``sizes[0]`` numbers, such as the columns' means and standard
            deviations of a feature table: :func:`fcnet.data.feature_norm` computes
            them from the training inputs).
        input_dropout: Dropout probability in ``[0, 1)`` on the input features (a
            layer ``drop0`` after ``input``); ``0`` adds none.
        fast_dropout: Use :class:`FastDropout` instead of :class:`torch.nn.Dropout`:
            the same method with other random masks, drawn faster on the CPU.
            Worth it for wide layers and large batches; a seeded run then differs
            from one with ``nn.Dropout``.
        seed: Seed of the initial weights, drawn from a private generator: the global
            RNG is left as it was. ``None`` draws them from torch's global generator
            (seed it with :func:`torch.manual_seed` for reproducible weights).

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
        fast_dropout=fast_dropout,
    )
    if seed is None:
        return spec.build()
    check_int("seed", seed, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return spec.build()
