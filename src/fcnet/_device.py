"""Device selection: the one place that names accelerator backends."""

from __future__ import annotations

import torch

__all__ = ["select_device"]


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``device``: ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises:
        ValueError: the name is not a valid torch device, or that backend is not
            available on this machine.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        if device == "auto":
            if torch.cuda.is_available():
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
