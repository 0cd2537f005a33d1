"""Data-parallel training under ``torchrun``: the process group and the collectives fcnet uses.

A script that trains with :class:`fcnet.Trainer` runs unchanged under
``torchrun --nproc_per_node=N script.py``: when ``WORLD_SIZE`` is above 1 (or a process
group is already initialised), :meth:`fcnet.Trainer.fit` joins the group (``gloo`` on
the CPU, ``nccl`` on CUDA) and gives each rank its share of every batch. fcnet's own
training step sums the ranks' gradients with one all-reduce per step, each rank taking
its rows of the global batch's dropout masks; other models are wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (dropout masks and BatchNorm
statistics are then per rank). ``batch_size`` is the **global** batch: each of the ``N``
ranks trains on ``batch_size / N`` samples of it, so a run on ``N`` ranks takes the same
steps as one process with the same ``batch_size``, up to float reordering. See
``docs/distributed.rst``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from fcnet.exceptions import FcnetError

__all__ = ["DistributedError", "Group", "derive_seed", "join", "shard", "world_size_from_env"]


class DistributedError(FcnetError):
    """A distributed run is set up inconsistently (ranks disagree, or a backend is missing)."""


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 outside torchrun, or when it is malformed)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


class Group:
    """The process group of one distributed fit, and the few collectives the Trainer needs.

    Attributes:
        rank: This process's rank, ``0 <= rank < world_size``.
        world_size: Number of processes.
        owned: Whether fcnet created the group (it then destroys it when the process
            exits).
    """

    def __init__(self, owned: bool) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.owned = owned
        self.device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            self.device = torch.device("cuda", torch.cuda.current_device())

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place, and return it."""
        moved = tensor.to(self.device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        tensor.copy_(moved)
        return tensor

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Give every rank rank 0's ``tensor``, in place, and return it."""
        moved = tensor.to(self.device)
        dist.broadcast(moved, src=0)
        if moved is not tensor:
            tensor.copy_(moved)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped ``tensor``, in rank order (on the CPU)."""
        moved = tensor.detach().to(self.device).contiguous()
        out = [torch.empty_like(moved) for _ in range(self.world_size)]
        dist.all_gather(out, moved)
        return [t.cpu() for t in out]

    def check_same(self, parts: dict[str, Any]) -> None:
        """Refuse to train when the ranks disagree on any of ``parts``.

        Each part (settings, data shapes, initial weights, ...) is reduced to a digest;
        the digests of every rank are compared, and the first part that differs is
        named in the error, on every rank.

        Raises:
            DistributedError: a part differs between ranks.
        """
        names = sorted(parts)
        digests = torch.stack([_digest(parts[name]) for name in names])
        gathered = self.gather(digests)
        for i, name in enumerate(names):
            for rank, theirs in enumerate(gathered):
                if not torch.equal(theirs[i], gathered[0][i]):
                    raise DistributedError(
                        f"rank {rank}'s {name} differs from rank 0's: every rank must run "
                        f"the same script on the same data{_HINTS.get(name, '')}")




_HINTS = {
    "initial weights": "; seed the model on every rank (build_mlp(..., seed=0), or "
                       "torch.manual_seed before building it: each new process is seeded "
                       "at random)",
    "settings": "; give every rank the same Trainer arguments",
    "data": "; give every rank the whole data set (each takes its share of every batch)",
}


def _digest(value: Any) -> torch.Tensor:
    h = hashlib.sha256()
    _feed(h, value)
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        for v in value:
            _feed(h, v)
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


def join(device: torch.device, batch_size: int) -> Group | None:
    """The process group of a fit under torchrun, joined if needed; ``None`` when alone.

    A group the caller initialised is used as it is (and left to the caller); otherwise
    one is created from torchrun's environment (``gloo`` on the CPU, ``nccl`` on CUDA),
    kept for the later fits of the process, and destroyed when the process exits (also
    when training raises). torch cannot reliably create the default group again after
    destroying it under torchrun, so it is not destroyed after each fit.

    Raises:
        DistributedError: the backend is not available for ``device``, or the world size
            does not divide ``batch_size``.
    """
    owned = False
    if not dist.is_available():
        if world_size_from_env() > 1:
            raise DistributedError("WORLD_SIZE > 1 but this torch has no torch.distributed")
        return None
    if not dist.is_initialized():
        if world_size_from_env() == 1:
            return None
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and not dist.is_nccl_available():
            raise DistributedError("training on CUDA under torchrun needs the nccl backend, "
                                   "which this torch lacks; train on the CPU (gloo) instead")
        if device.type not in ("cpu", "cuda"):
            raise DistributedError(f"distributed training runs on CPU (gloo) or CUDA (nccl), "
                                   f"not on {device.type}; pass device='cpu'")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        _init_process_group(backend)
        atexit.register(_destroy)
        owned = True
    if dist.get_world_size() == 1:
        return None
    group = Group(owned)
    if batch_size % group.world_size:
        raise DistributedError(
            f"batch_size={batch_size} is the global batch and must be divisible by the "
            f"world size {group.world_size}; pick a multiple of {group.world_size}")
    return group


def _init_process_group(backend: str) -> None:
    """``init_process_group`` from torchrun's environment, in a key space of its own.

    Under torchrun the agent's store outlives the workers it restarts, and the default
    group's keys are the same in every attempt: restarted workers could then read the
    addresses of the processes they replace and fail to connect. Each attempt
    (``TORCHELASTIC_RESTART_COUNT``) therefore gets its own prefix.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend=backend)
        return
    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                         is_master=False)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"fcnet/attempt_{attempt}", base)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(n: int, world_size: int, rank: int) -> slice:
    """This rank's slice of a batch of ``n`` samples: near-equal contiguous parts."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return slice(lo, lo + base + (1 if rank < extra else 0))


def derive_seed(seed: int, rank: int) -> int:
    """The random stream seed of ``rank`` (rank 0 keeps ``seed``)."""
    if rank == 0:
        return seed
    words: Sequence[int] = (seed % 2**63, rank, 0x5EED)
    state = np.random.SeedSequence(list(words)).generate_state(2)
    return (int(state[0]) << 31) ^ int(state[1])
