"""Where tensors live: CUDA or MPS when present, else the CPU."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` → :func:`default_device`; anything else → ``torch.device(device)``."""
    if device is None or device == "auto":
        return default_device()
    return torch.device(device)


def module_device(model) -> torch.device:
    """Where a model's parameters live; the CPU for plain callables and parameter-free modules."""
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            return p.device
    return torch.device("cpu")
