"""In-memory data sets: :class:`ArrayDataset`, :func:`to_tensors`, :func:`as_input_tensor`.

Every fcnet data set is an :class:`ArrayDataset`: two tensors held in memory, ``images``
(the inputs, whatever their shape) and ``labels`` (int64), plus the class names. The
Trainer only ever needs those two tensors, and :func:`to_tensors` gets them out of
anything a user may pass (an fcnet data set, an ``(X, y)`` pair, a torch ``Dataset``);
:func:`as_input_tensor` does the same for inputs alone, as prediction takes them.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from fcnet._checks import is_array_like
from fcnet._rng import callers_generators_kept

__all__ = ["ArrayDataset", "as_input_tensor", "feature_norm", "to_tensors"]

#: torchvision transforms that draw random numbers although their names do not start
#: with "Random".
_RANDOM_TRANSFORM_NAMES = frozenset(
    {"AugMix", "AutoAugment", "ColorJitter", "ElasticTransform", "GaussianBlur",
     "RandAugment", "TrivialAugmentWide"}
)  # fmt: skip

_LABELS_HINT = (
    "map them to class indices 0..K-1 first, e.g. "
    "classes, y = np.unique(labels, return_inverse=True), and pass classes as the names"
)


def _list_to_array(value: list | tuple, what: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as exc:
        # numpy refuses ragged nesting ("inhomogeneous shape"); say it in fcnet's terms.
        raise ValueError(
            f"{what} must be a rectangular (nested) list of numbers, every sample with the "
            f"same shape; got a ragged list ({exc})"
        ) from None


def _numpy_dtype(dtype: Any) -> np.dtype | None:
    """The numpy dtype of a pandas column's dtype, or ``None`` if it is not numeric."""
    # pandas' nullable dtypes (Int64, Float32, boolean) name their numpy dtype; sparse
    # columns their subtype; categories, strings and dates have none that is a number.
    base = getattr(dtype, "numpy_dtype", None) or getattr(dtype, "subtype", None) or dtype
    try:
        base = np.dtype(base)
    except TypeError:
        return None
    return base if base.kind in "biuf" else None


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _from_array_like(value: Any, what: str) -> np.ndarray:
    """A numpy array of a pandas DataFrame or Series, or of another array-like.

    A DataFrame's columns must all be numbers (bool columns, as ``pd.get_dummies`` makes
    them, count as numbers): it becomes one array of their common dtype, bool-only tables
    float32. Missing values and non-numeric columns are refused, naming the columns.
    """
    if type(value).__module__.partition(".")[0] != "pandas":
        return np.asarray(value)
    frame = hasattr(value, "columns")
    columns = list(value.columns) if frame else [value.name]
    dtypes = list(value.dtypes) if frame else [value.dtype]
    numeric = [_numpy_dtype(d) for d in dtypes]
    if not frame and numeric[0] is None:
        return np.asarray(value)  # strings or categories: the caller says what they need
    bad = [f"{c!r} ({d})" for c, d, n in zip(columns, dtypes, numeric, strict=True)
           if n is None]
    if bad:
        raise TypeError(
            f"{what}: the DataFrame has non-numeric columns {_names(bad)}, and fcnet takes "
            f"numbers only; encode them first (pd.get_dummies(df, dtype='float32') turns "
            f"categories into columns of 0 and 1) or drop them")
    missing = value.isna().to_numpy()
    if missing.any():
        if frame:
            named = [f"{c!r} ({int(k)})"
                     for c, k in zip(columns, missing.sum(0), strict=True) if k]
            where = f"the DataFrame has missing values in columns {_names(named)}"
        else:
            where = f"the Series has {int(missing.sum())} missing values"
        raise ValueError(f"{what}: {where}; fill them (.fillna(...)) or drop those rows "
                         f"(.dropna(), on the inputs and labels alike)")
    if not numeric:
        raise ValueError(f"{what}: the DataFrame has no columns")
    dtype = np.result_type(*numeric)
    if dtype.kind == "b" and frame:
        dtype = np.dtype(np.float32)  # a table of flags is inputs, and inputs are numbers
    return value.to_numpy(dtype=dtype)


