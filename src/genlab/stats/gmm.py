"""Gaussian mixture model (GMM) densities, responsibilities and sampling.

Symbols ↔ names (K components, D dimensions, N points):
π_k ↔ ``weights`` (K,) mixing coefficients, μ_k ↔ ``means`` (K, D), Σ_k ↔ ``covs`` (K, D, D),
z ↔ the latent component index, γ_nk = p(z_n = k | x_n) ↔ ``resp`` (N, K) (responsibilities).

    p(x) = Σ_k π_k N(x | μ_k, Σ_k)
    log p(x) = logsumexp_k [log π_k + log N(x | μ_k, Σ_k)]        (log-sum-exp: no underflow)
    γ_nk = π_k N(x_n | μ_k, Σ_k) / p(x_n)
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from genlab.errors import GenlabError
from genlab.stats.mvn import cholesky

_LOG_2PI = float(np.log(2.0 * np.pi))


def check_gmm_params(weights, means, covs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert (π, μ, Σ) to float arrays of shapes (K,), (K, D), (K, D, D)."""
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covs = np.asarray(covs, dtype=float)
    if means.ndim == 1:  # K one-dimensional components given as (K,)
        means = means[:, None]
    if covs.ndim == 1:
        covs = covs[:, None, None]
    k, d = means.shape
    if weights.shape != (k,) or covs.shape != (k, d, d):
        raise GenlabError(
            f"GMM parameters disagree: weights {weights.shape}, means {means.shape}, covs {covs.shape}; "
            "expected (K,), (K, D), (K, D, D)."
        )
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise GenlabError("weights must be non-negative and sum to 1; divide them by their sum.")
    return weights, means, covs


def precision_cholesky(covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each Σ_k = L_k L_kᵀ return P_k = L_k⁻ᵀ (K, D, D) and ½ log|Σ_k| = Σ_i log (L_k)_ii (K,)."""
    k, d, _ = covs.shape
    prec_chol = np.empty_like(covs)
    half_log_det = np.empty(k)
    eye = np.eye(d)
    for j in range(k):  # a loop over components, never over samples
        L = cholesky(covs[j], name=f"covariance of component {j}")
        prec_chol[j] = solve_triangular(L, eye, lower=True).T
        half_log_det[j] = np.log(np.diag(L)).sum()
    return prec_chol, half_log_det


def component_log_densities(X: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log N(x_n | μ_k, Σ_k) for all n, k → (N, K), with one matrix product for all components.

    (x - μ)ᵀ Σ⁻¹ (x - μ) = ‖(x - μ)ᵀ P‖² with P = L⁻ᵀ, and (x - μ)ᵀ P = xᵀ P - μᵀ P.
    """
    n, d = X.shape
    k = means.shape[0]
    prec_chol, half_log_det = precision_cholesky(covs)
    W = prec_chol.transpose(1, 0, 2).reshape(d, k * d)  # (D, K·D): [P_1 | P_2 | ... | P_K]
    Y = X @ W  # (N, K·D): row n holds x_nᵀ P_1, ..., x_nᵀ P_K
    Y -= np.einsum("kd,kde->ke", means, prec_chol).ravel()  # minus μ_kᵀ P_k, broadcast over N
    np.square(Y, out=Y)
    # (N, K) squared Mahalanobis distances: add the D columns of each block (column adds are much
    # faster than a NumPy reduction over a tiny last axis, and need no BLAS threads)
    maha = np.empty((n, k))
    for j in range(k):
        np.add.reduce([Y[:, j * d + e] for e in range(d)], out=maha[:, j])
    maha += d * _LOG_2PI
    maha *= -0.5
    maha -= half_log_det
    return maha


def log_normalize(log_joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log-sum-exp of ``log_joint`` (N, K) and the normalised probabilities.

    Returns (log Σ_k exp a_nk  (N,),  exp(a_nk - logsumexp_n)  (N, K)). The row maximum is
    subtracted before ``exp``, so nothing overflows or underflows to 0/0. ``log_joint`` is
    overwritten (it becomes the second output).
    """
    m = np.maximum.reduce([log_joint[:, j] for j in range(log_joint.shape[1])])  # (N,) row max
    m[~np.isfinite(m)] = 0.0
    np.subtract(log_joint, m[:, None], out=log_joint)
    np.exp(log_joint, out=log_joint)
    s = np.add.reduce([log_joint[:, j] for j in range(log_joint.shape[1])])  # (N,) row sums
    log_joint /= s[:, None]
    with np.errstate(divide="ignore"):
        log_norm = np.log(s)
    log_norm += m
    return log_norm, log_joint


def _as_points(X, d: int) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1 and d == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != d:
        raise GenlabError(f"X must have shape (N, {d}) to match the means; got {np.shape(X)}.")
    return X


def _log_joint(X, weights, means, covs) -> np.ndarray:
    weights, means, covs = check_gmm_params(weights, means, covs)
    X = _as_points(X, means.shape[1])
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    return component_log_densities(X, means, covs) + log_w  # (N, K): log π_k + log N(x_n | μ_k, Σ_k)


def gmm_logpdf(X, weights, means, covs) -> np.ndarray:
    """log p(x_n) = logsumexp_k [log π_k + log N(x_n | μ_k, Σ_k)] for each row of X → (N,)."""
    log_norm, _ = log_normalize(_log_joint(X, weights, means, covs))
    return log_norm


def gmm_pdf(X, weights, means, covs) -> np.ndarray:
    """p(x_n) = Σ_k π_k N(x_n | μ_k, Σ_k) for each row of X → (N,)."""
    return np.exp(gmm_logpdf(X, weights, means, covs))


def gmm_responsibilities(X, weights, means, covs) -> np.ndarray:
    """γ_nk = p(z_n = k | x_n) → (N, K); each row sums to 1 (the E-step of EM)."""
    _, resp = log_normalize(_log_joint(X, weights, means, covs))
    return resp


def gmm_sample(n: int, weights, means, covs, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Ancestral sampling: z_i ~ Categorical(π), then x_i ~ N(μ_{z_i}, Σ_{z_i}).

    Returns X (n, D) and the component labels z (n,) int64.
    """
    weights, means, covs = check_gmm_params(weights, means, covs)
    rng = np.random.default_rng(random_state)
    k, d = means.shape
    chols = np.stack([cholesky(c, name=f"covariance of component {j}") for j, c in enumerate(covs)])
    z = rng.choice(k, size=int(n), p=weights / weights.sum()).astype(np.int64)
    eps = rng.standard_normal((int(n), d))  # (n, D) ~ N(0, I)
    X = means[z] + np.einsum("nde,ne->nd", chols[z], eps)  # μ_z + L_z ε ~ N(μ_z, Σ_z)
    return X, z
