"""Saving and loading models and full training states, without pickle.

Two on-disk formats, both a folder of a safetensors file (every tensor) and JSON
(everything else); nothing is ever unpickled, so a file from elsewhere cannot run code.

* A **model folder** (:func:`save_model` / :func:`load_model`): ``model.safetensors``
  and ``model.json`` (the :class:`~fcnet.models.MLPSpec`, the versions and the sha256 of
  the weights). The preprocessing is inside the weights (the ``InputAdapter`` buffers).
* A **training checkpoint** (written by :class:`fcnet.callbacks.ModelCheckpoint`, read
  by ``Trainer.fit(resume_from=...)``): ``state.safetensors``, ``state.json`` and, written
  last, ``manifest.json`` with the sha256 of both. It holds the weights, optimizer and
  scheduler state, every callback's state, the RNG states, the position in the run, the
  running epoch sums and the history, so a resumed run ends with exactly the weights of
  an uninterrupted one.

Folders are written under a temporary name and renamed into place, so a crash leaves
either the previous folder or the new one, never a mix. See ``docs/checkpoints.rst``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
import re
import secrets
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from fcnet._checks import is_int
from fcnet._io import atomic_write_bytes, atomic_write_text, fsync_dir
from fcnet.exceptions import CheckpointError
from fcnet.history import History
from fcnet.models import MLP, MLPSpec

if TYPE_CHECKING:
    from fcnet.trainer import Trainer

__all__ = [
    "MODEL_FORMAT",
    "STATE_FORMAT",
    "FORMAT_VERSION",
    "save_model",
    "load_model",
    "load_training_state",
    "restore_trainer_state",
    "find_latest_checkpoint",
]

#: ``format`` field of ``model.json``.
MODEL_FORMAT = "fcnet.model"
#: ``format`` field of a training checkpoint's ``state.json`` and ``manifest.json``.
STATE_FORMAT = "fcnet.training_state"
#: Version of both formats written by this fcnet; files with a higher one are refused.
FORMAT_VERSION = 1

MODEL_WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
MANIFEST = "manifest.json"
LATEST = "latest.json"

_CHECKPOINT_NAME = re.compile(r"^epoch(\d{4,})-batch(\d{6,})$")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


def _checkpoint_name(epoch: int, batch: int) -> str:
    """Folder name of the checkpoint after ``epoch`` full epochs and ``batch`` more batches."""
    return f"epoch{epoch:04d}-batch{batch:06d}"


def _fcnet_version() -> str:
    import fcnet  # at call time: fcnet/__init__ imports this module

    return fcnet.__version__


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
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_FLOAT: repr(obj)}
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
    ``final``. An existing ``final`` is moved aside first and deleted after the rename.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{_TMP_PREFIX}{final.name}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        old = None
        if final.exists():
            old = final.with_name(f"{_TRASH_PREFIX}{final.name}-{secrets.token_hex(4)}")
            os.rename(final, old)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version}, written by a newer fcnet; this fcnet "
            f"({_fcnet_version()}) reads version {FORMAT_VERSION}"
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


def save_model(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save a model built by :func:`fcnet.build_mlp` to the folder ``path``.

    The folder receives ``model.safetensors`` (weights and preprocessing buffers) and
    ``model.json`` (spec, fcnet and format versions, sha256 of the weights). The folder
    is written under a temporary name and renamed into place: if saving fails, an
    existing model at ``path`` is left as it was.

    Args:
        model: An :class:`~fcnet.models.MLP` (any module with an ``MLPSpec`` ``.spec``).
        path: The folder to write (created; replaced if it holds a model).

    Returns:
        The folder's path.

    Raises:
        TypeError: ``model`` has no ``.spec`` to rebuild it, or ``path`` is not a path.
        ValueError: ``path`` is an existing file.
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
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"path must be a folder to hold {MODEL_WEIGHTS} and {MODEL_JSON}, but "
            f"'{folder}' is a file"
        )
    weights = safetensors.torch.save(_model_state(model), metadata={"format": MODEL_FORMAT})
    meta = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "fcnet_version": _fcnet_version(),
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
            ``model.safetensors``), a checkpoint folder written by
            :class:`~fcnet.callbacks.ModelCheckpoint`, or a folder of checkpoints (its
            latest one, e.g. ``dirpath`` or ``dirpath / "best"``).
        device: Where to put the model.

    Raises:
        FileNotFoundError: Nothing exists at ``path``.
        CheckpointError: The files are corrupted or truncated, their spec is invalid
            (unknown activation, unknown field...), or the weights do not match the spec
            (missing or extra tensors, wrong shapes); the message names the problem.
    """
    path = _check_path_arg("path", path)
    if not path.exists():
        raise FileNotFoundError(f"no model file or folder at '{path}'")
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
    if state["model_spec"] is None:
        raise CheckpointError(
            f"{where} has no model spec (its model was not built by fcnet.build_mlp); "
            f"rebuild the model and resume with Trainer.fit(..., resume_from=...)"
        )
    if not isinstance(state["model"], dict):
        raise CheckpointError(f"{where}: the model state is not a dict of tensors")
    return _build_from(state["model_spec"], state["model"], where).eval()