def _to_tensor(value: Any, what: str) -> torch.Tensor:
    """Tensor view of a tensor, numpy array, or list/tuple; shares memory when it can."""
    if isinstance(value, torch.Tensor):
        return value
    if is_array_like(value):
        value = _from_array_like(value, what)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, torch.Tensor) for v in value):
            shapes = {tuple(v.shape) for v in value}
            if len(shapes) > 1:
                raise ValueError(
                    f"{what} is a list of tensors of different shapes {sorted(shapes)}; "
                    f"all samples must have one shape"
                )
            return torch.stack(list(value))
        value = _list_to_array(value, what)
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{what} must be a torch.Tensor, a numpy array, a pandas DataFrame or Series or "
            f"a (nested) list of numbers, got {type(value).__name__}"
        )
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{what} must have a numeric dtype, got numpy {value.dtype}")
    if value.dtype.kind == "u" and value.dtype.itemsize > 1:
        # torch has few kernels for uint16/32/64 (not even min or max): int64 holds them.
        if value.dtype.itemsize == 8 and value.size and int(value.max()) >= 2**63:
            raise ValueError(f"{what} holds uint64 values up to {int(value.max())}, beyond "
                             f"int64; convert them to float64 (values.astype(np.float64))")
        value = value.astype(np.int64)
    if value.dtype.kind == "f" and value.dtype.itemsize > 8:
        # torch has no long double; float64 is as far as it goes (and inputs go on to float32).
        value = value.astype(np.float64)
    # torch.from_numpy cannot take foreign byte order or negative strides, and a read-only
    # array would give a tensor that silently aliases read-only memory: copy only then.
    if not value.dtype.isnative or not value.flags.writeable or any(s < 0 for s in value.strides):
        value = np.array(value, dtype=value.dtype.newbyteorder("="), order="C")
    return torch.from_numpy(value)


def _check_inputs(inputs: torch.Tensor, what: str) -> torch.Tensor:
    if inputs.dtype in (torch.bool,) or inputs.is_complex():
        raise TypeError(f"{what} must have a real numeric dtype, got {inputs.dtype}")
    if inputs.ndim < 1:
        raise ValueError(f"{what} must have a leading sample dimension, got a 0-d tensor")
    if inputs.dtype == torch.float64:
        # Models are float32; float64 inputs would only fail later, inside the first layer.
        inputs = inputs.to(torch.float32)
    elif inputs.dtype in (torch.uint16, torch.uint32, torch.uint64):
        # torch's kernels for these are few; int64 holds them (uint64 below 2**63).
        if inputs.dtype == torch.uint64 and bool((inputs.view(torch.int64) < 0).any()):
            raise ValueError(f"{what} holds uint64 values beyond int64; convert them to "
                             f"float64 (x.double())")
        inputs = inputs.to(torch.int64)
    return inputs


def as_input_tensor(x: Any, name: str = "x") -> torch.Tensor:
    """Turns model inputs into a tensor, as :meth:`fcnet.Trainer.predict` needs them.

    Numpy arrays are shared, not copied, when torch can view them; they are copied
    (quietly) when they are read-only, in a foreign byte order or have negative
    strides, which torch cannot view.

    Args:
        x: ``(N, ...)`` inputs: a tensor, a numpy array of a real numeric dtype, a
            pandas DataFrame of numbers (see :func:`to_tensors`), or a (nested) list or
            tuple of numbers.
        name: How to call ``x`` in error messages.

    Returns:
        The inputs as a tensor, with ``float64`` turned into ``float32`` (the models'
        dtype), ``uint16``, ``uint32`` and ``uint64`` into ``int64`` (torch computes
        little in them), and every other dtype kept.

    Raises:
        TypeError: ``x`` is none of the above, or its dtype is not a real number
            (bool, complex, strings, objects).
        ValueError: ``x`` is a single number (no sample dimension) or a ragged list.
    """
    return _check_inputs(_to_tensor(x, name), name)


