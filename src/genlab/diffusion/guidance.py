"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper around a denoiser.

A network trained with condition dropout knows both p(x | c) and p(x) (the "null" condition).
Guidance mixes the two predictions:

    ε̂ = ε_u + w (ε_c − ε_u)          w ↔ scale, ε_c ↔ cond, ε_u ↔ uncond

(Ho & Salimans 2022, eq. 6, written with w = 1 + their w). w = 1 is the plain conditional model,
w = 0 the unconditional one (one pass with the null condition), w > 1 pushes samples towards the
condition.

The rule is stated in ε-space; this wrapper mixes x̂₀. At a fixed x_t, x̂₀ = (x_t − σ ε̂)/α is
affine in ε̂ and the weights (1 − w, w) add up to one, so mixing x̂₀ gives exactly the ε-space
result — for every prediction type, and without dividing by α, which is 0 at the first step of
a zero-terminal-SNR schedule.

The condition can be anything the network takes: int64 labels (B,) with an int null label, or a
context tensor (B, ...) with a null context that broadcasts to it (e.g. the empty prompt's
embedding). Both passes run as ONE forward call on a batch of 2B.
"""

from __future__ import annotations

import torch

from genlab.diffusion.process import check_finite
from genlab.errors import ConfigError

__all__ = ["ClassifierFreeGuidance", "cfg_combine", "null_like"]


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + w · (cond − uncond)."""
    return uncond + scale * (cond - uncond)


def null_like(cond: torch.Tensor, null) -> torch.Tensor:
    """The null condition for a batch: ``null`` (an int label or a tensor) shaped like ``cond``."""
    if isinstance(null, torch.Tensor):
        try:
            return null.to(device=cond.device, dtype=cond.dtype).expand_as(cond)
        except RuntimeError:
            raise ConfigError(f"the null condition of shape {tuple(null.shape)} does not broadcast to the condition's {tuple(cond.shape)}") from None
    return torch.full_like(cond, null)


class ClassifierFreeGuidance:
    """``denoiser`` guided with scale w towards ``cond`` and away from ``null``.

    ``ClassifierFreeGuidance(d, scale=2.0, null=10)(x, t, cond)``; with scale = 1 it is ``d`` itself.
    """

    def __init__(self, denoiser, scale: float, null):
        self.denoiser, self.process = denoiser, denoiser.process
        self.scale = check_finite("guidance scale", scale)
        if null is None:
            raise ConfigError(
                f"guidance scale {self.scale} needs the null condition (the label or context used for condition dropout in training)"
            )
        self.null = null

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        if self.scale == 1.0:
            return self.denoiser(x, t, cond)
        if cond is None:
            raise ConfigError(f"guidance scale {self.scale} needs a condition (class labels or a context); or use scale 1")
        if self.scale == 0.0:  # the unconditional mode alone: one pass with the null condition
            return self.denoiser(x, t, null_like(cond, self.null))
        t2 = torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.ndim == 1 else t
        both = self.denoiser(torch.cat([x, x]), t2, torch.cat([cond, null_like(cond, self.null)]))  # (2B, ...)
        c, u = both.chunk(2)
        return cfg_combine(c, u, self.scale)
