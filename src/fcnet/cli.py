"""The ``fcnet`` command line: train, evaluate, predict, export and inspect models.

``fcnet`` (or ``python -m fcnet``) has one subcommand per task; ``fcnet COMMAND --help``
shows its options and examples::

    fcnet recipes                                   # the named training recipes
    fcnet train baseline                            # writes runs/baseline/
    fcnet info runs/baseline                        # spec, preprocessing, metrics
    fcnet evaluate runs/baseline                    # Fashion-MNIST test set
    fcnet evaluate runs/baseline --data photos/     # a folder of class sub-folders
    fcnet predict runs/baseline shoe.jpg shirt.png  # label and probability per file
    fcnet predict my_model/ new_rows.csv            # ... per row of a table
    fcnet export runs/baseline --format onnx        # runs/baseline/model.onnx

MODEL is a folder written by :func:`fcnet.save_model`, a run folder holding one in
``model/`` (as ``fcnet train`` writes), a model file in such a folder, or a training
checkpoint; :func:`fcnet.load_model` reads it. The class names come from ``--classes``,
else from the ``metrics.json`` of the run the model belongs to, else they are the class
indices.

A missing or broken model, image or data set is reported in one line naming the file,
with exit status 2, as are bad options; an interrupted command exits with status 130.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fcnet import __version__, load_model
from fcnet.data import FashionMNIST, ImageFolder
from fcnet.exceptions import FcnetError
from fcnet.export import INPUT_NAME, export_onnx, output_name
from fcnet.images import image_files, image_size, load_images, predict_images, top_classes
from fcnet.metrics import confusion_matrix, per_class_accuracy
from fcnet.models import MLP
from fcnet.recipes import CHECKPOINTS, RECIPES, run_recipe
from fcnet.trainer import Trainer

__all__ = ["main"]

PROG = "fcnet"

#: Show a progress bar (on a terminal) from this many image files on.
_PROGRESS_FROM = 20


class _Failure(Exception):
    """A failure reported in one line with exit status 2."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --------------------------------------------------------------------------- argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _natural_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


# --------------------------------------------------------------------------- models


@dataclass
class _Loaded:
    """A model read from the command line, with what its run folder says about it."""

    model: MLP
    path: Path  # as given
    metrics: dict[str, Any] | None  # the run's metrics.json, if there is one
    classes: list[str] | None  # class names, if known


def _model_folder(path: Path) -> Path | None:
    if path.is_dir():
        for folder in (path, path / "model"):
            if (folder / "model.json").is_file():
                return folder
        return None  # a checkpoint folder
    if path.name in ("model.json", "model.safetensors"):
        return path.parent
    return None


def _read_metrics(folder: Path | None) -> dict[str, Any] | None:
    """The ``metrics.json`` beside a model: in its folder or in the run folder above."""
    if folder is None:
        return None
    for candidate in (folder / "metrics.json", folder.parent / "metrics.json"):
        if candidate.is_file():
            try:
                metrics = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                _warn(f"ignoring '{candidate}': {_one_line(e)}")
                return None
            return metrics if isinstance(metrics, dict) else None
    return None


def _classes_in(metrics: dict[str, Any] | None, num_classes: int) -> list[str] | None:
    if metrics is None:
        return None
    report = metrics.get("classification_report")
    names = report.get("classes") if isinstance(report, dict) else None
    if names is None and isinstance(metrics.get("per_class_accuracy"), dict):
        names = list(metrics["per_class_accuracy"])
    if (isinstance(names, list) and len(names) == num_classes
            and all(isinstance(n, str) for n in names)):
        return names
    return None


