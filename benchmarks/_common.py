"""Shared pieces of the benchmarks: clocks, machine facts, tables, JSON results, data.

It also holds a faithful re-creation of the reference notebook's pipeline (torchvision
``FashionMNIST`` with per-sample PIL transforms, ``DataLoader`` with
``SubsetRandomSampler``, an ``OrderedDict`` network, NLLLoss, Adam), so that
``bench_vs_notebook``, ``bench_time_to_accuracy`` and ``bench_memory`` compare fcnet with
the same baseline.

The benchmarks run on a shared machine, so every figure is recorded with the load average
(``os.getloadavg()``) and with both wall-clock and process CPU seconds: with one thread,
CPU seconds are a steadier estimate of what an idle machine would take.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Where Debian's dataset-fashion-mnist package installs the four .gz IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: The reference notebook's test accuracy of the baseline recipe.
NOTEBOOK_TEST_ACCURACY = 0.8742


# ---------------------------------------------------------------------- clocks and load
def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 2 decimals."""
    return [round(v, 2) for v in os.getloadavg()]


@dataclass
class Clock:
    """Wall-clock and process CPU seconds of a ``with`` block.

    CPU seconds count every thread of this process, so with ``n`` busy threads they can
    exceed the wall time; with one thread they show the work done regardless of how
    much of a core the scheduler gave us.
    """

    wall: float = 0.0
    cpu: float = 0.0
    load: list[float] = field(default_factory=list)

    def __enter__(self) -> Clock:
        self._w0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w0
        self.cpu = time.process_time() - self._c0
        self.load = load_average()


def summarize(values: Sequence[float]) -> dict[str, float]:
    """``{"min", "median", "max", "n"}`` of a non-empty sequence."""
    if not values:
        raise ValueError("values must not be empty")
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
    }


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (``None`` keeps it) and return the count in use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


# ---------------------------------------------------------------------- machine facts
def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if not line.strip():
                break  # the first processor is enough
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    return info


