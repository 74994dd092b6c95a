"""Kullback–Leibler divergence KL(p‖q) = E_p[log p(x) - log q(x)] ≥ 0, in nats.

Symbols ↔ names: μ_p, σ_p ↔ ``mean_p``, ``std_p``; Σ_p ↔ ``cov_p`` (likewise for q).

    KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) = log(σ_q/σ_p) + (σ_p² + (μ_p - μ_q)²) / (2σ_q²) - ½
    KL(N(μ_p, Σ_p) ‖ N(μ_q, Σ_q))   = ½ [tr(Σ_q⁻¹ Σ_p) + (μ_q - μ_p)ᵀ Σ_q⁻¹ (μ_q - μ_p) - D + log(|Σ_q|/|Σ_p|)]

Minimising KL(p_data ‖ p_θ) over θ is the same as maximising the expected log-likelihood
E_{p_data}[log p_θ(x)], because E_{p_data}[log p_data(x)] does not depend on θ.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from genlab.errors import GenlabError
from genlab.stats.mvn import cholesky
from genlab.stats.normal import _check_std


def kl_normal(mean_p, std_p, mean_q, std_q):
    """KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) in closed form, element-wise with broadcasting."""
    std_p, std_q = _check_std(std_p), _check_std(std_q)
    ratio = (std_p / std_q) ** 2
    return 0.5 * (ratio + ((np.asarray(mean_p, float) - mean_q) / std_q) ** 2 - 1.0 - np.log(ratio))


def kl_mvn(mean_p, cov_p, mean_q, cov_q) -> float:
    """KL(N(μ_p, Σ_p) ‖ N(μ_q, Σ_q)) in closed form (through Cholesky factors, no inverses)."""
    mean_p, mean_q = np.atleast_1d(np.asarray(mean_p, float)), np.atleast_1d(np.asarray(mean_q, float))
    cov_p, cov_q = np.atleast_2d(np.asarray(cov_p, float)), np.atleast_2d(np.asarray(cov_q, float))
    d = mean_p.shape[0]
    if mean_q.shape != (d,) or cov_p.shape != (d, d) or cov_q.shape != (d, d):
        raise GenlabError(f"kl_mvn needs means of shape ({d},) and covariances ({d}, {d}); check the inputs.")
    Lp, Lq = cholesky(cov_p, "cov_p"), cholesky(cov_q, "cov_q")
    A = solve_triangular(Lq, Lp, lower=True)  # Lq⁻¹ Lp: tr(Σ_q⁻¹ Σ_p) = ‖A‖_F²
    b = solve_triangular(Lq, mean_q - mean_p, lower=True)  # ‖b‖² = Mahalanobis term
    log_det_ratio = 2.0 * (np.log(np.diag(Lq)).sum() - np.log(np.diag(Lp)).sum())
    return float(0.5 * ((A**2).sum() + b @ b - d + log_det_ratio))


def kl_monte_carlo(logp, logq, sample_p, n: int, random_state=None) -> float:
    """Monte Carlo estimate (1/n) Σ_i [log p(x_i) - log q(x_i)] with x_i ~ p.

    ``sample_p(n, rng)`` returns n samples (first axis n) given a ``np.random.Generator``;
    ``logp`` and ``logq`` map those samples to log-densities of shape (n,).
    For the standard error use :func:`genlab.stats.monte_carlo_expectation` with
    ``f = lambda x: logp(x) - logq(x)``.
    """
    rng = np.random.default_rng(random_state)
    x = sample_p(int(n), rng)
    return float(np.mean(np.asarray(logp(x)) - np.asarray(logq(x))))