def _parse_classes(text: str | None, num_classes: int) -> list[str] | None:
    if text is None:
        return None
    if text.lower() == "fashion-mnist":
        names = list(FashionMNIST.class_names)
    else:
        names = [name.strip() for name in text.split(",")]
    if len(names) != num_classes or not all(names):
        raise _Failure(f"--classes must name the model's {num_classes} classes, got "
                       f"{len(names)} names in {text!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _Failure(f"--classes must name each class once; {twice} appear more than once")
    return names


def _load(arg: str, device: str = "cpu", classes: str | None = None) -> _Loaded:
    path = Path(arg).expanduser()
    try:
        model = load_model(path, device=device)
    except (OSError, FcnetError) as e:
        raise _Failure(f"cannot load the model '{arg}': {_one_line(e)}") from None
    except ValueError as e:  # the device: unknown, or not available here
        raise _Failure(f"--device: {_one_line(e)}") from None
    metrics = _read_metrics(_model_folder(path))
    names = _parse_classes(classes, model.spec.num_classes)
    if names is None:
        names = _classes_in(metrics, model.spec.num_classes)
    return _Loaded(model, path, metrics, names)


def _image_size(loaded: _Loaded) -> tuple[int, int]:
    try:
        return image_size(loaded.model)
    except ValueError as e:
        raise _Failure(f"unsupported model '{loaded.path}': {_one_line(e)}") from None


def _progress(count: int) -> bool:
    return count >= _PROGRESS_FROM and sys.stderr.isatty()


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=2)


# --------------------------------------------------------------------------- commands


def _cmd_recipes(args: argparse.Namespace) -> int:
    width = max(len(name) for name in RECIPES)
    for name in sorted(RECIPES):
        print(f"{name:<{width}}  {RECIPES[name].description}")
    return 0


_OPTION_OF = {"limit_train": "--limit-train", "threads": "--threads", "seed": "--seed",
              "epochs": "--epochs"}


def _in_options(message: str) -> str:
    """``run_recipe``'s message in the command line's words: its options, not Python's."""
    message = re.sub(r"^(limit_train|threads|seed|epochs)(=| )",
                     lambda m: _OPTION_OF[m[1]] + " ", message)
    return message.replace("a recipe made with dataclasses.replace(..., clean_epochs=...)",
                           "a recipe of your own with fewer clean_epochs (see the recipes "
                           "guide)")


def _cmd_train(args: argparse.Namespace) -> int:
    out = args.output if args.output is not None else Path("runs") / args.recipe
    try:
        result = run_recipe(args.recipe, out_dir=out, seed=args.seed,
                            data_root=args.data_root, epochs=args.epochs,
                            limit_train=args.limit_train, threads=args.threads,
                            device=args.device, overwrite=args.overwrite, quiet=args.quiet,
                            checkpoints=args.checkpoints, resume=args.resume)
    except (ValueError, TypeError) as e:
        raise _Failure(_in_options(_one_line(e))) from None
    except KeyboardInterrupt:
        if args.checkpoints or args.resume:
            print(f"{PROG} train: the state is saved in {out / CHECKPOINTS}; go on with the "
                  f"same command and --resume", file=sys.stderr)
        raise
    if args.quiet:
        print(f"test_accuracy={result['test_accuracy']:.4f}")
    return 0


_FOLDER_SPLIT = re.compile(r"[/|]")


