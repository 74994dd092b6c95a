"""VAE: KL, reparameterisation, likelihoods, the ELBO bound, training, conditioning, round trip.

Independent references: torch.distributions and scipy.stats (KL, densities), Monte Carlo with a
NumPy RNG, closed-form Gaussian expectations, numerical integration over a 1-D latent, and the
exact marginal of a linear-Gaussian model (scipy's multivariate normal).
"""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits

from genlab.errors import ConfigError, GenlabError
from genlab.nn.vae import (
    VAE,
    VAEConfig,
    elbo_terms,
    gaussian_kl,
    importance_log_likelihood,
    reconstruction_nll,
    reparameterize,
    vae_loss,
)
from genlab.train import TrainConfig, fit, load_model, save_checkpoint

# ---------------------------------------------------------------- KL(q ‖ p) in closed form


def test_kl_is_zero_for_the_prior():
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert torch.equal(gaussian_kl(mu, logvar), torch.zeros(3))


def test_kl_matches_torch_distributions(gen):
    mu, logvar = torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randn(6, 4, generator=gen, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, rtol=1e-12, atol=1e-12)


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = np.array([0.7, -1.2, 0.0]), np.array([-0.5, 0.8, -2.0])
    sd = np.exp(0.5 * logvar)
    z = mu + sd * rng.standard_normal((400_000, 3))  # z ~ q, drawn independently of genlab
    log_ratio = (stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z)).sum(1)
    mc, se = log_ratio.mean(), log_ratio.std() / math.sqrt(len(z))
    exact = gaussian_kl(torch.tensor(mu), torch.tensor(logvar)).item()
    assert abs(mc - exact) < 4 * se


# ---------------------------------------------------------------- reparameterisation


