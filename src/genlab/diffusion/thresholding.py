"""Keeping x̂₀ in the data range: static clipping and dynamic thresholding, as denoiser wrappers.

- :class:`ClipX0` clamps x̂₀ to [low, high] (Ho et al. 2020's "clipped" sampling). Samplers derive
  ε̂ = (x_t − α x̂₀)/σ from the returned x̂₀, so ε̂ follows the clipped x̂₀ — as GLIDE does and
  diffusers' ``use_clipped_model_output=True``. Without that, DDIM with strong guidance follows an
  ε̂ that points far outside the data range and saturates the images.
- :class:`DynamicThreshold` (Saharia et al. 2022, "Imagen", §2.3): per sample, s = the
  ``percentile`` of |x̂₀|, at least 1; x̂₀ ← clamp(x̂₀, −s, s) / s. Gentler under strong guidance.

The range is data, not a guess from the data set's name: a checkpoint stores it (latents of an
autoencoder, for instance, must not be clipped to [−1, 1]).
"""

from __future__ import annotations

import torch

from genlab.diffusion.denoisers import PassesVariance
from genlab.diffusion.process import check_finite
from genlab.errors import ConfigError

__all__ = ["ClipX0", "DynamicThreshold"]


class ClipX0(PassesVariance):
    """``denoiser`` with x̂₀ clamped to [low, high]."""

    def __init__(self, denoiser, low: float = -1.0, high: float = 1.0):
        self.denoiser, self.process = denoiser, denoiser.process
        self.low, self.high = check_finite("clip low", low), check_finite("clip high", high)
        if not self.low < self.high:
            raise ConfigError(f"the clipping range needs low < high, got [{self.low}, {self.high}]")

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.denoiser(x, t, cond).clamp(self.low, self.high)

    def _with_variance(self, x: torch.Tensor, t, cond=None):  # a learned variance passes through the clipping
        x0, frac = self.denoiser.x0_and_fraction(x, t, cond)
        return x0.clamp(self.low, self.high), frac


class DynamicThreshold:
    """``denoiser`` with Imagen's dynamic thresholding of x̂₀ (data in [−1, 1])."""

    def __init__(self, denoiser, percentile: float = 0.995):
        self.denoiser, self.process = denoiser, denoiser.process
        self.percentile = check_finite("percentile", percentile, low=0.0, high=1.0, strict_low=True)

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        x0 = self.denoiser(x, t, cond)
        s = torch.quantile(x0.abs().flatten(1).float(), self.percentile, dim=1).clamp(min=1.0)  # (B,)
        s = s.to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        return x0.clamp(-s, s) / s
