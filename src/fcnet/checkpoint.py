"""Saving and loading models and training states, without pickle.

Two on-disk formats, both a folder of a safetensors file (every tensor) and JSON
(everything else); nothing is ever unpickled, so a file from elsewhere cannot run code.

* A **model folder** (:func:`save_model` / :func:`load_model`): ``model.safetensors``
  and ``model.json`` (the :class:`~fcnet.models.MLPSpec`, the versions and the sha256 of
  the weights). The preprocessing is inside the weights (the ``InputAdapter`` buffers).
* A **training checkpoint** (:func:`save_checkpoint` / :func:`load_checkpoint`; written
  by :class:`fcnet.callbacks.ModelCheckpoint`): ``state.safetensors``, ``state.json``
  and, written last, ``manifest.json`` with the sha256 of both. It stores any nested
  state of JSON values, numpy arrays and tensors, such as :meth:`fcnet.Trainer.state_dict`;
  this module knows nothing of what the state means, except that :func:`load_model`
  rebuilds a model from a state's ``"model_spec"`` and ``"model"`` entries.

Folders are written under a temporary name and renamed into place, so a crash leaves
either the previous folder or the new one, never a mix. See ``docs/checkpoints.rst``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from fcnet._checks import check_int, is_int
from fcnet._device import select_device
from fcnet._io import atomic_write_bytes, atomic_write_text, replace_folder
from fcnet._version import __version__
from fcnet.exceptions import CheckpointError
from fcnet.models import MLP, MLPSpec

__all__ = [
    "MODEL_FORMAT",
    "STATE_FORMAT",
    "FORMAT_VERSION",
    "check_model_path",
    "checkpoint_name",
    "encode_checkpoint",
    "find_latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "publish_checkpoint",
    "run_checkpoint_name",
    "save_checkpoint",
    "save_model",
]

#: ``format`` field of ``model.json``.
MODEL_FORMAT = "fcnet.model"
#: ``format`` field of a training checkpoint's ``state.json`` and ``manifest.json``.
STATE_FORMAT = "fcnet.training_state"
#: Version of both formats written by this fcnet; files with a higher one are refused.
#: Version 2: a checkpoint's ``state.json`` holds one generic ``state`` entry.
FORMAT_VERSION = 2

MODEL_WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
MODEL_ONNX = "model.onnx"  # what `fcnet export MODEL` writes into a model folder
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
MANIFEST = "manifest.json"
LATEST = "latest.json"

# A checkpoint whose plain name another run's holds gets "-<run id>" after it.
_CHECKPOINT_NAME = re.compile(r"^epoch(\d{4,})-batch(\d{6,})(?:-[0-9a-f]{16})?$")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


def checkpoint_name(epoch: int, batch: int) -> str:
    """Folder name of the checkpoint after ``epoch`` full epochs and ``batch`` more batches."""
    return f"epoch{epoch:04d}-batch{batch:06d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_path_arg(name: str, path: Any) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike path, got {type(path).__name__}")
    if str(path) == "":
        raise ValueError(f"{name} must be a non-empty path, got ''")
    return Path(path)


# ---------------------------------------------------------------------------- encoding
# Nested state (optimizer state dicts with int keys, RNG tuples, callback states) becomes
# a JSON skeleton in which every tensor is replaced by {"__tensor__": name}; the tensors
# go to the safetensors file under those names. Dicts whose keys are not all plain strings
# become {"__dict__": [[key, value], ...]}, so int keys come back as ints.
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_FLOAT = "__float__"
_ARRAY = "__ndarray__"
_DICT = "__dict__"
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode(obj: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Return a JSON skeleton of ``obj``; its tensors are added to ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key, i = name, 1
        while key in tensors:
            key, i = f"{name}~{i}", i + 1
        # A private CPU copy: safetensors refuses tensors that share memory.
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {_TENSOR: key}
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):  # np.float64 too: it subclasses float
        if math.isfinite(obj):
            return float(obj)
        return {_FLOAT: "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"{name}: cannot save a numpy array of dtype {obj.dtype}")
        data = np.ascontiguousarray(obj).tobytes()
        return {_ARRAY: {"dtype": obj.dtype.str, "shape": list(obj.shape),
                         "data": base64.b64encode(data).decode("ascii")}}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), name, tensors)
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{name}.{k}", tensors) for k, v in obj.items()}
        pairs = []
        for k, v in obj.items():
            if isinstance(k, (torch.Tensor, np.ndarray)):
                raise TypeError(f"{name}: cannot save a dict keyed by {type(k).__name__}")
            pairs.append([_encode(k, name, tensors), _encode(v, f"{name}.{k}", tensors)])
        return {_DICT: pairs}
    raise TypeError(
        f"{name}: cannot save a {type(obj).__name__}; checkpoints hold tensors, numpy "
        f"arrays and JSON values (dict, list, tuple, str, int, float, bool, None)"
    )


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor], where: str) -> Any:
    """Invert :func:`_encode`; anything malformed raises CheckpointError naming ``where``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: unexpected JSON value {obj!r}")
    if not any(k.startswith("__") for k in obj):
        return {k: _decode(v, tensors, where) for k, v in obj.items()}
    if len(obj) != 1:
        raise CheckpointError(f"{where}: malformed entry with keys {sorted(obj)}")
    ((tag, value),) = obj.items()
    if tag == _TENSOR:
        if not isinstance(value, str) or value not in tensors:
            raise CheckpointError(f"{where}: the tensor {value!r} is missing from the tensor file")
        return tensors[value]
    if tag == _TUPLE and isinstance(value, list):
        return tuple(_decode(v, tensors, where) for v in value)
    if tag == _FLOAT and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    if tag == _ARRAY and isinstance(value, dict):
        return _decode_array(value, where)
    if tag == _DICT and isinstance(value, list):
        out = {}
        for pair in value:
            if not isinstance(pair, list) or len(pair) != 2:
                raise CheckpointError(f"{where}: malformed dict entry {pair!r}")
            key = _decode(pair[0], {}, where)
            try:
                hash(key)
            except TypeError:
                raise CheckpointError(f"{where}: unhashable dict key {key!r}") from None
            out[key] = _decode(pair[1], tensors, where)
        return out
    raise CheckpointError(f"{where}: malformed entry {{{tag!r}: ...}}")