def test_reparameterize_has_the_right_distribution(gen):
    mu = torch.tensor([[1.5, -2.0]]).expand(50_000, 2)
    logvar = torch.tensor([[math.log(0.25), math.log(4.0)]]).expand(50_000, 2)
    z = reparameterize(mu, logvar, gen).numpy()
    assert stats.kstest(z[:, 0], stats.norm(1.5, 0.5).cdf).pvalue > 1e-3
    assert stats.kstest(z[:, 1], stats.norm(-2.0, 2.0).cdf).pvalue > 1e-3
    # explicit generator → reproducible
    z2 = reparameterize(mu, logvar, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(z, z2)


A = 3.0  # f(z) = sin(A z) + z²/2, whose Gaussian expectation has a closed form


def _f(z):
    return torch.sin(A * z) + 0.5 * z**2


def _expected_f_grads(mu, var):
    """d/dμ and d/dlogvar of E[f(z)], z ~ N(μ, var): E = sin(Aμ) e^{-A²var/2} + (μ² + var)/2."""
    damp = np.exp(-(A**2) * var / 2)
    d_mu = A * np.cos(A * mu) * damp + mu
    d_logvar = var * (-(A**2) / 2 * np.sin(A * mu) * damp + 0.5)
    return d_mu, d_logvar


def test_reparameterised_gradient_equals_finite_difference_and_closed_form():
    n = 200_000
    mu0 = torch.tensor([0.3, -0.8], dtype=torch.float64)
    logvar0 = torch.tensor([-1.0, 0.2], dtype=torch.float64)

    def mc_objective(mu, logvar, seed=0):
        g = torch.Generator().manual_seed(seed)  # common random numbers: the same ε every call
        z = reparameterize(mu.expand(n, 2), logvar.expand(n, 2), g)
        return _f(z).mean(0).sum()  # Σ_j E[f(z_j)]: each coordinate only depends on its own μ_j

    mu, logvar = mu0.clone().requires_grad_(), logvar0.clone().requires_grad_()
    mc_objective(mu, logvar).backward()

    # 1. finite differences of the same Monte Carlo objective (fixed noise) agree to O(h²)
    h = 1e-5
    for j in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[j] = h
        fd_mu = (mc_objective(mu0 + e, logvar0) - mc_objective(mu0 - e, logvar0)) / (2 * h)
        fd_lv = (mc_objective(mu0, logvar0 + e) - mc_objective(mu0, logvar0 - e)) / (2 * h)
        assert mu.grad[j].item() == pytest.approx(fd_mu.item(), abs=1e-6)
        assert logvar.grad[j].item() == pytest.approx(fd_lv.item(), abs=1e-6)

    # 2. and the estimate is unbiased for the exact derivative of the true expectation
    d_mu, d_lv = _expected_f_grads(mu0.numpy(), logvar0.exp().numpy())
    eps = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = mu0 + (0.5 * logvar0).exp() * eps
    per_sample = A * torch.cos(A * z) + z  # f'(z) = ∂f(μ + σε)/∂μ
    se = (per_sample.std(0) / math.sqrt(n)).numpy()
    np.testing.assert_array_less(np.abs(mu.grad.numpy() - d_mu), 4 * se)
    assert np.allclose(logvar.grad.numpy(), d_lv, atol=0.01)


# ---------------------------------------------------------------- likelihoods


def test_bernoulli_reconstruction_is_the_bernoulli_log_likelihood(gen):
    model = VAE(VAEConfig(image_size=4, latent_dim=2, hidden=(8,)))
    logits = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    x = torch.randint(0, 2, (3, 1, 4, 4), generator=gen).double() * 2 - 1  # binary images in {-1, 1}
    p = torch.sigmoid(logits).numpy()
    expected = -stats.bernoulli.logpmf((x.numpy() + 1) / 2, p).reshape(3, -1).sum(1)
    np.testing.assert_allclose(reconstruction_nll(model, logits, x).numpy(), expected, rtol=1e-10)
    # grey values: the target is (x + 1)/2 in [0, 1] (the cross-entropy surrogate, not a normalised density)
    x_grey = torch.rand(3, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    t = (x_grey.numpy() + 1) / 2
    expected = -(t * np.log(p) + (1 - t) * np.log1p(-p)).reshape(3, -1).sum(1)
    np.testing.assert_allclose(reconstruction_nll(model, logits, x_grey).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("std", [1.0, 0.1])
def test_gaussian_reconstruction_is_the_normal_log_density(std, gen):
    model = VAE(VAEConfig(image_size=4, latent_dim=2, hidden=(8,), likelihood="gaussian", gaussian_std=std)).double()
    mean = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    x = torch.rand(3, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    expected = -stats.norm.logpdf(x.numpy(), mean.numpy(), std).reshape(3, -1).sum(1)
    np.testing.assert_allclose(reconstruction_nll(model, mean, x).numpy(), expected, rtol=1e-10)


def test_loss_weights_kl_by_beta(gen):
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_size=8, latent_dim=3, hidden=(16,), beta=4.0))
    x = torch.rand(10, 1, 8, 8, generator=gen) * 2 - 1
    t = elbo_terms(model, x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(t["loss"], t["recon"] + 4.0 * t["kl"])
    torch.testing.assert_close(t["elbo"], -(t["recon"] + t["kl"]))
    t1 = elbo_terms(model, x, generator=torch.Generator().manual_seed(1), beta=1.0)
    torch.testing.assert_close(t1["loss"], -t1["elbo"])
    # the terms are per-sample means: the KL equals the mean of the closed-form KL of each image
    mu, logvar = model.encode(x)
    torch.testing.assert_close(t["kl"], gaussian_kl(mu, logvar).mean())
    assert torch.all(gaussian_kl(mu, logvar) >= 0)


# ---------------------------------------------------------------- ELBO ≤ log p(x)


def _tiny_1d_latent_vae():
    """4 binary pixels, a 1-D latent: small enough to integrate p(x) = ∫ p(x|z) p(z) dz on a grid."""
    torch.manual_seed(3)
    model = VAE(VAEConfig(image_size=2, latent_dim=1, hidden=(8,))).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(4.0)  # a decoder that depends strongly on z: a non-trivial posterior
    return model.eval()


def test_elbo_is_below_log_evidence_computed_by_integration():
    model = _tiny_1d_latent_vae()
    x = torch.tensor([[[[1.0, -1.0], [1.0, 1.0]]]], dtype=torch.float64)  # (1, 1, 2, 2)
    z = torch.linspace(-12, 12, 24_001, dtype=torch.float64)[:, None]  # (G, 1)
    dz = (z[1] - z[0]).item()
    with torch.no_grad():
        log_px_z = -reconstruction_nll(model, model.decode(z), x.expand(len(z), -1, -1, -1))  # (G,)
        log_pz = torch.tensor(stats.norm.logpdf(z[:, 0].numpy()))
        log_px = (torch.logsumexp(log_px_z + log_pz, 0) + math.log(dz)).item()
        mu, logvar = model.encode(x)
        log_q = torch.tensor(stats.norm.logpdf(z[:, 0].numpy(), mu.item(), math.exp(0.5 * logvar.item())))
    q = log_q.exp() * dz
    elbo_quad = (q * (log_px_z + log_pz - log_q)).sum().item()
    log_post = log_px_z + log_pz - log_px  # log p(z|x) on the grid
    kl_q_post = (q * (log_q - log_post)).sum().item()

    assert elbo_quad < log_px - 1e-3  # a strict bound: this q is not the posterior
    assert log_px - elbo_quad == pytest.approx(kl_q_post, abs=1e-8)  # the gap is KL(q(z|x) ‖ p(z|x))

    # genlab's one-sample ELBO (closed-form KL + sampled reconstruction) estimates the same number
    n = 50_000
    xs = x.expand(n, -1, -1, -1)
    with torch.no_grad():
        t = elbo_terms(model, xs, generator=torch.Generator().manual_seed(0))
        zs = reparameterize(mu.expand(n, 1), logvar.expand(n, 1), torch.Generator().manual_seed(0))
        se = reconstruction_nll(model, model.decode(zs), xs).std().item() / math.sqrt(n)
    assert abs(t["elbo"].item() - elbo_quad) < 4 * se

    # importance sampling with many samples climbs from the ELBO to log p(x)
    iw = importance_log_likelihood(model, x, num_samples=20_000, generator=torch.Generator().manual_seed(0)).item()
    assert elbo_quad < iw
    assert iw == pytest.approx(log_px, abs=0.02)


def _linear_gaussian(s=0.5):
    """p(z) = N(0, 1), p(x|z) = N(w z + b, s² I): a VAE with linear maps and a fixed-σ Gaussian decoder."""
    model = VAE(VAEConfig(image_size=2, latent_dim=1, hidden=(), likelihood="gaussian", gaussian_std=s)).double()
    w = torch.tensor([0.9, -0.4, 1.3, 0.2], dtype=torch.float64)
    b = torch.tensor([0.1, 0.0, -0.3, 0.5], dtype=torch.float64)
    prec = 1 + (w @ w) / s**2  # exact posterior p(z|x) = N(m, 1/prec), m = wᵀ(x − b) / (s² prec)
    with torch.no_grad():
        model.decoder[0].weight.copy_(w[:, None])
        model.decoder[0].bias.copy_(b)
        enc = model.encoder[0]  # rows: [μ, log σ²]
        enc.weight.copy_(torch.stack([w / (s**2 * prec), torch.zeros(4, dtype=torch.float64)]))
        enc.bias.copy_(torch.stack([-(w @ b) / (s**2 * prec), -torch.log(prec)]))
    return model, w, b


def test_elbo_equals_log_evidence_when_q_is_the_true_posterior(gen):
    s = 0.5
    model, w, b = _linear_gaussian(s)
    x = torch.randn(5, 1, 2, 2, generator=gen, dtype=torch.float64)
    log_px = stats.multivariate_normal(b.numpy(), np.outer(w, w) + s**2 * np.eye(4)).logpdf(x.reshape(5, 4).numpy())

    # exact: E_q[−log p(x|z)] in closed form for the linear decoder, + the closed-form KL
    with torch.no_grad():
        m, logvar = model.encode(x)
        v = logvar.exp()
        resid = x.reshape(5, 4) - (m * w + b)  # (5, 4)
        recon = ((resid**2 + v * w**2) / (2 * s**2)).sum(1) + 4 * (math.log(s) + 0.5 * math.log(2 * math.pi))
        elbo = -(recon + gaussian_kl(m, logvar))
    np.testing.assert_allclose(elbo.numpy(), log_px, rtol=1e-10)
    # with the exact posterior as proposal every importance weight equals p(x): the estimate is exact
    iw = importance_log_likelihood(model, x, num_samples=7, generator=gen, chunk=10)  # 4 chunks of ≤ 2 samples
    np.testing.assert_allclose(iw.numpy(), log_px, rtol=1e-10)

    # genlab's sampled ELBO agrees within Monte Carlo error
    n = 50_000
    for i in range(2):
        xs = x[i : i + 1].expand(n, -1, -1, -1)
        with torch.no_grad():
            t = elbo_terms(model, xs, generator=torch.Generator().manual_seed(i))
        se = math.sqrt(((v[i] * w**2).sum() / (2 * s**2)).item() * 2 / n) * 2  # generous: sd of recon ≤ this
        assert abs(t["elbo"].item() - log_px[i]) < 4 * se + 1e-3

    # any other q gives a strictly smaller ELBO
    with torch.no_grad():
        model.encoder[0].bias[0] += 0.3
        m2, logvar2 = model.encode(x)
        resid2 = x.reshape(5, 4) - (m2 * w + b)
        recon2 = ((resid2**2 + logvar2.exp() * w**2) / (2 * s**2)).sum(1) + 4 * (math.log(s) + 0.5 * math.log(2 * math.pi))
        elbo2 = -(recon2 + gaussian_kl(m2, logvar2))
    assert np.all(elbo2.numpy() < log_px - 1e-3)


# ---------------------------------------------------------------- training through genlab.train.fit


def _tiny_digits(n=256):
    d = load_digits()
    x = torch.tensor(d.images[:n] / 16 * 2 - 1, dtype=torch.float32).unsqueeze(1)  # (n, 1, 8, 8) in [-1, 1]
    return torch.where(x > 0, 1.0, -1.0), torch.tensor(d.target[:n])  # binarised


@torch.no_grad()
def _mean_elbo(model, x, y=None, draws=4):
    g = torch.Generator().manual_seed(123)
    return float(np.mean([elbo_terms(model, x, y, g)["elbo"].item() for _ in range(draws)]))


@pytest.mark.parametrize(
    "config",
    [
        VAEConfig(kind="mlp", image_size=8, latent_dim=4, hidden=(64,)),
        VAEConfig(kind="conv", image_size=8, latent_dim=4, hidden=(8, 16, 64)),
        VAEConfig(kind="mlp", image_size=8, latent_dim=2, hidden=(64,), num_classes=10),
        VAEConfig(kind="mlp", image_size=8, latent_dim=4, hidden=(64,), likelihood="gaussian", gaussian_std=0.5, learn_std=True),
    ],
    ids=["mlp", "conv", "conditional", "gaussian-learned-std"],
)
def test_vae_elbo_improves_with_training(config):
    x, y = _tiny_digits()
    torch.manual_seed(0)
    model = VAE(config)
    y_in = y if config.num_classes else None
    before = _mean_elbo(model, x, y_in)
    steps = 150 if config.kind == "conv" else 300  # transposed convolutions are slow on a CPU
    result = fit(model, vae_loss, (x, y), TrainConfig(steps=steps, batch_size=64, lr=3e-3, warmup_steps=20, device="cpu"), progress=False)
    after = _mean_elbo(result.model.eval(), x, y_in)
    assert len(result.losses) == steps and np.mean(result.losses[-20:]) < np.mean(result.losses[:20])
    assert after > before + 10.0, (before, after)  # nats per image
    if config.learn_std:
        # the optimal s for fixed reconstructions is their RMS error: the learned s tracks it
        with torch.no_grad():
            out, *_ = result.model(x, None, torch.Generator().manual_seed(0))
        rms = (x - out).pow(2).mean().sqrt().item()
        s = result.model.decoder_std.item()
        assert s < 0.49 and s == pytest.approx(rms, rel=0.1)


# ---------------------------------------------------------------- shapes, conditioning, round trip


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("size", [8, 16, 28])
def test_shapes(kind, size, gen):
    model = VAE(VAEConfig(kind=kind, image_size=size, latent_dim=3, hidden=(16,) if kind == "mlp" else (4, 8, 16)))
    x = torch.rand(2, 1, size, size, generator=gen) * 2 - 1
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 3)
    assert model.decode(mu).shape == (2, 1, size, size)
    img = model.sample(5, generator=gen)
    assert img.shape == (5, 1, size, size) and img.min() >= -1 and img.max() <= 1
    assert model.reconstruct(x).shape == x.shape


def test_conv_needs_size_divisible_by_4():
    with pytest.raises(ConfigError, match="divisible by 4"):
        VAEConfig(kind="conv", image_size=10)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_conditional_vae_decodes_with_labels(kind, gen):
    torch.manual_seed(0)
    model = VAE(VAEConfig(kind=kind, image_size=8, latent_dim=2, num_classes=10, hidden=(16,) if kind == "mlp" else (4, 8, 16)))
    z = torch.randn(4, 2, generator=gen)
    out3 = model.decode(z, torch.full((4,), 3))
    assert out3.shape == (4, 1, 8, 8)
    torch.testing.assert_close(model.decode(z, 3), out3)  # an int label is broadcast
    assert not torch.allclose(model.decode(z, 7), out3)  # the label changes the output
    x = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1
    mu3, _ = model.encode(x, 3)
    mu7, _ = model.encode(x, 7)
    assert not torch.allclose(mu3, mu7)  # and the encoder sees it too
    imgs = model.sample(6, y=torch.arange(6), generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (6, 1, 8, 8)
    with pytest.raises(GenlabError, match="needs labels"):
        model.decode(z)
    with pytest.raises(GenlabError, match="0..9"):
        model.decode(z, torch.full((4,), 10))
    with pytest.raises(GenlabError, match="unconditional"):
        VAE(VAEConfig(image_size=8, hidden=(4,))).decode(z, 3)


def test_sample_is_reproducible_with_a_generator():
    model = VAE(VAEConfig(image_size=8, latent_dim=2, hidden=(8,)))
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = model.sample(3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "config",
    [
        VAEConfig(kind="conv", image_size=8, latent_dim=3, hidden=(4, 8, 16), num_classes=10, beta=2.0),
        VAEConfig(kind="mlp", image_size=8, latent_dim=2, hidden=(16, 8), likelihood="gaussian", gaussian_std=0.3, learn_std=True),
    ],
)
def test_config_round_trip(config, tmp_path, gen):
    assert VAEConfig(**json.loads(json.dumps(dataclasses.asdict(config)))) == config
    torch.manual_seed(0)
    model = VAE(config)
    if config.learn_std:
        with torch.no_grad():
            model.log_std.fill_(-0.7)
    save_checkpoint(tmp_path, model)
    loaded, _ = load_model(tmp_path)
    assert loaded.config == config
    x = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1
    y = torch.arange(4) if config.num_classes else None
    t1 = elbo_terms(model.eval(), x, y, torch.Generator().manual_seed(0))
    t2 = elbo_terms(loaded, x, y, torch.Generator().manual_seed(0))
    for key in t1:
        torch.testing.assert_close(t1[key], t2[key], rtol=0, atol=0)


def test_default_hidden_depends_on_kind():
    assert VAEConfig(kind="mlp").hidden == (512, 256)
    assert VAEConfig(kind="conv").hidden == (16, 32, 128)
