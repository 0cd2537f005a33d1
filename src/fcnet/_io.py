"""Atomic file writes: a crash or a reader never sees a half-written file."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_dir",
           "replace_folder"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry to disk so a completed rename survives a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], None],
    check: Callable[[], None] | None = None,
) -> None:
    """Write a file so that readers, and a crash, see either the old or the new file.

    ``write`` gets a binary file object in the same folder as ``path``; the data is
    fsynced, then renamed over ``path`` and the folder entry fsynced. ``check``, when
    given, runs between the write and the rename; if anything raises, the temporary file
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; see :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_folder(new: Path, final: Path) -> None:
    """Rename the folder ``new`` to ``final``, replacing a folder already there.

    The old ``final`` is first renamed aside (``.trash-<name>-<random>``) and deleted only
    once ``new`` is in place; if the rename of ``new`` fails, it is put back. ``new``
    must be on the same file system (a sibling).
    """
    old = None
    if final.exists():
        old = final.with_name(f".trash-{final.name}-{secrets.token_hex(4)}")
        os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        if old is not None and old.exists() and not final.exists():
            os.rename(old, final)  # the new folder did not land: put the previous one back
        raise
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