def _decode_array(value: dict[str, Any], where: str) -> np.ndarray:
    try:
        dtype = np.dtype(value["dtype"])
        shape = [int(d) for d in value["shape"]]
        data = base64.b64decode(value["data"], validate=True)
        if dtype.kind not in "biuf" or any(d < 0 for d in shape):
            raise ValueError(f"dtype {dtype} shape {shape}")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: malformed numpy array ({e})") from None


# ---------------------------------------------------------------------------- folders
def _remove_tree(path: Path) -> None:
    """Delete a folder; it is first renamed to a hidden name, so a half-deleted one hides."""
    trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{secrets.token_hex(4)}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _write_folder(final: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (in order; the last is the manifest) as the folder ``final``, atomically.

    The files are written and fsynced in a hidden sibling folder that is then renamed to
    ``final`` (:func:`fcnet._io.replace_folder`: an existing ``final`` is moved aside
    first, deleted after the rename, and put back if the rename fails).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{_TMP_PREFIX}{final.name}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{what}: {path.name} is missing from '{path.parent}'") from None
    except OSError as e:
        raise CheckpointError(f"{what}: cannot read '{path}': {e}") from None


def _parse_json(data: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where} is not valid JSON (corrupted or truncated): {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where} must hold a JSON object, got {type(obj).__name__}")
    return obj


def _check_format(meta: Mapping[str, Any], expected: str, where: str) -> None:
    fmt, version = meta.get("format"), meta.get("format_version")
    if fmt != expected:
        raise CheckpointError(f"{where} is not an {expected} file (format {fmt!r})")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where} has an invalid format_version {version!r}")
    if expected == STATE_FORMAT and version < FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version}, written by fcnet 0.1, whose training "
            f"state this fcnet ({__version__}) cannot resume; load its model with "
            f"fcnet 0.1, or train anew")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version}, written by a newer fcnet; this fcnet "
            f"({__version__}) reads version {FORMAT_VERSION}"
        )


