import numpy as np
import pytest
from scipy import stats

from genlab.stats import gmm_logpdf, importance_sampling, metropolis_hastings, monte_carlo_expectation

# A bimodal 1-D target: 0.3 N(-2, 0.5²) + 0.7 N(2, 1²)
W, M, S = np.array([0.3, 0.7]), np.array([-2.0, 2.0]), np.array([0.5, 1.0])
TRUE_MEAN = float(W @ M)
TRUE_VAR = float(W @ (S**2 + M**2) - TRUE_MEAN**2)


def log_target(x):
    return gmm_logpdf(np.reshape(x, (-1, 1)), W, M[:, None], (S**2)[:, None, None])


def _log_target_scalar(x: float) -> float:
    # the same mixture density written out for one point (a cheap per-step call for MCMC)
    comps = np.log(W) - np.log(S) - 0.5 * np.log(2 * np.pi) - 0.5 * ((x - M) / S) ** 2
    return float(np.logaddexp(comps[0], comps[1]))


def test_metropolis_hastings_recovers_mean_and_variance_of_a_mixture():
    assert _log_target_scalar(0.7) == pytest.approx(log_target(0.7)[0])
    samples, acc = metropolis_hastings(_log_target_scalar, 0.0, 40_000, step_size=2.5, burn_in=1_000, random_state=0)
    assert samples.shape == (40_000,)
    assert 0.2 < acc < 0.8
    # MCMC samples are correlated: the tolerance allows for an effective sample size of a few thousand
    assert samples.mean() == pytest.approx(TRUE_MEAN, abs=0.1)
    assert samples.var() == pytest.approx(TRUE_VAR, rel=0.06)


def test_metropolis_hastings_handles_vector_states_and_unnormalised_targets():
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    prec = np.linalg.inv(cov)
    log_p = lambda x: -0.5 * x @ prec @ x + 123.0  # noqa: E731  (an arbitrary constant must not matter)
    samples, _ = metropolis_hastings(log_p, np.zeros(2), 30_000, step_size=1.0, burn_in=500, random_state=1)
    assert samples.shape == (30_000, 2)
    np.testing.assert_allclose(np.cov(samples.T), cov, atol=0.1)


def test_importance_sampling_recovers_known_moments():
    proposal = stats.norm(0.0, 4.0)
    sample = lambda n, rng: rng.normal(0.0, 4.0, size=n)  # noqa: E731
    est_mean, ess = importance_sampling(lambda x: x, log_target, sample, proposal.logpdf, 50_000, random_state=0)
    est_m2, _ = importance_sampling(lambda x: x**2, log_target, sample, proposal.logpdf, 50_000, random_state=0, self_normalized=False)
    assert 1 < ess < 50_000
    assert est_mean == pytest.approx(TRUE_MEAN, abs=0.05)
    assert est_m2 - TRUE_MEAN**2 == pytest.approx(TRUE_VAR, rel=0.03)


def test_self_normalised_importance_sampling_ignores_the_target_constant():
    proposal = stats.norm(0.0, 4.0)
    sample = lambda n, rng: rng.normal(0.0, 4.0, size=n)  # noqa: E731
    a, _ = importance_sampling(lambda x: x, log_target, sample, proposal.logpdf, 5000, random_state=3)
    b, _ = importance_sampling(lambda x: x, lambda x: log_target(x) + 50.0, sample, proposal.logpdf, 5000, random_state=3)
    assert a == pytest.approx(b, rel=1e-12)


def test_ess_equals_n_when_proposal_is_the_target():
    sample = lambda n, rng: rng.normal(size=n)  # noqa: E731
    _, ess = importance_sampling(lambda x: x, stats.norm.logpdf, sample, stats.norm.logpdf, 1000, random_state=0)
    assert ess == pytest.approx(1000)


def test_monte_carlo_estimate_and_its_standard_error():
    # E[X²] for X ~ N(0, 1) is 1 and Var[X²] = 2, so the standard error is √2/√n
    sample = lambda n, rng: rng.normal(size=n)  # noqa: E731
    n = 40_000
    est, stderr = monte_carlo_expectation(lambda x: x**2, sample, n, random_state=0)
    assert stderr == pytest.approx(np.sqrt(2.0 / n), rel=0.05)
    assert abs(est - 1.0) < 4 * stderr


