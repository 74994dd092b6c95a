"""The denoiser interface: adapters (ε/x₀/v/velocity networks, EDM preconditioning), other
processes end to end with exact answers, and the losses on them."""

import pytest
import torch
from diffusers import EDMEulerScheduler

from genlab.diffusion import (
    ContinuousVP,
    DiffusionLoss,
    EDMPrecond,
    LogitNormalTime,
    LogNormalSigma,
    NetworkDenoiser,
    RectifiedFlow,
    UniformTime,
    VEProcess,
    ddim_sample,
    ddpm_sample,
    make_schedule,
    sampling_grid,
    target_from_x0_eps,
)
from genlab.errors import ConfigError

X0_STAR = torch.linspace(-0.9, 0.9, 16).view(1, 1, 4, 4)


def oracle(process, prediction, x0_star=X0_STAR):
    """The exact network for a one-point data set x0*, as a `prediction`-network of `process`."""

    def net(x, t_net, y=None):
        t = t_net.double() / 1000 if process.kind in ("rectified_flow", "continuous_vp") else t_net.double()
        a, s = (v.view(-1, 1, 1, 1) for v in process.alpha_sigma(t))
        x0 = x0_star.double().expand_as(x)
        eps = (x.double() - a * x0) / s
        da = ds = None
        if prediction == "velocity":
            da, ds = (v.view(-1, 1, 1, 1) for v in process.d_alpha_sigma(t))
        return target_from_x0_eps(x0, eps, a, s, prediction, da, ds).float()

    return net


