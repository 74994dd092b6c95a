"""The variational bound in bits/dim, learned variances and the hybrid loss.

References: torch.distributions' KL, scipy's normal CDF (the discretised decoder), a Monte Carlo
estimate of the bound from its definition E_q[log q(x_{0:T−1}|x) − log p_θ(x, x_{0:T−1})] on
forward chains drawn step by step (Ho et al.'s coefficients written out here), and diffusers'
DDPMScheduler with variance_type="learned_range".
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genlab.diffusion import ClipX0, NetworkDenoiser, ddpm_sample, make_schedule, sampling_grid, timesteps_grid
from genlab.diffusion.learned_variance import HybridLoss, LearnedVarianceDenoiser, split_output
from genlab.diffusion.schedules import NoiseSchedule, linear_betas
from genlab.diffusion.vlb import (
    _times,
    discretized_gaussian_log_likelihood,
    model_log_variance,
    normal_kl,
    quantize,
    variational_bound,
)
from genlab.errors import ConfigError


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref, rtol=1e-12, atol=1e-12)


def test_discretized_decoder_matches_scipy_and_sums_to_one():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, std in ((0.1, 0.05), (-0.93, 0.003), (0.5, 2.0), (3.0, 0.01)):
        logp = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean), torch.full_like(levels, 2 * math.log(std)))
        x = levels.numpy()
        z_hi, z_lo = (x + 1 / 255 - mean) / std, (x - 1 / 255 - mean) / std
        upper = np.where(x > 1 - 1e-3, 1.0, norm.cdf(z_hi))
        lower = np.where(x < -1 + 1e-3, 0.0, norm.cdf(z_lo))
        # in the upper tail, the difference of survival functions (no cancellation near 1)
        upper_sf = np.where(x > 1 - 1e-3, 0.0, norm.sf(z_hi))
        ref = np.where(z_lo > 0, norm.sf(z_lo) - upper_sf, upper - lower)
        big = ref > 1e-12
        np.testing.assert_allclose(logp.exp().numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(logp.numpy()[big], np.log(ref[big]), rtol=1e-6)
        assert math.isclose(logp.exp().sum().item(), 1.0, rel_tol=1e-9)
    # a bin far in the tail: scipy underflows to 0, the log stays finite and close to log pdf · width
    far = discretized_gaussian_log_likelihood(torch.tensor([0.0], dtype=torch.float64), torch.tensor([0.9]), torch.tensor([2 * math.log(0.01)]))
    approx = norm.logpdf(0.0, loc=0.9, scale=0.01) + math.log(2 / 255)
    assert math.isfinite(far.item()) and abs(far.item() - approx) / abs(approx) < 0.02


def test_quantize_rounds_to_the_8_bit_levels():
    x = torch.tensor([-1.2, -1.0, 0.0, 0.003, 1.0, 1.5])
    q = quantize(x)
    k = (q + 1) * 255 / 2
    torch.testing.assert_close(k, k.round())
    assert q[0] == -1 and q[-1] == 1 and (q - x.clamp(-1, 1)).abs().max() <= 1 / 255 + 1e-7


class ToyDenoiser:
    """A fixed, imperfect denoiser that depends on x_t and t (not a trained model: any p_θ will do)."""

    def __init__(self, schedule, learned=False):
        self.process, self.learned = schedule, learned

    def _x0(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return torch.tanh(0.7 * x) * (1 - 0.05 * t) + 0.02

    def __call__(self, x, t, cond=None):
        return self._x0(x, t)

    def x0_and_fraction(self, x, t, cond=None):
        return self._x0(x, t), torch.sigmoid(1.5 * x)


def _brute_force_bound(schedule, x, denoiser, variance, n, seed):
    """Monte Carlo of E_q[log q(x_{0:T−1}|x) − log p(x_{T−1}) − Σ_t log p_θ(x_{t−1}|x_t) − log p_θ(x|x_0)],
    nats per image, with Ho et al.'s coefficients written out in NumPy (no genlab posterior code)."""
    rng = np.random.default_rng(seed)
    b = schedule.betas.numpy()
    a = 1 - b
    ab = np.cumprod(a)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    coef1 = b * np.sqrt(ab_prev) / (1 - ab)
    coef2 = np.sqrt(a) * (1 - ab_prev) / (1 - ab)
    beta_tilde = b * (1 - ab_prev) / (1 - ab)
    log_bt = np.log(np.where(np.arange(len(b)) == 0, beta_tilde[1], beta_tilde))
    T = len(b)
    xs = np.repeat(x[None], n, axis=0)  # (n, D)
    chain = [xs]
    log_q = 0.0
    for t in range(T):  # x_t = √α_t x_{t−1} + √β_t z
        prev = chain[-1]
        nxt = np.sqrt(a[t]) * prev + np.sqrt(b[t]) * rng.standard_normal(prev.shape)
        log_q = log_q + norm.logpdf(nxt, np.sqrt(a[t]) * prev, np.sqrt(b[t])).sum(1)
        chain.append(nxt)
    log_p = norm.logpdf(chain[-1], 0, 1).sum(1)
    for t in range(T):  # chain[t + 1] is x_t; chain[t] is x_{t−1} (chain[0] the data)
        x_t = torch.from_numpy(chain[t + 1])
        tt = torch.full((n,), t)
        if variance == "learned":
            x0_hat, v = denoiser.x0_and_fraction(x_t, tt)
            lv = v.numpy() * np.log(b[t]) + (1 - v.numpy()) * log_bt[t]
        else:
            x0_hat = denoiser(x_t, tt)
            lv = np.full(chain[0].shape, np.log(b[t]) if variance == "beta" else log_bt[t])
        mean = coef1[t] * x0_hat.numpy() + coef2[t] * chain[t + 1]
        std = np.exp(0.5 * lv)
        if t > 0:
            log_p = log_p + norm.logpdf(chain[t], mean, std).sum(1)
        else:  # the discretised decoder, with scipy's CDF
            xv = chain[0]
            hi = np.where(xv > 1 - 1e-3, 1.0, norm.cdf((xv + 1 / 255 - mean) / std))
            lo = np.where(xv < -1 + 1e-3, 0.0, norm.cdf((xv - 1 / 255 - mean) / std))
            log_p = log_p + np.log(hi - lo).sum(1)
    diff = log_q - log_p
    return diff.mean(), diff.std() / math.sqrt(n)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta", "learned"])
