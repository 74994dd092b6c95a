"""The univariate normal distribution N(μ, σ²): density, log-density and maximum likelihood.

Symbols ↔ names: μ ↔ ``mean``, σ ↔ ``std`` (standard deviation, not variance), x ↔ ``x``.

    log N(x | μ, σ²) = -½ log(2π) - log σ - (x - μ)² / (2σ²)
"""

from __future__ import annotations

import numpy as np

from genlab.errors import GenlabError

_LOG_2PI = float(np.log(2.0 * np.pi))


def _check_std(std) -> np.ndarray:
    std = np.asarray(std, dtype=float)
    if np.any(~(std > 0)):
        raise GenlabError("std must be > 0 (it is the standard deviation σ, not a variance); pass a positive value.")
    return std


def normal_logpdf(x, mean=0.0, std=1.0):
    """log N(x | μ, σ²), element-wise with NumPy broadcasting over ``x``, ``mean`` and ``std``."""
    std = _check_std(std)
    z = (np.asarray(x, dtype=float) - mean) / std
    return -0.5 * _LOG_2PI - np.log(std) - 0.5 * z * z


def normal_pdf(x, mean=0.0, std=1.0):
    """N(x | μ, σ²) = exp(-(x - μ)² / (2σ²)) / (σ √(2π)), element-wise with broadcasting."""
    return np.exp(normal_logpdf(x, mean, std))


def normal_mle(x) -> tuple[float, float]:
    """Maximum-likelihood (μ̂, σ̂) of a 1-D sample.

    μ̂ = (1/N) Σ x_n and σ̂² = (1/N) Σ (x_n - μ̂)²: the MLE divides by N (``np.std(ddof=0)``),
    not by N - 1 (the unbiased variance).
    """
    x = np.asarray(x, dtype=float).ravel()
    if x.size == 0:
        raise GenlabError("normal_mle got an empty sample; pass at least one value.")
    mean = float(x.mean())
    std = float(np.sqrt(np.mean((x - mean) ** 2)))
    return mean, std