@pytest.mark.parametrize(
    "process, prediction",
    [(RectifiedFlow(), "velocity"), (RectifiedFlow(), "x0"), (ContinuousVP("cosine"), "v"), (ContinuousVP("linear"), "epsilon"), (VEProcess(), "x0")],
    ids=lambda v: getattr(v, "kind", v),
)
@pytest.mark.parametrize("sampler", [ddim_sample, ddpm_sample])
def test_every_process_lands_on_the_data_point(process, prediction, sampler):
    # The exact denoiser of a point mass: every sampler must end on it, on any process.
    grid = sampling_grid(process, 30)  # uniform in t from t_max to the data
    if process.kind == "ve":  # EDM-like: geometric in σ from 80 to 0.001, then 0
        grid = torch.cat([torch.logspace(torch.log10(torch.tensor(80.0)), -3, 30, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
        grid[0] = 80.0
    den = NetworkDenoiser(oracle(process, prediction), process, prediction)
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    a0, s0 = process.alpha_sigma(grid[0])
    x_T = x_T * s0.item() + a0.item() * X0_STAR
    x = sampler(den, x_T, grid, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, X0_STAR.expand(3, -1, -1, -1), rtol=0, atol=1e-4)


def test_ddim_on_rectified_flow_is_euler_on_the_velocity():
    # For α = 1 − t, σ = t, one DDIM step is exactly x_s = x_t + (s − t) u(x_t, t).
    process = RectifiedFlow()
    u = lambda x, t, y=None: torch.sin(x) + 0.001 * t.view(-1, 1)  # noqa: E731 — any velocity field
    den = NetworkDenoiser(u, process, "velocity")
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    out = ddim_sample(den, x, [0.8, 0.3])
    ref = x + (0.3 - 0.8) * u(x, torch.full((5,), 800.0))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_velocity_needs_a_continuous_process():
    with pytest.raises(ConfigError, match="continuous"):
        NetworkDenoiser(lambda x, t, y=None: x, make_schedule("linear", 10), "velocity")


@pytest.mark.parametrize("sigma", [0.002, 0.3, 1.0, 80.0])
def test_edm_preconditioning_equals_diffusers(sigma):
    ref = EDMEulerScheduler(sigma_data=0.5, prediction_type="epsilon")
    inner_seen = {}

    def F(x, c_noise, y=None):
        inner_seen["x"], inner_seen["c_noise"] = x, c_noise
        return torch.tanh(x)

    pre = EDMPrecond(F, sigma_data=0.5)
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = pre(x, torch.full((2,), sigma, dtype=torch.float64))
    torch.testing.assert_close(inner_seen["x"], ref.precondition_inputs(x, sigma), rtol=1e-12, atol=0)
    torch.testing.assert_close(inner_seen["c_noise"] / 1000, ref.precondition_noise(torch.tensor([sigma, sigma], dtype=torch.float64)), rtol=1e-12, atol=0)
    expected = ref.precondition_outputs(x, torch.tanh(ref.precondition_inputs(x, sigma)), sigma)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_edm_precond_trains_as_an_x0_network_with_edm_weights():
    net = EDMPrecond(lambda x, c, y=None: torch.zeros_like(x))  # F = 0: D = c_skip x
    loss = DiffusionLoss(VEProcess(), prediction="x0", weighting="edm", time_sampler=LogNormalSigma())
    x0 = torch.randn(4096, 2, generator=torch.Generator().manual_seed(4)) * 0.5
    value = loss(net, (x0,), torch.Generator().manual_seed(5))
    # With F = 0, E[λ(σ) ‖c_skip x_σ − x₀‖²] per dimension is λ·(c_skip² σ² + (1 − c_skip)² σ_data²) = 1 for σ_data = std(x₀):
    # EDM's weighting makes the loss 1 at initialisation, whatever σ.
    assert value.item() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ConfigError, match="x0"):
        DiffusionLoss(VEProcess(), prediction="epsilon", weighting="edm")(net, (x0,), torch.Generator())


def test_rectified_flow_loss_equals_hand_computation():
    process = RectifiedFlow()
    model = lambda x, t, y=None: 0.5 * x + 1e-4 * t.view(-1, 1)  # noqa: E731
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(6))
    got = DiffusionLoss(process, prediction="velocity", time_sampler=LogitNormalTime())(model, (x0,), torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    t = torch.sigmoid(torch.randn(16, generator=g, dtype=torch.float64)).float().view(-1, 1)
    eps = torch.randn(16, 3, generator=g)
    x_t = (1 - t) * x0 + t * eps
    ref = ((model(x_t, 1000 * t.flatten()) - (eps - x0)) ** 2).mean()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=0)


def test_time_samplers():
    g = torch.Generator().manual_seed(8)
    t = UniformTime()(RectifiedFlow(), 10_000, g)
    assert t.min() > 0 and t.max() <= 1 and abs(t.mean().item() - 0.5) < 0.02
    d = UniformTime()(make_schedule("linear", 50), 10_000, g)
    assert d.dtype == torch.int64 and d.min() == 0 and d.max() == 49
    s = LogNormalSigma()(VEProcess(), 20_000, g)
    assert abs(s.log().mean().item() + 1.2) < 0.05 and abs(s.log().std().item() - 1.2) < 0.05
    with pytest.raises(ConfigError):
        LogNormalSigma()(RectifiedFlow(), 2, g)
    with pytest.raises(ConfigError):
        LogitNormalTime()(VEProcess(), 2, g)


def test_diffusion_loss_config_is_json_and_validated():
    import json

    loss = DiffusionLoss(RectifiedFlow(), prediction="velocity", time_sampler=LogitNormalTime(0.1, 0.9), conditional=True, cond_drop_prob=0.1, null_label=10)
    cfg = json.loads(json.dumps(loss.config()))
    assert cfg["time_sampler"] == {"name": "logit_normal", "mean": 0.1, "std": 0.9} and cfg["prediction"] == "velocity"
    for bad in (dict(weighting="snr"), dict(min_snr_gamma=0.0), dict(cond_drop_prob=1.5), dict(prediction="sample")):
        with pytest.raises(ConfigError):
            DiffusionLoss(RectifiedFlow(), **bad)
    with pytest.raises(ConfigError, match="null_label"):
        DiffusionLoss(RectifiedFlow(), conditional=True, cond_drop_prob=0.1)
