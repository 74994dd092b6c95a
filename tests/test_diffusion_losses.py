"""ε/x₀/v conversions, L_simple with condition dropout, and Min-SNR-γ weights."""

import functools
import itertools

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from genlab.diffusion import (
    PREDICTIONS,
    ContinuousVP,
    DiffusionLoss,
    RectifiedFlow,
    VEProcess,
    convert,
    diffusion_loss,
    make_diffusion_loss,
    make_schedule,
    min_snr_weight,
    predict_x0_eps,
    target_from_x0_eps,
)
from genlab.diffusion.parameterization import x0_error_factor
from genlab.errors import ConfigError

VP_PREDICTIONS = ("epsilon", "x0", "v")


def x0_eps_to_v(x0, eps, ab):
    return target_from_x0_eps(x0, eps, ab.sqrt(), (1 - ab).sqrt(), "v")


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64)
    ab = torch.rand(6, 1, 1, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return {"epsilon": eps, "x0": x0, "v": x0_eps_to_v(x0, eps, ab)}, x_t, ab


PROCESSES = [make_schedule("linear", 100), ContinuousVP("linear"), ContinuousVP("cosine"), VEProcess(), RectifiedFlow()]


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.kind + getattr(p, "schedule", ""))
def test_conversions_are_exact_for_every_process(process):
    # Every prediction type maps back to (x₀, ε) exactly, for processes with α² + σ² ≠ 1 too.
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    if process.discrete:
        t, kinds = torch.tensor([0, 10, 50, 98, 99]), VP_PREDICTIONS
    else:
        t, kinds = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95], dtype=torch.float64) * process.t_max, PREDICTIONS
    a, s = (v.view(-1, 1) for v in process.alpha_sigma(t))
    da = ds = None
    if not process.discrete:
        da, ds = (v.view(-1, 1) for v in process.d_alpha_sigma(t))
        # the derivatives are those of α(t), σ(t): central differences
        h = 1e-6 * process.t_max
        ap, sp = process.alpha_sigma(t + h)
        am, sm = process.alpha_sigma(t - h)
        torch.testing.assert_close(da.flatten(), (ap - am) / (2 * h), rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(ds.flatten(), (sp - sm) / (2 * h), rtol=1e-6, atol=1e-8)
    x_t = a * x0 + s * eps
    for kind in kinds:
        pred = target_from_x0_eps(x0, eps, a, s, kind, da, ds)
        x0_hat, eps_hat = predict_x0_eps(pred, x_t, a, s, kind, da, ds)
        torch.testing.assert_close(x0_hat, x0, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(eps_hat, eps, rtol=1e-9, atol=1e-9)
        # x0_error_factor: an x̂₀ error δ shows as ‖pred error‖² = f ‖δ‖² at fixed x_t
        delta = 1e-3 * torch.randn(5, 3, generator=g, dtype=torch.float64)
        eps_d = (x_t - a * (x0 + delta)) / s
        err = target_from_x0_eps(x0 + delta, eps_d, a, s, kind, da, ds) - pred
        f = x0_error_factor(kind, a, s, da, ds)
        torch.testing.assert_close((err**2).sum(1), (f * delta**2).sum(1) if torch.is_tensor(f) else f * (delta**2).sum(1), rtol=1e-6, atol=1e-15)


def test_rectified_flow_velocity_is_eps_minus_x0():
    x0, eps = torch.randn(4, 2), torch.randn(4, 2)
    u = target_from_x0_eps(x0, eps, 0.6, 0.4, "velocity", -1.0, 1.0)
    torch.testing.assert_close(u, eps - x0)


def test_v_target_equals_diffusers_get_velocity():
    s = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    t = torch.tensor([1, 400, 999])
    ref = DDPMScheduler(num_train_timesteps=1000).get_velocity(x0, eps, t)
    ab = s.alphas_cumprod[t].float().view(3, 1)
    torch.testing.assert_close(x0_eps_to_v(x0, eps, ab), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("src, dst", list(itertools.permutations(VP_PREDICTIONS, 2)))
def test_conversions_are_exact(data, src, dst):
    preds, x_t, ab = data
    a, s = ab.sqrt(), (1 - ab).sqrt()
    torch.testing.assert_close(convert(preds[src], src, dst, x_t, a, s), preds[dst], rtol=1e-10, atol=1e-10)
    back = convert(convert(preds[src], src, dst, x_t, a, s), dst, src, x_t, a, s)
    torch.testing.assert_close(back, preds[src], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", VP_PREDICTIONS)
def test_predict_x0_eps(data, kind):
    preds, x_t, ab = data
    x0, eps = predict_x0_eps(preds[kind], x_t, ab.sqrt(), (1 - ab).sqrt(), kind)
    torch.testing.assert_close(x0, preds["x0"], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(eps, preds["epsilon"], rtol=1e-10, atol=1e-10)
    # Python-float α, σ work too.
    a = ab[0].item()
    x0_f, _ = predict_x0_eps(preds[kind][:1], x_t[:1], a**0.5, (1 - a) ** 0.5, kind)
    torch.testing.assert_close(x0_f, preds["x0"][:1], rtol=1e-10, atol=1e-10)


def test_v_conversions_survive_zero_terminal_snr():
    v, x_t = torch.randn(5), torch.randn(5)
    x0, eps = predict_x0_eps(v, x_t, 0.0, 1.0, "v")  # α = 0: x_t is pure noise
    torch.testing.assert_close(x0, -v)
    torch.testing.assert_close(eps, x_t)


def test_unknown_prediction_raises():
    with pytest.raises(ConfigError, match="v_prediction"):
        convert(torch.zeros(1), "sample", "epsilon", torch.zeros(1), 0.5, 0.5)
    with pytest.raises(ConfigError, match="continuous process"):
        predict_x0_eps(torch.zeros(1), torch.zeros(1), 0.5, 0.5, "velocity")


# ------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------


class Affine(torch.nn.Module):
    """A tiny model with parameters, using t and y so that every input matters."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.7))
        self.emb = torch.nn.Parameter(torch.linspace(-0.5, 0.5, 11))

    def forward(self, x_t, t, y=None):
        out = self.w * x_t + 1e-3 * t.view(-1, 1, 1, 1)
        if y is not None:
            out = out + self.emb[y].view(-1, 1, 1, 1)
        return out


def hand_loss(model, x0, seed, schedule, prediction, y=None, p=0.0, null=None, gamma=None):
    """The loss written out from the definitions, with the documented draw order."""
    g = torch.Generator().manual_seed(seed)
    B, T = x0.shape[0], len(schedule)
    t = torch.randint(0, T, (B,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    if y is not None and p > 0:
        y = torch.where(torch.rand(B, generator=g) < p, torch.full_like(y, null), y)
    ab = schedule.alphas_cumprod.numpy()[t.numpy()]  # float64 (B,)
    a = torch.tensor(np.sqrt(ab), dtype=torch.float32).view(-1, 1, 1, 1)
    s = torch.tensor(np.sqrt(1 - ab), dtype=torch.float32).view(-1, 1, 1, 1)
    x_t = a * x0 + s * eps
    target = {"epsilon": eps, "x0": x0, "v": a * eps - s * x0}[prediction]
    err = ((model(x_t, t, y=y) - target) ** 2).mean(dim=(1, 2, 3))
    if gamma is not None:
        snr = ab / (1 - ab)
        m = np.minimum(snr, gamma)
        w = {"epsilon": m / snr, "x0": m, "v": m / (snr + 1)}[prediction]
        err = err * torch.tensor(w, dtype=torch.float32)
    return err.mean(), t, y


@pytest.mark.parametrize("prediction", VP_PREDICTIONS)
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_loss_equals_hand_computation(prediction, gamma):
    s = make_schedule("cosine", 100)
    model = Affine()
    x0 = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 10
    got = diffusion_loss(
        model, x0, torch.Generator().manual_seed(3), s, prediction=prediction, y=y,
        cond_drop_prob=0.5, null_label=10, min_snr_gamma=gamma,
    )  # fmt: skip
    ref, _, y_used = hand_loss(model, x0, 3, s, prediction, y=y, p=0.5, null=10, gamma=gamma)
    assert (y_used == 10).any() and (y_used != 10).any()  # dropout happened, not everywhere
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=0)
    got.backward()
    assert model.w.grad is not None and model.emb.grad[10] != 0


def test_condition_dropout_rate():
    s = make_schedule("linear", 50)
    seen = []

    def spy(x_t, t, y=None):
        seen.append(y.clone())
        return torch.zeros_like(x_t)

    y = torch.zeros(20_000, dtype=torch.long)
    x0 = torch.zeros(20_000, 1)
    diffusion_loss(spy, x0, torch.Generator().manual_seed(0), s, y=y, cond_drop_prob=0.1, null_label=3)
    rate = (seen[0] == 3).double().mean().item()
    assert abs(rate - 0.1) < 5 * np.sqrt(0.1 * 0.9 / 20_000)


def test_dropout_without_null_label_raises():
    s = make_schedule("linear", 10)
    with pytest.raises(ConfigError, match="null_label"):
        y = torch.zeros(2, dtype=torch.long)
        diffusion_loss(Affine(), torch.zeros(2, 1, 1, 1), torch.Generator(), s, y=y, cond_drop_prob=0.1)


def test_min_snr_weights_match_formulas():
    snr = torch.tensor([0.0, 0.01, 1.0, 4.999, 5.0, 7.0, 1e4], dtype=torch.float64)
    gamma = 5.0
    m = np.minimum(snr.numpy(), gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps_ref = np.where(snr.numpy() > 0, m / snr.numpy(), 1.0)  # limit 1 as SNR → 0
    a, s = (snr / (1 + snr)).sqrt(), (1 / (1 + snr)).sqrt()  # a VP process with these SNRs
    np.testing.assert_allclose(min_snr_weight(a, s, gamma, "epsilon").numpy(), eps_ref, rtol=1e-12)
    np.testing.assert_allclose(min_snr_weight(a, s, gamma, "x0").numpy(), m, rtol=1e-12)
    np.testing.assert_allclose(min_snr_weight(a, s, gamma, "v").numpy(), m / (snr.numpy() + 1), rtol=1e-12)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="min_snr_gamma"):
            min_snr_weight(a, s, bad)


def test_min_snr_losses_agree_across_parameterisations():
    # One underlying x̂₀ error, expressed as an ε-, x₀- or v-network: with Min-SNR-γ weighting the
    # three losses are all min(SNR, γ)·‖x̂₀ − x₀‖² and must coincide (catches a wrong v weight).
    s = make_schedule("linear", 1000, zero_terminal_snr=True)
    ab = s.alphas_cumprod
    x0 = torch.randn(64, 1, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def net(kind):
        def model(x_t, t, y=None):
            a = ab[t].view(-1, 1, 1, 1)
            x0_hat = 0.5 * x_t  # any function of x_t
            return convert(x0_hat, "x0", kind, x_t, a.sqrt(), (1 - a).sqrt()) if kind != "x0" else x0_hat

        return model

    losses = {
        kind: diffusion_loss(net(kind), x0, torch.Generator().manual_seed(9), s, prediction=kind, min_snr_gamma=5.0)
        for kind in VP_PREDICTIONS
    }
    assert torch.isfinite(losses["epsilon"])
    torch.testing.assert_close(losses["epsilon"], losses["x0"], rtol=1e-9, atol=0)
    torch.testing.assert_close(losses["v"], losses["x0"], rtol=1e-9, atol=0)


def test_make_diffusion_loss_matches_partial():
    s = make_schedule("linear", 100)
    x0, y = torch.randn(4, 1, 2, 2), torch.tensor([1, 2, 3, 4])
    model = Affine()
    loss_fn = make_diffusion_loss(s, prediction="v", conditional=True, cond_drop_prob=0.3, null_label=10)
    ref = functools.partial(diffusion_loss, process=s, prediction="v", cond_drop_prob=0.3, null_label=10)
    a = loss_fn(model, (x0, y), torch.Generator().manual_seed(4))
    b = ref(model, x0, torch.Generator().manual_seed(4), y=y)
    assert a.item() == b.item()
    uncond = make_diffusion_loss(s)
    c = uncond(model, (x0, y), torch.Generator().manual_seed(4))  # labels ignored
    assert c.item() == diffusion_loss(model, x0, torch.Generator().manual_seed(4), s).item()
    with pytest.raises(ConfigError, match="labels"):
        loss_fn(model, (x0,), torch.Generator())
