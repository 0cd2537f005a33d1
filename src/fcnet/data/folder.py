"""A folder of images with one subfolder per class, loaded into memory."""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnet.data.arrays import ArrayDataset
from fcnet.exceptions import DatasetFormatError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "wide_gray_levels"]

#: File name endings read as images (compared in lower case); other files are ignored.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
)  # fmt: skip


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, at any depth, in a fixed order.

    Sub-folders are followed (symbolic links too, each real folder once), as
    torchvision's ImageFolder does; the files are sorted by their path relative to
    ``folder``, compared part by part.
    """
    found: list[Path] = []
    visited: set[Path] = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        real = current.resolve()
        if real in visited:  # a link back up the tree would otherwise never end
            continue
        visited.add(real)
        for entry in current.iterdir():
            if _is_hidden(entry.name):
                continue
            if entry.is_dir():
                pending.append(entry)
            elif entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(entry)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def wide_gray_levels(image: Any) -> np.ndarray | None:
    """The gray levels of a 16-bit or float Pillow image, as floats in ``[0, 255]``.

    Pillow's own ``convert("L")`` clips 16-bit and 32-bit integer pixels to 255 and
    truncates float pixels to 0 or 1, so those modes are scaled by their real range:
    16-bit ones (modes ``"I;16"`` and ``"I"``) divided by 257, float ones (``"F"``) taken
    as values in ``[0, 1]``. ``None`` for every other mode, which Pillow converts right.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # Mode "I" is where Pillow puts 16-bit data (16-bit PNGs in older versions,
        # most conversions of "I;16"), so it gets the 16-bit range too.
        return np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257.0
    if mode == "F":
        # Float images carry no range in the file; [0, 1] is the usual convention.
        return np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64)), 0.0, 1.0) * 255.0
    return None


def _to_uint8(image: Any) -> Any:
    """``image`` as an 8-bit Pillow image, scaled by the real range of its mode."""
    from PIL import Image

    values = wide_gray_levels(image)
    if values is None:
        return image
    return Image.fromarray(np.rint(values).astype(np.uint8))  # 2-D uint8: mode "L"


class ImageFolder(ArrayDataset):
    """Images in ``root/<class name>/...``, as uint8 tensors of one size.

    Classes are the subfolders of ``root`` in sorted order (label ``i`` is
    ``classes[i]``). Each class holds the image files anywhere below its folder,
    nested sub-folders included, as torchvision's ImageFolder does; they are sorted
    by their path inside the class folder, so the order is the same on every
    machine. Hidden entries (starting with ``.``) and files with other extensions
    are ignored. The images are decoded once, here, with Pillow; training then works
    on the in-memory tensor.

    Each image is converted to 8 bits by the range of its pixel format: 8-bit images
    are kept; 16-bit ones (modes ``"I;16"`` and ``"I"``, e.g. 16-bit PNG or TIFF) are
    divided by 257 and rounded; float ones (mode ``"F"``, e.g. float TIFF) are taken
    as values in ``[0, 1]``, clipped, times 255 and rounded. So a mid-grey pixel is
    about 128 in every format. It is then converted to grayscale (``"L"``) or, with
    ``color=True``, to ``"RGB"``, and resized (bilinear) to ``size`` when it differs.

    Args:
        root: The folder holding one subfolder per class.
        size: ``(height, width)`` of the images returned.
        color: Load the images in colour, as RGB, instead of grayscale. A model then
            sees ``3 * height * width`` features per image.

    Attributes:
        images: ``(N, height, width)`` uint8 images, or ``(N, 3, height, width)``
            (channels first) with ``color=True``.
        labels: ``(N,)`` int64 labels.
        classes: The subfolder names.
        files: The image paths, in sample order.

    Raises:
        TypeError: ``root`` is not a path or ``color`` is not a bool.
        FileNotFoundError: ``root`` is not a folder, has no class subfolders, or a class
            subfolder holds no image.
        ValueError: ``size`` is not two positive integers.
        DatasetFormatError: A file cannot be decoded as an image (the message names it).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: tuple[int, int] = (28, 28),
        *,
        color: bool = False,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)
            or min(size) < 1
        ):
            raise ValueError(f"size must be (height, width), two positive integers, got {size!r}")
        if not isinstance(color, bool):
            raise TypeError(f"color must be True or False, got {color!r}")
        # Imported here: Pillow is only needed by this adapter.
        from PIL import Image, UnidentifiedImageError

        # Image.Resampling exists from Pillow 9.1; the plain constant works everywhere.
        bilinear = getattr(Image, "Resampling", Image).BILINEAR

        base = Path(root).expanduser()
        if not base.is_dir():
            raise FileNotFoundError(f"ImageFolder root {str(base)!r} is not a folder")
        classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not _is_hidden(p.name))
        if not classes:
            raise FileNotFoundError(
                f"ImageFolder root {str(base)!r} has no class subfolders: expected "
                f"root/<class name>/<image files>"
            )
        height, width = int(size[0]), int(size[1])
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            found = _image_files(base / name)
            if not found:
                raise FileNotFoundError(
                    f"ImageFolder class folder {str(base / name)!r} holds no image, at any "
                    f"depth (extensions {', '.join(IMAGE_EXTENSIONS)})"
                )
            files += found
            labels += [label] * len(found)

        mode = "RGB" if color else "L"
        shape = (len(files), 3, height, width) if color else (len(files), height, width)
        images = np.empty(shape, dtype=np.uint8)
        for i, path in enumerate(files):
            try:
                with Image.open(path) as image:
                    picture = _to_uint8(image).convert(mode)
                    if picture.size != (width, height):  # Pillow sizes are (width, height)
                        picture = picture.resize((width, height), bilinear)
                    pixels = np.asarray(picture, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise DatasetFormatError(f"{path}: cannot be read as an image ({exc})") from exc
            # Pillow gives (height, width, 3); fcnet's images are channels first, as torch's.
            images[i] = pixels.transpose(2, 0, 1) if color else pixels
        super().__init__(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), classes)
        self.files: list[Path] = files