def _normalised(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _folder_labels(folder_classes: list[str], model_classes: list[str] | None,
                   num_outputs: int, root: Path) -> tuple[list[int], bool]:
    """The model's label of each sub-folder, and whether the names matched.

    A sub-folder matches a class by its name in lower case with only letters and digits
    kept, or by one of the parts of a class name split at ``/`` (``T-shirt/top``
    matches ``tshirt_top``, ``T-shirt`` and ``top``).
    """
    if model_classes is not None:
        lookup: dict[str, int] = {}
        for label, name in enumerate(model_classes):
            for alias in [name, *_FOLDER_SPLIT.split(name)]:
                lookup.setdefault(_normalised(alias), label)
        labels = [lookup.get(_normalised(name)) for name in folder_classes]
        if None not in labels and len(set(labels)) == len(labels):
            return [int(label) for label in labels], True
        missing = [n for n, label in zip(folder_classes, labels, strict=True) if label is None]
        _warn(f"the sub-folders of '{root}' do not all name the model's classes "
              f"(no match for {', '.join(repr(m) for m in missing[:3]) or 'some'}); "
              f"taking sorted sub-folder i as class i")
    if len(folder_classes) > num_outputs:
        raise _Failure(f"'{root}' has {len(folder_classes)} class sub-folders, the model "
                       f"only {num_outputs} classes")
    return list(range(len(folder_classes))), False


def _evaluation_data(args: argparse.Namespace, loaded: _Loaded
                     ) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """Images, the model's labels for them, the class names to show, and a description."""
    spec = loaded.model.spec
    if args.label is not None and not args.data.lower().endswith(".csv"):
        raise _Failure("--label names the label column of a CSV file given as --data")
    if args.data.lower().endswith(".csv"):
        path = Path(args.data).expanduser()
        if args.label is None:
            raise _Failure("--data is a CSV file: name its label column with --label COLUMN")
        inputs, _, cells = _read_table(path, spec, _dropped(args), args.label)
        labels = _table_labels(cells, path, args.label, loaded.classes, spec.num_classes)
        names = loaded.classes or [str(i) for i in range(spec.num_classes)]
        return inputs, labels, names, f"table {path}"
    if args.drop:
        raise _Failure("--drop is for CSV files")
    if args.data.lower() == "fashion-mnist":
        if spec.in_features != 784 or spec.num_classes < 10:
            raise _Failure(f"unsupported model '{loaded.path}': it takes {spec.in_features} "
                           f"features and has {spec.num_classes} classes; Fashion-MNIST "
                           f"needs 784 features and 10 classes")
        test = FashionMNIST(split="test", root=args.data_root, download=args.data_root is None)
        names = loaded.classes or [*test.classes, *map(str, range(10, spec.num_classes))]
        return test.images, test.labels, names, f"Fashion-MNIST test set ({test.folder})"
    root = Path(args.data).expanduser()
    if not root.is_dir():
        raise _Failure(f"--data must be 'fashion-mnist' or a folder of class sub-folders; "
                       f"'{args.data}' is not a folder")
    size = _image_size(loaded)
    folder = ImageFolder(root, size=size)  # finds the classes and files, checks they decode
    labels_of, _ = _folder_labels(folder.classes, loaded.classes, spec.num_classes, root)
    images = load_images(folder.files, size, progress=_progress(len(folder.files)))
    labels = torch.tensor(labels_of, dtype=torch.int64)[folder.labels]
    names = loaded.classes or [*folder.classes,
                               *map(str, range(len(folder.classes), spec.num_classes))]
    return images, labels, names, f"image folder {root}"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    loaded = _load(args.model, args.device, args.classes)
    images, labels, names, described = _evaluation_data(args, loaded)
    n = loaded.model.spec.num_classes
    trainer = Trainer(loaded.model, device=args.device, progress=False)
    result = trainer.evaluate((images, labels), return_outputs=True)
    pred = result["probabilities"].argmax(1)
    cm = confusion_matrix(labels, pred, num_classes=n)
    per_class = [None if math.isnan(v) else v
                 for v in per_class_accuracy(labels, pred, num_classes=n).tolist()]
    support = cm.sum(1).tolist()
    if args.json:
        print(json.dumps({
            "model": str(loaded.path), "data": described, "n": len(labels),
            "accuracy": result["accuracy"], "loss": result["loss"], "classes": names,
            "per_class_accuracy": dict(zip(names, per_class, strict=True)),
            "confusion_matrix": cm.tolist(),
        }, indent=2))
        return 0
    print(f"model: {loaded.path}")
    unit = "rows" if described.startswith("table ") else "images"
    print(f"data: {described}, {len(labels):,} {unit}")
    print(f"accuracy: {result['accuracy']:.4f}  loss: {result['loss']:.4f}")
    width = max(len(name) for name in names)
    print("per-class accuracy:")
    for i, (name, acc) in enumerate(zip(names, per_class, strict=True)):
        shown = "   -  " if acc is None else f"{acc:.4f}"
        print(f"  {i:>2} {name:<{width}}  {shown}  ({support[i]} {unit})")
    print("confusion matrix (rows: true class, columns: predicted class):")
    cell = max(4, len(str(int(cm.max()))) + 1)
    print("    " + "".join(f"{j:>{cell}}" for j in range(n)))
    for i, row in enumerate(cm.tolist()):
        print(f"  {i:>2}" + "".join(f"{v:>{cell}}" for v in row))
    return 0


def _image_paths(arguments: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for arg in arguments:
        path = Path(arg).expanduser()
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise _Failure(f"the folder '{arg}' holds no image files")
            paths += found
        else:
            paths.append(path)
    return paths


def _dropped(args: argparse.Namespace) -> list[str]:
    """The column names of ``--drop``."""
    return [d.strip() for d in (args.drop or "").split(",") if d.strip()]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_table(path: Path, spec: Any, drop: list[str], label: str | None = None
                ) -> tuple[torch.Tensor, list[str], list[str] | None]:
    """The rows of a CSV file as model inputs, the sources ``FILE:ROW`` of the rows, and
    the cells of the ``label`` column (``None`` without one).

    A header (a first row that is not all numbers) names the columns: a model trained on
    a DataFrame takes its columns by name, any others are left out; otherwise every
    column but the ``drop`` and ``label`` ones is a feature, in the file's order. Whole
    numbers become int64 (pixels for a model trained on uint8 images), others float32.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise _Failure(f"cannot read the CSV file '{path}': {_one_line(e)}") from None
    if not rows:
        raise _Failure(f"the CSV file '{path}' has no rows")
    if len(rows[0]) == 1 and spec.in_features > 1:
        other = next((d for d in (";", "\t", "|") if d in rows[0][0]), None)
        if other is not None:
            raise _Failure(f"'{path}' has one column: fcnet reads comma-separated files, "
                           f"and its first line is separated by {other!r}; write it with "
                           f"commas (pandas: df.to_csv(path, index=False))")
    # A trailing comma on every line makes an empty last column: not a feature.
    if all(r and not r[-1].strip() for r in rows) and len(rows[0]) > 1:
        rows = [r[:-1] for r in rows]
    header = None if all(_is_number(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    first = [c.strip() for c in rows[0]]
    if header is None and len(first) >= 4 and len(rows) > 1 and \
            first == [str(i) for i in range(len(first))]:
        # pandas writes the column names 0, 1, 2, ... of a frame made from an array.
        header = first
        _warn(f"'{path}': its first row, {first[0]},{first[1]},...,{first[-1]}, is taken "
              f"for the header (the column names pandas writes for a frame made from an "
              f"array), not for a sample")
    body = rows[1:] if header is not None else rows
    if not body:
        raise _Failure(f"the CSV file '{path}' has a header and no rows")
    width = len(rows[0])
    names = header or [str(i + 1) for i in range(width)]
    if drop and header is None:
        raise _Failure(f"--drop names columns, but '{path}' has no header row")
    unknown = [d for d in drop if d not in names]
    if unknown:
        raise _Failure(f"--drop: '{path}' has no columns {unknown}; it has {names[:10]}")
    if label is not None:
        if header is None or label not in names:
            raise _Failure(f"--label: '{path}' has no column {label!r}"
                           + ("" if header is None else f"; it has {names[:10]}"))
        drop = [*drop, label]
    wanted = spec.feature_names
    if wanted is not None:
        if header is None:
            raise _Failure(f"the model was trained on the columns {list(wanted[:5])}...; "
                           f"'{path}' needs a header row naming them")
        missing = [n for n in wanted if n not in names]
        if missing:
            raise _Failure(f"'{path}' lacks the model's columns {missing[:5]}"
                           f"{' and more' if len(missing) > 5 else ''}")
        columns = [names.index(n) for n in wanted]
    else:
        columns = [i for i, n in enumerate(names) if n not in drop]
        if len(columns) != spec.in_features:
            raise _Failure(f"'{path}' has {len(columns)} feature columns, the model takes "
                           f"{spec.in_features}; leave out the others with --drop NAMES "
                           f"(a label or id column, for example)")
    values = []
    for number, row in enumerate(body, start=1):
        if len(row) != width:
            raise _Failure(f"'{path}' row {number} has {len(row)} cells, the first row "
                           f"{width}")
        try:
            values.append([float(row[i]) for i in columns])
        except ValueError:
            bad = next(i for i in columns if not _is_number(row[i]))
            cell = row[bad].strip()
            raise _Failure(f"'{path}' row {number}, column {names[bad]!r}: "
                           + (f"{cell!r} is not a number" if cell else "the cell is empty")
                           ) from None
    table = torch.tensor(values, dtype=torch.float64)
    if not bool(torch.isfinite(table).all()):
        raise _Failure(f"'{path}' holds NaN or infinite values")
    whole = bool((table == table.round()).all()) and bool(table.abs().max() < 2**53)
    inputs = table.to(torch.int64) if whole else table.to(torch.float32)
    at = None if label is None else names.index(label)
    labels = None if at is None else [row[at].strip() for row in body]
    return inputs, [f"{path}:{i}" for i in range(1, len(body) + 1)], labels


def _table_labels(cells: list[str], path: Path, column: str, classes: list[str] | None,
                  num_classes: int) -> torch.Tensor:
    """A label column's cells as class indices: indices ``0..K-1``, or the class names."""
    if all(_is_number(c) and float(c).is_integer() for c in cells):
        labels = torch.tensor([int(float(c)) for c in cells], dtype=torch.int64)
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise _Failure(f"'{path}' column {column!r} holds {int(bad[0])}, not a class "
                           f"index of the model's {num_classes} classes")
        return labels
    if not classes:
        raise _Failure(f"'{path}' column {column!r} holds names (such as {cells[0]!r}) but "
                       f"the model's class names are not known; pass --classes")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({c for c in cells if c not in index})
    if unknown:
        raise _Failure(f"'{path}' column {column!r} holds {unknown[:3]}, which are not the "
                       f"model's class names {classes[:10]}")
    return torch.tensor([index[c] for c in cells], dtype=torch.int64)


def _predict_tables(loaded: _Loaded, paths: list[Path], args: argparse.Namespace
                    ) -> list[dict[str, Any]]:
    parts = [_read_table(p, loaded.model.spec, _dropped(args))[:2] for p in paths]
    trainer = Trainer(loaded.model, device=args.device, progress=False)
    results = []
    for path, (inputs, sources) in zip(paths, parts, strict=True):
        # Each file by its own rule: whole numbers in one, fractions in another.
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                proba = trainer.predict_proba(inputs)
        except ValueError as e:
            raise _Failure(f"'{path}': {_one_line(e)}") from None
        for w in caught:
            _warn(f"'{path}': {w.message}")
        results += top_classes(proba, sources, classes=loaded.classes, top_k=args.top_k)
    return results


def _cmd_predict(args: argparse.Namespace) -> int:
    loaded = _load(args.model, args.device, args.classes)
    if args.top_k > loaded.model.spec.num_classes:
        raise _Failure(f"--top-k must be at most the model's {loaded.model.spec.num_classes} "
                       f"classes, got {args.top_k}")
    tables = [a for a in args.images if a.lower().endswith(".csv")]
    if tables and len(tables) != len(args.images):
        raise _Failure("give image files or CSV files, not both in one call")
    if tables:
        results = _predict_tables(loaded, [Path(t).expanduser() for t in tables], args)
    else:
        if args.drop:
            raise _Failure("--drop is for CSV files")
        size = _image_size(loaded)
        paths = _image_paths(args.images)
        results = predict_images(loaded.model, paths, classes=loaded.classes,
                                 top_k=args.top_k, size=size, progress=_progress(len(paths)))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"{r['source']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}"
                                            for t in r["top"]))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    loaded = _load(args.model, "cpu", args.classes)
    if args.output is not None:
        out = Path(args.output).expanduser()
    else:
        out = (loaded.path if loaded.path.is_dir() else loaded.path.parent) / "model.onnx"
    if out.is_dir():
        raise _Failure(f"--output '{out}' is a folder; name the .onnx file to write")
    if out.exists() and not args.overwrite:
        raise _Failure(f"'{out}' exists; choose another --output or pass --overwrite")
    try:
        export_onnx(loaded.model, out, opset=args.opset, classes=loaded.classes)
    except ImportError as e:
        raise _Failure(_one_line(e)) from None
    spec = loaded.model.spec
    scale = ("raw pixels 0..255" if spec.pixels else
             "values as in training" + (f" ({spec.input_range[0]:g}..{spec.input_range[1]:g})"
                                        if spec.input_range else ""))
    print(f"wrote {out}: input '{INPUT_NAME}' float32 (N, {spec.in_features}), {scale}; "
          f"output '{output_name(loaded.model)}' float32 (N, {spec.num_classes})")
    return 0