def test_monte_carlo_standard_error_matches_the_spread_of_repeated_estimates():
    sample = lambda n, rng: rng.exponential(size=n)  # noqa: E731  (std of f is 1)
    estimates = [monte_carlo_expectation(lambda x: x, sample, 400, random_state=s)[0] for s in range(400)]
    assert np.std(estimates) == pytest.approx(1.0 / np.sqrt(400), rel=0.12)


def test_rejection_sampling_draws_the_target_at_rate_one_over_m():
    from scipy import stats

    from genlab.stats import rejection_sample

    target = stats.beta(2, 5)
    log_m = float(np.log(target.pdf(0.2)))  # the mode of Beta(2, 5) is (2 − 1)/(2 + 5 − 2) = 0.2; q = U(0, 1)
    x, rate = rejection_sample(target.logpdf, lambda n, rng: rng.uniform(size=n), lambda x: np.zeros_like(x), log_m, 20_000, random_state=0)
    assert x.shape == (20_000,)
    assert stats.kstest(x, target.cdf).pvalue > 1e-3
    m = np.exp(log_m)
    assert abs(rate - 1 / m) < 5 * np.sqrt((1 / m) * (1 - 1 / m) / (20_000 * m))  # binomial SE over ≈ n·M proposals


def test_rejection_sampling_refuses_a_broken_envelope():
    from scipy import stats

    from genlab.errors import GenlabError
    from genlab.stats import rejection_sample

    with pytest.raises(GenlabError, match="envelope is broken"):
        rejection_sample(stats.beta(2, 5).logpdf, lambda n, rng: rng.uniform(size=n), lambda x: np.zeros_like(x), 0.0, 100, random_state=0)


def test_ula_has_the_closed_form_bias_and_mala_removes_it():
    from genlab.stats import effective_sample_size, langevin_mcmc

    s2, h = 1.5, 0.6  # target N(0, s²); ULA is the AR(1) x' = (1 − h/s²) x + √(2h) ξ
    grad = lambda x: -x / s2
    ula, rate = langevin_mcmc(grad, 0.0, 60_000, h, burn_in=500, random_state=0)
    assert rate == 1.0
    stationary = s2 / (1 - h / (2 * s2))  # the AR(1)'s stationary variance 2h / (1 − a²)
    se = stationary * np.sqrt(2 / effective_sample_size(ula**2 - (ula**2).mean()))
    assert abs(ula.var() - stationary) < 5 * se
    mala, rate = langevin_mcmc(grad, 0.0, 60_000, h, burn_in=500, log_target=lambda x: -0.5 * x * x / s2, random_state=0)
    assert 0 < rate < 1
    se = s2 * np.sqrt(2 / effective_sample_size(mala**2 - (mala**2).mean()))
    assert abs(mala.var() - s2) < 5 * se and abs(stationary - s2) > 10 * se  # the bias is real and MALA removes it


def test_mala_on_a_correlated_2d_gaussian():
    from genlab.stats import langevin_mcmc

    cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    prec = np.linalg.inv(cov)
    mean = np.array([1.0, -2.0])
    x, rate = langevin_mcmc(lambda v: -prec @ (v - mean), mean, 40_000, 0.3, burn_in=500,
                            log_target=lambda v: -0.5 * (v - mean) @ prec @ (v - mean), random_state=1)
    assert x.shape == (40_000, 2) and 0.2 < rate < 1
    np.testing.assert_allclose(x.mean(0), mean, atol=0.06)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.06)


def test_autocorrelation_equals_brute_force_and_ess_matches_an_ar1():
    from genlab.stats import autocorrelation, effective_sample_size

    rng = np.random.default_rng(0)
    phi, n = 0.8, 50_000
    x = np.empty(n)
    x[0] = rng.standard_normal() / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.standard_normal()
    rho = autocorrelation(x, 20)
    xc = x - x.mean()
    brute = np.array([np.sum(xc[: n - k] * xc[k:]) / n for k in range(21)]) / (np.sum(xc**2) / n)
    np.testing.assert_allclose(rho, brute, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rho[:6], phi ** np.arange(6), atol=0.03)  # ρ_k = φ^k
    ess = effective_sample_size(x)
    assert ess == pytest.approx(n * (1 - phi) / (1 + phi), rel=0.15)  # τ = (1 + φ)/(1 − φ)
    assert effective_sample_size(rng.standard_normal(n)) == pytest.approx(n, rel=0.1)  # independent draws
