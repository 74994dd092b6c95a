"""Kernel Inception Distance: the unbiased MMD² with a cubic polynomial kernel, over random subsets.

    k(x, y) = (xᵀy / d + 1)³                         (degree 3, γ = 1/d, c = 1)

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j) − 2/m² Σ_{i,j} k(x_i, y_j)

========  ===============  ==============================================
symbol    name             meaning
========  ===============  ==============================================
x_i, y_j  ``real, fake``   feature vectors (d,) of the two sets
m         ``subset_size``  images per subset (drawn without replacement)
S         ``subsets``      number of subsets; KID = mean ± std over them
========  ===============  ==============================================

Unlike FID the estimate is unbiased (it can be slightly negative; its expectation is 0 for two
samples of one distribution) and needs no N > d. The std is the population std (divisor S) of the
S subset values, as in the reference implementation (Bińkowski et al. 2018) and torchmetrics.
"""

from __future__ import annotations

import numpy as np

from genlab.errors import ConfigError
from genlab.metrics.frechet import _as_features

__all__ = ["polynomial_kernel", "mmd2_unbiased", "kernel_inception_distance"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> np.ndarray:
    """k(x, y) = (γ xᵀy + c)^degree for all pairs: (N, d), (M, d) → (N, M); γ defaults to 1/d."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> float:
    """Unbiased MMD² between equally sized sets x, y (m, d) under the polynomial kernel."""
    m = len(x)
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)    # (m, m)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)    # (m, m)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)    # (m, m)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / m**2)


def kernel_inception_distance(real, fake, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                              gamma: float | None = None, coef: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std) over ``subsets`` random subsets of ``subset_size`` from each feature set.

    ``subset_size`` is capped at the smaller set size; with ``subset_size`` ≥ both sizes and
    ``subsets=1`` the result is the MMD² of the full sets (std 0). Subsets follow from ``seed``.
    """
    x, y = _as_features(real, "real features"), _as_features(fake, "fake features")
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"KID: real features have D={x.shape[1]}, fake D={y.shape[1]}: extract both with one network")
    if not (isinstance(subsets, int) and subsets >= 1):
        raise ConfigError(f"KID: subsets must be a positive integer, got {subsets!r}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ConfigError(f"KID needs at least 2 images per set, got {len(x)} real and {len(y)} fake")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        xs = x if m == len(x) else x[rng.choice(len(x), m, replace=False)]
        ys = y if m == len(y) else y[rng.choice(len(y), m, replace=False)]
        values[s] = mmd2_unbiased(xs, ys, degree, gamma, coef)
    return float(values.mean()), float(values.std())
