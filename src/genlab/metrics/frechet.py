"""The Fréchet distance between two Gaussians fitted to feature sets (FID's formula), in float64.

For features X (N₁, D) and Y (N₂, D) summarised by their means and covariances,

    d²(N(μ₁, Σ₁), N(μ₂, Σ₂)) = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

=========  ==============  =====================================================
symbol     name            meaning
=========  ==============  =====================================================
μ₁, μ₂     ``mu1, mu2``    feature means, (D,)
Σ₁, Σ₂     ``sigma1/2``    feature covariances (unbiased, divisor N − 1), (D, D)
ε          ``eps``         offset added to both diagonals when Σ₁Σ₂ is near-singular
=========  ==============  =====================================================

(Σ₁Σ₂)^{1/2} is computed with :func:`scipy.linalg.sqrtm`. Safeguards, as in the reference FID code:
when the square root is not finite (a near-singular product), it is recomputed for
(Σ₁ + εI)(Σ₂ + εI); imaginary parts that round-off leaves on the diagonal are dropped when
they are small (|Im| ≤ ``imag_tol`` on the diagonal) and are an error when they are large.
A full-rank Σ needs N > D samples: :func:`gaussian_stats` refuses fewer.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

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


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, imag_tol: float = 1e-3) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}) in float64 (see the module docstring)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ConfigError(
            f"frechet_distance: means {mu1.shape}/{mu2.shape} and covariances {sigma1.shape}/{sigma2.shape} "
            "do not match: both sets need features of the same dimension D"
        )
    diff = mu1 - mu2                                                  # (D,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular input; we check the result ourselves
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)                 # (D, D), maybe complex
    covmean = np.asarray(covmean)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            covmean = np.asarray(scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset)))
        if not np.isfinite(covmean).all():
            raise ConfigError(
                "frechet_distance: the covariance product is singular even with an eps offset; "
                "use more samples (N > D) or check for constant features"
            )
    if np.iscomplexobj(covmean):
        worst = np.max(np.abs(np.diagonal(covmean).imag))
        if worst > imag_tol:
            raise ConfigError(
                f"frechet_distance: the matrix square root has an imaginary part of {worst:.3g} "
                f"(> {imag_tol}); the covariances are not valid (symmetric positive semi-definite) or too few samples"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def frechet_distance_from_features(x, y, **kwargs) -> float:
    """Fréchet distance between the Gaussians fitted to feature sets ``x`` (N₁, D) and ``y`` (N₂, D)."""
    mu1, sigma1 = gaussian_stats(x, "first feature set")
    mu2, sigma2 = gaussian_stats(y, "second feature set")
    return frechet_distance(mu1, sigma1, mu2, sigma2, **kwargs)
