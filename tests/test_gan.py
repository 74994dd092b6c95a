"""genlab.nn.gan: shapes, the losses against hand computations, WGAN-GP's penalty against finite
differences, spectral normalisation against the SVD."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.gan import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    add_spectral_norm,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
@pytest.mark.parametrize("d_norm", ["batch", "layer", "none"])
def test_dcgan_shapes_and_range(size, channels, d_norm):
    cfg = DCGANConfig(image_size=size, channels=channels, latent_dim=16, width=8, d_norm=d_norm)
    g, d = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    z = g.sample_latent(5, torch.Generator().manual_seed(0))
    x = g(z)
    assert z.shape == (5, 16) and x.shape == (5, channels, size, size)
    assert x.abs().max() <= 1.0  # tanh output: the data range [-1, 1]
    assert d(x).shape == (5,)
    uses_bn = any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert uses_bn == (d_norm == "batch")


def test_dcgan_rejects_other_sizes_in_one_line():
    with pytest.raises(ConfigError, match="28×28 or 32×32"):
        DCGANConfig(image_size=64)
    with pytest.raises(ConfigError, match="d_norm"):
        DCGANConfig(d_norm="group")


def test_losses_equal_hand_computations():
    r = torch.tensor([2.0, -0.5, 0.3])
    f = torch.tensor([-1.0, 0.7, 1.5, -3.0])
    sig = lambda u: 1 / (1 + np.exp(-u))
    rn, fn = r.numpy().astype(np.float64), f.numpy().astype(np.float64)
    bce = -np.mean(np.log(sig(rn))) - np.mean(np.log(1 - sig(fn)))  # the GAN's binary cross-entropy
    assert discriminator_loss(r, f, "non_saturating").item() == pytest.approx(bce, rel=1e-6)
    assert discriminator_loss(r, f, "minimax").item() == pytest.approx(bce, rel=1e-6)
    assert generator_loss(f, "non_saturating").item() == pytest.approx(-np.mean(np.log(sig(fn))), rel=1e-6)
    assert generator_loss(f, "minimax").item() == pytest.approx(np.mean(np.log(1 - sig(fn))), rel=1e-6)
    hinge = np.mean(np.maximum(0, 1 - rn)) + np.mean(np.maximum(0, 1 + fn))
    assert discriminator_loss(r, f, "hinge").item() == pytest.approx(hinge, rel=1e-6)
    assert discriminator_loss(r, f, "wasserstein").item() == pytest.approx(fn.mean() - rn.mean(), rel=1e-6)
    for kind in ("hinge", "wasserstein"):
        assert generator_loss(f, kind).item() == pytest.approx(-fn.mean(), rel=1e-6)
    with pytest.raises(ConfigError, match="unknown GAN loss"):
        generator_loss(f, "lsgan")


def test_minimax_generator_loss_saturates_where_the_non_saturating_one_does_not():
    # D rejects the fakes confidently (f ≪ 0): d/df log(1 − σ(f)) = −σ(f) → 0, d/df −log σ(f) = −(1 − σ(f)) → −1
    f = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(generator_loss(f, "minimax"), f)
    (g_ns,) = torch.autograd.grad(generator_loss(f, "non_saturating"), f)
    assert g_mm.item() == pytest.approx(-1 / (1 + math.exp(8)), rel=1e-5)
    assert g_ns.item() == pytest.approx(-1 / (1 + math.exp(-8)), rel=1e-5)


def test_gradient_penalty_matches_finite_differences():
    torch.manual_seed(0)
    critic = MLPDiscriminator(data_dim=3, hidden=(16,)).double()
    real, fake = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    u = torch.rand(6, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # the same draws
    x_hat = u * real + (1 - u) * fake
    h = 1e-6
    norms = []
    with torch.no_grad():
        for i in range(6):
            grad = [(critic(x_hat[i : i + 1] + h * e) - critic(x_hat[i : i + 1] - h * e)).item() / (2 * h) for e in torch.eye(3, dtype=torch.float64)]
            norms.append(np.linalg.norm(grad))
    assert gp.item() == pytest.approx(np.mean((np.array(norms) - 1) ** 2), rel=1e-6)
    # differentiable in the critic's weights (WGAN-GP trains through it; ∇ₓD does not depend on the last bias)
    gp.backward()
    weights = [p for p in critic.parameters() if p.ndim == 2]
    assert weights and all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights)


def test_r1_penalty_matches_finite_differences_and_a_linear_critic():
    torch.manual_seed(0)
    critic = MLPDiscriminator(data_dim=3, hidden=(16,)).double()
    real = torch.randn(5, 3, dtype=torch.float64)
    h, sq = 1e-6, []
    with torch.no_grad():
        for i in range(5):
            grad = [(critic(real[i : i + 1] + h * e) - critic(real[i : i + 1] - h * e)).item() / (2 * h) for e in torch.eye(3, dtype=torch.float64)]
            sq.append(np.sum(np.square(grad)))
    r1 = r1_penalty(critic, real)
    assert r1.item() == pytest.approx(np.mean(sq), rel=1e-6)
    r1.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters() if p.ndim == 2)
    linear = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 0.0, -4.0, 0.0]]))  # ∇D = w: ‖w‖² = 25 at every image
    assert r1_penalty(lambda x: linear(x).squeeze(1), torch.randn(7, 4)).item() == pytest.approx(25.0)


def test_gradient_penalty_of_a_unit_lipschitz_linear_critic_is_zero():
    critic = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.0, -0.8, 0.0]]))  # ‖w‖ = 1: ∇D = w everywhere
    wrapped = lambda x: critic(x).squeeze(1)
    assert gradient_penalty(wrapped, torch.randn(8, 4), torch.randn(8, 4)).item() == pytest.approx(0.0, abs=1e-12)


def test_spectral_norm_divides_by_the_largest_singular_value():
    torch.manual_seed(0)
    d = add_spectral_norm(DCGANDiscriminator(DCGANConfig(width=8, d_norm="none")), n_power_iterations=1)
    g = add_spectral_norm(MLPGenerator(latent_dim=4, data_dim=2, hidden=(12,)))
    layers = [m for net in (d, g) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for _ in range(200):  # the power iteration advances one step per training-mode forward
        d(torch.randn(2, 1, 28, 28))
        g(torch.randn(2, 4))
    d.eval(), g.eval()
    for m in layers:
        w = m.weight.detach().flatten(1)  # (out, in·kh·kw): the matrix spectral norm is taken of
        assert torch.linalg.svdvals(w)[0].item() == pytest.approx(1.0, rel=1e-3)
        raw = m.parametrizations.weight.original.detach().flatten(1)
        torch.testing.assert_close(w, raw / torch.linalg.svdvals(raw)[0], rtol=1e-3, atol=1e-6)



def _gan_run(tmp_path=None, crash_at=None, seed=0, **step_kw):
    from genlab.nn.gan import AdversarialStep, gan_state
    from genlab.train.engine import TrainConfig, train

    torch.manual_seed(seed)
    state = gan_state(MLPGenerator(2, 2, (16,)), MLPDiscriminator(2, (16,)), lr=1e-3)
    step = AdversarialStep(**step_kw)

    def step_fn(ctx, batch):
        if ctx.step == crash_at:
            raise KeyboardInterrupt
        return step(ctx, batch)

    data = (torch.randn(512, 2, generator=torch.Generator().manual_seed(3)) * 0.5 + 1.0,)
    config = TrainConfig(steps=20, batch_size=64, warmup_steps=2, seed=7, ckpt_every=5)
    return train(state, step_fn, data, config, out_dir=tmp_path, resume=tmp_path is not None and crash_at is None and seed == 42,
                 progress=False)


@pytest.mark.parametrize("step_kw", [dict(), dict(loss="wasserstein", n_critic=2, gp_weight=1.0), dict(loss="hinge")])
def test_adversarial_step_trains_on_the_engine_and_resumes_bit_for_bit(tmp_path, step_kw):
    full = _gan_run(**step_kw)
    n_critic = step_kw.get("n_critic", 1)
    assert len(full.history["d_loss"]) == len(full.history["g_loss"]) == 20
    assert int(next(iter(full.optimizers["discriminator"].state.values()))["step"]) == n_critic * 20
    assert int(next(iter(full.optimizers["generator"].state.values()))["step"]) == 20
    assert full.emas["generator"].num_updates == 20
    with pytest.raises(KeyboardInterrupt):
        _gan_run(tmp_path, crash_at=13, **step_kw)  # after the step-10 checkpoint
    resumed = _gan_run(tmp_path, seed=42, **step_kw)  # other initial weights: all must come from the checkpoint
    assert resumed.history == full.history
    for name in ("generator", "discriminator"):
        for a, b in zip(full.models[name].state_dict().values(), resumed.models[name].state_dict().values()):
            assert torch.equal(a, b), name
    for a, b in zip(full.emas["generator"].shadow.state_dict().values(), resumed.emas["generator"].shadow.state_dict().values()):
        assert torch.equal(a, b)


def test_the_r1_weight_adds_half_gamma_times_r1_of_the_real_batch_to_the_critic_loss():
    from genlab.nn.gan import AdversarialStep, gan_state
    from genlab.train.engine import TrainConfig, train

    data = (torch.randn(16, 2, generator=torch.Generator().manual_seed(3)),)  # one batch = all of it

    def first_d_loss(r1_weight):
        torch.manual_seed(0)
        state = gan_state(MLPGenerator(2, 2, (8,)), MLPDiscriminator(2, (8,)))
        critic = copy.deepcopy(state.models["discriminator"])  # the critic before its first update
        out = train(state, AdversarialStep(r1_weight=r1_weight), data, TrainConfig(steps=1, batch_size=16, warmup_steps=0, seed=1), progress=False)
        return out.history["d_loss"][0], critic

    plain, critic = first_d_loss(0.0)
    with_r1, _ = first_d_loss(3.0)
    assert with_r1 - plain == pytest.approx(1.5 * r1_penalty(critic, data[0]).item(), rel=1e-5)


def test_adversarial_step_refuses_a_penalty_on_a_batch_norm_critic():
    from genlab.nn.gan import AdversarialStep, gan_state
    from genlab.train.engine import TrainConfig, train

    cfg = DCGANConfig(latent_dim=8, width=4, d_norm="batch")
    state = gan_state(DCGANGenerator(cfg), DCGANDiscriminator(cfg))
    with pytest.raises(ConfigError, match="per-sample gradients"):
        train(state, AdversarialStep("wasserstein", 1, 10.0), (torch.rand(16, 1, 28, 28) * 2 - 1,), TrainConfig(steps=1, batch_size=8), progress=False)
    with pytest.raises(ConfigError, match="n_critic"):
        AdversarialStep(n_critic=0)


def test_minibatch_std_has_finite_second_derivatives_where_samples_agree():
    """Real digits share a blank border, so some critic features are equal across a group; a
    gradient penalty (R1, WGAN-GP) differentiates the critic twice there, which √var made 0/0."""
    from genlab.nn.gan import DCGANConfig, DCGANDiscriminator

    torch.manual_seed(0)
    d = DCGANDiscriminator(DCGANConfig(width=8, d_norm="none", spectral_norm=True, minibatch_std=True))
    x = -torch.ones(8, 1, 28, 28)
    x[:, :, 8:20, 8:20] = torch.rand(8, 1, 12, 12) * 2 - 1  # ink in the middle, the same blank border everywhere
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    g.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in d.parameters() if p.grad is not None)


def test_minibatch_std_sees_a_collapsed_batch():
    from genlab.nn.gan import minibatch_std

    h = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    s = minibatch_std(h)
    by_hand = [h[i : i + 4].std(0, unbiased=False).mean() for i in (0, 4)]
    torch.testing.assert_close(s[:, 0], torch.stack(by_hand).repeat_interleave(4))
    torch.testing.assert_close(minibatch_std(h[:1].expand(8, 5)), torch.full((8, 1), 1e-4))  # every sample the same: spread √1e-8
    torch.testing.assert_close(minibatch_std(h[:6])[:, 0], h[:6].std(0, unbiased=False).mean().expand(6))  # 6 ∤ 4: the whole batch
    # the critic's verdict on one image depends on the rest of its batch only with the feature
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    collapsed, varied = x[:1].expand(4, -1, -1, -1), x
    for on in (True, False):
        torch.manual_seed(0)
        d = DCGANDiscriminator(DCGANConfig(width=4, d_norm="none", minibatch_std=on))
        with torch.no_grad():
            a, b = d(collapsed)[0], d(varied)[0]
        assert d(x).shape == (4,) and (not torch.isclose(a, b)) == on
