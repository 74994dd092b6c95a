"""Exponential moving average (EMA) of model weights.

    θ_ema ← d · θ_ema + (1 − d) · θ,   d = min(decay, (1 + n) / (10 + n))

where n counts updates: the warm-up on d lets the average forget the random
initialisation quickly in short runs (a few thousand steps on a CPU).
Sampling from θ_ema gives visibly cleaner images than the raw weights.

Built on PyTorch's :class:`torch.optim.swa_utils.AveragedModel` with our own ``multi_avg_fn``
(``swa_utils.get_ema_multi_avg_fn`` is the same update with a constant d, no warm-up).
Buffers (e.g. BatchNorm statistics) are copied from the model, not averaged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class EMA:
    """``shadow`` is an eval-mode copy of ``model`` whose weights follow the average.

    ``AveragedModel`` copies the weights on its first update; we make that update right away,
    so ``shadow`` starts as θ₀ and the n-th call to :meth:`update` uses the d above.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=self._average)
        self.averaged.update_parameters(model)  # θ_ema = θ₀, n_averaged = 1
        self.shadow.eval().requires_grad_(False)

    @property
    def shadow(self) -> nn.Module:
        """The averaged model itself: same class and state-dict keys as the trained one."""
        return self.averaged.module

    @property
    def num_updates(self) -> int:
        return int(self.averaged.n_averaged) - 1

    @num_updates.setter
    def num_updates(self, n: int) -> None:
        self.averaged.n_averaged.fill_(n + 1)

    @torch.no_grad()
    def _average(self, ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)  # = num_updates, counting this one
        d = min(self.decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(ema_params, params, 1.0 - d)  # θ_ema += (1 − d)(θ − θ_ema), as get_ema_multi_avg_fn

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def to(self, device: str | torch.device) -> EMA:
        self.averaged.to(device)
        return self
