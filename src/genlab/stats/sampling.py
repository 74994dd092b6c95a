"""Sampling-based estimation: plain Monte Carlo, rejection sampling, importance sampling, MCMC
(random-walk Metropolis–Hastings, Langevin: unadjusted and Metropolis-adjusted) and the chain
diagnostics that say how many independent draws a chain is worth (autocorrelation, ESS).

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
    x, unwrap, finish = _chain_start(x0)
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
    return finish(samples), accepted / total


def _chain_start(x0):
    """(x as a (D,) array, unwrap: state → what log_target takes, finish: (n, D) samples → the
    caller's shape): a float x0 makes a 1-D chain of floats, an array x0 a (D,) chain."""
    if np.ndim(x0) == 0:
        return np.atleast_1d(np.asarray(x0, dtype=float)).copy(), (lambda v: float(v[0])), (lambda s: s[:, 0])
    return np.asarray(x0, dtype=float).copy(), (lambda v: v), (lambda s: s)


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


def rejection_sample(log_target, sample_proposal, log_proposal, log_m: float, n: int, random_state=None, batch: int | None = None):
    """Draw n samples of p ∝ p̃ by proposing x ~ q and accepting with probability p̃(x) / (M q(x)).

    Needs the envelope p̃ ≤ M q everywhere (``log_m`` = log M); a proposal that breaks it raises
    instead of silently biasing the samples. With a normalised p̃ the acceptance rate is 1/M.
    Proposals are drawn ``batch`` at a time (default: n). Returns (samples, acceptance_rate).
    """
    if n < 1:
        raise GenlabError(f"rejection_sample needs n >= 1, got {n}")
    rng = np.random.default_rng(random_state)
    batch = int(batch or n)
    kept, proposed, have = [], 0, 0
    while have < n:
        x = sample_proposal(batch, rng)
        log_ratio = np.asarray(log_target(x), dtype=float) - np.asarray(log_proposal(x), dtype=float) - log_m
        if np.any(log_ratio > 1e-12):
            raise GenlabError(f"the envelope is broken: p̃(x) > M q(x) at a proposed point (log ratio {log_ratio.max():.3g} > 0); "
                              "raise log_m or pick a wider proposal")  # fmt: skip
        accept = np.log(rng.uniform(size=batch)) < log_ratio
        kept.append(x[accept])
        proposed, have = proposed + batch, have + int(accept.sum())
    samples = np.concatenate(kept)[:n]
    return samples, have / proposed


def langevin_mcmc(grad_log_target, x0, n_samples: int, step_size: float, burn_in: int = 0, log_target=None, random_state=None):
    """Langevin MCMC: x' = x + h ∇log p(x) + √(2h) ξ, ξ ~ N(0, I), h = ``step_size``.

    Without ``log_target`` this is the unadjusted Langevin algorithm (ULA): every step is kept, and
    the chain's stationary law is only close to p (its bias grows with h). With ``log_target`` each
    step is a Metropolis–Hastings proposal with the asymmetric q(x'|x) = N(x + h∇log p(x), 2h I),
    accepted with probability min(1, p̃(x') q(x|x') / (p̃(x) q(x'|x))) — MALA, exact for any h.
    ``x0`` a float or (D,) array, as in :func:`metropolis_hastings`. Returns (samples, acceptance_rate)
    (the rate is 1 for ULA).
    """
    if n_samples < 1 or burn_in < 0 or not step_size > 0:
        raise GenlabError("langevin_mcmc needs n_samples >= 1, burn_in >= 0 and step_size > 0.")
    rng = np.random.default_rng(random_state)
    x, unwrap, finish = _chain_start(x0)
    grad = lambda v: np.atleast_1d(np.asarray(grad_log_target(unwrap(v)), dtype=float))
    h, total = float(step_size), burn_in + n_samples
    noise = rng.standard_normal((total, x.shape[0]))
    log_u = np.log(rng.uniform(size=total))
    g = grad(x)
    logp = float(log_target(unwrap(x))) if log_target is not None else 0.0
    samples = np.empty((n_samples, x.shape[0]))
    accepted = 0
    for t in range(total):
        proposal = x + h * g + np.sqrt(2 * h) * noise[t]
        g_new = grad(proposal)
        if log_target is None:
            x, g = proposal, g_new
            accepted += 1
        else:
            logp_new = float(log_target(unwrap(proposal)))
            log_q_fwd = -np.sum((proposal - x - h * g) ** 2) / (4 * h)  # log q(x'|x) up to a constant
            log_q_back = -np.sum((x - proposal - h * g_new) ** 2) / (4 * h)  # log q(x|x')
            if log_u[t] < logp_new - logp + log_q_back - log_q_fwd:
                x, g, logp = proposal, g_new, logp_new
                accepted += 1
        if t >= burn_in:
            samples[t - burn_in] = x
    return finish(samples), accepted / total


def autocorrelation(chain, max_lag: int | None = None) -> np.ndarray:
    """ρ_k = Cov(x_t, x_{t+k}) / Var(x_t) of a 1-D chain for k = 0..max_lag (default n − 1), with the
    usual biased estimator (Σ over the n − k pairs divided by n), computed by FFT."""
    x = np.asarray(chain, dtype=float)
    if x.ndim != 1 or len(x) < 2:
        raise GenlabError("autocorrelation takes a 1-D chain of at least 2 states")
    n = len(x)
    max_lag = n - 1 if max_lag is None else int(min(max_lag, n - 1))
    x = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()  # zero-padded: a linear, not circular, correlation
    spec = np.fft.rfft(x, size)
    acov = np.fft.irfft(spec * np.conj(spec), size)[: max_lag + 1] / n
    return acov / acov[0]


def effective_sample_size(chain) -> float:
    """ESS = n / τ of a 1-D chain, τ = 1 + 2 Σ_k ρ_k the integrated autocorrelation time, the sum cut
    by Geyer's initial positive sequence (pairs ρ_{2m} + ρ_{2m+1} summed while positive)."""
    rho = autocorrelation(chain)
    n = len(rho)
    tau, m = -1.0, 0  # τ = −1 + 2 Σ_m (ρ_{2m} + ρ_{2m+1}), ρ_0 = 1
    while 2 * m + 1 < n:
        pair = rho[2 * m] + rho[2 * m + 1]
        if pair <= 0:
            break
        tau += 2 * pair
        m += 1
    return float(n / max(tau, 1e-12))
