"""The multivariate normal N(μ, Σ) in D dimensions, computed through the Cholesky factor Σ = L Lᵀ.

Symbols ↔ names: μ ↔ ``mean`` (D,), Σ ↔ ``cov`` (D, D), x ↔ a row of ``X`` (N, D), L ↔ ``chol``.

    log N(x | μ, Σ) = -½ [D log(2π) + log|Σ| + (x - μ)ᵀ Σ⁻¹ (x - μ)]

With Σ = L Lᵀ: log|Σ| = 2 Σ_i log L_ii and (x - μ)ᵀ Σ⁻¹ (x - μ) = ‖L⁻¹ (x - μ)‖², so no inverse is formed.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from genlab.errors import GenlabError

_LOG_2PI = float(np.log(2.0 * np.pi))


def cholesky(cov: np.ndarray, name: str = "cov") -> np.ndarray:
    """Lower Cholesky factor L of a symmetric positive-definite matrix (Σ = L Lᵀ)."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise GenlabError(
            f"{name} is not positive definite; use a symmetric matrix with positive eigenvalues "
            "(e.g. add a small value such as 1e-6 to its diagonal)."
        ) from None


def _as_2d(X, d: int) -> tuple[np.ndarray, bool]:
    X = np.asarray(X, dtype=float)
    single = X.ndim == 1
    X = X.reshape(1, -1) if single else X
    if X.ndim != 2 or X.shape[1] != d:
        raise GenlabError(f"X must have shape (N, {d}) to match the mean; got {np.shape(X)}.")
    return X, single


def mvn_logpdf(X, mean, cov):
    """log N(x | μ, Σ) for each row of ``X`` (N, D) → (N,); a single point (D,) gives a float."""
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    d = mean.shape[0]
    if cov.shape != (d, d):
        raise GenlabError(f"cov must have shape ({d}, {d}) to match the mean; got {cov.shape}.")
    X, single = _as_2d(X, d)
    L = cholesky(cov)
    y = solve_triangular(L, (X - mean).T, lower=True)  # (D, N) = L⁻¹ (x - μ)
    maha = np.einsum("dn,dn->n", y, y)  # (N,) squared Mahalanobis distances
    log_det = 2.0 * np.log(np.diag(L)).sum()
    out = -0.5 * (d * _LOG_2PI + log_det + maha)
    return float(out[0]) if single else out


def mvn_pdf(X, mean, cov):
    """N(x | μ, Σ) for each row of ``X``: exp of :func:`mvn_logpdf`."""
    return np.exp(mvn_logpdf(X, mean, cov))


def mvn_mle(X) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood (μ̂, Σ̂) of the rows of ``X`` (N, D).

    μ̂ = (1/N) Σ x_n, Σ̂ = (1/N) Σ (x_n - μ̂)(x_n - μ̂)ᵀ — divided by N, i.e. ``np.cov(X.T, bias=True)``.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0:
        raise GenlabError(f"mvn_mle needs X of shape (N, D) with N >= 1; got {X.shape}.")
    mean = X.mean(axis=0)
    diff = X - mean
    cov = diff.T @ diff / X.shape[0]
    return mean, cov
