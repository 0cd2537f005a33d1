"""Device selection: the one place that names accelerator backends."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Callable, Iterator

import torch

__all__ = ["SMALL_STEP_FLOPS", "cpu_has_fast_bf16", "denormal_mode", "flush_denormal",
           "intra_op_threads", "resolve_precision", "select_device", "step_flops",
           "training_threads"]

#: Training steps of fewer floating-point operations than this run on one CPU thread and,
#: with ``precision="auto"``, in float32: below it a second thread's start-up and a bf16
#: cast cost more than they save (``benchmarks/bench_step_policy.py`` measures where
#: the two cross; the figures are in ``benchmarks/results/step_policy.json``).
SMALL_STEP_FLOPS = 64e6


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``device``: ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Under torchrun (``LOCAL_RANK`` set), ``"auto"`` picks this process's GPU,
    ``cuda:LOCAL_RANK``: one process per GPU.

    Raises:
        ValueError: the name is not a valid torch device, or that backend is not
            available on this machine.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        if device == "auto":
            if torch.cuda.is_available():
                local = os.environ.get("LOCAL_RANK", "")
                if local.isdigit() and int(local) < torch.cuda.device_count():
                    return torch.device("cuda", int(local))
                return torch.device("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            resolved = torch.device(device)
        except RuntimeError as e:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
            ) from e
    else:
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was requested but MPS is not available here")
    return resolved


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX).

    Asked of torch's own CPU probes; a torch without them, or a CPU without those
    units, answers ``False``.
    """
    probes = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(probe is not None and bool(probe()) for probe in probes)
    except RuntimeError:
        return False


def step_flops(model: torch.nn.Module, batch_size: int) -> float | None:
    """Floating-point operations of a training step of ``model``'s Linear layers.

    ``6 * batch * sum(in * out)``: forward, weight and input gradients. ``None`` for a
    model without Linear layers (nothing is known about its cost).
    """
    macs = sum(m.in_features * m.out_features for m in model.modules()
               if isinstance(m, torch.nn.Linear))
    return 6.0 * batch_size * macs if macs else None


def training_threads(device: torch.device, flops: float | None) -> int:
    """Intra-op threads for training steps of ``flops``: one for small CPU steps.

    Never more than the caller's ``torch.get_num_threads()``.
    """
    cap = torch.get_num_threads()
    if device.type == "cpu" and flops is not None and flops < SMALL_STEP_FLOPS:
        return 1
    return cap


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads; restore the caller's count after."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def resolve_precision(precision: str, device: torch.device, flops: float | None = None) -> str:
    """``"fp32"`` or ``"bf16"`` for a Trainer's ``precision`` setting on ``device``.

    ``"auto"`` picks bf16 where the hardware multiplies bfloat16 faster than float32:
    a CPU with AVX512-BF16 or AMX units, for steps of at least :data:`SMALL_STEP_FLOPS`
    (``flops``; smaller products gain less than the casts cost), and a CUDA GPU that
    supports bf16 (compute capability 8.0 and newer); float32 everywhere else (older
    CPUs would emulate bf16, slower than float32). The other two settings are returned
    as they are.
    """
    if precision != "auto":
        return precision
    if device.type == "cpu":
        small = flops is not None and flops < SMALL_STEP_FLOPS
        return "bf16" if cpu_has_fast_bf16() and not small else "fp32"
    if device.type == "cuda":
        supported = getattr(torch.cuda, "is_bf16_supported", None)
        if supported is not None and supported(including_emulation=False):
            return "bf16"
    return "fp32"


def _flushing() -> bool:
    # torch has a setter but no getter: with flushing on, a denormal float32 reads as 0.
    return bool(torch.tensor(1e-39, dtype=torch.float32).mul(1.0).item() == 0.0)


@functools.cache
def _omp_pause() -> Callable[[int], int] | None:
    """OpenMP's ``omp_pause_resource_all`` from the runtime torch loaded, if it has one."""
    if not torch.backends.openmp.is_available():
        return None
    try:
        with open("/proc/self/maps") as maps:  # Linux: the libraries this process loaded
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    # torch's own runtime first: other libraries (scikit-learn's wheels) bring their own
    # OpenMP, whose pool is not the one torch's intra-op threads live in.
    for path in sorted(paths, key=lambda p: ("/torch/" not in p, p)):
        if not os.path.basename(path).startswith(("libgomp", "libiomp5", "libomp")):
            continue
        try:
            pause = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
        return pause
    return None


def _restart_workers() -> None:
    """Let the next parallel op start new intra-op threads, copying this thread's float mode.

    Threads inherit the floating-point mode (flush-to-zero included) of the thread that
    creates them, and OpenMP keeps its worker threads between parallel regions, so a
    mode set after the first parallel op never reaches them. Freeing the calling
    thread's pool (``omp_pause_resource_all(omp_pause_hard)``) makes the next parallel
    op create fresh workers; it costs one thread start per worker. Without OpenMP, or
    off Linux, nothing happens.
    """
    if torch.get_num_threads() > 1:
        pause = _omp_pause()
        if pause is not None:
            pause(2)  # omp_pause_hard


@contextlib.contextmanager
def denormal_mode(flush: bool) -> Iterator[None]:
    """Flush denormal floats to zero (``flush=True``) or not inside the block.

    The mode is set on the calling thread and, by :func:`_restart_workers`, on torch's
    intra-op worker threads; on exit the previous mode is restored on both. Asking
    for flushing while the calling thread already flushes still restarts the workers,
    so that they flush too, and restores nothing. A CPU that cannot flush is left as
    it is.
    """
    before = _flushing()
    changed = flush != before and torch.set_flush_denormal(flush)
    if changed or (flush and before):
        _restart_workers()
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(before)
            _restart_workers()


@contextlib.contextmanager
def flush_denormal(enabled: bool = True) -> Iterator[None]:
    """Treat denormal float32 numbers (below ~1.2e-38) as zero inside the block.

    On x86 CPUs arithmetic on denormal numbers is much slower. Adam's running averages
    for the weights of units that no longer receive gradient (dead ReLUs) decay
    through that range: after 3 epochs of the baseline recipe a sizeable share of the
    first two layers' averages can be denormal, and a fused Adam step on such a tensor
    runs several times slower. Values that small are far below any update that matters,
    so results do not change in practice.

    The setting is made on the calling thread (which runs small ops and the CPU
    autograd engine) and, on Linux with OpenMP, reaches torch's intra-op worker
    threads too: they are restarted so that they copy it (see :func:`_restart_workers`).
    Without that, a 2-thread op on denormal data leaves half of them unflushed and runs
    as slowly as without the setting. On exit the previous setting is restored, on the workers too.
    """
    if not enabled:
        yield
        return
    with denormal_mode(True):
        yield
