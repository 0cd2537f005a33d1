"""Image files to Fashion-MNIST-style tensors, and predictions on them.

:func:`load_images` turns image files (PNG, JPEG, or anything else Pillow reads, of any
size and mode) or Pillow images into the form of the Fashion-MNIST images, the way Xiao,
Rasul and Vollgraf (2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms", section 2) made the data set from product photos:

1. trim the edges whose colour is within 5% of the background colour (the median colour
   of the border pixels);
2. resize so that the longest side is 28 pixels, keeping the aspect ratio (with an area
   filter, which averages the pixels a target pixel covers);
3. put the result in the centre of a 28x28 canvas;
4. convert to 8-bit grayscale, and negate when the background is light, so that the
   object is light on a black background.

The paper's sharpening step is left out: on test images enlarged and converted back,
it lowered the accuracy of a trained model.

Beyond the paper, the polarity is decided from the border: a photo of a dark object on
a light background is negated, a light object on a dark background is kept. The
background level is then mapped to 0 and the rest stretched linearly (full intensity
stays 255), so a photo on grey paper gets the data set's black background. Transparent
pixels are filled with white behind a mostly dark object and with black behind a light
one, and the EXIF orientation of photos is applied. An image that already has the
target size, one 8-bit channel and a dark border is taken as it is: a data-set image
saved as PNG gives back exactly its pixels.

:func:`predict_images` runs a model on such images and returns the top classes of each.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnet.data.folder import wide_gray_levels
from fcnet.exceptions import DatasetFormatError
from fcnet.trainer import Trainer

__all__ = ["image_files", "image_size", "load_image", "load_images", "predict_images",
           "top_classes"]

# "Closeness" to the background colour in the paper: within 5% of the largest possible
# distance in RGB space.
_TRIM_TOLERANCE = 0.05
# ITU-R 601-2 luma, the weights of Pillow's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114])


def _check_size(size: Any) -> tuple[int, int]:
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
            or min(size) < 1):
        raise ValueError(f"size must be (height, width), two positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly in ``folder``, sorted by name.

    A file is an image when Pillow knows its extension (compared in lower case); hidden
    files (starting with ``.``) and sub-folders are skipped.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
    """
    from PIL import Image

    path = Path(folder)
    if not path.is_dir():
        raise NotADirectoryError(f"'{path}' is not a folder")
    known = {ext.lower() for ext in Image.registered_extensions()}
    return sorted(p for p in path.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known)


def _open(source: Any, where: str) -> Any:
    """``source`` decoded as a Pillow image (the first frame), EXIF orientation applied."""
    from PIL import Image, ImageOps

    if isinstance(source, Image.Image):
        return ImageOps.exif_transpose(source)
    path = Path(source)
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder, not an image file; list its images "
                                f"with fcnet.images.image_files")
    if not path.exists():
        raise FileNotFoundError(f"no image file at '{path}'")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            return ImageOps.exif_transpose(image)
    except PermissionError:
        raise  # its message names the file; the file may well be an image
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
            Image.DecompressionBombError) as exc:
        # Pillow's decoders report broken data with any of these.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetFormatError(f"'{where}' cannot be read as an image: {reason}") from None


