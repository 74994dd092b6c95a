"""Sampling-based estimation: plain Monte Carlo, Metropolis–Hastings (MCMC), importance sampling.

Conventions: a sampler is a callable ``sample(n, rng) -> array`` whose first axis has length n
(``rng`` is a ``np.random.Generator``); ``f``, ``log_target`` and ``log_proposal`` are vectorised
over that first axis, except in :func:`metropolis_hastings`, where ``log_target`` takes one point.
"""

from __future__ import annotations

import numpy as np

from genlab.errors import GenlabError


def monte_carlo_expectation(f, sample, n: int, random_state=None) -> tuple[float, float]:
    """Estimate E_p[f(x)] by (1/n) Σ_i f(x_i), x_i ~ p, and its standard error s/√n.

    s is the sample standard deviation of f(x_i) (ddof=1); the error shrinks like 1/√n.
    """
    if n < 2:
        raise GenlabError(f"monte_carlo_expectation needs n >= 2 samples for a standard error; got n={n}.")
    rng = np.random.default_rng(random_state)
    values = np.asarray(f(sample(int(n), rng)), dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n))


def metropolis_hastings(log_target, x0, n_samples: int, step_size=1.0, burn_in: int = 0, random_state=None):
    """Random-walk Metropolis–Hastings with Gaussian proposals x' = x + step_size · ε, ε ~ N(0, I).

    Accept x' with probability min(1, p̃(x') / p̃(x)), where ``log_target`` = log p̃ needs to be
    known only up to an additive constant (the proposal is symmetric, so q cancels).
    ``x0`` is a float (1-D chain, samples (n_samples,)) or an array (D,) (samples (n_samples, D)).
    The first ``burn_in`` states are discarded. Returns (samples, acceptance_rate), the rate being
    taken over all burn_in + n_samples proposals.
    """
    if n_samples < 1 or burn_in < 0 or not np.all(np.asarray(step_size) > 0):
        raise GenlabError("metropolis_hastings needs n_samples >= 1, burn_in >= 0 and step_size > 0.")
    rng = np.random.default_rng(random_state)
    scalar = np.ndim(x0) == 0
    x = np.atleast_1d(np.asarray(x0, dtype=float)).copy()
    unwrap = (lambda v: float(v[0])) if scalar else (lambda v: v)
    total = burn_in + n_samples
    steps = step_size * rng.standard_normal((total, x.shape[0]))  # all proposals' noise at once
    log_u = np.log(rng.uniform(size=total))
    logp = float(log_target(unwrap(x)))
    if not np.isfinite(logp):
        raise GenlabError("log_target(x0) is not finite; start the chain where the target density is positive.")
    samples = np.empty((n_samples, x.shape[0]))
    accepted = 0
    for t in range(total):
        proposal = x + steps[t]
        logp_new = float(log_target(unwrap(proposal)))
        if log_u[t] < logp_new - logp:  # accept with probability min(1, p̃(x')/p̃(x))
            x, logp = proposal, logp_new
            accepted += 1
        if t >= burn_in:
            samples[t - burn_in] = x
    return (samples[:, 0] if scalar else samples), accepted / total


def importance_sampling(f, log_target, sample_proposal, log_proposal, n: int, random_state=None, self_normalized=True):
    """Estimate E_p[f(x)] with samples x_i ~ q and weights w_i = p(x_i) / q(x_i).

    self_normalized=True:  Σ_i w_i f(x_i) / Σ_i w_i — ``log_target`` may be unnormalised.
    self_normalized=False: (1/n) Σ_i w_i f(x_i) — ``log_target`` must be a normalised log-density.
    Returns (estimate, ess) with the effective sample size ess = (Σ w_i)² / Σ w_i² ∈ [1, n].
    """
    rng = np.random.default_rng(random_state)
    x = sample_proposal(int(n), rng)
    log_w = np.asarray(log_target(x), dtype=float) - np.asarray(log_proposal(x), dtype=float)  # (n,)
    fx = np.asarray(f(x), dtype=float)
    shift = log_w.max()
    w = np.exp(log_w - shift)  # rescaled weights: the ratio below is unchanged, nothing overflows
    ess = float(w.sum() ** 2 / (w**2).sum())
    if self_normalized:
        estimate = np.tensordot(w / w.sum(), fx, axes=(0, 0))
    else:
        estimate = np.tensordot(w * np.exp(shift), fx, axes=(0, 0)) / n
    return (float(estimate) if np.ndim(estimate) == 0 else estimate), ess