def _preprocessing(model: MLP) -> dict[str, Any]:
    spec = model.spec
    return {
        "input_norm": None if spec.input_norm is None else spec.to_dict()["input_norm"],
        "input_dtype": spec.input_dtype,
        "input_range": None if spec.input_range is None else list(spec.input_range),
        "feature_names": None if spec.feature_names is None else list(spec.feature_names),
        "pixels": spec.pixels,
    }


_METRIC_KEYS = ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "selected_epoch",
                "epochs_run", "seed", "train_samples", "val_samples", "test_samples",
                "limit_train", "device", "torch_version", "created")


def _cmd_info(args: argparse.Namespace) -> int:
    loaded = _load(args.model)
    model, spec = loaded.model, loaded.model.spec
    metrics = loaded.metrics or {}
    recipe = metrics.get("recipe")
    training = {k: metrics[k] for k in _METRIC_KEYS if k in metrics}
    if isinstance(recipe, dict) and "name" in recipe:
        training = {"recipe": recipe["name"], **training}
    if args.json:
        print(json.dumps({
            "model": str(loaded.path), "spec": spec.to_dict(),
            "parameters": model.num_parameters, "preprocessing": _preprocessing(model),
            "classes": loaded.classes, "metrics": training or None,
        }, indent=2))
        return 0
    print(f"model: {loaded.path}")
    print(f"layers: {'-'.join(map(str, spec.sizes))}, activation {spec.activation}, "
          f"norm {spec.norm}, output {spec.output}")
    print(f"dropout: {list(spec.dropout)} (input {spec.input_dropout:g})"
          + (", FastDropout" if spec.fast_dropout else ""))
    print(f"parameters: {model.num_parameters:,}")
    scaling = ("pixels / 255 (uint8 and other integer input)" if spec.pixels
               else "uint8 pixels / 255, other inputs as they are")
    def value(v: float | tuple[float, ...]) -> str:
        return f"{v:g}" if isinstance(v, float) else f"per-feature {min(v):g}..{max(v):g}"

    norm = ("" if spec.input_norm is None
            else f", then (x - {value(spec.input_norm[0])}) / {value(spec.input_norm[1])}")
    print(f"preprocessing: {scaling}{norm}")
    if spec.input_dtype is None:
        print("trained on: nothing recorded (the model has not been trained)")
    else:
        lo, hi = spec.input_range if spec.input_range else (math.nan, math.nan)
        print(f"trained on: {spec.input_dtype} inputs, values in [{lo:g}, {hi:g}] after "
              f"the pixel scaling")
    if spec.feature_names:
        names = spec.feature_names
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        print(f"columns: {', '.join(names[:8])}{more}")
    if loaded.classes:
        print(f"classes: {', '.join(loaded.classes)}")
    if training:
        print("training: " + ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in training.items()))
    return 0


