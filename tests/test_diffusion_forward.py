"""Forward process: closed form vs the iterated chain, and the posterior vs Bayes' rule on a grid."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from scipy import stats

from genlab.diffusion import NoiseSchedule, make_schedule, q_posterior, q_sample, q_step

# Large steps (β up to 0.2, T = 20) so that an off-by-one in t would move the law a lot.
COARSE = NoiseSchedule.from_betas(torch.linspace(0.02, 0.2, 20, dtype=torch.float64))


def run_chain(x0, t, schedule, generator):
    """x_0 → x_t by t+1 calls of q_step (steps 0..t)."""
    x = x0
    for s in range(t + 1):
        x = q_step(x, torch.full((x.shape[0],), s), schedule, generator=generator)
    return x


def test_chain_moments_equal_closed_form_exactly():
    # mean_t = √α_t mean_{t-1}, var_t = α_t var_{t-1} + β_t, from x_0 (mean x0, var 0).
    s = make_schedule("cosine", 200)
    mean, var = 1.0, 0.0
    for t in range(200):
        a = s.alphas[t].item()
        mean, var = np.sqrt(a) * mean, a * var + (1 - a)
        assert mean == pytest.approx(s.sqrt_alphas_cumprod[t].item(), rel=1e-10)
        assert var == pytest.approx(1 - s.alphas_cumprod[t].item(), rel=1e-10)


@pytest.mark.parametrize("t", [0, 4, 19])
def test_closed_form_equals_chain_in_distribution(t):
    n = 40_000
    g = torch.Generator().manual_seed(1 + t)
    # x0: a two-point data set {−1, +1}, so x_t is a two-component Gaussian mixture.
    x0 = (torch.randint(0, 2, (n,), generator=g) * 2 - 1).to(torch.float64)
    chain = run_chain(x0, t, COARSE, g).numpy()
    closed = q_sample(x0, torch.full((n,), t), COARSE, generator=g).numpy()

    a, sd = COARSE.sqrt_alphas_cumprod[t].item(), COARSE.sqrt_one_minus_alphas_cumprod[t].item()
    mix_var = a**2 + sd**2  # Var[x_t] = ᾱ Var[x0] + (1 − ᾱ), Var[x0] = 1, E[x_t] = 0
    for sample in (chain, closed):
        assert abs(sample.mean()) < 5 * np.sqrt(mix_var / n)
        assert abs(sample.var() - mix_var) < 5 * mix_var * np.sqrt(2 / n) * 1.5
        # Given x0 = +1: mean √ᾱ_t, sd √(1 − ᾱ_t).
        cond = sample[x0.numpy() > 0]
        assert abs(cond.mean() - a) < 5 * sd / np.sqrt(cond.size)
        assert abs(cond.std() - sd) < 5 * sd / np.sqrt(2 * cond.size)

    def mixture_cdf(x):
        return 0.5 * (stats.norm.cdf(x, a, sd) + stats.norm.cdf(x, -a, sd))

    assert stats.kstest(chain, mixture_cdf).pvalue > 1e-3
    assert stats.kstest(closed, mixture_cdf).pvalue > 1e-3
    assert stats.ks_2samp(chain, closed).pvalue > 1e-3


def test_ks_detects_an_off_by_one_chain():
    # The same KS check rejects a chain that stops one step early: the test has power.
    n, t = 40_000, 4
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 2, (n,), generator=g) * 2 - 1).to(torch.float64)
    short = run_chain(x0, t - 1, COARSE, g).numpy()
    a, sd = COARSE.sqrt_alphas_cumprod[t].item(), COARSE.sqrt_one_minus_alphas_cumprod[t].item()
    p = stats.kstest(short, lambda x: 0.5 * (stats.norm.cdf(x, a, sd) + stats.norm.cdf(x, -a, sd))).pvalue
    assert p < 1e-6


def test_q_sample_equals_diffusers_add_noise():
    s = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    ref = DDPMScheduler(num_train_timesteps=1000).add_noise(x0, noise, t)
    torch.testing.assert_close(q_sample(x0, t, s, noise), ref, rtol=1e-5, atol=1e-6)


def test_q_sample_draws_noise_on_cpu_generator():
    s = make_schedule("linear", 100)
    x0 = torch.zeros(3, 2)
    a = q_sample(x0, 50, s, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(3, 2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, s.sqrt_one_minus_alphas_cumprod[50].float() * eps)


@pytest.mark.parametrize("t", [1, 2, 10, 19])
@pytest.mark.parametrize("x0, x_t", [(0.7, -0.3), (-1.0, 1.2)])
def test_posterior_equals_bayes_on_a_grid(t, x0, x_t):
    s = COARSE
    ab_prev, beta = s.alphas_cumprod[t - 1].item(), s.betas[t].item()
    grid = np.linspace(-8, 8, 200_001)  # x_{t-1}
    # q(x_{t-1} | x_t, x0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x0)
    log_p = stats.norm.logpdf(x_t, np.sqrt(1 - beta) * grid, np.sqrt(beta)) + stats.norm.logpdf(
        grid, np.sqrt(ab_prev) * x0, np.sqrt(1 - ab_prev)
    )
    p = np.exp(log_p - log_p.max())
    p /= np.trapezoid(p, grid)
    mean_num = np.trapezoid(grid * p, grid)
    var_num = np.trapezoid((grid - mean_num) ** 2 * p, grid)

    mean, var, log_var = q_posterior(
        torch.tensor([x0], dtype=torch.float64), torch.tensor([x_t], dtype=torch.float64), torch.tensor([t]), s
    )
    assert mean.item() == pytest.approx(mean_num, abs=1e-8)
    assert var.item() == pytest.approx(var_num, rel=1e-6)
    assert log_var.item() == pytest.approx(np.log(var_num), abs=1e-6)


def test_posterior_at_t0_is_the_data_point():
    s = make_schedule("linear", 100)
    x0, x_t = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    mean, var, log_var = q_posterior(x0, x_t, torch.zeros(4, dtype=torch.long), s)
    torch.testing.assert_close(mean, x0)
    assert torch.all(var == 0)
    torch.testing.assert_close(log_var.flatten(), s.posterior_variance[1].log().repeat(4))