def feature_norm(data: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each input feature's mean and standard deviation, for ``build_mlp(input_norm=...)``.

    The statistics are those the model's first layer normalises: of the flattened
    inputs, and for ``uint8`` inputs (raw pixels) of the pixels divided by 255. A
    feature that never changes (std 0, such as an image corner that is always black)
    gets std 1, as scikit-learn's ``StandardScaler`` does: it is only centred. Computed
    in float64 over all samples (the population std, ``ddof=0``).

    Args:
        data: The training inputs ``(N, ...)``, as :func:`as_input_tensor` takes them (a
            tensor, an array, a DataFrame, a nested list), or a torch ``Dataset`` (an
            fcnet data set such as a split of :class:`~fcnet.data.FashionMNIST`), whose
            inputs are used. For an ``(X, y)`` pair pass ``X``.

    Returns:
        ``(mean, std)``, each a tuple of one float per feature.

    Raises:
        TypeError, ValueError: As :func:`as_input_tensor` or :func:`to_tensors` for
            ``data``; ValueError also for NaN or infinite inputs.

    Example:
        >>> import numpy as np
        >>> from fcnet import build_mlp
        >>> x = np.array([[1.0, 10.0], [3.0, 10.0]])
        >>> feature_norm(x)
        ((2.0, 10.0), (1.0, 1.0))
        >>> model = build_mlp([2, 16, 3], input_norm=feature_norm(x))
    """
    if isinstance(data, Dataset):
        x, _ = to_tensors(data, name="data")
    else:
        x = as_input_tensor(data, "data")
    if x.ndim < 2:
        raise ValueError(f"data must be (N, features) inputs, got shape {tuple(x.shape)}; "
                         f"a single feature is x.reshape(-1, 1)")
    if x.shape[0] == 0:
        raise ValueError(f"data is empty: got inputs of shape {tuple(x.shape)}")
    values = x.reshape(x.shape[0], -1).to(torch.float64)
    if x.dtype == torch.uint8:
        values = values / 255.0
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"data inputs contain {int((~torch.isfinite(values)).sum())} NaN or "
                         f"infinite values")
    mean = values.mean(0)
    std = values.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def _first_text(value: Any) -> str | bytes | None:
    """The first string in ``value`` (an array or a nested list), or ``None``."""
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        # Only lists are walked: tensors and arrays say what they hold in their dtype.
        for item in value:
            text = _first_text(item)
            if text is not None:
                return text
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return value.flat[0].item() if value.size else ""
        if value.dtype.kind == "O":
            return next((v for v in value.flat if isinstance(v, (str, bytes))), None)
    return None


def _as_labels(value: Any, what: str) -> torch.Tensor:
    if is_array_like(value):
        value = _from_array_like(value, what)
    text = _first_text(value)
    if text is not None:
        # np.str_ would show as np.str_('cat'): the plain value reads better.
        text = str(text) if isinstance(text, str) else bytes(text)
        raise TypeError(
            f"{what} are strings (such as {text!r}), but fcnet needs integer class indices: "
            f"{_LABELS_HINT}"
        )
    return _check_labels(_to_tensor(value, what), what)


def _check_labels(labels: torch.Tensor, what: str) -> torch.Tensor:
    if labels.is_complex():
        raise TypeError(f"{what} must hold integer class indices, got dtype {labels.dtype}")
    if labels.ndim == 2 and labels.shape[1] >= 2 and labels.numel():
        rows = labels.to(torch.float64)
        if bool(((rows == 0) | (rows == 1)).all()) and bool((rows.sum(1) == 1).all()):
            raise ValueError(
                f"{what} look one-hot encoded (shape {tuple(labels.shape)}, one 1 per row), "
                f"but fcnet needs one class index per sample: pass y.argmax(1) instead"
            )
    if labels.dtype == torch.bool:
        raise TypeError(f"{what} must hold integer class indices, got dtype {labels.dtype}")
    if labels.ndim != 1:
        hint = ""
        if labels.ndim == 2 and labels.shape[1] == 1:
            hint = "; a column of labels can be flattened with y.reshape(-1)"
        raise ValueError(
            f"{what} must be 1-D (one class index per sample), got shape "
            f"{tuple(labels.shape)}{hint}"
        )
    if labels.is_floating_point():
        # Labels read from CSV files or built by numpy arithmetic are often floats that
        # hold whole numbers; those are class indices all the same.
        whole = torch.isfinite(labels) & (labels == labels.round()) & (labels.abs() < 2**53)
        if not bool(whole.all()):
            bad = labels[~whole][0].item()
            raise ValueError(
                f"{what} must hold integer class indices, got {bad!r} in a {labels.dtype} "
                f"tensor; whole-number floats such as 1.0 are accepted, others must be "
                f"mapped to 0..K-1 first"
            )
    labels = labels.to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{what} must be >= 0, got {int(labels.min())}")
    return labels


def _check_pair(inputs: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if len(inputs) != len(labels):
        raise ValueError(
            f"{name}: inputs and labels must have the same length, got {len(inputs)} inputs "
            f"and {len(labels)} labels"
        )
    if len(inputs) == 0:
        raise ValueError(f"{name} is empty: need at least 1 sample")


class ArrayDataset(Dataset):
    """A labelled data set held in memory as two tensors.

    Args:
        inputs: ``(N, ...)`` samples, a tensor, a numpy array of any real numeric dtype
            or a (nested) list of numbers. Integer types (``uint8`` images) are kept;
            ``float64`` becomes ``float32``. Numpy arrays are shared, not copied, when
            torch can view them.
        labels: ``(N,)`` class indices (``>= 0``): integers, or floats holding whole
            numbers (``1.0``); stored as int64.
        classes: The class names, indexed by label. Defaults to
            ``["0", "1", ..., str(labels.max())]``.

    Attributes:
        images: The ``(N, ...)`` inputs (called ``images`` for every data set).
        labels: The ``(N,)`` int64 labels.
        classes: The class names.

    Raises:
        TypeError: ``inputs`` or ``labels`` is not a tensor, array or list, has a
            non-numeric dtype, or labels are strings or bools; ``classes`` is not a
            sequence of str.
        ValueError: Lengths differ, ``N == 0``, labels are not 1-D (one-hot labels
            included), negative or non-integer floats, or ``classes`` has too few names
            for the labels.
    """

    def __init__(
        self,
        inputs: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        classes: Sequence[str] | None = None,
    ) -> None:
        name = type(self).__name__
        images = _check_inputs(_to_tensor(inputs, "inputs"), "inputs")
        labels_t = _as_labels(labels, "labels")
        _check_pair(images, labels_t, name)
        n_needed = int(labels_t.max()) + 1
        if classes is None:
            classes = [str(i) for i in range(n_needed)]
        else:
            if isinstance(classes, str) or not isinstance(classes, Sequence):
                raise TypeError(f"classes must be a sequence of str, got {type(classes).__name__}")
            bad = [c for c in classes if not isinstance(c, str)]
            if bad:
                raise TypeError(f"classes must hold str names, got {bad[0]!r}")
            if len(classes) < n_needed:
                raise ValueError(
                    f"classes names {len(classes)} classes but the labels go up to "
                    f"{n_needed - 1} (need at least {n_needed} names)"
                )
        self.images: torch.Tensor = images
        self.labels: torch.Tensor = labels_t
        self.classes: list[str] = list(classes)

    @property
    def inputs(self) -> torch.Tensor:
        """The inputs; the same tensor as :attr:`images`."""
        return self.images

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"index must be an integer, got {type(index).__name__}") from None
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {type(self).__name__} of length {n}")
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, input_shape={tuple(self.images.shape[1:])}, "
            f"dtype={self.images.dtype}, classes={len(self.classes)})"
        )


def to_tensors(data: Any, *, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """Gets ``(inputs, labels)`` tensors out of anything fcnet accepts as a data set.

    Accepted:

    * an :class:`ArrayDataset` (any fcnet data set): its ``images`` and ``labels``;
    * an ``(X, y)`` tuple or list whose parts are tensors, numpy arrays, pandas
      DataFrames or Series (or other objects NumPy converts) or (nested) lists of
      numbers (arrays are shared, not copied, when torch can view them). A DataFrame's
      columns must all be numbers or bools; it becomes one array of their common dtype
      (bool-only tables float32), and non-numeric columns or missing values are refused,
      naming the columns;
    * a :class:`torch.utils.data.TensorDataset` of exactly two tensors;
    * any other map-style torch ``Dataset`` whose samples are ``(input, label)``
      pairs, read once, sample by sample: the input a tensor, a numpy array, a
      number or a (nested) list of numbers, every sample of one shape; the label an
      integer class index.

    Labels are class indices ``0..K-1``: integers, or floats holding whole numbers
    (``1.0``). Strings, one-hot rows and other floats are refused with the way to
    convert them. A ``Dataset`` is read once, so a random transform in it (a
    torchvision ``Random*`` transform, or any transform that gives a different
    tensor when the first sample is read twice) is refused: it would be frozen
    into one fixed copy. Augment on the device instead, with
    ``Trainer(augment=fcnet.data.RandomFlip(), ...)``.

    Args:
        data: The data set.
        name: How to call ``data`` in error messages (e.g. ``"train"``).

    Returns:
        ``(inputs, labels)``: inputs ``(N, ...)`` (``float64`` turned into ``float32``),
        labels ``(N,)`` int64.

    Raises:
        TypeError: ``data`` is none of the above, holds non-numeric inputs or string
            labels, or its samples are not ``(input, label)`` pairs (PIL images,
            dicts, triples).
        ValueError: Inputs and labels differ in length, the data set is empty, the
            labels are not 1-D, negative or not whole numbers, the samples differ in
            shape, or a ``Dataset`` applies random transforms.
    """
    if isinstance(data, ArrayDataset):
        return data.images, data.labels
    if isinstance(data, TensorDataset):
        if len(data.tensors) != 2:
            raise TypeError(
                f"{name} must be a TensorDataset of 2 tensors (inputs, labels), "
                f"got {len(data.tensors)}"
            )
        inputs, labels = data.tensors
    elif isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise TypeError(
                f"{name} must be an (inputs, labels) pair, got a {type(data).__name__} "
                f"of length {len(data)}"
            )
        inputs, labels = data
    elif isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        inputs, labels = _materialise(data, name)
    else:
        hint = ""
        if hasattr(data, "columns") and is_array_like(data):
            hint = (": pass the features and the label column as a pair, e.g. "
                    "(df.drop(columns='label'), df['label'])")
        raise TypeError(
            f"{name} must be an fcnet data set, an (inputs, labels) pair of tensors, "
            f"numpy arrays, DataFrames or lists, or a map-style torch Dataset; got "
            f"{type(data).__name__}{hint}"
        )
    inputs = _check_inputs(_to_tensor(inputs, f"{name} inputs"), f"{name} inputs")
    labels = _as_labels(labels, f"{name} labels")
    _check_pair(inputs, labels, name)
    return inputs, labels


_SAMPLE_FORM = (
    "an (input, label) pair, the input a tensor, a numpy array or a sequence of numbers "
    "and the label an integer class index"
)


def _attribute(obj: Any, attr: str) -> Any:
    try:
        return getattr(obj, attr, None)
    except Exception:  # a property that fails to compute holds no transform to inspect
        return None


def _random_transforms(data: Dataset) -> list[str]:
    """Names of the torchvision random transforms ``data`` applies, through wrappers.

    Follows ``.dataset`` (``Subset`` and most wrappers) and ``.datasets``
    (``ConcatDataset``), and inside each transform ``.transforms`` (``Compose``,
    ``RandomApply``), ``.transform`` (the dataset's ``StandardTransform``) and the
    children of ``nn.Module`` transforms (``nn.Sequential``).
    """
    found: list[str] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        # The depth bound only guards against pathological self-referencing objects.
        if obj is None or id(obj) in seen or depth > 32:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, depth + 1)
            return
        cls = type(obj)
        is_random = cls.__module__.startswith("torchvision.transforms") and (
            cls.__name__.startswith("Random") or cls.__name__ in _RANDOM_TRANSFORM_NAMES
        )
        if is_random and cls.__name__ not in found:
            found.append(cls.__name__)
        for attr in ("transforms", "transform"):
            visit(_attribute(obj, attr), depth + 1)
        if isinstance(obj, torch.nn.Module):
            for child in obj.children():
                visit(child, depth + 1)

    datasets: list[Any] = [data]
    visited: set[int] = set()
    while datasets:
        node = datasets.pop()
        if node is None or id(node) in visited:
            continue
        visited.add(id(node))
        for attr in ("transform", "transforms"):
            visit(_attribute(node, attr), 0)
        datasets.append(_attribute(node, "dataset"))
        inner = _attribute(node, "datasets")
        if isinstance(inner, (list, tuple)):
            datasets.extend(inner)
    return found


def _frozen_random_error(name: str, transforms: list[str] | None) -> ValueError:
    which = f" ({', '.join(transforms)})" if transforms else ""
    seen = "" if transforms else ": reading its first sample twice gave two different inputs"
    return ValueError(
        f"{name} applies random transforms{which}{seen}. fcnet reads a Dataset into "
        f"memory once, so they would be frozen into one fixed copy, the same every "
        f"epoch. Drop the random transforms from the dataset (deterministic ones such "
        f"as ToTensor or Normalize are fine) and augment whole batches on the device "
        f"instead: Trainer(augment=fcnet.data.RandomFlip(), ...), with "
        f"fcnet.data.RandomFlip, RandomShift and RandomErasing (fcnet.data.Compose "
        f"chains them)"
    )


def _is_pil_image(value: Any) -> bool:
    # Checked by module, so that a Dataset of tensors never needs Pillow imported.
    return any(c.__module__.split(".")[0] == "PIL" for c in type(value).__mro__)


def _sample(sample: Any, index: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(input, label)`` tensors of one Dataset sample, or a clear error."""
    where = f"{name}[{index}]"
    if isinstance(sample, Mapping):
        keys = ", ".join(repr(k) for k in list(sample)[:5])
        raise TypeError(
            f"{name} must yield (input, label) pairs, but {where} is a dict (keys {keys}); "
            f"a sample must be {_SAMPLE_FORM}: wrap the dataset so that __getitem__ "
            f"returns (input, label)"
        )
    if not isinstance(sample, (tuple, list)) or len(sample) != 2:
        got = (
            f"a {type(sample).__name__} of {len(sample)} items"
            if isinstance(sample, (tuple, list))
            else f"a {type(sample).__name__}"
        )
        raise TypeError(
            f"{name} must yield (input, label) pairs, but {where} is {got}; a sample "
            f"must be {_SAMPLE_FORM} (wrap the dataset to drop any extra items)"
        )
    x, y = sample
    if _is_pil_image(x):
        raise TypeError(
            f"{name} yields PIL images ({where}), but a sample must be {_SAMPLE_FORM}: add "
            f"torchvision.transforms.PILToTensor() to the dataset's transform (it keeps "
            f"the uint8 pixels), or load the image folder with fcnet.data.ImageFolder"
        )
    if isinstance(x, torch.Tensor):
        x_t = x
    elif isinstance(x, (np.ndarray, list, tuple)):
        x_t = _to_tensor(x, f"{where} input")
    elif isinstance(x, numbers.Real) and not isinstance(x, bool):
        x_t = torch.as_tensor(np.asarray(x))
    else:
        raise TypeError(
            f"{name} must yield (input, label) pairs, but the input of {where} is a "
            f"{type(x).__name__}; a sample must be {_SAMPLE_FORM}"
        )
    if isinstance(y, (str, bytes)):
        shown = str(y) if isinstance(y, str) else bytes(y)  # np.str_ -> 'cat', not np.str_(...)
        raise TypeError(
            f"{name} labels are strings (such as {shown!r} at {where}), but fcnet needs "
            f"integer class indices: {_LABELS_HINT}, or give the dataset a target_transform "
            f"that does so"
        )
    if isinstance(y, torch.Tensor):
        y_t = y
    elif isinstance(y, np.ndarray):
        y_t = _to_tensor(y, f"{where} label")
    elif isinstance(y, numbers.Integral):
        y_t = torch.tensor(int(y))
    elif isinstance(y, numbers.Real):
        y_t = torch.tensor(float(y), dtype=torch.float64)
    else:
        raise TypeError(
            f"{name} must yield (input, label) pairs, but the label of {where} is a "
            f"{type(y).__name__}; a sample must be {_SAMPLE_FORM}"
        )
    return x_t, y_t


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        return bool(torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return torch.equal(a, b)


def _stack(parts: list[torch.Tensor], what: str, name: str) -> torch.Tensor:
    shape = parts[0].shape
    for i, part in enumerate(parts):
        if part.shape != shape:
            raise ValueError(
                f"the {what} of {name}[{i}] has shape {tuple(part.shape)}, but that of "
                f"{name}[0] has {tuple(shape)}; every sample's {what} must have one shape "
                f"(resize them in the dataset's transform)"
            )
    return torch.stack(parts)


def _materialise(data: Dataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        n = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must have a length (a map-style Dataset), got {type(data).__name__}"
        ) from None
    if n == 0:
        raise ValueError(f"{name} is empty: need at least 1 sample")
    random_transforms = _random_transforms(data)
    if random_transforms:
        raise _frozen_random_error(name, random_transforms)
    # Catches random transforms the names above miss (other libraries, Lambda, user code);
    # what such a transform draws is not taken from the caller's generators.
    with callers_generators_kept():
        first = _sample(data[0], 0, name)
        again = _sample(data[0], 0, name)[0]
    if not _same_tensor(first[0], again):
        raise _frozen_random_error(name, None)
    xs = [first[0]]
    ys = [first[1]]
    for i in range(1, n):
        x, y = _sample(data[i], i, name)
        xs.append(x)
        ys.append(y)
    return _stack(xs, "input", name), _stack(ys, "label", name)