def _load_tensors(data: bytes, where: str) -> dict[str, torch.Tensor]:
    try:
        return dict(safetensors.torch.load(data))
    except Exception as e:  # the parser raises several types on bad input
        raise CheckpointError(f"{where} is not a valid safetensors file: {e}") from None


def _file_entry(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": _sha256(data)}


def _verify_file(data: bytes, entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: its manifest entry is missing or malformed")
    if entry.get("bytes") != len(data):
        raise CheckpointError(
            f"{where} is truncated or corrupted: {len(data)} bytes, the manifest says "
            f"{entry.get('bytes')!r}"
        )
    if entry.get("sha256") != _sha256(data):
        raise CheckpointError(f"{where} is corrupted: its sha256 does not match the manifest")


# ---------------------------------------------------------------------------- models
def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _build_from(spec_data: Any, state: Mapping[str, Any], where: str) -> MLP:
    """An :class:`MLP` from a spec dict and a state dict, every mismatch a CheckpointError."""
    try:
        spec = MLPSpec.from_dict(spec_data)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid model spec: {e}") from None
    # Built on the meta device: a spec with absurd sizes costs nothing before the check.
    try:
        with torch.device("meta"):
            model = spec.build()
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"{where}: the model spec cannot be built: {e}") from None
    expected = model.state_dict()
    _check_state_fits(expected, state, where)
    try:
        model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True,
                              assign=True)
    except (RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: the weights do not fit the spec: {e}") from None
    return model


def _check_state_fits(expected: Mapping[str, torch.Tensor], state: Mapping[str, Any],
                      where: str) -> None:
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if extra:
        problems.append(f"unexpected tensors {extra}")
    for key in sorted(set(expected) & set(state)):
        want, got = expected[key], state[key]
        if not isinstance(got, torch.Tensor):
            problems.append(f"{key} is a {type(got).__name__}, not a tensor")
        elif tuple(got.shape) != tuple(want.shape):
            problems.append(
                f"{key} has shape {tuple(got.shape)}, the model expects {tuple(want.shape)}"
            )
        elif got.is_floating_point() != want.is_floating_point() or (
            not want.is_floating_point() and got.dtype != want.dtype
        ):
            problems.append(f"{key} has dtype {got.dtype}, the model expects {want.dtype}")
    if problems:
        raise CheckpointError(f"{where}: the weights do not match the model: "
                              + "; ".join(problems))


def _spec_mismatch(spec: MLPSpec, model: nn.Module) -> str | None:
    """How ``spec`` fails to build a model with ``model``'s tensors (a module that is not an
    :class:`MLP` but carries a spec), or ``None``."""
    with torch.device("meta"):
        expected = spec.build().state_dict()
    try:
        _check_state_fits(expected, model.state_dict(), "model")
    except CheckpointError as e:
        return str(e).removeprefix("model: the weights do not match the model: ")
    return None


def check_model_path(folder: Path) -> None:
    """Refuse a :func:`save_model` path whose replacement would lose something else.

    A new or empty folder passes, and one that holds only a saved model and the ONNX
    file ``fcnet export`` writes beside it by default (``model.onnx``), which is then
    replaced with the model it was exported from.

    Raises:
        ValueError: ``folder`` is a file, the current folder (or one above it), or a
            folder with other files.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"path must be a folder to hold {MODEL_WEIGHTS} and {MODEL_JSON}, but "
            f"'{folder}' is a file"
        )
    here = Path.cwd()
    if folder.resolve() in (here, *here.parents):
        raise ValueError(
            f"path '{folder}' is the current folder or one above it, which save_model "
            f"would replace as a whole; save into a folder of its own, e.g. "
            f"'{folder / 'model'}'. Nothing was written")
    if folder.is_dir():
        others = sorted(e.name for e in folder.iterdir()
                        if e.name not in (MODEL_WEIGHTS, MODEL_JSON, MODEL_ONNX))
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more"
                                             if len(others) > 5 else "")
            raise ValueError(
                f"path '{folder}' holds files that are not a saved model ({shown}); "
                f"save_model replaces the whole folder, so it writes only to a new or "
                f"empty folder or to one that holds a model. Pick another path, e.g. "
                f"'{folder / 'model'}'. Nothing was written")


def save_model(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save a model built by :func:`fcnet.build_mlp` to the folder ``path``.

    The folder receives ``model.safetensors`` (weights and preprocessing buffers) and
    ``model.json`` (spec, fcnet and format versions, sha256 of the weights). The folder
    is written under a temporary name and renamed into place: if saving fails, an
    existing model at ``path`` is left as it was.

    Args:
        model: An :class:`~fcnet.models.MLP` (any module with an ``MLPSpec`` ``.spec``).
        path: The folder to write: a new or empty one, or one that holds a model
            saved before, which is replaced (with its ``model.onnx`` export, if any). A
            folder with other files in it, and the current folder, are refused.

    Returns:
        The folder's path.

    Raises:
        TypeError: ``model`` has no ``.spec`` to rebuild it, or ``path`` is not a path.
        ValueError: ``path`` is an existing file, a folder with files other than a
            model's, or the current folder, or ``model.spec`` no longer describes the
            model's layers (a head replaced by hand); nothing is written then.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    spec = getattr(model, "spec", None)
    if not isinstance(spec, MLPSpec):
        raise TypeError(
            f"save_model needs a model built by fcnet.build_mlp (with an MLPSpec .spec to "
            f"rebuild it), got a {type(model).__name__} without one; save its state_dict "
            f"with safetensors.torch.save_file instead"
        )
    folder = _check_path_arg("path", path)
    check_model_path(folder)
    stale = model.spec_mismatch() if isinstance(model, MLP) else _spec_mismatch(spec, model)
    if stale is not None:
        raise ValueError(
            f"model.spec no longer describes the model's layers ({stale}), so a saved copy "
            f"would not load; build the network with fcnet.build_mlp, or set model.spec to "
            f"an MLPSpec that matches it. Nothing was written"
        )
    weights = safetensors.torch.save(_model_state(model), metadata={"format": MODEL_FORMAT})
    meta = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "fcnet_version": __version__,
        "torch_version": torch.__version__,
        "model_class": type(model).__name__,
        "spec": spec.to_dict(),
        "weights": {"file": MODEL_WEIGHTS, **_file_entry(weights)},
    }
    text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
    _write_folder(folder, {MODEL_WEIGHTS: weights, MODEL_JSON: text.encode("utf-8")})
    return folder


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> MLP:
    """Load a model saved by :func:`save_model`, or the model of a training checkpoint.

    Needs no training code: the spec in the file rebuilds the :class:`~fcnet.models.MLP`,
    preprocessing included. The model is returned in eval mode.

    Args:
        path: A folder written by :func:`save_model` (or its ``model.json`` or
            ``model.safetensors``), a run folder that holds one in ``model/`` (as
            :func:`fcnet.recipes.run_recipe` writes), a checkpoint folder written by
            :class:`~fcnet.callbacks.ModelCheckpoint`, or a folder of checkpoints (its
            latest one, e.g. ``dirpath`` or ``dirpath / "best"``).
        device: Where to put the model: ``"cpu"``, ``"auto"``, ``"cuda"``, ... (checked
            like the Trainer's).

    Raises:
        FileNotFoundError: Nothing exists at ``path``.
        CheckpointError: The files are corrupted or truncated, their spec is invalid
            (unknown activation, unknown field...), or the weights do not match the spec
            (missing or extra tensors, wrong shapes); the message names the problem.
        ValueError: ``device`` is unknown or not available here.
    """
    path = _check_path_arg("path", path)
    device = select_device(device)
    if not path.exists():
        raise FileNotFoundError(f"no model file or folder at '{path}'")
    if path.is_dir() and not (path / MODEL_JSON).exists() \
            and (path / "model" / MODEL_JSON).exists():
        path = path / "model"  # a run folder
    folder = path.parent if path.is_file() else path
    if (path.is_file() and path.name not in (MODEL_WEIGHTS, MODEL_JSON)) or not (
        (folder / MODEL_JSON).exists() or (folder / MODEL_WEIGHTS).exists()
    ):
        return _model_from_training_state(_read_state_path(path)).to(device)
    where = f"model '{folder}'"
    meta = _parse_json(_read_bytes(folder / MODEL_JSON, where), f"{folder / MODEL_JSON}")
    _check_format(meta, MODEL_FORMAT, str(folder / MODEL_JSON))
    weights = _read_bytes(folder / MODEL_WEIGHTS, where)
    _verify_file(weights, meta.get("weights"), str(folder / MODEL_WEIGHTS))
    state = _load_tensors(weights, str(folder / MODEL_WEIGHTS))
    if "spec" not in meta:
        raise CheckpointError(f"{folder / MODEL_JSON} has no 'spec'")
    model = _build_from(meta["spec"], state, where)
    return model.to(device).eval()


def _model_from_training_state(state: dict[str, Any]) -> MLP:
    where = f"checkpoint '{state['path']}'"
    if state.get("model_spec") is None:
        raise CheckpointError(
            f"{where} has no model spec (its model was not built by fcnet.build_mlp); "
            f"rebuild the model and resume with Trainer.fit(..., resume_from=...)"
        )
    if not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{where}: the model state is not a dict of tensors")
    return _build_from(state["model_spec"], state["model"], where).eval()


# ---------------------------------------------------------------------------- training states
def _check_position(position: Any) -> tuple[int, int]:
    if (isinstance(position, (str, bytes)) or not isinstance(position, (tuple, list))
            or len(position) != 2 or not all(is_int(v) for v in position)):
        raise TypeError(f"position must be a pair (epochs done, batches done), got "
                        f"{position!r}")
    if position[0] < 0 or position[1] < 0:
        raise ValueError(f"position must hold numbers >= 0, got {tuple(position)!r}")
    return int(position[0]), int(position[1])


def encode_checkpoint(state: Mapping[str, Any], *, run_id: str,
                      position: tuple[int, int]) -> dict[str, bytes]:
    """Encode a nested state as a checkpoint's files: ``{file name: bytes}``, manifest last.

    Args:
        state: JSON values, numpy arrays and tensors, nested in dicts, lists and tuples.
        run_id: The run the checkpoint belongs to (pruning only touches its own run).
        position: ``(epochs done, batches done in the next epoch)``, for the manifest.

    Raises:
        TypeError: ``state`` holds something else (the message names where), or
            ``position`` is not a pair of ints.
        ValueError: ``position`` holds a negative number.
    """
    epoch, batch = _check_position(position)
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping (a dict), got {type(state).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    meta = {
        "format": STATE_FORMAT,
        "format_version": FORMAT_VERSION,
        "fcnet_version": __version__,
        "torch_version": torch.__version__,
        "run_id": run_id,
        "position": {"epoch": epoch, "batch": batch},
        "state": _encode(dict(state), "state", tensors),
    }
    state_tensors = safetensors.torch.save(tensors, metadata={"format": STATE_FORMAT})
    state_json = (json.dumps(meta, allow_nan=False) + "\n").encode("utf-8")
    manifest = {
        "format": STATE_FORMAT,
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "position": meta["position"],
        "files": {STATE_TENSORS: _file_entry(state_tensors), STATE_JSON: _file_entry(state_json)},
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    return {STATE_TENSORS: state_tensors, STATE_JSON: state_json, MANIFEST: manifest_bytes}


def save_checkpoint(store: str | os.PathLike[str], state: Mapping[str, Any], *,
                    position: tuple[int, int], run_id: str | None = None,
                    keep_last: int = 2) -> Path:
    """Write ``state`` as a checkpoint into the folder ``store``, atomically.

    The checkpoint is ``store/epochEEEE-batchBBBBBB/``; ``store/latest.json`` then names
    it, and older checkpoints of the same run beyond ``keep_last`` are removed.

    Args:
        store: The folder of checkpoints (created).
        state: JSON values, numpy arrays and tensors, nested in dicts, lists and tuples;
            :func:`load_checkpoint` gives it back with the same types (plus ``"path"``).
        position: ``(epochs done, batches done in the next epoch)``: the folder's name.
        run_id: The run the checkpoint belongs to; ``None`` draws a new one.
        keep_last: How many checkpoints of this run to keep in ``store``.

    Returns:
        The checkpoint's folder.

    Raises:
        TypeError, ValueError: a bad argument, or a ``state`` holding something that
            cannot be saved (the message names where); nothing is written then.
    """
    store = _check_path_arg("store", store)
    keep_last = check_int("keep_last", keep_last, 1)
    if run_id is not None and (not isinstance(run_id, str) or not run_id):
        raise TypeError(f"run_id must be a non-empty str or None, got {run_id!r}")
    run_id = run_id or secrets.token_hex(8)
    files = encode_checkpoint(state, run_id=run_id, position=position)
    return publish_checkpoint(store, checkpoint_name(*position), files, run_id=run_id,
                              keep_last=keep_last)


def _manifest_of(folder: Path) -> dict[str, Any]:
    where = f"checkpoint '{folder}'"
    if not (folder / MANIFEST).exists():
        raise CheckpointError(
            f"{where} is incomplete: {MANIFEST} is missing (its save did not finish)"
        )
    manifest = _parse_json(_read_bytes(folder / MANIFEST, where), str(folder / MANIFEST))
    _check_format(manifest, STATE_FORMAT, str(folder / MANIFEST))
    return manifest


def _read_checkpoint(folder: Path) -> dict[str, Any]:
    """Read and verify one checkpoint folder: its decoded state (plus ``"path"``)."""
    where = f"checkpoint '{folder}'"
    manifest = _manifest_of(folder)
    entries = manifest.get("files")
    if not isinstance(entries, dict):
        raise CheckpointError(f"{folder / MANIFEST} has no 'files' table")
    raw_tensors = _read_bytes(folder / STATE_TENSORS, where)
    _verify_file(raw_tensors, entries.get(STATE_TENSORS), str(folder / STATE_TENSORS))
    raw_json = _read_bytes(folder / STATE_JSON, where)
    _verify_file(raw_json, entries.get(STATE_JSON), str(folder / STATE_JSON))
    meta = _parse_json(raw_json, str(folder / STATE_JSON))
    _check_format(meta, STATE_FORMAT, str(folder / STATE_JSON))
    tensors = _load_tensors(raw_tensors, str(folder / STATE_TENSORS))
    if not isinstance(meta.get("state"), dict):
        raise CheckpointError(f"{where}: invalid state.json: no 'state' object")
    try:
        state = _decode(meta["state"], tensors, where)
    except RecursionError:
        raise CheckpointError(f"{where}: state.json is nested too deeply") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: invalid state.json: its 'state' is a "
                              f"{type(state).__name__}, not a dict")
    state["path"] = str(folder)
    return state


def _checkpoint_folders(store: Path) -> list[tuple[tuple[int, int], Path]]:
    """Checkpoint sub-folders of ``store`` with their (epoch, batch), oldest first."""
    found = []
    for child in store.iterdir():
        match = _CHECKPOINT_NAME.match(child.name)
        if match and child.is_dir():
            found.append(((int(match[1]), int(match[2])), child))
    return sorted(found)


def _is_checkpoint_folder(path: Path) -> bool:
    return any((path / name).exists() for name in (MANIFEST, STATE_JSON, STATE_TENSORS))


def find_latest_checkpoint(store: str | os.PathLike[str]) -> Path | None:
    """The newest complete, intact checkpoint folder in ``store``, or None.

    ``store/latest.json`` names the last checkpoint saved; when it is missing or names a
    broken checkpoint, the complete checkpoint furthest into training is used. Incomplete
    or corrupted checkpoints are skipped with a warning.
    """
    store = _check_path_arg("store", store)
    if not store.is_dir():
        return None
    state, _ = _find_latest(store)
    return None if state is None else Path(state["path"])


def _find_latest(store: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The state of the newest readable checkpoint in ``store`` (or None), and why each
    newer one was skipped."""
    candidates = [path for _, path in reversed(_checkpoint_folders(store))]
    try:
        pointer = json.loads((store / LATEST).read_text(encoding="utf-8"))
        named = store / str(pointer["checkpoint"])
        if _CHECKPOINT_NAME.match(named.name) and named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no usable pointer: fall back to the positions in the names
    skipped = []
    for folder in candidates:
        try:
            return _read_checkpoint(folder), skipped
        except CheckpointError as e:
            skipped.append(str(e))
            warnings.warn(f"skipping a broken checkpoint: {e}", UserWarning, stacklevel=3)
    return None, skipped


def _read_state_path(path: Path) -> dict[str, Any]:
    if path.is_file():
        if path.name not in (MANIFEST, STATE_JSON, STATE_TENSORS):
            raise CheckpointError(
                f"'{path}' is not a checkpoint file: expected {MANIFEST}, {STATE_JSON} or "
                f"{STATE_TENSORS} inside a checkpoint folder"
            )
        return _read_checkpoint(path.parent)
    if _is_checkpoint_folder(path):
        return _read_checkpoint(path)
    state, skipped = _find_latest(path)
    if state is None and skipped:
        raise CheckpointError(
            f"no usable checkpoint in '{path}': the newest one cannot be read: {skipped[0]}"
            + (f" ({len(skipped) - 1} older ones cannot be read either)"
               if len(skipped) > 1 else ""))
    if state is None:
        raise CheckpointError(
            f"no complete checkpoint in '{path}': expected a checkpoint folder (with "
            f"{MANIFEST}) or a folder of them written by ModelCheckpoint"
        )
    return state


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a training checkpoint; return its state.

    Args:
        path: A checkpoint folder (or a file in it), or a folder of checkpoints written
            by :class:`~fcnet.callbacks.ModelCheckpoint` (its latest complete one).

    Returns:
        The decoded state as it was saved, plus ``"path"``: the checkpoint folder read.

    Raises:
        FileNotFoundError: Nothing exists at ``path``.
        CheckpointError: The checkpoint named is incomplete or corrupted, or the folder
            holds no complete checkpoint.
    """
    path = _check_path_arg("resume_from", path)  # the name fit() gives it
    if not path.exists():
        raise FileNotFoundError(f"resume_from: no checkpoint file or folder at '{path}'")
    return _read_state_path(path)


def run_checkpoint_name(store: Path, name: str, run_id: str) -> str:
    """The folder name in ``store`` of run ``run_id``'s checkpoint ``name``.

    ``name`` itself, unless a checkpoint of another run (or a folder whose manifest
    cannot be read) already holds it: then ``name-<run_id>`` (a run id other than 16 hex
    digits is given as the first 16 of its sha256), so that no other run's checkpoint is
    ever replaced.
    """
    taken = store / name
    if not taken.is_dir():
        return name
    try:
        manifest = json.loads((taken / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and manifest.get("run_id") == run_id:
            return name
    except (OSError, ValueError):
        pass
    tag = run_id if re.fullmatch(r"[0-9a-f]{16}", run_id) else \
        hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:16]
    return f"{name}-{tag}"


def publish_checkpoint(store: Path, name: str, files: Mapping[str, bytes], *, run_id: str,
                       keep_last: int) -> Path:
    """Write a checkpoint's files into ``store / name``, point ``latest.json`` at it, prune.

    When another run's checkpoint holds ``name``, the folder is ``name-<run_id>``
    (:func:`run_checkpoint_name`).

    Only after the new checkpoint and the pointer are on disk are older checkpoints of
    the same run removed, keeping the newest ``keep_last``; checkpoints of this run
    beyond the new position (left by a run that was resumed from an earlier point) go
    too. Checkpoints of other runs are never touched.
    """
    final = store / run_checkpoint_name(store, name, run_id)
    _write_folder(final, files)
    atomic_write_text(store / LATEST,
                      json.dumps({"checkpoint": final.name, "run_id": run_id}) + "\n")
    match = _CHECKPOINT_NAME.match(name)
    here = (int(match[1]), int(match[2])) if match else None
    mine = []
    for position, folder in _checkpoint_folders(store):
        if folder == final:
            continue
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge: broken folders are left for inspection
        if isinstance(manifest, dict) and manifest.get("run_id") == run_id:
            mine.append((position, folder))
    older = [f for p, f in mine if here is None or p < here]
    newer = [f for p, f in mine if here is not None and p > here]
    for folder in newer + older[: max(0, len(older) - (keep_last - 1))]:
        _remove_tree(folder)
    for child in store.iterdir():  # leftovers of saves or deletions cut short by a crash
        if child.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
    return final
