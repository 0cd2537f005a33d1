"""Checks of a saved Trainer state, made before anything of it is restored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fcnet._checks import is_int, is_number
from fcnet._rng import RngStream
from fcnet.exceptions import CheckpointError
from fcnet.history import History

__all__ = ["check_resume", "check_state"]

# Recorded by the first fit, so a checkpoint's model may hold them and a new one not.
_TRAINING_RECORD = ("input_dtype", "input_range", "feature_names")


def check_state(state: Any, model: nn.Module, version: int) -> str:
    """Refuse a malformed Trainer state, or the state of another model.

    Returns:
        How to name the state in messages (``checkpoint '<folder>'``).

    Raises:
        CheckpointError: naming what is wrong.
    """
    if not isinstance(state, Mapping) or state.get("format") != "fcnet.trainer":
        raise CheckpointError("the state is not a Trainer state (format 'fcnet.trainer')")
    where = f"checkpoint '{state.get('path', '?')}'"
    if state.get("version") != version:
        raise CheckpointError(f"{where} has Trainer state version {state.get('version')!r}; "
                              f"this fcnet reads version {version}")
    try:
        History.from_dict(state["history"])
        pos = state["position"]
        if not all(is_int(pos.get(k)) and pos[k] >= 0
                   for k in ("epoch", "batch", "fit_start_epoch", "final_epoch")):
            raise ValueError(f"bad position {pos!r}")
        if not is_int(state["seed"]):
            raise ValueError(f"bad seed {state['seed']!r}")
        RngStream.check_state(state["rng"])
        acc = state["accumulators"]
        if not (all(isinstance(acc.get(k), torch.Tensor) for k in ("loss", "correct"))
                and is_int(acc.get("seen")) and is_number(acc.get("seconds"))):
            raise ValueError(f"malformed epoch sums {acc!r}")
        for key, kind in (("config", dict), ("data", dict), ("callbacks", list),
                          ("model", dict)):
            if not isinstance(state[key], kind):
                raise ValueError(f"{key} is a {type(state[key]).__name__}, not a {kind.__name__}")
        if not all(isinstance(c, dict) and isinstance(c.get("class"), str) and "state" in c
                   for c in state["callbacks"]):
            raise ValueError("callbacks must be {'class', 'state'} entries")
        for key in ("optimizer", "scheduler"):
            part = state[key]
            if part is not None and not (isinstance(part, dict) and isinstance(
                    part.get("class"), str) and isinstance(part.get("state"), dict)):
                raise ValueError(f"{key} must be None or a {{'class', 'state'}} entry")
        batches = state["batches_per_epoch"]
        if not is_int(batches) or batches < 0 or pos["batch"] > batches:
            raise ValueError(f"batch {pos['batch']} is beyond the {batches!r} batches of an "
                             f"epoch")
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise CheckpointError(f"{where}: malformed Trainer state: {e!r}") from None
    spec, saved = getattr(model, "spec", None), state.get("model_spec")
    if hasattr(spec, "to_dict") and isinstance(saved, dict):
        mine = spec.to_dict()
        diff = [k for k in mine if k not in _TRAINING_RECORD and mine[k] != saved.get(k)]
        if diff:
            raise CheckpointError(f"{where} holds a different model: " + "; ".join(
                f"{k} {saved.get(k)!r} in the checkpoint, {mine[k]!r} here" for k in diff))
    return where


def check_resume(state: Mapping[str, Any], *, config: Mapping[str, Any],
                 data: Mapping[str, Any], batches_per_epoch: int, optimizer: Any,
                 scheduler: Any) -> None:
    """Refuse a resume whose settings, data or training objects differ from the state's.

    Every setting of the Trainer must be the checkpoint's: a changed one would silently
    mix two runs. An unseeded Trainer takes the checkpoint's seed.

    Raises:
        CheckpointError: naming the first difference and both values.
    """
    where = f"checkpoint '{state.get('path', '?')}'"
    saved = state["config"]
    for key, value in config.items():
        if key == "seed" and value is None:
            continue
        if saved.get(key) != value:
            raise CheckpointError(
                f"{where} was saved with {key}={saved.get(key)!r}, but this Trainer has "
                f"{key}={value!r}; resume with the checkpoint's settings, or start a new run")
    for part in ("train", "val"):
        theirs, ours = state["data"].get(part), data.get(part)
        if theirs == ours:
            continue
        if isinstance(theirs, dict) and isinstance(ours, dict):
            key = next(k for k in sorted(set(theirs) | set(ours))
                       if theirs.get(k) != ours.get(k))
            theirs, ours = f"{key} {theirs.get(key)!r}", f"{key} {ours.get(key)!r}"
        raise CheckpointError(f"{where} was saved with {part} data of {theirs}, but fit() got "
                              f"{ours}; resume with the same data")
    if state["batches_per_epoch"] != batches_per_epoch:
        raise CheckpointError(f"{where} has {state['batches_per_epoch']} batches per epoch, "
                              f"this fit {batches_per_epoch}")
    for part, mine in (("optimizer", optimizer), ("scheduler", scheduler)):
        theirs_cls = None if state[part] is None else state[part].get("class")
        mine_cls = None if mine is None else type(mine).__name__
        if theirs_cls != mine_cls:
            raise CheckpointError(f"{where} holds {part} {theirs_cls}, but this Trainer has "
                                  f"{mine_cls}")
