"""Exponential moving average (EMA) of model weights.

    θ_ema ← d · θ_ema + (1 − d) · θ,   d = min(decay, (1 + n) / (10 + n))

where n counts updates: the warm-up on d lets the average forget the random
initialisation quickly in short runs (a few thousand steps on a CPU).
Sampling from θ_ema gives visibly cleaner images than the raw weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds ``shadow``, an eval-mode copy of ``model`` whose weights follow the average."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        ema_params = list(self.shadow.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)  # θ_ema += (1 − d)(θ − θ_ema)
        for b_ema, b in zip(self.shadow.buffers(), model.buffers()):
            b_ema.copy_(b)
