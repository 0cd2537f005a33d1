"""Inference speed: images per second of ``Trainer.predict`` and the latency of one image.

For the baseline (784-128-64-10) and deep (784-392-196-98-49-10) networks:

- throughput: ``trainer.predict(test.images)`` on the 10,000 raw ``uint8`` test images
  (input checks, batches of ``eval_batch_size``, softmax and arg-max included);
- latency: ``trainer.predict(one_image)`` for single images, median and 90th percentile
  over many calls, beside the bare ``model(x)`` call under ``torch.inference_mode`` to
  show what the Trainer adds.

Thread counts alternate (1, 2, 1, 2, ...) in one process. Weights are untrained: speed
does not depend on their values. The model records ``uint8`` training input, as
``Trainer.fit`` does, so ``predict`` runs the input-range check a trained model gets.

Examples::

    python benchmarks/bench_inference.py
    python benchmarks/bench_inference.py --quick
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import _common as C
import torch

from fcnet import Trainer, build_mlp

MODELS = {
    "baseline": [784, 128, 64, 10],
    "deep": [784, 392, 196, 98, 49, 10],
}


def throughput(trainer: Trainer, images: torch.Tensor, repeats: int) -> list[float]:
    """Seconds of ``trainer.predict(images)``, once per repeat (after one warm-up)."""
    trainer.predict(images[:256])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trainer.predict(images)
        times.append(time.perf_counter() - t0)
    return times


def latency(fn: Any, images: torch.Tensor, calls: int) -> list[float]:
    """Seconds of ``fn(image)`` for ``calls`` single images (after 20 warm-up calls)."""
    for i in range(20):
        fn(images[i:i + 1])
    times = []
    for i in range(calls):
        x = images[i % len(images)][None]
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(sizes: list[int], images: torch.Tensor, threads_list: list[int], rounds: int,
            repeats: int, calls: int) -> list[dict[str, Any]]:
    """Throughput and latency of one network for each thread count, alternating."""
    model = build_mlp(sizes, 0.25, input_norm=(0.5, 0.5), seed=0)
    model.record_input(torch.uint8, (0.0, 1.0))  # what fit records for raw pixels
    trainer = Trainer(model, device="cpu", progress=False)
    model.eval()
    acc: dict[int, dict[str, list[float]]] = {
        t: {"batch": [], "predict": [], "bare": [], "load": []} for t in threads_list
    }

    def bare(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x).argmax(1)

    for _ in range(rounds):
        for t in threads_list:
            C.set_threads(t)
            acc[t]["batch"] += throughput(trainer, images, repeats)
            acc[t]["predict"] += latency(trainer.predict, images, calls)
            acc[t]["bare"] += latency(bare, images, calls)
            acc[t]["load"].append(C.load_average()[0])
    rows = []
    for t, a in acc.items():
        best = min(a["batch"])
        rows.append({
            "threads": t,
            "images": len(images),
            "predict_seconds": C.summarize(a["batch"]),
            "images_per_second_median": len(images) / statistics.median(a["batch"]),
            "images_per_second_best": len(images) / best,
            "latency_us_median": 1e6 * statistics.median(a["predict"]),
            "latency_us_p90": 1e6 * _percentile(a["predict"], 0.9),
            "bare_model_us_median": 1e6 * statistics.median(a["bare"]),
            "latency_calls": len(a["predict"]),
            "load": statistics.median(a["load"]),
        })
    return rows


_COLUMNS = [
    ("model", "model", "s"),
    ("threads", "threads", "d"),
    ("images_per_second_median", "images/s (median)", ",.0f"),
    ("images_per_second_best", "images/s (best)", ",.0f"),
    ("latency_us_median", "1 image: median us", ".0f"),
    ("latency_us_p90", "p90 us", ".0f"),
    ("bare_model_us_median", "bare model(x) us", ".0f"),
    ("load", "load", ".2f"),
]


def main() -> None:
    """Command-line entry point."""
    parser = C.base_parser(__doc__.splitlines()[0], threads=False)
    parser.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2],
                        help="thread counts to alternate (default 1 2)")
    args = parser.parse_args()
    started = time.time()
    _, _, test = C.fcnet_data(None)
    images = test.images
    rounds, repeats, calls = (1, 2, 100) if args.quick else (3, 5, 1000)
    print(f"Trainer.predict on {len(images)} test images, threads {args.thread_counts}, "
          f"load {C.load_average()}")
    rows = []
    for name, sizes in MODELS.items():
        for row in measure(sizes, images, args.thread_counts, rounds, repeats, calls):
            row = {"model": name, "sizes": sizes, **row}
            rows.append(row)
            C.print_table([row], _COLUMNS)
    C.print_table(rows, _COLUMNS, title="inference")
    C.write_result("inference", {"runs": rows}, quick=args.quick, out=args.out,
                   started=started)


if __name__ == "__main__":
    main()
