"""Benchmark: loading Fashion-MNIST, first from the .gz files, then from the decoded cache.

Measures, with a fresh temporary cache folder (the real user cache is never touched):

* first load of the 60,000 training images and labels from the ``.gz`` files:
  decompression, strict IDX decoding, sha256 of the content, writing the decoded cache
  (target: under 1.5 s on a 2-core machine);
* reload from the decoded cache, digest check included (target: under 0.2 s);
* for reference, the time per batch of :class:`~fcnet.data.DeviceLoader` (batch size
  64, from the 48,000-image training split) on the CPU, with and without augmentation,
  with torch's default number of threads and with one thread.

The ``.gz`` files are read once before timing, so the numbers are for a warm OS page
cache (they measure fcnet, not the disk). Prints a table and writes
``benchmarks/results/data_load.json``.

Usage::

    .venv/bin/python benchmarks/bench_data_load.py [--root DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fcnet.data import (
    Compose,
    DeviceLoader,
    FashionMNIST,
    RandomErasing,
    RandomFlip,
    RandomShift,
    train_val_split,
)

RESULTS = Path(__file__).resolve().parent / "results" / "data_load.json"
#: Batches timed per loader measurement (an epoch of 48,000 at 64 is 750).
LOADER_BATCHES = 150
TARGETS = {"first_load_train": 1.5, "cached_reload_train": 0.2}


def _time(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on every platform
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="folder with the Fashion-MNIST files")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)

    os.environ.pop("FCNET_DATA_DIR", None)
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="fcnet-bench-") as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        try:
            probe = FashionMNIST("train", root=args.root, download=False, cache=False)
        except FileNotFoundError as exc:
            print(exc, file=sys.stderr)
            return 1
        for path in probe.files:  # warm the OS page cache: time fcnet, not the disk
            path.read_bytes()
        rows = []

        def fresh_first_load() -> FashionMNIST:
            # A new empty cache folder each time, so every run is a true first load.
            os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(dir=tmp)
            ds = FashionMNIST("train", root=args.root, download=False)
            assert not ds.from_cache
            return ds

        rows.append(("first_load_train", _time(fresh_first_load, args.repeat)))
        cached = FashionMNIST("train", root=args.root, download=False)
        assert cached.from_cache

        def reload() -> None:
            assert FashionMNIST("train", root=args.root, download=False).from_cache

        rows.append(("cached_reload_train", _time(reload, max(args.repeat, 5))))
        rows.append(
            (
                "decode_only_train (no checksum, no cache)",
                _time(
                    lambda: FashionMNIST(
                        "train", root=args.root, download=False, verify=False, cache=False
                    ),
                    args.repeat,
                ),
            )
        )

        train, _ = train_val_split(cached, val_fraction=0.2, seed=0)
        default_threads = torch.get_num_threads()
        augment = Compose([RandomFlip(), RandomShift(2), RandomErasing()])
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            for label, aug in (("plain", None), ("augmented", augment)):
                loader = DeviceLoader(train.images, train.labels, 64, seed=0, augment=aug)

                def some_batches(loader: DeviceLoader = loader) -> None:
                    for x, _y in itertools.islice(loader.batches(0), LOADER_BATCHES):
                        x.float()  # what a model's input layer does first

                times = _time(some_batches, 2)
                rows.append(
                    (
                        f"cpu_loader_{label}_bs64_threads{threads} (per batch)",
                        [t / LOADER_BATCHES for t in times],
                    )
                )
        torch.set_num_threads(default_threads)

    load_after = _load_average()
    print(f"{'measurement':52} {'median s':>9} {'min s':>8} {'target s':>9}  ok")
    results = []
    for name, times in rows:
        target = TARGETS.get(name)
        median = statistics.median(times)
        ok = "" if target is None else ("yes" if median < target else "NO")
        print(
            f"{name:52} {median:9.4f} {min(times):8.4f} "
            f"{'' if target is None else f'{target:.1f}':>9}  {ok}"
        )
        results.append(
            {
                "name": name,
                "median_s": round(median, 4),
                "min_s": round(min(times), 4),
                "runs_s": [round(t, 4) for t in times],
                "target_s": target,
                "meets_target": None if target is None else bool(median < target),
            }
        )
    report = {
        "benchmark": "fcnet.data load of Fashion-MNIST train (60,000 images)",
        "source_files": [str(p) for p in probe.files],
        "page_cache": "warm",
        # Other processes on the machine slow every number; recorded to judge a run.
        "load_average_1min": {"before": load_before, "after": load_after},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_out, args.out)
    print(
        f"1-minute load average: {load_before} before, {load_after} after ({os.cpu_count()} CPUs)"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