# ---------------------------------------------------------------------------- training state
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _data_info(x: torch.Tensor, y: torch.Tensor, provenance: Any) -> dict[str, Any]:
    return {
        "inputs": {"shape": list(x.shape), "dtype": _dtype_name(x.dtype)},
        "labels": {"shape": list(y.shape)},
        "provenance": provenance if isinstance(provenance, dict) else None,
    }


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _name_of(spec: Any) -> str | None:
    if spec is None or isinstance(spec, str):
        return spec
    return "factory"


def _training_state_files(trainer: Trainer, run_id: str) -> dict[str, bytes]:
    """Serialise the trainer's full state: ``{file name: bytes}``, the manifest last.

    Called by :class:`~fcnet.callbacks.ModelCheckpoint` between two training steps.
    """
    tensors: dict[str, torch.Tensor] = {}
    model = trainer.model
    spec = getattr(model, "spec", None)
    epoch, batch = trainer.epoch, trainer._batch_in_epoch
    provenance = getattr(trainer, "_data_provenance", {}) or {}
    loader = trainer._loader
    data = {"train": _data_info(loader.inputs, loader.labels, provenance.get("train")),
            "val": None}
    if trainer._val is not None:
        data["val"] = _data_info(*trainer._val, provenance.get("val"))
    callbacks = [
        {"class": type(cb).__name__,
         "state": _encode(cb.state_dict(), f"callbacks.{i}", tensors)}
        for i, cb in enumerate(trainer.callbacks)
    ]
    scheduler = None
    if trainer.scheduler is not None:
        scheduler = {"class": type(trainer.scheduler).__name__,
                     "state": _encode(trainer.scheduler.state_dict(), "scheduler", tensors)}
    meta = {
        "format": STATE_FORMAT,
        "format_version": FORMAT_VERSION,
        "fcnet_version": _fcnet_version(),
        "torch_version": torch.__version__,
        "run_id": run_id,
        "position": {"epoch": epoch, "batch": batch,
                     "global_step": epoch * trainer.batches_per_epoch + batch},
        "seed": trainer._seed_used,
        "should_stop": bool(trainer.should_stop),
        "config": {
            "epochs": trainer.epochs,
            "batch_size": trainer.batch_size,
            "drop_last": trainer.drop_last,
            "batches_per_epoch": trainer.batches_per_epoch,
            "optimizer": _name_of(trainer.optimizer_spec),
            "scheduler": _name_of(trainer.scheduler_spec),
            "scheduler_interval": trainer._sched_interval,
            "device": str(trainer.device),
        },
        "data": data,
        "model": {
            "class": type(model).__name__,
            "spec": spec.to_dict() if isinstance(spec, MLPSpec) else None,
            "state": _encode(dict(model.state_dict()), "model", tensors),
        },
        "optimizer": {"class": type(trainer.optimizer).__name__,
                      "state": _encode(trainer.optimizer.state_dict(), "optimizer", tensors)},
        "scheduler": scheduler,
        "callbacks": callbacks,
        "rng": _encode(_rng_state(), "rng", tensors),
        "accumulators": _encode(dict(trainer._acc), "accumulators", tensors),
        "history": trainer.history.to_dict(),
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


def _first_nonfinite_weight(model: nn.Module) -> str | None:
    """Name of the first floating tensor of ``model.state_dict()`` holding NaN or inf."""
    named = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(v).all() for _, v in named])
    if bool(finite.all()):  # one device sync for the whole model
        return None
    return named[int((~finite).nonzero()[0])][0]


# ---------------------------------------------------------------------------- checkpoint folders
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
    """Read and verify one checkpoint folder; the decoded state or CheckpointError."""
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
    try:
        return _decode_state(meta, tensors, folder)
    except RecursionError:
        raise CheckpointError(f"{where}: state.json is nested too deeply") from None


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise CheckpointError(f"{where}: invalid state.json: {what}")