def _rgb_and_alpha(image: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels as float RGB in ``[0, 255]`` (H, W, 3), and the alpha in ``[0, 1]``."""
    gray = wide_gray_levels(image)  # 16-bit and float images, by their real range
    if gray is not None:
        return np.repeat(gray[..., None], 3, axis=2), None
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64)
    if not has_alpha:
        return rgba, None
    return rgba[..., :3], rgba[..., 3] / 255.0


def _border(values: np.ndarray) -> np.ndarray:
    """The pixels of the outermost rows and columns, as (K, channels)."""
    flat = values.reshape(values.shape[0], values.shape[1], -1)
    if min(flat.shape[:2]) <= 2:
        return flat.reshape(-1, flat.shape[2])
    return np.concatenate([flat[0], flat[-1], flat[1:-1, 0], flat[1:-1, -1]])


def _convert(image: Any, size: tuple[int, int]) -> np.ndarray:
    """One Pillow image in the data set's form: ``size`` uint8, light object on black."""
    from PIL import Image

    if image.mode == "L" and image.size == (size[1], size[0]):
        pixels = np.asarray(image, dtype=np.uint8)
        if np.median(_border(pixels)) <= 127.5:
            return pixels.copy()  # already a data-set image
    rgb, alpha = _rgb_and_alpha(image)
    if alpha is not None:
        # Fill the transparent pixels with the colour that contrasts with the object.
        weight = alpha.sum()
        dark = weight == 0 or float((rgb @ _LUMA * alpha).sum() / weight) < 127.5
        fill = 255.0 if dark else 0.0
        rgb = rgb * alpha[..., None] + fill * (1.0 - alpha[..., None])
    background = np.median(_border(rgb), axis=0)
    distance = np.sqrt(((rgb - background) ** 2).sum(axis=2)) / (255.0 * math.sqrt(3.0))
    rows = np.flatnonzero((distance > _TRIM_TOLERANCE).any(axis=1))
    cols = np.flatnonzero((distance > _TRIM_TOLERANCE).any(axis=0))
    if len(rows):  # an image of nothing but background is kept whole
        rgb = rgb[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    gray = rgb @ _LUMA
    level = float(background @ _LUMA)
    if level > 127.5:  # a light background: negate, so the object is light on black
        gray, level = 255.0 - gray, 255.0 - level
    gray = np.clip((gray - level) * (255.0 / (255.0 - level)), 0.0, 255.0)

    height, width = gray.shape
    scale = min(size[0] / height, size[1] / width)
    new_h = min(size[0], max(1, round(height * scale)))
    new_w = min(size[1], max(1, round(width * scale)))
    resampling = getattr(Image, "Resampling", Image)
    # The area filter averages every source pixel when shrinking; bilinear when growing.
    method = resampling.BOX if scale < 1 else resampling.BILINEAR
    small = np.asarray(Image.fromarray(gray.astype(np.float32), mode="F")
                       .resize((new_w, new_h), method), dtype=np.float64)
    canvas = np.zeros(size, dtype=np.float64)
    # An odd margin puts its extra pixel first (top, left), as in the data set's images.
    top, left = (size[0] - new_h + 1) // 2, (size[1] - new_w + 1) // 2
    canvas[top:top + new_h, left:left + new_w] = small
    return np.rint(np.clip(canvas, 0.0, 255.0)).astype(np.uint8)


def load_image(source: str | os.PathLike[str] | Any,
               size: tuple[int, int] = (28, 28)) -> torch.Tensor:
    """One image file or Pillow image as a Fashion-MNIST-style ``(H, W)`` uint8 tensor.

    See :func:`load_images`.
    """
    return load_images([source], size)[0]


def load_images(sources: Iterable[str | os.PathLike[str] | Any],
                size: tuple[int, int] = (28, 28), *, progress: bool = False) -> torch.Tensor:
    """Image files or Pillow images converted as the Fashion-MNIST images were made.

    The conversion is described in :mod:`fcnet.images`: trim the background, fit the
    longest side to ``size``, centre, grayscale, and negate a light background, so that
    a photo of a dark object on white paper and a data-set image look alike.

    Args:
        sources: Paths of image files (any format and mode Pillow reads; multi-frame
            files give their first frame) or :class:`PIL.Image.Image` objects.
        size: ``(height, width)`` of the images returned.
        progress: Show a progress bar (tqdm) while the files are read.

    Returns:
        A ``(N, height, width)`` uint8 tensor, the object light on black: what
        :class:`fcnet.data.FashionMNIST` holds, and what a model trained on it takes.

    Raises:
        ValueError: ``size`` is not two positive integers, or ``sources`` is empty.
        FileNotFoundError: A file does not exist.
        IsADirectoryError: A source is a folder (see :func:`image_files`).
        DatasetFormatError: A file cannot be decoded as an image; the message names it.
    """
    size = _check_size(size)
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    items = list(sources)
    if not items:
        raise ValueError("sources is empty: give at least one image file or Pillow image")
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="images", unit="image", leave=False)
    out = np.empty((len(items), *size), dtype=np.uint8)
    for i, source in enumerate(items):
        where = f"<image {i}>" if not isinstance(source, (str, os.PathLike)) else str(source)
        image = _open(source, where)
        try:
            out[i] = _convert(image, size)
        except (ValueError, OSError) as exc:  # a mode Pillow cannot convert to RGB
            raise DatasetFormatError(f"'{where}' cannot be converted to grayscale: "
                                     f"{' '.join(str(exc).split())}") from None
    return torch.from_numpy(out)


def _model_of(model: Trainer | nn.Module) -> nn.Module:
    if isinstance(model, Trainer):
        return model.model
    if isinstance(model, nn.Module):
        return model
    raise TypeError(f"model must be a fcnet.Trainer or a torch.nn.Module, got "
                    f"{type(model).__name__}")


def image_size(model: Trainer | nn.Module) -> tuple[int, int]:
    """The square image size an fcnet model takes: ``(28, 28)`` for 784 input features.

    Raises:
        TypeError: ``model`` is not a Trainer or a module.
        ValueError: The model's input is not a square grayscale image, or it was
            trained on a table with named columns.
    """
    spec = getattr(_model_of(model), "spec", None)
    if spec is None:
        raise ValueError("the model has no spec (it was not built by fcnet.build_mlp); "
                         "pass size=(height, width)")
    names = getattr(spec, "feature_names", None)
    if names:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ValueError(f"the model was trained on a table with the columns [{shown}], "
                         f"not on images; give it rows of those columns (a DataFrame, or "
                         f"a CSV file on the command line)")
    side = math.isqrt(spec.in_features)
    if side * side != spec.in_features:
        raise ValueError(f"the model takes {spec.in_features} input features, not a square "
                         f"grayscale image (such as 784 = 28 x 28)")
    return side, side


def predict_images(model: Trainer | nn.Module,
                   sources: Sequence[str | os.PathLike[str] | Any], *,
                   classes: Sequence[str] | None = None, top_k: int = 1,
                   size: tuple[int, int] | None = None,
                   progress: bool = False) -> list[dict[str, Any]]:
    """Predict the class of each image file or Pillow image.

    The images are converted by :func:`load_images` and classified in one pass.

    Args:
        model: A :class:`fcnet.Trainer`, or a model such as :func:`fcnet.load_model`
            returns (it is used on the device its weights are on).
        sources: Image files or Pillow images.
        classes: The class names, indexed by label; ``None`` names them ``"0"``,
            ``"1"``, ...
        top_k: How many of the most probable classes to report per image.
        size: ``(height, width)`` the model takes; ``None`` derives it from the model's
            input features (784 gives 28 x 28).
        progress: Show a progress bar while the files are read.

    Returns:
        One dict per source, in order: ``"source"`` (the path, or ``"<image i>"``),
        ``"label"`` and ``"class"`` of the most probable class, its ``"probability"``,
        and ``"top"``, the ``top_k`` most probable classes as dicts with ``"label"``,
        ``"class"`` and ``"probability"``.

    Raises:
        TypeError: ``model`` is not a Trainer or a module.
        ValueError: ``top_k`` is below 1 or above the number of classes, ``classes``
            has the wrong length, or the model does not take square grayscale images.
        FileNotFoundError, DatasetFormatError: As :func:`load_images`.
    """
    net = _model_of(model)
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = list(sources)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    size = image_size(net) if size is None else _check_size(size)
    spec = getattr(net, "spec", None)
    num_classes = getattr(spec, "num_classes", None)
    if classes is not None:
        classes = [str(c) for c in classes]
        if num_classes is not None and len(classes) != num_classes:
            raise ValueError(f"classes must name the model's {num_classes} classes, got "
                             f"{len(classes)} names")
    if num_classes is not None and top_k > num_classes:
        raise ValueError(f"top_k must be at most the model's {num_classes} classes, got {top_k}")
    images = load_images(sources, size, progress=progress)
    if isinstance(model, Trainer):
        trainer = model
    else:
        device = next(iter(net.parameters()), torch.empty(0)).device
        trainer = Trainer(net, device=device, progress=False)
    proba = trainer.predict_proba(images)
    names = [str(s) if isinstance(s, (str, os.PathLike)) else f"<image {i}>"
             for i, s in enumerate(sources)]
    blank = [names[i] for i in (images.reshape(len(images), -1).amax(1) == 0).nonzero()
             .flatten().tolist()] if len(images) else []
    if blank:
        shown = ", ".join(blank[:3]) + (f" and {len(blank) - 3} more" if len(blank) > 3
                                        else "")
        warnings.warn(f"{shown}: nothing stands out from the background, so the converted "
                      f"image is all black and its prediction says nothing about it",
                      UserWarning, stacklevel=2)
    return top_classes(proba, names, classes=classes, top_k=top_k)


def top_classes(proba: torch.Tensor, sources: Sequence[str], *,
                classes: Sequence[str] | None = None, top_k: int = 1) -> list[dict[str, Any]]:
    """The most probable classes of each sample, as :func:`predict_images` reports them.

    Args:
        proba: ``(N, classes)`` probabilities, such as :meth:`fcnet.Trainer.predict_proba`
            returns.
        sources: What to call each sample (a file name, ``"rows.csv:3"``), ``N`` of them.
        classes: The class names, indexed by label; ``None`` names them ``"0"``, ``"1"``...
        top_k: How many classes to report per sample (at most the number of classes).

    Returns:
        One dict per sample: ``"source"``, the ``"label"``, ``"class"`` and
        ``"probability"`` of the most probable class, and ``"top"``, the ``top_k`` most
        probable classes as dicts with ``"label"``, ``"class"`` and ``"probability"``.
    """
    names = [str(c) for c in classes] if classes else [str(i) for i in range(proba.shape[1])]
    values, labels = proba.topk(min(top_k, proba.shape[1]), dim=1)
    results = []
    for i, source in enumerate(sources):
        top = [{"label": int(k), "class": names[int(k)], "probability": float(p)}
               for p, k in zip(values[i].tolist(), labels[i].tolist(), strict=True)]
        results.append({"source": source, **top[0], "top": top})
    return results