def machine_info() -> dict[str, Any]:
    """Facts that decide CPU speed: model, cores, vector extensions, torch and threads."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        import torchvision

        tv_version = torchvision.__version__
    except ImportError:
        tv_version = None
    return {
        "cpu_model": info.get("model name", platform.processor() or "unknown"),
        # A model name such as "AMD EPYC" covers several generations; these tell them apart.
        "cpu_vendor": info.get("vendor_id"),
        "cpu_family": info.get("cpu family"),
        "cpu_model_number": info.get("model"),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_flags": {name: name in flags for name in wanted},
        "torch": torch.__version__,
        "torchvision": tv_version,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------- output
def base_parser(
    description: str, threads: bool = True, default_threads: int | None = 1
) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has.

    Args:
        description: The ``--help`` description.
        threads: Add ``--threads`` (benchmarks that vary the thread count themselves
            leave it out).
        default_threads: ``--threads`` when it is not given; ``None`` keeps torch's
            default (one thread per usable core).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    if threads:
        parser.add_argument(
            "--threads", type=int, default=default_threads,
            help=f"torch intra-op threads (default: {default_threads or 'one per core'}); "
            "on a machine shared with other work, one thread is faster and steadier for "
            "these small models",
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and weights")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="JSON file to write (default benchmarks/results/NAME.json, NAME-quick.json "
        "with --quick)",
    )
    return parser


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table; ``columns`` holds ``(key, header, format spec)`` triples."""
    header = [h for _, h, _ in columns]
    body = [[_fmt(row.get(k), spec) for k, _, spec in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]],
                title: str | None = None) -> None:
    """Print :func:`format_table`, with an optional title line."""
    if title:
        print(f"\n{title}")
    print(format_table(rows, columns), flush=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


def code_version() -> dict[str, Any]:
    """fcnet's version and the git commit of this checkout (``None`` outside git), and
    whether the working tree had uncommitted changes when the figures were written."""
    import fcnet

    root = Path(__file__).resolve().parent.parent
    out: dict[str, Any] = {"fcnet": fcnet.__version__, "git_commit": None, "git_dirty": None}
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, check=True,
                                timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return out
    out["git_commit"], out["git_dirty"] = head, bool(status.strip())
    return out


def write_result(name: str, results: dict[str, Any], *, quick: bool = False,
                 out: Path | None = None, started: float | None = None) -> Path:
    """Write ``results`` with the command line, machine facts and load to a JSON file.

    Args:
        name: Benchmark name: ``benchmarks/results/NAME.json`` (``NAME-quick.json`` for
            quick runs, so a smoke run never overwrites a full one).
        results: The benchmark's own figures (JSON-ready, tuples become lists).
        quick: Whether this was a ``--quick`` run.
        out: Another file to write instead.
        started: ``time.time()`` at the start, to record the duration.

    Returns:
        The path written (atomically: a temporary file renamed into place).
    """
    path = out or RESULTS_DIR / (f"{name}-quick.json" if quick else f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    payload = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": quick,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "duration_seconds": None if started is None else round(now - started, 1),
        "load_average_at_end": load_average(),
        "machine": machine_info(),
        "code": code_version(),
        "results": results,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    os.replace(tmp, path)
    print(f"\nwrote {path}")
    return path


# ---------------------------------------------------------------------- fcnet side
def fcnet_data(source: Path | None = None, seed: int = 0) -> tuple[Any, Any, Any]:
    """``(train, val, test)`` as fcnet data sets: the 48,000 / 12,000 split and the test set.

    Args:
        source: ``None`` for ``fcnet.data.FashionMNIST`` (found and verified as usual), or
            a folder of the four ``.gz`` IDX files of any size (tests use tiny fakes).
        seed: Seed of the stratified 80/20 split.
    """
    from fcnet.data import ArrayDataset, FashionMNIST, read_idx, train_val_split

    if source is None:
        full, test = FashionMNIST(split="train"), FashionMNIST(split="test")
    else:
        arrays = [read_idx(Path(source) / f"{n}.gz") for n in IDX_NAMES]
        full = ArrayDataset(arrays[0], arrays[1].astype(np.int64))
        test = ArrayDataset(arrays[2], arrays[3].astype(np.int64))
    train, val = train_val_split(full, val_fraction=0.2, seed=seed)
    return train, val, test


def fcnet_baseline_model(output: str = "log_softmax") -> nn.Module:
    """Recipe ``baseline``'s network built by fcnet: the network the notebook trained.

    784-128-64-10, ReLU, dropout 0.25 after the first hidden layer only (the notebook's
    ``OrderedDict`` reused the key ``'drop1'``), inputs mapped to ``[-1, 1]``.

    Args:
        output: ``"log_softmax"`` (the notebook's head, for NLLLoss) or ``"logits"`` (the
            same network with the LogSoftmax left to the cross-entropy loss).
    """
    from fcnet.recipes import RECIPES

    return dataclasses.replace(RECIPES["baseline"].model, output=output).build()


# ---------------------------------------------------------------------- notebook side
@contextlib.contextmanager
def torchvision_root(source: Path = DEBIAN_FASHION_MNIST) -> Iterator[Path]:
    """A temporary folder laid out as ``torchvision.datasets.FashionMNIST`` expects.

    torchvision reads the uncompressed files from ``ROOT/FashionMNIST/raw/``; with
    ``download=False`` it only checks that they exist. The ``.gz`` files of ``source``
    are decompressed there (about 55 MB for the real data) and removed afterwards.
    """
    missing = [n for n in IDX_NAMES if not (Path(source) / f"{n}.gz").is_file()]
    if missing:
        raise FileNotFoundError(
            f"source must hold the four Fashion-MNIST .gz IDX files; {source} lacks "
            f"{', '.join(n + '.gz' for n in missing)}"
        )
    root = Path(tempfile.mkdtemp(prefix="fcnet-bench-tv-"))
    try:
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for n in IDX_NAMES:
            with gzip.open(Path(source) / f"{n}.gz", "rb") as src, open(raw / n, "wb") as dst:
                shutil.copyfileobj(src, dst)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class NotebookPipeline:
    """The notebook's data pipeline: data sets and the three loaders (batch 64)."""

    trainset: Any
    testset: Any
    train_loader: Any
    valid_loader: Any
    test_loader: Any


def notebook_pipeline(root: Path, seed: int = 0, batch_size: int = 64,
                      limit: int | None = None) -> NotebookPipeline:
    """Build the notebook's pipeline on a folder from :func:`torchvision_root`.

    As in the notebook: ``transforms.Compose([ToTensor(), Normalize((0.5,), (0.5,))])`` on
    every PIL image, the 60,000 training indices shuffled with ``np.random.shuffle`` and
    split 80/20 (first 20% for validation) into two ``SubsetRandomSampler``, and
    ``DataLoader(batch_size=64)`` without worker processes. ``limit`` keeps only the first
    ``limit`` shuffled indices (and test images), for smoke runs.
    """
    from torch.utils.data import DataLoader, Subset, SubsetRandomSampler
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    trainset = datasets.FashionMNIST(str(root), download=False, train=True, transform=transform)
    testset = datasets.FashionMNIST(str(root), download=False, train=False, transform=transform)
    indices = list(range(len(trainset)))
    np.random.seed(seed)
    np.random.shuffle(indices)
    if limit is not None:
        indices = indices[:limit]
        testset = Subset(testset, range(min(limit, len(testset))))
    split = int(np.floor(0.2 * len(indices)))
    train_idx, valid_idx = indices[split:], indices[:split]
    generator = torch.Generator().manual_seed(seed)
    return NotebookPipeline(
        trainset=trainset,
        testset=testset,
        train_loader=DataLoader(trainset, batch_size=batch_size,
                                sampler=SubsetRandomSampler(train_idx, generator=generator)),
        valid_loader=DataLoader(trainset, batch_size=batch_size,
                                sampler=SubsetRandomSampler(valid_idx, generator=generator)),
        test_loader=DataLoader(testset, batch_size=batch_size, shuffle=True),
    )


def notebook_model(as_run: bool = True) -> nn.Sequential:
    """The notebook's baseline network, an ``OrderedDict`` ``nn.Sequential``.

    Args:
        as_run: Reproduce the notebook's duplicated ``'drop1'`` key, which left the
            trained network with one dropout layer (after the first hidden layer).
            ``False`` gives the intended network with two dropout layers.
    """
    second = "drop1" if as_run else "drop2"
    layers = [
        ("fc1", nn.Linear(784, 128)), ("relu1", nn.ReLU()), ("drop1", nn.Dropout(0.25)),
        ("fc2", nn.Linear(128, 64)), ("relu2", nn.ReLU()), (second, nn.Dropout(0.25)),
        ("output", nn.Linear(64, 10)), ("logsoftmax", nn.LogSoftmax(dim=1)),
    ]  # fmt: skip
    return nn.Sequential(OrderedDict(layers))


def notebook_train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
                         criterion: Callable[..., torch.Tensor], loader: Any) -> float:
    """One training epoch as the notebook wrote it; returns the mean batch loss."""
    model.train()
    running_loss = 0.0
    batches = 0
    for images, labels in loader:
        images = images.view(images.shape[0], -1)
        optimizer.zero_grad()
        log_ps = model(images)
        loss = criterion(log_ps, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        batches += 1
    return running_loss / max(batches, 1)


def notebook_evaluate(model: nn.Module, criterion: Callable[..., torch.Tensor],
                      loader: Any) -> tuple[float, float]:
    """``(mean loss, accuracy)`` over a loader, as the notebook's validation loop does.

    The notebook averaged per-batch accuracies; here the accuracy is exact (correct /
    samples), which is what the benchmarks compare against 87.42%.
    """
    model.eval()
    loss_sum, correct, seen, batches = 0.0, 0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            log_ps = model(images.view(images.shape[0], -1))
            loss_sum += criterion(log_ps, labels).item()
            top_class = torch.exp(log_ps).topk(1, dim=1)[1]
            correct += int((top_class == labels.view(*top_class.shape)).sum())
            seen += len(labels)
            batches += 1
    model.train()
    return loss_sum / max(batches, 1), correct / max(seen, 1)
