"""Mode coverage of 2-D samples from a mixture with known modes (the ring of 8, the 5×5 grid).

The usual measure of mode collapse (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN):
assign each sample to its nearest mode mean μ_k; it is **high quality** when it lies within 3σ of
that mean (σ the components' standard deviation). A mode is **covered** when it holds at least
``min_share`` of its fair share of the samples, ``min_share · n / K`` high-quality ones, so that a
few stray points do not count as a mode learned. ``balance_tv`` is the total-variation distance
between the modes' shares of the high-quality samples and the uniform K-way split of the data
(0: perfectly balanced; (K − 1)/K: every high-quality sample on one mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.errors import ConfigError

__all__ = ["ModeCoverage", "mode_coverage"]


@dataclass
class ModeCoverage:
    modes_covered: int  # modes holding ≥ min_share · n/K high-quality samples
    num_modes: int  # K
    high_quality: float  # share of samples within 3σ of their nearest mode
    balance_tv: float  # TV distance of the high-quality mode shares from uniform
    counts: np.ndarray  # (K,) high-quality samples per mode

    def to_dict(self) -> dict:
        return {"modes_covered": self.modes_covered, "num_modes": self.num_modes, "high_quality": self.high_quality,
                "balance_tv": self.balance_tv}  # fmt: skip


def mode_coverage(samples, means, std: float, *, radius: float = 3.0, min_share: float = 0.1) -> ModeCoverage:
    """Coverage of ``samples`` (n, D) of the modes ``means`` (K, D) with component std ``std``."""
    x, mu = np.asarray(samples, dtype=np.float64), np.asarray(means, dtype=np.float64)
    if x.ndim != 2 or mu.ndim != 2 or x.shape[1] != mu.shape[1] or len(x) == 0:
        raise ConfigError(f"samples (n, D) and means (K, D) must agree in D, got {x.shape} and {mu.shape}")
    if not (np.isfinite(std) and std > 0):
        raise ConfigError(f"std must be a positive number, got {std!r}")
    dist = np.sqrt(((x[:, None, :] - mu[None]) ** 2).sum(-1))  # (n, K)
    nearest = dist.argmin(1)
    good = dist[np.arange(len(x)), nearest] <= radius * std
    counts = np.bincount(nearest[good], minlength=len(mu))
    k = len(mu)
    shares = counts / counts.sum() if counts.sum() else np.zeros(k)
    tv = 0.5 * np.abs(shares - 1.0 / k).sum() if counts.sum() else 1.0
    return ModeCoverage(modes_covered=int((counts >= min_share * len(x) / k).sum()), num_modes=k,
                        high_quality=float(good.mean()), balance_tv=float(tv), counts=counts)  # fmt: skip