def test_bound_equals_its_definition_on_forward_chains(variance):
    schedule = NoiseSchedule.from_betas(torch.tensor([0.02, 0.1, 0.2, 0.3, 0.5, 0.7], dtype=torch.float64))
    x = quantize(torch.tensor([-1.0, -0.2, 0.4, 1.0], dtype=torch.float64))
    den = ToyDenoiser(schedule)
    n = 40_000
    ref, ref_se = _brute_force_bound(schedule, x.numpy(), den, variance, n, seed=1)
    vb = variational_bound(den, x.expand(n, -1).clone(), variance=variance, generator=torch.Generator().manual_seed(2))
    nats = vb.bits_per_dim * x.numel() * math.log(2)
    got, got_se = nats.mean().item(), nats.std().item() / math.sqrt(n)
    assert vb.exact and vb.terms.shape == (n, 6)
    assert abs(got - ref) < 4 * math.hypot(ref_se, got_se) + 1e-3, (got, ref, ref_se, got_se)
    # and the pieces mean what they say: the decoder term is the t = 0 column
    torch.testing.assert_close(vb.decoder, vb.terms[:, 0])


def test_prior_term_vanishes_at_zero_terminal_snr():
    sched = make_schedule("linear", 50, zero_terminal_snr=True)
    vb = variational_bound(ToyDenoiser(sched), torch.zeros(3, 4), variance="beta", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(vb.prior, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    plain = variational_bound(ToyDenoiser(make_schedule("linear", 50)), torch.full((3, 4), 0.8), generator=torch.Generator().manual_seed(0))
    assert bool((plain.prior > 0).all())


def test_stratified_times_cover_every_step_once_in_weight():
    g = torch.Generator().manual_seed(0)
    for T, k in ((1000, 50), (10, 4), (7, 7)):
        times, w = _times(T, k, g, batch=3)
        if k >= T:
            assert times.tolist() == list(range(T)) and bool((w == 1).all())
            continue
        assert bool((times[:, 0] == 0).all()) and w[0] == 1 and w.sum().item() == T
        edges = torch.cat([torch.tensor([1]), 1 + torch.cumsum(w[1:].long(), 0)])
        assert bool(((times[:, 1:] >= edges[:-1]) & (times[:, 1:] < edges[1:])).all())  # one pick inside each stratum
        assert len({tuple(r) for r in times.tolist()}) > 1  # each image draws its own
    with pytest.raises(ConfigError):
        _times(100, 1, g)


def test_stratified_estimate_is_unbiased():
    sched = NoiseSchedule.from_betas(linear_betas(40, 1e-3, 0.2))
    x = quantize(torch.tensor([[-0.5, 0.3, 0.9]], dtype=torch.float64)).expand(4000, -1).clone()
    den = ToyDenoiser(sched)
    full = variational_bound(den, x, generator=torch.Generator().manual_seed(0)).bits_per_dim
    est = variational_bound(den, x, n_times=6, generator=torch.Generator().manual_seed(1))
    assert not est.exact and est.times.shape == (4000, 6)
    se = math.hypot(full.std().item(), est.bits_per_dim.std().item()) / math.sqrt(len(x))
    assert abs(full.mean().item() - est.mean()) < 4 * se


def test_model_log_variance_interpolates_between_the_fixed_ones():
    sched = make_schedule("linear", 100)
    t = torch.tensor([0, 5, 99])
    lo, hi = model_log_variance(sched, t, "beta_tilde"), model_log_variance(sched, t, "beta")
    v = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64).view(3, 1)
    got = model_log_variance(sched, t, "learned", v.expand(3, 2)).double()
    torch.testing.assert_close(got[:, 0], (v[:, 0] * hi + (1 - v[:, 0]) * lo))
    assert lo[0] == sched.posterior_log_variance_clipped[1]  # β̃_0 = 0 is clipped to β̃_1
    with pytest.raises(ConfigError):
        model_log_variance(sched, t, "learned")
    with pytest.raises(ConfigError):
        model_log_variance(sched, t, "wide")


class TwoHeadNet(torch.nn.Module):
    """A fixed 'network' with 2C output channels: ε-prediction and a raw variance value in [−1, 1]."""

    def forward(self, x, t, y=None):
        t = torch.as_tensor(t, dtype=x.dtype).view(-1, 1, 1, 1)
        return torch.cat([0.3 * torch.sin(3 * x) + 1e-3 * t, torch.tanh(x + 0.002 * t)], dim=1)


@pytest.mark.parametrize("subgrid", [False, True])
def test_learned_variance_ddpm_matches_diffusers_learned_range(subgrid):
    from diffusers import DDPMScheduler

    T = 1000
    sched = make_schedule("linear", T)
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type="learned_range", clip_sample=False)
    # diffusers keeps ᾱ in float32, where 1 − ᾱ_t loses 4 digits at small t: give it float64 tables
    ref.betas, ref.alphas, ref.alphas_cumprod = sched.betas.clone(), sched.alphas.clone(), sched.alphas_cumprod.clone()
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    steps = timesteps_grid(T, 10, "trailing").tolist() if subgrid else list(range(T - 1, T - 6, -1)) + [3, 2, 1, 0]
    if subgrid:
        ref.set_timesteps(timesteps=steps)
    net = TwoHeadNet()
    den = LearnedVarianceDenoiser(net, sched, "epsilon")
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i, t in enumerate(steps):
        s = steps[i + 1] if i + 1 < len(steps) else -1
        if not subgrid and i + 1 < len(steps) and s != t - 1:
            continue  # the full-grid case steps t → t − 1 only
        if s == -1 and t > 0:
            # the last step of a sub-grid lands on the data: genlab adds no noise there (as Ho et al. and
            # improved-diffusion); diffusers still adds exp(½(v log β + (1 − v) log 1e-20)) · z, since t > 0
            got = ddpm_sample(den, x, [t, s], variance="learned", generator=torch.Generator().manual_seed(0))
            torch.testing.assert_close(got, den(x, t))
            continue
        out = net(x, torch.full((2,), float(t)))
        expected = ref.step(out, t, x, generator=torch.Generator().manual_seed(10 + i)).prev_sample
        got = ddpm_sample(den, x, [t, s], variance="learned", generator=torch.Generator().manual_seed(10 + i))
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_learned_variance_passes_through_clipping_and_needs_a_two_head_net():
    sched = make_schedule("linear", 50)
    den = ClipX0(LearnedVarianceDenoiser(TwoHeadNet(), sched))
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x0, frac = den.x0_and_fraction(x, 10)
    assert x0.abs().max() <= 1 and frac.shape == x.shape
    out = ddpm_sample(den, x, sampling_grid(sched, 5), variance="learned", generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    with pytest.raises(ConfigError, match="learned variance"):
        ddpm_sample(ClipX0(NetworkDenoiser(lambda x, t, y=None: 0 * x, sched)), x, sampling_grid(sched, 5), variance="learned")
    with pytest.raises(ConfigError, match="2 × 1 channels"):
        split_output(torch.zeros(3, 1, 4, 4), 1)


def test_hybrid_loss_trains_the_mean_with_l_simple_only_and_adds_the_bound():
    sched = make_schedule("linear", 100)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 2, 3, padding=1).double()
    wrapped = lambda x, t, y=None: net(x)  # noqa: E731
    x0 = quantize(torch.rand(8, 1, 5, 5, dtype=torch.float64) * 2 - 1)
    loss_fn = HybridLoss(sched, vlb_weight=0.001)
    loss = loss_fn(wrapped, (x0,), torch.Generator().manual_seed(3))
    # the same draws by hand: t, then ε; L_simple and the bound term from torch.distributions / scipy
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 100, (8,), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    ab = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    out = net(x_t)
    eps_hat, raw = out[:, :1], out[:, 1:]
    simple = ((eps_hat - eps) ** 2).flatten(1).mean(1)
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    ab_prev = sched.alphas_cumprod_prev[t].view(-1, 1, 1, 1)
    beta = sched.betas[t].view(-1, 1, 1, 1)
    c1, c2 = beta * ab_prev.sqrt() / (1 - ab), (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
    v = (raw + 1) / 2
    log_var = v * beta.log() + (1 - v) * sched.posterior_log_variance_clipped[t].view(-1, 1, 1, 1)
    model = torch.distributions.Normal(c1 * x0_hat + c2 * x_t, (0.5 * log_var).exp())
    true = torch.distributions.Normal(c1 * x0 + c2 * x_t, (0.5 * sched.posterior_log_variance_clipped[t].view(-1, 1, 1, 1)).exp())
    kl = torch.distributions.kl_divergence(true, model).flatten(1).sum(1)
    x_np, m_np, s_np = x0.numpy(), model.mean.detach().numpy(), model.stddev.detach().numpy()
    hi = np.where(x_np > 1 - 1e-3, 1.0, norm.cdf((x_np + 1 / 255 - m_np) / s_np))
    lo = np.where(x_np < -1 + 1e-3, 0.0, norm.cdf((x_np - 1 / 255 - m_np) / s_np))
    nll = -torch.from_numpy(np.log(hi - lo)).flatten(1).sum(1)
    bound = torch.where(t == 0, nll, kl) / (25 * math.log(2))
    expected = (simple + 0.001 * 100 * bound).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-8, atol=1e-10)
    # gradients: the bound reaches the variance head only (stop-gradient on the mean)
    net.zero_grad()
    loss.backward()
    g_hybrid = net.weight.grad.clone()
    net.zero_grad()
    simple.mean().backward()
    torch.testing.assert_close(g_hybrid[:1], net.weight.grad[:1])
    assert g_hybrid[1:].abs().sum() > 0 and net.weight.grad[1:].abs().sum() == 0