# --------------------------------------------------------------------------- the parser


def _subparser(sub: Any, name: str, help_text: str, description: str,
               examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=description,
                          epilog="examples:\n" + examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


_MODEL_HELP = ("a model folder (save_model), a run folder holding one in model/, a model "
               "file, or a training checkpoint")
_CLASSES_HELP = ("class names, comma-separated, or 'fashion-mnist' (default: the run's "
                 "metrics.json, else the class indices)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fully-connected (MLP) classifiers: train a recipe, evaluate, predict "
        "image files, export to ONNX, inspect a model.",
        epilog="examples:\n"
        "  fcnet train baseline\n"
        "  fcnet predict runs/baseline shoe.jpg\n"
        "  fcnet export runs/baseline --format onnx\n\n"
        "'fcnet COMMAND --help' shows the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _subparser(sub, "recipes", "list the training recipes",
                   "List the named training recipes, one line each.",
                   "  fcnet recipes\n")
    p.set_defaults(run=_cmd_recipes)

    p = _subparser(
        sub, "train", "train a named recipe on Fashion-MNIST",
        "Train a named recipe (see 'fcnet recipes') on Fashion-MNIST, test it once, and "
        "write the model, history.json, metrics.json and plots into the output folder.",
        "  fcnet train baseline                      # writes runs/baseline/\n"
        "  fcnet train deep --seed 1 --output runs/deep-s1\n"
        "  fcnet train baseline --epochs 2 --limit-train 5000 --output /tmp/quick\n")
    p.add_argument("recipe", choices=sorted(RECIPES), metavar="RECIPE",
                   help=f"one of: {', '.join(sorted(RECIPES))}")
    p.add_argument("--epochs", type=_positive_int, metavar="N",
                   help="train N epochs instead of the recipe's")
    p.add_argument("--seed", type=_natural_int, default=0, metavar="S",
                   help="seed of the split, the weights and the batch order (default 0)")
    p.add_argument("--device", default="auto", metavar="D",
                   help="auto, cpu, cuda, cuda:1, mps, ... (default auto)")
    p.add_argument("--output", type=Path, metavar="DIR",
                   help="output folder (default runs/RECIPE); must be new or empty")
    p.add_argument("--threads", type=_positive_int, metavar="T",
                   help="CPU threads (default: the recipe's own, else 1)")
    p.add_argument("--limit-train", type=_positive_int, metavar="N",
                   help="use N of the 60,000 training images (quick checks; at least 10)")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="folder holding the Fashion-MNIST files (default: search the usual "
                   "places, else download)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run files in a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="print only the test accuracy")
    p.add_argument("--checkpoints", action="store_true",
                   help="save the training state after every epoch (and at Ctrl-C) into "
                        "DIR/checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="go on from the last checkpoint in DIR/checkpoints, with the same "
                        "recipe and options")
    p.set_defaults(run=_cmd_train)

    p = _subparser(
        sub, "evaluate", "test accuracy, per-class accuracy, confusion matrix",
        "Evaluate a model on the Fashion-MNIST test set or on a folder of images with one "
        "sub-folder per class (converted as 'fcnet predict' converts files). Sub-folders "
        "are matched to the model's class names when those are known (tshirt_top matches "
        "T-shirt/top), else sorted sub-folder i is class i.",
        "  fcnet evaluate runs/baseline\n"
        "  fcnet evaluate runs/baseline --data photos/ --json\n"
        "  fcnet evaluate my_model/ --data-root ~/data/fashion-mnist\n"
        "  fcnet evaluate table_model/ --data test.csv --label outcome\n"
        "  fcnet evaluate runs/baseline --data fashion-mnist_test.csv --label label\n")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--data", default="fashion-mnist", metavar="fashion-mnist|DIR|FILE.csv",
                   help="the Fashion-MNIST test set (default), an image folder, or a CSV "
                   "file read as 'fcnet predict' reads tables")
    p.add_argument("--label", metavar="COLUMN",
                   help="a CSV file's label column: class indices or the class names")
    p.add_argument("--drop", metavar="NAMES",
                   help="CSV columns to leave out, comma-separated (by their header names)")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="folder holding the Fashion-MNIST files")
    p.add_argument("--classes", metavar="NAMES", help=_CLASSES_HELP)
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, ... (default cpu)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=_cmd_evaluate)

    p = _subparser(
        sub, "predict", "classify image files or the rows of CSV files",
        "Classify image files (PNG, JPEG or any format Pillow reads, any size and mode). "
        "Each is converted as the Fashion-MNIST images were made: background trimmed, "
        "longest side resized to 28 pixels, centred on a 28x28 canvas, grayscale, and "
        "negated when the background is light, so a photo of a dark object on white "
        "paper looks like a data-set image. A folder stands for every image in it. "
        "Files ending in .csv are tables instead, one sample per row: a model trained on "
        "a DataFrame takes its columns by name from the header row (other columns are "
        "left out); for other models every column but the --drop ones is a feature, in "
        "order. Whole numbers are read as integers (raw pixels for a model trained on "
        "uint8 images), others as floats.",
        "  fcnet predict runs/baseline shoe.jpg\n"
        "  fcnet predict runs/baseline photos/ --top-k 3\n"
        "  fcnet predict my_model/ shirt.png --classes fashion-mnist --json\n"
        "  fcnet predict table_model/ new_rows.csv\n"
        "  fcnet predict runs/baseline fashion-mnist_test.csv --drop label\n")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("images", nargs="+", metavar="FILE",
                   help="image files or folders, or CSV files")
    p.add_argument("--drop", metavar="NAMES",
                   help="CSV columns to leave out, comma-separated (by their header names)")
    p.add_argument("--top-k", type=_positive_int, default=1, metavar="K",
                   help="show the K most probable classes (default 1)")
    p.add_argument("--classes", metavar="NAMES", help=_CLASSES_HELP)
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, ... (default cpu)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=_cmd_predict)

    p = _subparser(
        sub, "export", "export a model to ONNX",
        "Export a model as an ONNX graph that includes its preprocessing. Input 'input': "
        "float32 (N, features), N dynamic; for a model trained on uint8 images the raw "
        "pixel values 0..255 as floats (the graph divides by 255), otherwise values as in "
        "training. Output 'logits' (or 'log_probabilities' for a log_softmax model): "
        "float32 (N, classes). Needs the onnx package (pip install 'fcnet[onnx]').",
        "  fcnet export runs/baseline                # runs/baseline/model.onnx\n"
        "  fcnet export runs/baseline --format onnx --output deploy/fmnist.onnx\n")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--format", choices=("onnx",), default="onnx",
                   help="the file format (default onnx)")
    p.add_argument("--output", metavar="PATH",
                   help="file to write (default model.onnx in MODEL's folder)")
    p.add_argument("--opset", type=_positive_int, metavar="N",
                   help="ONNX opset version (default: the exporter's)")
    p.add_argument("--classes", metavar="NAMES",
                   help=_CLASSES_HELP + "; stored in the graph's metadata")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(run=_cmd_export)

    p = _subparser(
        sub, "info", "show a model's spec, preprocessing and metrics",
        "Show a model's architecture, parameter count, preprocessing (input "
        "normalisation, the input dtype and value range it was trained on) and, when a "
        "metrics.json is beside it, the training metrics.",
        "  fcnet info runs/baseline\n"
        "  fcnet info runs/baseline/model/model.json --json\n")
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    p.set_defaults(run=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fcnet`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 for bad options or a missing or broken input
        (reported in one line on standard error), 130 when interrupted.
    """
    args = _parser().parse_args(argv)
    where = f"{PROG} {args.command}"

    def show(message: Any, category: type[Warning], *rest: Any, **kwargs: Any) -> None:
        print(f"{where}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show  # one line per warning, no source line
        try:
            return args.run(args)
        except BrokenPipeError:  # the reader went away (fcnet ... | head): not an error here
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:
            print(f"{where}: interrupted", file=sys.stderr)
            return 130
        except (_Failure, FcnetError, OSError, ValueError) as e:
            print(f"{where}: error: {_one_line(e)}", file=sys.stderr)
            return 2
