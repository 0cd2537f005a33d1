"""Fashion-MNIST, MNIST and KMNIST: found, fetched, verified and cached.

The three data sets share one format (four IDX files, 28x28 uint8 images, uint8
labels) and one machine, :class:`IdxImageDataset`; each subclass only states its file
names, digests, mirrors and class names.

Finding the files follows the order documented in :mod:`fcnet.data._discovery`:
``root`` (exclusively, when given), ``$FCNET_DATA_DIR``, the user cache folder
(``$XDG_CACHE_HOME/fcnet/<name>``), the system datasets folder, then a download into
the cache folder when ``download=True``. A folder may hold each file raw or as ``.gz``.

Integrity: every file is first decoded strictly (see :func:`fcnet.data.read_idx`), then
checked against a known digest:

* Fashion-MNIST: the sha256 of the *uncompressed* content, computed from the files of
  Debian's ``dataset-fashion-mnist`` package. The uncompressed content is checked
  because the Debian package recompresses the ``.gz`` files (different bytes, same
  content), so any honest copy, raw or compressed by any tool, passes.
* MNIST and KMNIST: only the md5 of each ``.gz`` file as published on the mirrors is
  known (the values torchvision uses). A ``.gz`` copy is checked against it; a
  recompressed copy fails it (pass ``verify=False`` for such a copy) and an
  uncompressed file cannot be checked, so only the format checks apply to it.

A mismatch raises :class:`~fcnet.exceptions.DatasetIntegrityError` naming the file and
both digests. Decoded arrays are kept in ``<user cache>/<name>/decoded`` (see
:mod:`fcnet.data._cache`) so a reload skips the decompression and the checksum.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fcnet.data import _discovery
from fcnet.data._cache import load_decoded, save_decoded
from fcnet.data._discovery import Candidate, find_file, user_cache_dir
from fcnet.data.arrays import ArrayDataset
from fcnet.data.idx import decode_idx, read_idx_bytes
from fcnet.exceptions import DatasetFormatError, DatasetIntegrityError

__all__ = ["FashionMNIST", "IdxFile", "IdxImageDataset", "KMNIST", "MNIST"]

_SPLITS = ("train", "test")


@dataclass(frozen=True)
class IdxFile:
    """One file of an IDX data set and what is known of its content.

    Attributes:
        name: The file name without ``.gz`` (e.g. ``"train-images-idx3-ubyte"``).
        sha256: sha256 of the uncompressed IDX content, or None if unknown.
        md5: md5 of the ``.gz`` file as published on the mirrors, or None if unknown.
    """

    name: str
    sha256: str | None = None
    md5: str | None = None


class IdxImageDataset(ArrayDataset):
    """A labelled image data set stored as MNIST-style IDX files.

    Subclasses set the class attributes; the constructor finds, checks and loads the
    files of one split.

    Args:
        split: ``"train"`` or ``"test"``.
        root: A folder holding the files (raw or ``.gz``), directly or in a subfolder
            named after the data set. When given, it is the only place looked at, and
            downloads go there.
        download: Whether to download missing files from :attr:`mirrors`.
        verify: Whether to check each file against its known digest. Format checks
            always apply.
        cache: Whether to keep and reuse decoded arrays in the user cache folder.
        mirrors: Base URLs to download from instead of the class's :attr:`mirrors`.

    Attributes:
        split: The split loaded.
        folder: The folder the files were found in (or downloaded to).
        files: The paths of the images and labels files.
        checks: For each file name, the integrity check applied: ``"sha256"``
            (uncompressed content), ``"md5"`` (published ``.gz``), ``"none"`` (no
            digest known for this copy: format checks only) or ``"skipped"``
            (``verify=False``).
        from_cache: Whether the arrays came from the decoded cache.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``, or a mirror is not a URL.
        TypeError: An argument has the wrong type.
        FileNotFoundError: The files are nowhere to be found (and could not be
            downloaded); the message lists where it looked and how to get them.
        DatasetFormatError: A file is not valid IDX, or the files do not fit together.
        DatasetIntegrityError: A file does not match its known digest.
    """

    #: Human-readable name, used in messages.
    display_name: ClassVar[str] = ""
    #: Folder name under the cache folder / ``$FCNET_DATA_DIR``.
    folder_name: ClassVar[str] = ""
    #: torchvision's folder for this data set (``<root>/<name>/raw`` is also searched).
    torchvision_name: ClassVar[str | None] = None
    #: ``split -> (images file, labels file)``.
    split_files: ClassVar[Mapping[str, tuple[IdxFile, IdxFile]]] = {}
    #: ``split -> number of examples``, or None when any count is accepted.
    split_sizes: ClassVar[Mapping[str, int] | None] = None
    #: Height and width of every image.
    image_shape: ClassVar[tuple[int, int]] = (28, 28)
    #: Class names, indexed by label.
    class_names: ClassVar[tuple[str, ...]] = ()
    #: Base URLs the files (``<name>.gz``) are downloaded from, tried in order.
    mirrors: ClassVar[tuple[str, ...]] = ()
    #: Read-only folders installed by system packages.
    system_dirs: ClassVar[tuple[str, ...]] = ()
    #: How to install the data system-wide, shown when nothing is found.
    install_hint: ClassVar[str | None] = None

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike[str] | None = None,
        download: bool = True,
        *,
        verify: bool = True,
        cache: bool = True,
        mirrors: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(split, str) or split not in self.split_files:
            raise ValueError(f"split must be one of {sorted(self.split_files)}, got {split!r}")
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path or None, got {type(root).__name__}")
        for flag, value in (("download", download), ("verify", verify), ("cache", cache)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, got {value!r}")
        mirror_list = self._check_mirrors(self.mirrors if mirrors is None else mirrors)

        specs = self.split_files[split]
        folder, paths = self._locate(split, root, download, mirror_list)
        self.split: str = split
        self.folder: Path = folder
        self.files: tuple[Path, ...] = tuple(paths)
        self.checks: dict[str, str] = {}
        arrays = []
        from_cache = []
        for spec, path in zip(specs, paths, strict=True):
            array, check, cached = self._load(spec, path, verify=verify, cache=cache)
            self.checks[spec.name] = check
            arrays.append(array)
            from_cache.append(cached)
        self.from_cache: bool = all(from_cache)
        images, labels = arrays
        self._check_arrays(images, labels, paths, split)
        super().__init__(
            torch.from_numpy(images),
            torch.from_numpy(labels.astype(np.int64)),
            list(self.class_names),
        )

    # -- public description --------------------------------------------------------

    @property
    def source(self) -> dict[str, Any]:
        """A JSON-ready record of where the data came from and how it was checked."""
        return {
            "dataset": self.folder_name,
            "split": self.split,
            "folder": str(self.folder),
            "files": [str(p) for p in self.files],
            "checks": dict(self.checks),
            "length": len(self),
        }

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(split={self.split!r}, n={len(self)}, folder={str(self.folder)!r})"

    # -- discovery -----------------------------------------------------------------

    @classmethod
    def cache_folder(cls) -> Path:
        """This data set's folder in the user cache: downloads and decoded arrays."""
        return user_cache_dir() / cls.folder_name

    @staticmethod
    def _check_mirrors(mirrors: Any) -> tuple[str, ...]:
        if isinstance(mirrors, str) or not isinstance(mirrors, Sequence):
            raise TypeError(
                f"mirrors must be a sequence of base URLs, got {type(mirrors).__name__}"
            )
        checked = []
        for url in mirrors:
            if not isinstance(url, str) or "://" not in url:
                raise ValueError(
                    f"mirrors must hold URLs such as 'https://host/path/', got {url!r}"
                )
            checked.append(url if url.endswith("/") else url + "/")
        return tuple(checked)

    def _candidates(self, root: str | os.PathLike[str] | None) -> list[Candidate]:
        if root is not None:
            base = Path(root).expanduser()
            folders = [base, base / self.folder_name]
            if self.torchvision_name:
                folders.append(base / self.torchvision_name / "raw")
            return [Candidate(f, "root argument") for f in folders]
        found: list[Candidate] = []
        env = os.environ.get(_discovery.DATA_DIR_ENV, "")
        if env:
            base = Path(env).expanduser()
            found += [
                Candidate(base / self.folder_name, f"${_discovery.DATA_DIR_ENV}"),
                Candidate(base, f"${_discovery.DATA_DIR_ENV}"),
            ]
        found.append(Candidate(self.cache_folder(), "user cache folder"))
        found += [Candidate(Path(d), "system datasets folder") for d in self.system_dirs]
        return found

    def _locate(
        self,
        split: str,
        root: str | os.PathLike[str] | None,
        download: bool,
        mirrors: tuple[str, ...],
    ) -> tuple[Path, list[Path]]:
        specs = self.split_files[split]
        candidates = self._candidates(root)
        for candidate in candidates:
            paths = [find_file(candidate.path, spec.name) for spec in specs]
            if all(p is not None for p in paths):
                return candidate.path, paths  # type: ignore[return-value]
            candidate.missing = [s.name for s, p in zip(specs, paths, strict=True) if p is None]
        if not download:
            raise FileNotFoundError(self._not_found(split, candidates, root, mirrors, None))
        target = Path(root).expanduser() if root is not None else self.cache_folder()
        made = [f for f in (target, *target.parents) if not f.exists()]  # deepest first
        try:
            target.mkdir(parents=True, exist_ok=True)
            paths = []
            for spec in specs:
                existing = find_file(target, spec.name)
                paths.append(
                    existing
                    or _discovery.download(f"{spec.name}.gz", mirrors, target, md5=spec.md5)
                )
        except OSError as exc:  # ConnectionError, or an unwritable target
            for folder in made:  # a failed download leaves no folders it made (a typo)
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise FileNotFoundError(self._not_found(split, candidates, root, mirrors, exc)) from exc
        return target, paths

    def _not_found(
        self,
        split: str,
        candidates: list[Candidate],
        root: str | os.PathLike[str] | None,
        mirrors: tuple[str, ...],
        download_error: BaseException | None,
    ) -> str:
        names = " and ".join(spec.name for spec in self.split_files[split])
        lines = [
            f"{self.display_name} {split!r} files not found: need "
            f"{names} (each raw or .gz). Looked in:"
        ]
        for c in candidates:
            state = "does not exist" if not c.path.is_dir() else "missing " + ", ".join(c.missing)
            lines.append(f"  - {c.path} ({c.origin}): {state}")
        if download_error is not None:
            lines.append(f"Download failed: {download_error}")
        target = "root" if root is not None else str(self.cache_folder())
        lines.append("To get the data, any of:")
        lines.append("  - pass root= a folder holding the files")
        lines.append(f"  - set {_discovery.DATA_DIR_ENV} to such a folder")
        if self.install_hint:
            lines.append(f"  - {self.install_hint}")
        if download_error is None:
            lines.append(
                f"  - pass download=True to fetch them from {', '.join(mirrors) or 'a mirror'} "
                f"into {target}"
            )
        else:
            lines.append("  - check the network, then try download=True again")
        return "\n".join(lines)

    # -- loading and checking --------------------------------------------------------

    def _load(
        self, spec: IdxFile, path: Path, *, verify: bool, cache: bool
    ) -> tuple[np.ndarray, str, bool]:
        stat = path.stat()
        identity: dict[str, Any] = {
            "source": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "expected_sha256": spec.sha256,
            "expected_md5": spec.md5,
        }
        cache_dir = self.cache_folder() / "decoded"
        if cache:
            entry = load_decoded(cache_dir, spec.name, identity)
            if entry is not None and (entry.get("check") != "skipped" or not verify):
                return entry["array"], entry["check"], True

        stored, content = read_idx_bytes(path)
        # Decode before checking digests: a truncated or mangled file is a format error,
        # and a file that decodes but differs is an integrity error.
        array = decode_idx(content, str(path))
        check = self._verify(spec, path, stored, content) if verify else "skipped"
        if cache:
            save_decoded(cache_dir, spec.name, array, {**identity, "check": check})
        return array, check, False

    @staticmethod
    def _verify(spec: IdxFile, path: Path, stored: bytes, content: bytes) -> str:
        if spec.sha256 is not None:
            actual = hashlib.sha256(content).hexdigest()
            if actual != spec.sha256:
                raise DatasetIntegrityError(
                    f"{path}: sha256 of the uncompressed content is {actual}, "
                    f"expected {spec.sha256}"
                )
            return "sha256"
        if spec.md5 is not None and path.name.endswith(".gz"):
            actual = hashlib.md5(stored, usedforsecurity=False).hexdigest()
            if actual != spec.md5:
                raise DatasetIntegrityError(
                    f"{path}: md5 of the .gz file is {actual}, expected {spec.md5} "
                    f"(the published file; a recompressed copy cannot be checked this way: "
                    f"pass verify=False to rely on the format checks only)"
                )
            return "md5"
        return "none"

    def _check_arrays(
        self, images: np.ndarray, labels: np.ndarray, paths: Sequence[Path], split: str
    ) -> None:
        image_path, label_path = paths
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != self.image_shape:
            raise DatasetFormatError(
                f"{image_path}: expected uint8 images of shape (N, "
                f"{self.image_shape[0]}, {self.image_shape[1]}), got {images.dtype} "
                f"{images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetFormatError(
                f"{label_path}: expected uint8 labels of shape (N,), got {labels.dtype} "
                f"{labels.shape}"
            )
        if len(images) != len(labels):
            raise DatasetFormatError(
                f"{image_path} holds {len(images)} images but {label_path} holds "
                f"{len(labels)} labels: the counts must match"
            )
        if self.split_sizes is not None and len(labels) != self.split_sizes[split]:
            raise DatasetFormatError(
                f"{label_path}: the {split!r} split of {self.display_name} has "
                f"{self.split_sizes[split]} examples, the file holds {len(labels)}"
            )
        if len(labels) == 0:
            raise DatasetFormatError(f"{label_path}: the file holds no examples")
        top = int(labels.max())
        if top >= len(self.class_names):
            raise DatasetFormatError(
                f"{label_path}: label {top} is out of range for {len(self.class_names)} classes"
            )


