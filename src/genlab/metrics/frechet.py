"""The Fréchet distance between two Gaussians fitted to feature sets (FID's formula), in float64.

For features X (N₁, D) and Y (N₂, D) summarised by their means and covariances,

    d²(N(μ₁, Σ₁), N(μ₂, Σ₂)) = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

=========  ==============  =====================================================
symbol     name            meaning
=========  ==============  =====================================================
μ₁, μ₂     ``mu1, mu2``    feature means, (D,)
Σ₁, Σ₂     ``sigma1/2``    feature covariances (unbiased, divisor N − 1), (D, D)
S          (computed)      Σ₁^{1/2}, the symmetric square root (eigendecomposition)
=========  ==============  =====================================================

The trace of (Σ₁Σ₂)^{1/2} is computed without a general matrix square root. With S = Σ₁^{1/2},
Σ₁Σ₂ = S (S Σ₂ S) S⁻¹ is similar to the symmetric positive semi-definite M = S Σ₂ S, so both have
the same non-negative eigenvalues λᵢ, and

    tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(M)          (two symmetric eigendecompositions, ``numpy.linalg.eigh``)

This holds for singular covariances too (the similarity extends by continuity), needs no ε
offset, and leaves no imaginary parts to discard — the safeguards that code built on
:func:`scipy.linalg.sqrtm` needs (and whose outcome changed with scipy 1.17's new ``sqrtm``:
near-singular products of a few hundred samples came back with imaginary diagonals of ~5e-3).
Round-off can leave eigenvalues slightly below zero: those within ``tol`` · λ_max are set to 0;
a clearly negative eigenvalue of Σ₁, Σ₂ or M means a covariance that is not positive
semi-definite, and is an error.
A full-rank Σ needs N > D samples: :func:`gaussian_stats` refuses fewer.
"""

from __future__ import annotations

import numpy as np

from genlab.errors import ConfigError

__all__ = ["gaussian_stats", "frechet_distance", "frechet_distance_from_features"]


def _as_features(x, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"{what} must be a feature matrix (N, D), got shape {x.shape}: flatten or extract features first")
    if not np.isfinite(x).all():
        raise ConfigError(f"{what} contains NaN or infinite values: check the images or the feature network")
    return x


def gaussian_stats(features, what: str = "features", require_full_rank: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of ``features`` (N, D), in float64.

    With ``require_full_rank`` (the default) N must exceed D, else Σ is singular and the FID is
    not meaningful; the error says how many samples are needed.
    """
    x = _as_features(features, what)
    n, d = x.shape
    if n < 2:
        raise ConfigError(f"{what}: a covariance needs at least 2 samples, got {n}")
    if require_full_rank and n <= d:
        raise ConfigError(
            f"{what}: FID needs more samples than feature dimensions (N > D) for a full-rank covariance, "
            f"got N={n} for D={d}; pass at least {d + 1} samples (2000 or more for stable figures)"
        )
    mu = x.mean(axis=0)                      # (D,)
    centred = x - mu                         # (N, D)
    sigma = centred.T @ centred / (n - 1)    # (D, D)
    return mu, sigma


def _psd_eigenvalues(m: np.ndarray, what: str, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0 within round-off) and eigenvectors of the symmetric matrix ``m``."""
    lam, vecs = np.linalg.eigh((m + m.T) / 2)
    scale = max(float(np.abs(lam).max()), np.finfo(np.float64).tiny)
    if lam.min() < -tol * scale:
        raise ConfigError(
            f"frechet_distance: {what} has a negative eigenvalue ({lam.min():.3g}), so (Σ₁Σ₂)^{{1/2}} would be imaginary; "
            "the covariances are not valid (symmetric positive semi-definite)"
        )
    return np.clip(lam, 0.0, None), vecs


def frechet_distance(mu1, sigma1, mu2, sigma2, tol: float = 1e-8) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}) in float64 (see the module docstring)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ConfigError(
            f"frechet_distance: means {mu1.shape}/{mu2.shape} and covariances {sigma1.shape}/{sigma2.shape} "
            "do not match: both sets need features of the same dimension D"
        )
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all() and np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise ConfigError("frechet_distance: the statistics contain NaN or infinite values: check the features")
    diff = mu1 - mu2                                                  # (D,)
    lam1, u1 = _psd_eigenvalues(sigma1, "the first covariance", tol)
    _psd_eigenvalues(sigma2, "the second covariance", tol)
    root1 = (u1 * np.sqrt(lam1)) @ u1.T                               # S = Σ₁^{1/2}, symmetric
    lam_m, _ = _psd_eigenvalues(root1 @ sigma2 @ root1, "S Σ₂ S", tol)  # the eigenvalues of Σ₁Σ₂
    trace_covmean = float(np.sqrt(lam_m).sum())                       # tr (Σ₁Σ₂)^{1/2}
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def frechet_distance_from_features(x, y, **kwargs) -> float:
    """Fréchet distance between the Gaussians fitted to feature sets ``x`` (N₁, D) and ``y`` (N₂, D)."""
    mu1, sigma1 = gaussian_stats(x, "first feature set")
    mu2, sigma2 = gaussian_stats(y, "second feature set")
    return frechet_distance(mu1, sigma1, mu2, sigma2, **kwargs)
