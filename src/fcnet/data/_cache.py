"""The decoded-array cache: ``.npy`` files that make reloads skip gzip and checksums.

Each cached array ``<stem>.npy`` has a sidecar ``<stem>.json`` recording where the array
came from (the source file's resolved path, size and mtime, and the digests it was checked
against) and a BLAKE2b digest of the array's bytes. A cached array is used only when the
source identity matches and the digest of the bytes just read equals the recorded one, so
a truncated, stale, swapped or half-written cache is never trusted: it is rebuilt.
BLAKE2b because it is a real digest yet hashes ~0.7 GB/s, so a 47 MB reload stays fast.

Both files are written atomically (temp file, fsync, rename). A crash between the two
renames leaves a pair whose digests disagree, which the check above rejects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fcnet._io import atomic_write

__all__ = ["CACHE_FORMAT", "array_digest", "load_decoded", "save_decoded"]

#: Version of the cache layout; a different value in a sidecar invalidates the entry.
CACHE_FORMAT = 1

_log = logging.getLogger(__name__)


def array_digest(array: np.ndarray) -> str:
    """BLAKE2b-128 hex digest of a C-contiguous array's bytes."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return hashlib.blake2b(flat, digest_size=16).hexdigest()


def load_decoded(folder: Path, stem: str, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Loads a cached array if, and only if, it provably matches ``identity``.

    Args:
        folder: The cache folder.
        stem: The entry's file name without extension.
        identity: Fields that must all equal those recorded in the sidecar.

    Returns:
        The sidecar's fields plus ``"array"``, or None when there is no trustworthy entry.
    """
    meta_path, array_path = folder / f"{stem}.json", folder / f"{stem}.npy"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        return None
    if any(meta.get(key) != value for key, value in identity.items()):
        return None
    try:
        # allow_pickle=False: a cache file must never be able to run code.
        array = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        _log.info("ignoring unreadable cache entry %s", array_path)
        return None
    if (
        str(array.dtype) != meta.get("dtype")
        or list(array.shape) != meta.get("shape")
        or array_digest(array) != meta.get("blake2b")
    ):
        _log.info("ignoring cache entry %s: its content does not match its record", array_path)
        return None
    return {**meta, "array": array}


def save_decoded(folder: Path, stem: str, array: np.ndarray, record: dict[str, Any]) -> bool:
    """Stores an array and its sidecar atomically; never fails the caller.

    Args:
        folder: The cache folder (created if needed).
        stem: The entry's file name without extension.
        array: The decoded array.
        record: JSON-ready fields to record (the identity and anything else).

    Returns:
        Whether the entry was written (False when the folder is not writable).
    """
    meta = {
        "format": CACHE_FORMAT,
        **record,
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "blake2b": array_digest(array),
    }
    try:
        atomic_write(folder / f"{stem}.npy", lambda f: np.save(f, array, allow_pickle=False))
        text = json.dumps(meta, indent=1, sort_keys=True).encode("utf-8")
        atomic_write(folder / f"{stem}.json", lambda f: f.write(text))
    except OSError as exc:
        # A read-only or full cache only costs speed on the next load.
        _log.warning("could not write the decoded cache in %s: %s", folder, exc)
        with contextlib.suppress(OSError):
            (folder / f"{stem}.json").unlink()
        return False
    return True