def _files(
    digests: Mapping[str, tuple[str | None, str | None]],
) -> dict[str, tuple[IdxFile, IdxFile]]:
    prefix = {"train": "train", "test": "t10k"}
    spec = {name: IdxFile(name, *digest) for name, digest in digests.items()}
    return {
        split: (spec[f"{p}-images-idx3-ubyte"], spec[f"{p}-labels-idx1-ubyte"])
        for split, p in prefix.items()
    }


class FashionMNIST(IdxImageDataset):
    """Fashion-MNIST (Zalando): 70,000 28x28 grayscale images of 10 kinds of clothing.

    See :class:`IdxImageDataset` for the arguments. Both splits are checked against
    the sha256 of their uncompressed content.

    Example:
        >>> train = FashionMNIST(split="train")   # doctest: +SKIP
        >>> train.images.shape, train.classes[9]  # doctest: +SKIP
        (torch.Size([60000, 28, 28]), 'Ankle boot')
    """

    display_name = "Fashion-MNIST"
    folder_name = "fashion-mnist"
    torchvision_name = "FashionMNIST"
    # sha256: uncompressed content (from Debian's dataset-fashion-mnist);
    # md5: the .gz files as served by the mirror (torchvision's published values).
    split_files = _files(
        {
            "train-images-idx3-ubyte": (
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            "train-labels-idx1-ubyte": (
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            "t10k-images-idx3-ubyte": (
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            "t10k-labels-idx1-ubyte": (
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        }
    )
    split_sizes = {"train": 60000, "test": 10000}
    class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    install_hint = (
        "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs "
        "/usr/share/datasets/fashion-mnist)"
    )


class MNIST(IdxImageDataset):
    """MNIST: 70,000 28x28 grayscale images of handwritten digits 0-9.

    See :class:`IdxImageDataset` for the arguments. Only the md5 of the published
    ``.gz`` files is known: an uncompressed copy gets the format checks only.
    """

    display_name = "MNIST"
    folder_name = "mnist"
    torchvision_name = "MNIST"
    split_files = _files(
        {
            "train-images-idx3-ubyte": (None, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train-labels-idx1-ubyte": (None, "d53e105ee54ea40749a09fcbcd1e9432"),
            "t10k-images-idx3-ubyte": (None, "9fb629c4189551a2d022fa330f9573f3"),
            "t10k-labels-idx1-ubyte": (None, "ec29112dd5afa0611ce80d1b7f02629c"),
        }
    )
    split_sizes = {"train": 60000, "test": 10000}
    class_names = tuple(str(i) for i in range(10))
    mirrors = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )


class KMNIST(IdxImageDataset):
    """Kuzushiji-MNIST: 70,000 28x28 grayscale images of 10 cursive Japanese characters.

    See :class:`IdxImageDataset` for the arguments. Only the md5 of the published
    ``.gz`` files is known: an uncompressed copy gets the format checks only.
    """

    display_name = "Kuzushiji-MNIST"
    folder_name = "kmnist"
    torchvision_name = "KMNIST"
    split_files = _files(
        {
            "train-images-idx3-ubyte": (None, "bdb82020997e1d708af4cf47b453dcf7"),
            "train-labels-idx1-ubyte": (None, "e144d726b3acfaa3e44228e80efcd344"),
            "t10k-images-idx3-ubyte": (None, "5c965bf0a639b31b8f53240b1b52f4d7"),
            "t10k-labels-idx1-ubyte": (None, "7320c461ea6c1c855c0b718fb2a4b134"),
        }
    )
    split_sizes = {"train": 60000, "test": 10000}
    class_names = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    mirrors = ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)
