"""Classifier guidance and classifier-free guidance against closed forms on a 2-D Gaussian mixture.

References: scipy's multivariate normal (the noised density), finite differences (the score),
Tweedie's formula applied to the guided score ∇ log p_t(x) + w ∇ log p_t(y | x) (the guided
denoisers), Gaussian conditioning (E[x₀ | x_t, y]) and the mixture component itself (samples).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from genlab.diffusion import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    NoisedGaussianMixture,
    NoisyClassifierLoss,
    accuracy_by_time,
    classifier_log_prob,
    ddim_sample,
    ddpm_sample,
    make_schedule,
    sample,
    sampling_grid,
)
from genlab.errors import ConfigError

WEIGHTS = [0.5, 0.3, 0.2]
MEANS = [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]
COVS = [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]], [[0.25, 0.0], [0.0, 0.15]]]


@pytest.fixture(scope="module")
def mix():
    return NoisedGaussianMixture(WEIGHTS, MEANS, COVS, make_schedule("linear", 1000))


def points(n=64, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def tweedie(mix, x, t, score):
    a, s = (v.item() for v in mix.process.alpha_sigma(t))
    return (x + s**2 * score) / a


@pytest.mark.parametrize("t", [0, 200, 600, 999])
def test_noised_density_matches_scipy(mix, t):
    x = points()
    a, s = (v.item() for v in mix.process.alpha_sigma(t))
    ref = sum(w * stats.multivariate_normal(a * np.array(m), a**2 * np.array(c) + s**2 * np.eye(2)).pdf(x.numpy())
              for w, m, c in zip(WEIGHTS, MEANS, COVS))  # fmt: skip
    np.testing.assert_allclose(mix.log_prob(x, t).numpy(), np.log(ref), rtol=1e-10)
    y = torch.tensor([1] * len(x))
    ref1 = stats.multivariate_normal(a * np.array(MEANS[1]), a**2 * np.array(COVS[1]) + s**2 * np.eye(2)).logpdf(x.numpy())
    np.testing.assert_allclose(mix.log_prob(x, t, y).numpy(), ref1, rtol=1e-10)


def test_score_matches_finite_differences_and_tweedie(mix):
    x, t, h = points(16), 300, 1e-5
    fd = torch.stack([(mix.log_prob(x + h * e, t) - mix.log_prob(x - h * e, t)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)], 1)
    torch.testing.assert_close(mix.score(x, t), fd, rtol=1e-6, atol=1e-7)
    # E[x0 | x_t] by Gaussian conditioning equals Tweedie's formula on the score
    torch.testing.assert_close(mix.posterior_mean(x, t), tweedie(mix, x, t, mix.score(x, t)), rtol=1e-9, atol=1e-9)
    y = torch.tensor([0, 1, 2] * 5 + [0])
    torch.testing.assert_close(mix.posterior_mean(x, t, y), tweedie(mix, x, t, mix.score(x, t, y)), rtol=1e-9, atol=1e-9)


def test_bayes_classifier_is_a_distribution(mix):
    x = points(32)
    logp = torch.stack([mix.class_log_prob(x, 100, torch.full((32,), k)) for k in range(3)], 1)
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(32, dtype=torch.float64))
    # at t = T-1 the data is all but forgotten (α ≈ 0.006, so α·μ_k ≈ 0.01): p_t(y | x) ≈ the prior
    far = torch.stack([mix.class_log_prob(x, 999, torch.full((32,), k)) for k in range(3)], 1).exp()
    torch.testing.assert_close(far, torch.tensor(WEIGHTS, dtype=torch.float64).expand(32, 3), atol=0.05, rtol=0)


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5, 5.0])
@pytest.mark.parametrize("t", [50, 500, 950])
def test_cfg_gives_the_guided_score(mix, w, t):
    x, y = points(24), torch.tensor([0, 1, 2] * 8)
    guided = ClassifierFreeGuidance(mix, w, mix.null_label)(x, t, y)
    grad_cls = mix.score(x, t, y) - mix.score(x, t)  # ∇ log p_t(y | x) = ∇ log p_t(x | y) − ∇ log p_t(x)
    expected = tweedie(mix, x, t, mix.score(x, t) + w * grad_cls)
    torch.testing.assert_close(guided, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("s", [1.0, 3.0])
@pytest.mark.parametrize("t", [50, 500, 950])
def test_classifier_guidance_gives_the_guided_score(mix, s, t):
    x, y = points(24), torch.tensor([2, 0, 1] * 8)
    guided = ClassifierGuidance(IgnoreCondition(mix), mix.class_log_prob, s)(x, t, y)  # unconditional inner denoiser
    grad_cls = mix.score(x, t, y) - mix.score(x, t)
    torch.testing.assert_close(guided, tweedie(mix, x, t, mix.score(x, t) + s * grad_cls), rtol=1e-8, atol=1e-8)
    if s == 1.0:  # Bayes' rule: unconditional denoiser + exact classifier = the conditional denoiser
        torch.testing.assert_close(guided, mix.posterior_mean(x, t, y), rtol=1e-8, atol=1e-8)


class IgnoreCondition:
    """The unconditional E[x₀ | x_t], whatever the condition: like an unconditional network."""

    def __init__(self, mix):
        self.mix, self.process = mix, mix.process

    def __call__(self, x, t, cond=None):
        return self.mix(x, t)


def test_guiding_the_unconditional_mode_of_a_cfg_network(mix):
    """denoiser_cond=null: the inner denoiser sees the null label (its unconditional mode), the classifier the class."""
    x, y, t = points(24), torch.tensor([1, 2, 0] * 8), 300
    guided = ClassifierGuidance(mix, mix.class_log_prob, 1.0, denoiser_cond=mix.null_label)(x, t, y)
    torch.testing.assert_close(guided, mix.posterior_mean(x, t, y), rtol=1e-8, atol=1e-8)
    # the same through CFG at w = 0 (what `genlab sample --guidance 0 --classifier C` builds): one null pass inside
    calls = []
    counted = lambda xx, tt, cc=None: calls.append(len(xx)) or mix(xx, tt, cc)  # noqa: E731
    counted.process = mix.process
    via_cfg = ClassifierGuidance(ClassifierFreeGuidance(counted, 0.0, mix.null_label), mix.class_log_prob, 1.0)(x, t, y)
    torch.testing.assert_close(via_cfg, mix.posterior_mean(x, t, y), rtol=1e-8, atol=1e-8)
    assert calls == [len(x)]  # w = 0 costs one pass of B, not 2B


def test_classifier_guidance_stacks_with_cfg(mix):
    x, y, t = points(24), torch.tensor([1, 2, 0] * 8), 400
    both = ClassifierGuidance(ClassifierFreeGuidance(mix, 2.0, mix.null_label), mix.class_log_prob, 1.5)(x, t, y)
    torch.testing.assert_close(both, ClassifierFreeGuidance(mix, 3.5, mix.null_label)(x, t, y), rtol=1e-8, atol=1e-8)


def test_scale_zero_is_the_denoiser_and_errors(mix):
    x, y = points(4), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(ClassifierGuidance(mix, mix.class_log_prob, 0.0)(x, 10, y), mix(x, 10, y))
    with pytest.raises(ConfigError, match="class of each sample"):
        ClassifierGuidance(mix, mix.class_log_prob, 2.0)(x, 10, None)
    with pytest.raises(ConfigError, match="finite"):
        ClassifierGuidance(mix, mix.class_log_prob, float("nan"))


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sampling_with_scale_one_recovers_p_x_given_y(mix, sampler):
    """Unconditional exact denoiser + exact classifier, s = 1, sampled: the class's own Gaussian."""
    n, k = 2000, 2
    den = ClassifierGuidance(IgnoreCondition(mix), mix.class_log_prob, 1.0)
    fn = ddim_sample if sampler == "ddim" else ddpm_sample
    steps = 100 if sampler == "ddim" else 250  # ancestral on a 250-step sub-grid of the T = 1000 schedule
    out = sample(fn, den, n, (2,), sampling_grid(mix.process, steps), seed=3, cond=torch.full((n,), k), batch_size=1000)
    out = out.double()
    mean, cov = out.mean(0), torch.cov(out.T)
    se = (torch.diagonal(torch.tensor(COVS[k])) / n).sqrt()
    assert bool(((mean - torch.tensor(MEANS[k])).abs() < 5 * se + 0.02).all()), mean
    torch.testing.assert_close(cov, torch.tensor(COVS[k], dtype=torch.float64), atol=0.04, rtol=0)
    # and it is not the mixture: no sample lands near another class's mean
    assert float((out - torch.tensor(MEANS[0])).norm(dim=1).min()) > 1.0


