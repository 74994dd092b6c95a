"""Learning-rate schedule: linear warm-up, then cosine decay.

    lr(s) = lr_max · s / warmup                                   for s < warmup
    lr(s) = lr_min + ½ (lr_max − lr_min) (1 + cos(π · progress))  afterwards,
            progress = (s − warmup) / (total − warmup) ∈ [0, 1]

A pure function of the step, so resuming needs no scheduler state.
"""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, *, lr: float, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """The learning rate to use for optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    lr_min = lr * min_ratio
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