def _decode_state(meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                  folder: Path) -> dict[str, Any]:
    where = f"checkpoint '{folder}'"
    for key in ("position", "seed", "config", "data", "model", "optimizer", "callbacks",
                "rng", "accumulators", "history"):
        _need(key in meta, where, f"no {key!r} entry")
    pos, config = meta["position"], meta["config"]
    _need(isinstance(pos, dict) and is_int(pos.get("epoch")) and is_int(pos.get("batch"))
          and pos["epoch"] >= 0 and pos["batch"] >= 0, where, f"bad position {pos!r}")
    _need(is_int(meta["seed"]) and 0 <= meta["seed"] < 2**63, where, f"bad seed {meta['seed']!r}")
    _need(isinstance(config, dict), where, "config is not an object")
    _need(isinstance(meta["data"], dict) and isinstance(meta["data"].get("train"), dict),
          where, "no train data description")
    model, opt = meta["model"], meta["optimizer"]
    _need(isinstance(model, dict) and "state" in model, where, "bad model entry")
    _need(isinstance(opt, dict) and "state" in opt, where, "bad optimizer entry")
    _need(isinstance(meta["callbacks"], list)
          and all(isinstance(c, dict) and isinstance(c.get("class"), str) and "state" in c
                  for c in meta["callbacks"]), where, "bad callbacks entry")
    sched = meta.get("scheduler")
    _need(sched is None or (isinstance(sched, dict) and "state" in sched), where,
          "bad scheduler entry")
    try:
        history = History.from_dict(meta["history"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid history: {e}") from None
    model_state = _decode(model["state"], tensors, f"{where} model")
    _need(isinstance(model_state, dict), where, "the model state is not a dict")
    return {
        "path": str(folder),
        "json": meta,
        "run_id": meta.get("run_id"),
        "position": {"epoch": pos["epoch"], "batch": pos["batch"]},
        "seed": meta["seed"],
        "should_stop": bool(meta.get("should_stop", False)),
        "config": config,
        "data": meta["data"],
        "model_class": model.get("class"),
        "model_spec": model.get("spec"),
        "model": model_state,
        "optimizer_class": opt.get("class"),
        "optimizer": _decode(opt["state"], tensors, f"{where} optimizer"),
        "scheduler_class": None if sched is None else sched.get("class"),
        "scheduler": None if sched is None else _decode(sched["state"], tensors,
                                                        f"{where} scheduler"),
        "callbacks": [(c["class"], _decode(c["state"], tensors, f"{where} {c['class']}"))
                      for c in meta["callbacks"]],
        "rng": _decode(meta["rng"], tensors, f"{where} rng"),
        "accumulators": _decode(meta["accumulators"], tensors, f"{where} accumulators"),
        "history": history,
    }


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
    folder = _find_latest(Path(store))
    return None if folder is None else Path(folder["path"])


def _find_latest(store: Path) -> dict[str, Any] | None:
    candidates = [path for _, path in reversed(_checkpoint_folders(store))]
    try:
        pointer = json.loads((store / LATEST).read_text(encoding="utf-8"))
        named = store / str(pointer["checkpoint"])
        if _CHECKPOINT_NAME.match(named.name) and named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no usable pointer: fall back to the positions in the names
    for folder in candidates:
        try:
            return _read_checkpoint(folder)
        except CheckpointError as e:
            warnings.warn(f"skipping a broken checkpoint: {e}", UserWarning, stacklevel=3)
    return None


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
    state = _find_latest(path)
    if state is None:
        raise CheckpointError(
            f"no complete checkpoint in '{path}': expected a checkpoint folder (with "
            f"{MANIFEST}) or a folder of them written by ModelCheckpoint"
        )
    return state


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a training checkpoint, before any training state is touched.

    Args:
        path: A checkpoint folder (or a file in it), or a folder of checkpoints written
            by :class:`~fcnet.callbacks.ModelCheckpoint` (its latest complete one).

    Returns:
        The decoded state, for :func:`restore_trainer_state`.

    Raises:
        FileNotFoundError: Nothing exists at ``path``.
        CheckpointError: The checkpoint named is incomplete or corrupted, or the folder
            holds no complete checkpoint.
    """
    path = _check_path_arg("resume_from", path)
    if not path.exists():
        raise FileNotFoundError(f"resume_from: no checkpoint file or folder at '{path}'")
    return _read_state_path(path)


# ---------------------------------------------------------------------------- store
def _publish_checkpoint(store: Path, name: str, files: Mapping[str, bytes], run_id: str,
                       keep_last: int) -> Path:
    """Write a checkpoint into ``store``, point ``latest.json`` at it, then prune.

    Only after the new checkpoint and the pointer are on disk are older checkpoints of
    the same run removed, keeping the newest ``keep_last``; checkpoints of this run
    beyond the new position (left by a run that was resumed from an earlier point) go
    too. Checkpoints of other runs are never touched.
    """
    final = store / name
    _write_folder(final, files)
    atomic_write_text(store / LATEST, json.dumps({"checkpoint": name, "run_id": run_id}) + "\n")
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


# ---------------------------------------------------------------------------- restore
def _shape_list(value: Any) -> list[int] | None:
    if isinstance(value, dict):
        value = value.get("shape")
    return value if isinstance(value, list) else None


def _check_data(saved: Any, x: torch.Tensor, y: torch.Tensor, provenance: Any,
                name: str, where: str) -> None:
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where} was saved without {name} data, but fit() got {name}")
    inputs = saved.get("inputs") or {}
    if _shape_list(inputs) != list(x.shape) or _shape_list(saved.get("labels")) != list(y.shape):
        raise CheckpointError(
            f"{where} was saved with {name} inputs of shape {tuple(_shape_list(inputs) or ())} "
            f"and labels {tuple(_shape_list(saved.get('labels')) or ())}, but fit() got "
            f"{tuple(x.shape)} and {tuple(y.shape)}; resume with the same data"
        )
    if inputs.get("dtype") != _dtype_name(x.dtype):
        raise CheckpointError(
            f"{where} was saved with {name} inputs of dtype {inputs.get('dtype')}, but fit() "
            f"got {_dtype_name(x.dtype)}; resume with the same data"
        )
    saved_prov = saved.get("provenance")
    if isinstance(saved_prov, dict) and isinstance(provenance, dict) and saved_prov != provenance:
        diff = sorted(k for k in set(saved_prov) | set(provenance)
                      if saved_prov.get(k) != provenance.get(k))
        raise CheckpointError(
            f"{where}: the {name} split differs from the checkpoint's (fields {diff}: "
            f"{ {k: saved_prov.get(k) for k in diff} } != { {k: provenance.get(k) for k in diff} })"
        )


def _check_fits(trainer: Trainer, state: dict[str, Any], x: torch.Tensor,
                y: torch.Tensor) -> None:
    where = f"checkpoint '{state['path']}'"
    config, pos = state["config"], state["position"]
    provenance = getattr(trainer, "_data_provenance", {}) or {}
    _check_data(state["data"]["train"], x, y, provenance.get("train"), "train", where)
    saved_val = state["data"].get("val")
    if trainer._val is None and saved_val is not None:
        raise CheckpointError(f"{where} was saved with validation data, but fit() got val=None")
    if trainer._val is not None:
        _check_data(saved_val, trainer._val[0], trainer._val[1], provenance.get("val"), "val",
                    where)
    for key in ("batch_size", "drop_last", "batches_per_epoch"):
        mine = getattr(trainer, key)
        if config.get(key) != mine:
            raise CheckpointError(
                f"{where} was saved with {key}={config.get(key)!r}, but this Trainer has "
                f"{key}={mine!r}; resume with the same settings"
            )
    if pos["epoch"] > trainer.epochs or (pos["epoch"] == trainer.epochs and pos["batch"] > 0):
        raise CheckpointError(
            f"{where} is at epoch {pos['epoch']}, batch {pos['batch']}, beyond this "
            f"Trainer's epochs={trainer.epochs}"
        )
    if pos["batch"] > trainer.batches_per_epoch:
        raise CheckpointError(f"{where}: batch {pos['batch']} is beyond the "
                              f"{trainer.batches_per_epoch} batches of an epoch")
    # The model: same architecture, then same tensors.
    spec = getattr(trainer.model, "spec", None)
    saved_spec = state["model_spec"]
    if isinstance(spec, MLPSpec) and isinstance(saved_spec, dict) and saved_spec != spec.to_dict():
        mine = spec.to_dict()
        diff = sorted(k for k in set(mine) | set(saved_spec) if mine.get(k) != saved_spec.get(k))
        raise CheckpointError(
            f"{where} holds a different model: "
            + "; ".join(f"{k} {saved_spec.get(k)!r} in the checkpoint, {mine.get(k)!r} here"
                        for k in diff)
        )
    _check_state_fits(trainer.model.state_dict(), state["model"], where)
    if state["optimizer_class"] != type(trainer.optimizer).__name__:
        raise CheckpointError(
            f"{where} holds {state['optimizer_class']} optimizer state, but this Trainer "
            f"uses {type(trainer.optimizer).__name__}"
        )
    opt = state["optimizer"]
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    mine_groups = trainer.optimizer.state_dict()["param_groups"]
    if (not isinstance(groups, list) or not isinstance(opt.get("state"), dict)
            or [len(g.get("params", ())) if isinstance(g, dict) else -1 for g in groups]
            != [len(g["params"]) for g in mine_groups]):
        raise CheckpointError(
            f"{where}: the optimizer state does not fit this model's parameters"
        )
    mine_sched = None if trainer.scheduler is None else type(trainer.scheduler).__name__
    if state["scheduler_class"] != mine_sched or (mine_sched and not
                                                  isinstance(state["scheduler"], dict)):
        raise CheckpointError(
            f"{where} holds scheduler {state['scheduler_class']}, but this Trainer has "
            f"{mine_sched}"
        )
    acc = state["accumulators"]
    if not (isinstance(acc, dict) and all(isinstance(acc.get(k), torch.Tensor)
                                          for k in ("loss", "correct"))
            and is_int(acc.get("seen")) and isinstance(acc.get("seconds"), (int, float))):
        raise CheckpointError(f"{where}: malformed epoch accumulators {acc!r}")
    _check_rng(state["rng"], where)


def _check_rng(rng: Any, where: str) -> None:
    try:
        torch.Generator().set_state(rng["torch"])
        np.random.RandomState().set_state(rng["numpy"])
        random.Random().setstate(rng["python"])
        cuda = rng.get("cuda")
        if cuda is not None and not all(isinstance(t, torch.Tensor) for t in cuda):
            raise TypeError("cuda states must be tensors")
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}: malformed RNG state: {e}") from None


def restore_trainer_state(trainer: Trainer, state: dict[str, Any], x: torch.Tensor,
                          y: torch.Tensor) -> None:
    """Put ``trainer`` back at the checkpoint's point of training.

    Called by ``Trainer.fit(resume_from=...)`` after the callbacks' ``on_train_begin``.
    Everything is checked first (data shapes and split, batch settings, model spec and
    tensor shapes, optimizer and scheduler classes): a mismatch raises CheckpointError
    before anything is changed and before any training step.
    """
    _check_fits(trainer, state, x, y)
    where = f"checkpoint '{state['path']}'"
    trainer.model.load_state_dict(state["model"])
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
        if trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(state["scheduler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}: cannot restore the optimizer or scheduler: {e}") from e
    _restore_callbacks(trainer, state["callbacks"], where)
    acc = state["accumulators"]
    trainer._acc = {
        "loss": acc["loss"].to(trainer.device, torch.float64),
        "correct": acc["correct"].to(trainer.device, torch.float64),
        "seen": acc["seen"],
        "seconds": float(acc["seconds"]),
    }
    trainer.epoch = state["position"]["epoch"]
    trainer._batch_in_epoch = state["position"]["batch"]
    trainer.should_stop = state["should_stop"]
    history = state["history"]
    # The resumed run is not interrupted any more; record where it came back from.
    history.meta.pop("interrupted", None)
    history.meta.pop("interrupted_at", None)
    history.meta.setdefault("resumed", []).append(
        {"from": state["path"], **state["position"]}
    )
    trainer.history = history
    rng = state["rng"]  # last: nothing may draw random numbers after this
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    cuda = rng.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _restore_callbacks(trainer: Trainer, saved: list[tuple[str, Any]], where: str) -> None:
    # Matched by class and order within the class, so adding or dropping a stateless
    # callback (e.g. the ProgressBar) between runs does not matter.
    def keyed(items):
        seen: dict[str, int] = {}
        out = {}
        for cls, value in items:
            k = seen.get(cls, 0)
            seen[cls] = k + 1
            out[(cls, k)] = value
        return out

    saved_by_key = keyed(saved)
    mine_by_key = keyed((type(cb).__name__, cb) for cb in trainer.callbacks)
    for key, cb in mine_by_key.items():
        if key in saved_by_key:
            try:
                cb.load_state_dict(saved_by_key[key])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise CheckpointError(
                    f"{where}: cannot restore the state of {key[0]}: {e!r}"
                ) from e
        elif cb.state_dict():
            warnings.warn(
                f"{where} has no state for the callback {key[0]}; it starts afresh",
                UserWarning, stacklevel=4,
            )
    for key, value in saved_by_key.items():
        if key not in mine_by_key and value:
            warnings.warn(
                f"{where} holds the state of a {key[0]} callback that this Trainer does not "
                f"have; that state is ignored", UserWarning, stacklevel=4,
            )