def test_guided_sampling_sharpens_towards_the_class(mix):
    """s > 1 puts more samples where p_t(y | x) is high: the Bayes classifier's mean confidence grows."""
    n, k = 1000, 0
    conf = []
    for s in (1.0, 4.0):
        den = ClassifierGuidance(IgnoreCondition(mix), mix.class_log_prob, s)
        out = sample(ddim_sample, den, n, (2,), sampling_grid(mix.process, 50), seed=0, cond=torch.full((n,), k), batch_size=500)
        conf.append(float(mix.class_log_prob(out.double(), -1, torch.full((n,), k)).exp().mean()))
    assert conf[1] > conf[0]


def test_noisy_classifier_learns_and_forgets_with_noise():
    """Trained on noised 8×8 digits: accurate at small t, at chance at t = T−1."""
    from genlab.data import load_digits
    from genlab.nn import NoisyClassifier, NoisyClassifierConfig
    from genlab.train import TrainConfig, fit

    torch.manual_seed(0)
    process = make_schedule("linear", 1000)
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    net = NoisyClassifier(NoisyClassifierConfig(image_size=8, base_channels=16, channel_mults=(1, 2)))
    fit(net, NoisyClassifierLoss(process), (x, y), TrainConfig(steps=200, batch_size=128, lr=3e-3, seed=0), progress=False)
    acc = accuracy_by_time(net, process, xt, yt, [0, 999])
    assert acc[0] > 0.85, acc
    assert acc[1] < 0.2, acc
    # classifier_log_prob is log-softmax at the process's time; its gradient exists under no_grad too
    lp = classifier_log_prob(net, process)
    with torch.no_grad():
        den = ClassifierGuidance(ZeroDenoiser(process), lp, 2.0)
        out = den(xt[:4], 500, yt[:4])
    assert out.shape == xt[:4].shape and bool(torch.isfinite(out).all()) and not torch.equal(out, torch.zeros_like(out))


class ZeroDenoiser:
    """x̂₀ = 0: the guided output is then the guidance term alone."""

    def __init__(self, process):
        self.process = process

    def __call__(self, x, t, cond=None):
        return torch.zeros_like(x)
