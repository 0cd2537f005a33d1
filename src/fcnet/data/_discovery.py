"""Where data sets are looked for, and how missing files are downloaded.

Search order (the first folder holding every needed file wins):

1. an explicit ``root`` argument: the only place looked at when given (a wrong
   ``root`` must fail loudly rather than silently pick up other data);
2. the ``FCNET_DATA_DIR`` environment variable;
3. the user cache folder, ``$XDG_CACHE_HOME/fcnet/<dataset>`` or
   ``~/.cache/fcnet/<dataset>``, where downloads go;
4. system folders such as ``/usr/share/datasets/fashion-mnist`` (Debian's
   ``dataset-fashion-mnist`` package);
5. a download from the mirrors into the cache folder (or into ``root``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fcnet._io import atomic_write

__all__ = [
    "DATA_DIR_ENV",
    "Candidate",
    "download",
    "find_file",
    "user_cache_dir",
]

#: Environment variable naming a folder of data sets.
DATA_DIR_ENV = "FCNET_DATA_DIR"

#: Seconds without progress before a download from one mirror is abandoned.
DOWNLOAD_TIMEOUT = 60.0


def user_cache_dir() -> Path:
    """The fcnet user cache folder: ``$XDG_CACHE_HOME/fcnet`` or ``~/.cache/fcnet``.

    Per the XDG base-directory spec a relative ``XDG_CACHE_HOME`` is ignored.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fcnet"


@dataclass
class Candidate:
    """A folder that may hold a data set, and why it is looked at."""

    path: Path
    origin: str
    missing: list[str] = field(default_factory=list)


def find_file(folder: Path, name: str) -> Path | None:
    """Returns ``folder/name`` or ``folder/name.gz``, the uncompressed one first."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


class _BadDownload(Exception):
    pass


def download(
    filename: str,
    mirrors: Sequence[str],
    folder: Path,
    *,
    md5: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Downloads ``filename`` from the first mirror that serves it, atomically.

    Each mirror is tried in order; a mirror whose file does not match ``md5`` (when
    given), or is shorter than the length the server announced, counts as failed and
    the next one is tried. The file takes its real name
    only once complete and checked.

    This is fcnet's own rather than torchvision's ``download_url``, which (in
    torchvision 0.29) sets no timeout, so a stalled mirror hangs the caller; retries a
    failed ``https`` download over plain ``http``; and writes into the final file name,
    so an interrupted download leaves a partial file there.

    Args:
        filename: The file name, appended to each mirror URL.
        mirrors: Base URLs, each ending in ``/``.
        folder: Where to save the file.
        md5: The published md5 of the file, or None.
        timeout: Seconds without progress before a mirror is abandoned.

    Returns:
        The path of the downloaded file.

    Raises:
        ConnectionError: No mirror served a good copy; the message lists each mirror's
            failure.
    """
    target = folder / filename
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror + filename
        digest = hashlib.md5(usedforsecurity=False)

        def write(f: BinaryIO, url: str = url, digest=digest) -> None:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                size = 0
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                # A connection closed early ends the reads quietly: without an md5 to
                # compare, the announced length is what tells a cut-short file.
                announced = response.headers.get("Content-Length")
                if announced is not None and announced.isdigit() and int(announced) != size:
                    raise _BadDownload(f"the connection ended after {size} of "
                                       f"{int(announced)} bytes")

        def check(digest=digest) -> None:
            if md5 is not None and digest.hexdigest() != md5:
                raise _BadDownload(f"md5 {digest.hexdigest()}, expected {md5}")

        try:
            atomic_write(target, write, check)
            return target
        except (OSError, _BadDownload) as exc:  # urllib's URLError/HTTPError are OSErrors
            failures.append(f"{url}: {exc}")
    tried = "; ".join(failures) if failures else "no mirror configured"
    raise ConnectionError(f"could not download {filename}: {tried}")
