"""A folder of images with one subfolder per class, loaded into memory."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
import torch

from fcnet.data.arrays import ArrayDataset
from fcnet.exceptions import DatasetFormatError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]

#: File name endings read as images (compared in lower case); other files are ignored.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
)  # fmt: skip


class ImageFolder(ArrayDataset):
    """Images in ``root/<class name>/<file>``, as grayscale uint8 tensors of one size.

    Classes are the subfolders in sorted order (label ``i`` is ``classes[i]``); files
    in each are read in sorted order with Pillow, converted to grayscale ("L") and
    resized (bilinear) to ``size`` when they differ. Hidden entries (starting with
    ``.``) and files with other extensions are ignored. The images are decoded once,
    here; training then works on the in-memory tensor.

    Args:
        root: The folder holding one subfolder per class.
        size: ``(height, width)`` of the images returned.

    Attributes:
        images: ``(N, height, width)`` uint8 images.
        labels: ``(N,)`` int64 labels.
        classes: The subfolder names.
        files: The image paths, in sample order.

    Raises:
        FileNotFoundError: ``root`` is not a folder, has no class subfolders, or a class
            subfolder holds no image.
        ValueError: ``size`` is not two positive integers.
        DatasetFormatError: A file cannot be decoded as an image (the message names it).
    """

    def __init__(self, root: str | os.PathLike[str], size: tuple[int, int] = (28, 28)) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)
            or min(size) < 1
        ):
            raise ValueError(f"size must be (height, width), two positive integers, got {size!r}")
        # Imported here: Pillow is only needed by this adapter.
        from PIL import Image, UnidentifiedImageError

        # Image.Resampling exists from Pillow 9.1; the plain constant works everywhere.
        bilinear = getattr(Image, "Resampling", Image).BILINEAR

        base = Path(root).expanduser()
        if not base.is_dir():
            raise FileNotFoundError(f"ImageFolder root {str(base)!r} is not a folder")
        classes = sorted(
            p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not classes:
            raise FileNotFoundError(
                f"ImageFolder root {str(base)!r} has no class subfolders: expected "
                f"root/<class name>/<image files>"
            )
        height, width = int(size[0]), int(size[1])
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            found = sorted(
                p
                for p in (base / name).iterdir()
                if p.is_file()
                and not p.name.startswith(".")
                and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not found:
                raise FileNotFoundError(
                    f"ImageFolder class folder {str(base / name)!r} holds no image "
                    f"(extensions {', '.join(IMAGE_EXTENSIONS)})"
                )
            files += found
            labels += [label] * len(found)

        images = np.empty((len(files), height, width), dtype=np.uint8)
        for i, path in enumerate(files):
            try:
                with Image.open(path) as image:
                    gray = image.convert("L")
                    if gray.size != (width, height):  # Pillow sizes are (width, height)
                        gray = gray.resize((width, height), bilinear)
                    images[i] = np.asarray(gray, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise DatasetFormatError(f"{path}: cannot be read as an image ({exc})") from exc
        super().__init__(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), classes)
        self.files: list[Path] = files
