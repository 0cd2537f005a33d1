"""Training history: one plain dict per epoch, JSON-serialisable."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fcnet._io import atomic_write_text

__all__ = ["History"]


def _jsonable(value: Any) -> Any:
    # NaN and infinities are not JSON; they are stored as null so the file stays standard.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class History(list):
    """A list of per-epoch dicts, with run-level notes in :attr:`meta`.

    Each entry holds at least ``epoch`` (counted from 1) and ``train_loss``; with
    validation data also ``val_loss`` and ``val_accuracy``; the Trainer adds
    ``train_accuracy``, ``lr`` (the learning rate of the epoch's last step) and
    ``seconds``. ``meta`` records facts about the
    whole run, such as why it stopped early (``meta["stop_reason"]``,
    ``meta["stopped_epoch"]``) or that it was interrupted.

    Example:
        >>> h = History([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
        >>> h.column("train_loss")
        [0.9, 0.5]
        >>> h[-1]["train_loss"]
        0.5
    """

    def __init__(self, epochs: Iterable[Mapping[str, Any]] = (), meta: Mapping | None = None):
        super().__init__(dict(e) for e in epochs)
        self.meta: dict[str, Any] = dict(meta or {})

    def column(self, name: str) -> list[Any]:
        """Return the values of ``name`` for every epoch (``None`` where an epoch lacks it).

        Raises:
            KeyError: no epoch has ``name``; the message lists the keys there are.
        """
        if not any(name in e for e in self):
            keys = sorted({k for e in self for k in e})
            raise KeyError(f"no epoch in the history has {name!r}; available: {keys}")
        return [e.get(name) for e in self]

    def best(self, monitor: str = "val_loss", mode: str = "min") -> dict[str, Any]:
        """Return the epoch dict with the best ``monitor`` value (``mode`` "min" or "max")."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        rows = [e for e in self if isinstance(e.get(monitor), (int, float))]
        if not rows:
            raise KeyError(f"no epoch in the history has a value for {monitor!r}")
        pick = min if mode == "min" else max
        return pick(rows, key=lambda e: e[monitor])

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"epochs": [...], "meta": {...}}`` with only JSON types."""
        return {"epochs": _jsonable(list(self)), "meta": _jsonable(self.meta)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a History from :meth:`to_dict`'s output."""
        if not isinstance(data, Mapping) or not isinstance(data.get("epochs"), list):
            raise ValueError("history data must be a mapping with an 'epochs' list")
        return cls(data["epochs"], data.get("meta") or {})

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """Return the history as JSON; with ``path``, also write it there atomically."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> History:
        """Load a history from a JSON string or from a file path."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        return f"History({list.__repr__(self)}, meta={self.meta!r})"
