"""genlab.diffusion.score against independent references: the closed-form scores of Gaussian
mixtures (NoisedGaussianMixture), closed-form minima of denoising score matching, the exact
(full-Jacobian) score-matching objective, hand-computed steps, and KS tests on sampled data."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from genlab.diffusion import ContinuousVP, NoisedGaussianMixture, VEProcess, make_schedule
from genlab.diffusion.score import (
    annealed_langevin_sample,
    denoiser_score,
    denoising_score_matching_loss,
    eps_from_score,
    ncsn_sigmas,
    noise_level_score,
    reverse_sde_sample,
    score_from_eps,
    score_from_x0,
    sde_coefficients,
    sliced_score_matching_loss,
    x0_from_score,
)
from genlab.errors import ConfigError

F64 = torch.float64


def mixture_2d(process):
    weights = [0.2, 0.5, 0.3]
    means = [[-1.0, 0.5], [1.0, 1.0], [0.0, -1.5]]
    covs = [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]], [[0.25, -0.05], [-0.05, 0.15]]]
    return NoisedGaussianMixture(weights, means, covs, process)


def mixture_1d(process):
    return NoisedGaussianMixture([0.3, 0.7], [[-2.0], [2.0]], [[[0.25]], [[0.25]]], process)


# ------------------------------------------------------------------ conversions (Tweedie)
def test_conversions_match_the_exact_score_of_a_noised_mixture():
    mix = mixture_2d(ContinuousVP("linear"))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for t in (0.05, 0.3, 0.8):
        a, s = (v.item() for v in mix.process.alpha_sigma(torch.tensor(t, dtype=F64)))
        exact = mix.score(x, t)  # autograd of the closed-form log-density
        x0 = mix.posterior_mean(x, t)  # Gaussian conditioning, not through the score
        torch.testing.assert_close(score_from_x0(x, x0, a, s), exact, rtol=1e-9, atol=1e-9)
        eps = (x - a * x0) / s
        torch.testing.assert_close(score_from_eps(eps, s), exact, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(eps_from_score(exact, s), eps, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(x0_from_score(exact, x, a, s), x0, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(denoiser_score(mix)(x, t), exact, rtol=1e-9, atol=1e-9)
    ts = torch.linspace(0.1, 0.9, 64, dtype=F64)  # one time per sample
    torch.testing.assert_close(denoiser_score(mix)(x, ts), mix.score(x, ts), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("process", [ContinuousVP("linear"), ContinuousVP("cosine"), make_schedule("linear", 1000)])
def test_noise_level_score_is_the_score_of_the_ve_mixture(process):
    # y = x₀ + σ̂ ε is the mixture with covariances Σ_k + σ̂² I: the VE process at t = σ̂
    ve = mixture_2d(VEProcess(sigma_max=100.0))
    y = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2
    score = noise_level_score(mixture_2d(process))
    for sigma_hat in (0.05, 0.7, 3.0):
        torch.testing.assert_close(score(y, sigma_hat), ve.score(y, sigma_hat), rtol=1e-7, atol=1e-7)


# ------------------------------------------------------------------ denoising score matching
def _split_mean(fn, n_batches):
    vals = torch.tensor([fn(i) for i in range(n_batches)], dtype=F64)
    return vals.mean().item(), vals.std().item() / math.sqrt(n_batches)


def test_dsm_loss_of_the_exact_score_equals_its_closed_form_minimum():
    # data N(μ, s² I_D): p_σ = N(μ, (s² + σ²) I); min ℓ = ½ E‖z/σ‖² − ½ E‖∇log p_σ‖² = D s² / (2 σ² (s² + σ²))
    d, s2, mu = 3, 0.5, torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    exact = lambda sig2: (lambda x, *_: -(x - mu) / (s2 + sig2))
    data = lambda g, n: mu + math.sqrt(s2) * torch.randn(n, d, generator=g, dtype=F64)

    def one(sigma, i):
        g = torch.Generator().manual_seed(i)
        return denoising_score_matching_loss(exact(sigma**2), data(g, 20_000), sigma, generator=g).item()

    for sigma in (0.2, 1.0):
        m, se = _split_mean(lambda i: one(sigma, i), 20)
        assert abs(m - d * s2 / (2 * sigma**2 * (s2 + sigma**2))) < 4 * se
    # a set of levels, λ(σ) = σ²: each level's minimum times σ², averaged: D s² / (2 (s² + σ²))
    sigmas = torch.tensor([0.1, 0.5, 2.0], dtype=F64)
    net = lambda x, sig: -(x - mu) / (s2 + sig.view(-1, 1) ** 2)

    def multi(i):
        g = torch.Generator().manual_seed(100 + i)
        return denoising_score_matching_loss(net, data(g, 20_000), sigmas, generator=g).item()

    m, se = _split_mean(multi, 20)
    assert abs(m - (d * s2 / (2 * (s2 + sigmas**2))).mean().item()) < 4 * se


def test_dsm_equals_explicit_score_matching_plus_a_constant():
    # Vincent 2011: DSM(s) − DSM(s*) = ½ E_{x̃ ~ p_σ} ‖s(x̃) − ∇log p_σ(x̃)‖², here for s(x) = −c x in closed form
    d, s2, sigma, c = 2, 0.3, 0.6, 0.7
    mu = torch.tensor([0.5, -1.0], dtype=F64)
    v = s2 + sigma**2
    a = 1 / v - c  # s(x) − s*(x) = a x − μ/v
    esm = 0.5 * ((a * mu - mu / v).pow(2).sum().item() + a**2 * v * d)

    def diff(i):  # the same noise for both (common random numbers)
        x0 = mu + math.sqrt(s2) * torch.randn(20_000, d, generator=torch.Generator().manual_seed(i), dtype=F64)
        loss = lambda f: denoising_score_matching_loss(f, x0, sigma, generator=torch.Generator().manual_seed(10_000 + i)).item()
        return loss(lambda x: -c * x) - loss(lambda x: -(x - mu) / v)

    m, se = _split_mean(diff, 20)
    assert abs(m - esm) < 4 * se


def test_dsm_rejects_an_unknown_weighting():
    with pytest.raises(ConfigError, match="weighting"):
        denoising_score_matching_loss(lambda x: x, torch.zeros(2, 2), 0.5, weighting="sigma")


# ------------------------------------------------------------------ sliced score matching
def _small_net(d=3):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, d)).double()


def _exact_objective(net, x):  # Hyvärinen: tr(∇ₓ s) + ½ ‖s‖², the Jacobian in full
    jac = torch.stack([torch.autograd.functional.jacobian(net, xi, create_graph=True) for xi in x])  # (B, D, D)
    return (jac.diagonal(dim1=1, dim2=2).sum(1) + 0.5 * net(x).pow(2).sum(1)).mean(), jac


def test_sliced_sm_over_all_sign_vectors_is_exactly_the_trace_objective():
    net, d = _small_net(), 3
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(0), dtype=F64)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=F64)  # the 2^D vectors: mean of v vᵀ = I
    v = signs[:, None, :].expand(-1, len(x), -1)  # (M, B, D)
    sliced = sliced_score_matching_loss(net, x, v=v)
    exact, _ = _exact_objective(net, x)
    torch.testing.assert_close(sliced, exact, rtol=1e-12, atol=1e-12)
    g_sliced = torch.autograd.grad(sliced, list(net.parameters()))
    g_exact = torch.autograd.grad(exact, list(net.parameters()))
    for a, b in zip(g_sliced, g_exact):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_sliced_sm_with_random_projections_is_unbiased():
    net, d, m = _small_net(), 3, 4000
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(1), dtype=F64)
    exact, jac = _exact_objective(net, x)
    sym = 0.5 * (jac + jac.transpose(1, 2))
    for projection, var in (("gaussian", 2 * sym.pow(2).sum((1, 2))), ("rademacher", 2 * (sym.pow(2).sum((1, 2)) - sym.diagonal(dim1=1, dim2=2).pow(2).sum(1)))):
        se = math.sqrt(var.sum().item() / m) / len(x)  # Var(vᵀAv): 2‖A_s‖_F² (Gaussian), 2 Σ_{i≠j} A_s,ij² (Rademacher)
        est = sliced_score_matching_loss(net, x, n_projections=m, projection=projection, generator=torch.Generator().manual_seed(2))
        assert abs(est.item() - exact.item()) < 4 * se, projection


# ------------------------------------------------------------------ annealed Langevin
def test_ncsn_sigmas_are_geometric():
    s = ncsn_sigmas(10.0, 0.01, 7)
    assert s[0].item() == pytest.approx(10.0) and s[-1].item() == pytest.approx(0.01)
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (0.001) ** (1 / 6)))
    with pytest.raises(ConfigError):
        ncsn_sigmas(0.1, 1.0, 5)


def test_annealed_langevin_steps_by_hand_and_reproducibly():
    score = lambda x, sigma: -x / (1 + sigma**2)
    x = torch.tensor([[1.0, -0.5]], dtype=F64)
    out = annealed_langevin_sample(score, x, [2.0, 0.5], step_scale=0.1, steps_per_level=1, generator=torch.Generator().manual_seed(3))
    g, ref = torch.Generator().manual_seed(3), x
    for sigma in (2.0, 0.5):
        alpha = 0.1 * sigma**2 / 0.25
        ref = ref + alpha / 2 * score(ref, sigma) + math.sqrt(alpha) * torch.randn(ref.shape, generator=g, dtype=F64)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_annealed_langevin_with_the_exact_score_recovers_the_mixture_weights():
    ve = mixture_1d(VEProcess(sigma_max=100.0))  # the NCSN noised density p_σ is the VE process at t = σ
    sigmas = ncsn_sigmas(5.0, 0.1, 10)
    n = 4000
    x = 5.0 * torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = annealed_langevin_sample(ve.score, x, sigmas, step_scale=2e-3, steps_per_level=100, generator=torch.Generator().manual_seed(1))
    share = (out > 0).double().mean().item()
    assert abs(share - 0.7) < 4 * math.sqrt(0.21 / n)  # the weight of the right-hand mode
    # the right-hand mode's mean and variance: N(2, 0.25 + σ_L²), to within the sample's own standard errors
    right = out[out > 0]
    var = 0.25 + 0.1**2
    assert abs(right.mean().item() - 2.0) < 4 * math.sqrt(var / len(right))
    assert abs(right.var().item() - var) < 4 * var * math.sqrt(2 / len(right))


# ------------------------------------------------------------------ the SDE view
def test_sde_coefficients_in_closed_form():
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    vp = ContinuousVP("linear", beta_min=0.1, beta_max=20.0)
    beta = 0.1 + t * 19.9
    f, g2 = sde_coefficients(vp, t)
    torch.testing.assert_close(f, -0.5 * beta)
    torch.testing.assert_close(g2, beta)
    f0, g0 = sde_coefficients(vp, 0.0)  # the data end, where σ' = ∞: the limit β(0)
    assert f0.item() == pytest.approx(-0.05) and g0.item() == pytest.approx(0.1)
    f, g2 = sde_coefficients(ContinuousVP("cosine"), t)  # β(t) = π tan(π t / 2)
    torch.testing.assert_close(f, -0.5 * math.pi * torch.tan(math.pi * t / 2))
    torch.testing.assert_close(g2, math.pi * torch.tan(math.pi * t / 2))
    f, g2 = sde_coefficients(VEProcess(), t)  # σ(t) = t: g² = dσ²/dt = 2t
    torch.testing.assert_close(f, torch.zeros_like(t))
    torch.testing.assert_close(g2, 2 * t)
    with pytest.raises(ConfigError):
        sde_coefficients(make_schedule("linear", 100), 5)


def test_one_euler_maruyama_step_by_hand():
    vp = ContinuousVP("linear")
    mix = mixture_2d(vp)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    out = reverse_sde_sample(mix.score, x, vp, [0.5, 0.4], noise_last=True, generator=torch.Generator().manual_seed(5))
    beta, h = 0.1 + 0.5 * 19.9, 0.1
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    ref = x - h * (-0.5 * beta * x - beta * mix.score(x, 0.5)) + math.sqrt(beta * h) * z
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    mean = reverse_sde_sample(mix.score, x, vp, [0.5, 0.4])  # the last step: its mean, no noise
    torch.testing.assert_close(mean, ref - math.sqrt(beta * h) * z, rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match="decrease"):
        reverse_sde_sample(mix.score, x, vp, [0.4, 0.5])


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_reverse_sde_with_the_exact_score_recovers_the_data(kind):
    if kind == "vp":
        process, t_end = ContinuousVP("linear"), 1e-3
        grid = np.linspace(1.0, t_end, 301)
    else:
        process, t_end = VEProcess(sigma_max=20.0), 1e-2
        grid = np.geomspace(20.0, t_end, 301)
    mix, n = mixture_1d(process), 4000
    g = torch.Generator().manual_seed(6)
    a, s = (v.item() for v in process.alpha_sigma(torch.tensor(grid[0], dtype=F64)))
    x = a * mix.sample(n, generator=g) + s * torch.randn(n, 1, generator=g, dtype=F64)  # exactly p_T
    out = reverse_sde_sample(mix.score, x, process, grid, generator=g).squeeze(1).numpy()
    a, s = (v.item() for v in process.alpha_sigma(torch.tensor(t_end, dtype=F64)))
    sd = math.sqrt(a**2 * 0.25 + s**2)  # p at the grid's end: the mixture noised to t_end
    cdf = lambda v: 0.3 * stats.norm.cdf(v, -2 * a, sd) + 0.7 * stats.norm.cdf(v, 2 * a, sd)
    assert stats.kstest(out, cdf).pvalue > 1e-3
