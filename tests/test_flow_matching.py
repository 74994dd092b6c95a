"""Flow matching: the velocity of a path, fixed-step ODE solvers, reflow — against closed forms,
brute force, facebookresearch's flow_matching package and torchdiffeq."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.diffusion import (
    CallCounter,
    ClassifierFreeGuidance,
    ContinuousVP,
    DiffusionLoss,
    NetworkDenoiser,
    NoisedGaussianMixture,
    RectifiedFlow,
    ddim_sample,
    diffusion_loss,
    flow_euler_sample,
    flow_midpoint_sample,
    flow_rk4_sample,
    make_schedule,
    sampling_grid,
    velocity,
)
from genlab.errors import ConfigError
from genlab.flow import coupled_noise
from genlab.nn.toy_denoiser import ToyDenoiser, ToyDenoiserConfig
from genlab.train import TrainConfig, fit

F64 = torch.float64
SOLVERS = {"euler": (flow_euler_sample, 1), "midpoint": (flow_midpoint_sample, 2), "rk4": (flow_rk4_sample, 4)}


def gaussian(process, mean=(1.0, -0.5), cov=((0.3, 0.1), (0.1, 0.2))):
    return NoisedGaussianMixture([1.0], [list(mean)], [[list(r) for r in cov]], process)


def mixture(process):
    means = [[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]]
    covs = [[[0.1, 0.0], [0.0, 0.1]], [[0.2, 0.05], [0.05, 0.1]], [[0.05, 0.0], [0.0, 0.3]]]
    return NoisedGaussianMixture([0.3, 0.3, 0.4], means, covs, process)


def start_noise(n=64, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- the velocity field --------------------------------------------------------------------------


@pytest.mark.parametrize("process", [RectifiedFlow(), ContinuousVP(schedule="cosine")], ids=["ot", "vp"])
def test_velocity_is_the_conditional_mean_of_the_conditional_velocity(process):
    """u(x, t) = E[α̇ x₀ + σ̇ ε | x_t = x], checked by brute force: self-normalised importance
    weights p(x | x₀) over many draws of x₀ give the posterior, and so the conditional mean."""
    g = gaussian(process)
    t = 0.6
    a, s = (v.item() for v in process.alpha_sigma(t))
    da, ds = (v.item() for v in process.d_alpha_sigma(t))
    x = torch.tensor([[0.4, 0.1], [1.2, -0.9]], dtype=F64)
    x0 = g.sample(400_000, generator=torch.Generator().manual_seed(1))
    for xi, ui in zip(x, velocity(g, x, t)):
        logw = -((xi - a * x0) ** 2).sum(1) / (2 * s * s)
        w = torch.softmax(logw, 0)[:, None]
        eps = (xi - a * x0) / s
        brute = (w * (da * x0 + ds * eps)).sum(0)
        torch.testing.assert_close(ui, brute, atol=2e-2, rtol=0)


def test_velocity_at_the_data_end_needs_no_call():
    g = CallCounter(gaussian(RectifiedFlow()))
    x = start_noise(8)
    torch.testing.assert_close(velocity(g, x, 0.0), -x)  # α̇ = −1, E[ε | x₀] = 0
    assert g.calls == 0


def test_velocity_refuses_discrete_schedules():
    net = ToyDenoiser(ToyDenoiserConfig())
    with pytest.raises(ConfigError, match="continuous path"):
        velocity(NetworkDenoiser(net, make_schedule("linear", 100)), torch.zeros(2, 2), 50)


def test_guidance_on_x0_is_guidance_on_the_velocity():
    """CFG wraps the denoiser (x̂₀); for a velocity network the result must be u_∅ + w (u_y − u_∅) of
    the network's raw outputs."""
    torch.manual_seed(0)
    net = ToyDenoiser(ToyDenoiserConfig(num_classes=3)).eval()
    for p in net.parameters():
        p.data += 0.1 * torch.randn_like(p)
    process, w = RectifiedFlow(), 3.0
    x, y, t = torch.randn(5, 2), torch.tensor([0, 1, 2, 1, 0]), 0.7
    guided = ClassifierFreeGuidance(NetworkDenoiser(net, process, "velocity"), w, 3)
    with torch.no_grad():
        got = velocity(_bind(guided, y), x, t)
        tn = process.net_time(torch.full((5,), t, dtype=F64)).float()
        u_c, u_u = net(x, tn, y=y), net(x, tn, y=torch.full_like(y, 3))
    torch.testing.assert_close(got, u_u + w * (u_c - u_u), atol=1e-5, rtol=1e-5)


def _bind(denoiser, cond):
    from genlab.diffusion import Conditioned

    return Conditioned(denoiser, cond)


# --- solvers against the closed-form flow of Gaussian data ----------------------------------------


@pytest.mark.parametrize("process", [RectifiedFlow(), ContinuousVP(schedule="cosine")], ids=["ot", "vp"])
@pytest.mark.parametrize("method", list(SOLVERS))
def test_solvers_reach_the_closed_form_endpoint_at_their_order(process, method):
    """Gaussian → Gaussian: the marginal field is affine and the ODE's solution is known in closed
    form (NoisedGaussianMixture.ode_flow). Halving the step must cut the error by at least ≈ 2^order
    (more is possible: on the straight path the midpoint rule's h² term vanishes for this field)."""
    g = gaussian(process)
    x1 = start_noise()
    exact = g.ode_flow(x1, 1.0, 0.0)
    solver, order = SOLVERS[method]
    n = {"euler": 16, "midpoint": 8, "rk4": 16}[method]  # RK4 reaches its asymptotic rate from about 16 steps
    errors = [(solver(g, x1, sampling_grid(process, k)) - exact).abs().max().item() for k in (n, 2 * n, 4 * n)]
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine > 0.7 * 2**order, errors
    assert errors[-1] < {"euler": 0.05, "midpoint": 1e-3, "rk4": 1e-6}[method]


@pytest.mark.parametrize("method,calls", [("euler", lambda n: n), ("midpoint", lambda n: 2 * n), ("rk4", lambda n: 4 * n - 1)])
def test_denoiser_calls_per_solve(method, calls):
    g = CallCounter(gaussian(RectifiedFlow()))
    SOLVERS[method][0](g, start_noise(4), sampling_grid(RectifiedFlow(), 5))
    assert g.calls == calls(5)


def test_euler_on_the_straight_path_is_ddim_and_not_on_the_vp_path():
    for process, same in ((RectifiedFlow(), True), (ContinuousVP(schedule="cosine"), False)):
        g = mixture(process)
        x1, grid = start_noise(), sampling_grid(process, 7)
        a, b = flow_euler_sample(g, x1, grid), ddim_sample(g, x1, grid)
        assert torch.allclose(a, b, atol=1e-12, rtol=0) is same


def test_rk4_matches_torchdiffeq_dopri5_on_a_mixture():
    """A three-component mixture (no closed-form flow): the classic RK4 in 40 steps against
    torchdiffeq's adaptive Dormand–Prince at a tight tolerance, on the same velocity field."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    process = RectifiedFlow()
    g = mixture(process)
    x1 = start_noise(32)
    ours = flow_rk4_sample(g, x1, sampling_grid(process, 40))
    ref = torchdiffeq.odeint(lambda t, x: velocity(g, x, t.item()), x1, torch.tensor([1.0, 1e-9], dtype=F64),
                             method="dopri5", rtol=1e-10, atol=1e-10)[-1]  # fmt: skip
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=0)


# --- against facebookresearch's flow_matching ------------------------------------------------------


@pytest.mark.parametrize("which", ["ot", "cosine", "vp_linear"])
def test_paths_match_flow_matching(which):
    """flow_matching runs time the other way (t = 0 noise, t = 1 data): its x_t and dx_t/dt at
    time r are genlab's at t = 1 − r, with the velocity's sign flipped."""
    fm_path = pytest.importorskip("flow_matching.path")
    sched = pytest.importorskip("flow_matching.path.scheduler")
    fm_sched, ours = {
        "ot": (sched.CondOTScheduler(), RectifiedFlow()),
        "cosine": (sched.CosineScheduler(), ContinuousVP(schedule="cosine")),
        "vp_linear": (sched.VPScheduler(beta_min=0.1, beta_max=20.0), ContinuousVP(schedule="linear", beta_min=0.1, beta_max=20.0)),
    }[which]
    path = fm_path.AffineProbPath(scheduler=fm_sched)
    gen = torch.Generator().manual_seed(0)
    data, noise = torch.randn(6, 3, generator=gen, dtype=F64), torch.randn(6, 3, generator=gen, dtype=F64)
    r = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95], dtype=F64)
    ps = path.sample(x_0=noise, x_1=data, t=r)
    t = 1 - r
    a, s = ours.alpha_sigma(t)
    da, ds = ours.d_alpha_sigma(t)
    torch.testing.assert_close(ps.x_t, a[:, None] * data + s[:, None] * noise)
    torch.testing.assert_close(-ps.dx_t, da[:, None] * data + ds[:, None] * noise)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_fixed_step_solvers_match_flow_matching_odesolver(method):
    solver_mod = pytest.importorskip("flow_matching.solver")
    from flow_matching.utils import ModelWrapper

    process = RectifiedFlow()
    g = mixture(process)

    class Field(ModelWrapper):
        def forward(self, x, t, **extras):
            return -velocity(g, x, 1.0 - float(t))

    x1, n = start_noise(16), 10
    ref = solver_mod.ODESolver(velocity_model=Field(torch.nn.Identity())).sample(
        x_init=x1, step_size=1.0 / n, method=method, time_grid=torch.tensor([0.0, 1.0], dtype=F64))  # fmt: skip
    ours = SOLVERS[method][0](g, x1, sampling_grid(process, n))
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=0)


# --- flow matching learns the marginal field -------------------------------------------------------


def test_trained_velocity_matches_the_closed_form_field_of_a_mixture():
    """Flow matching regresses on conditional velocities ε − x₀; its minimiser is the marginal field,
    known in closed form for Gaussian-mixture data. A small MLP must get close to it — far closer
    than the best field that ignores x (the mean conditional velocity at each t)."""
    process = RectifiedFlow()
    g = mixture(process)
    data = g.sample(30_000, generator=torch.Generator().manual_seed(0)).float()
    torch.manual_seed(0)
    net = ToyDenoiser(ToyDenoiserConfig(hidden=128, num_blocks=3))
    loss = DiffusionLoss(process, prediction="velocity")
    fit(net, loss, (data,), TrainConfig(steps=1500, batch_size=512, lr=3e-3, ema_decay=None, warmup_steps=50), progress=False)
    net.eval()
    gen = torch.Generator().manual_seed(5)
    for t in (0.3, 0.6, 0.9):
        a, s = (v.item() for v in process.alpha_sigma(t))
        x0 = g.sample(4000, generator=gen)
        x = a * x0 + s * torch.randn(x0.shape, generator=gen, dtype=F64)
        exact = velocity(g, x, t)
        with torch.no_grad():
            learned = net(x.float(), process.net_time(torch.full((len(x),), t, dtype=F64)).float()).double()
        err = ((learned - exact) ** 2).sum(1).mean()
        spread = ((exact - exact.mean(0)) ** 2).sum(1).mean()
        assert err < 0.02 * spread, (t, err.item(), spread.item())


# --- reflow ----------------------------------------------------------------------------------------


def test_coupled_noise_is_the_samplers_starting_noise():
    from genlab.diffusion import sample

    seen = {}

    def first(info):
        if info.i == 0:
            seen.setdefault("x", []).append(info.x_t)

    g = gaussian(RectifiedFlow())
    sample(flow_euler_sample, g, 10, (2,), sampling_grid(RectifiedFlow(), 2), seed=7, batch_size=4, callback=first)
    torch.testing.assert_close(torch.cat(seen["x"]).float(), coupled_noise(10, (2,), seed=7))


def test_coupled_loss_uses_the_given_noise():
    """With paired noise z the loss is mean ‖net(x_t, t) − (z − x₀)‖², x_t = (1 − t) x₀ + t z: computed by hand."""
    torch.manual_seed(0)
    net = ToyDenoiser(ToyDenoiserConfig())
    x0, z = torch.randn(16, 2), torch.randn(16, 2)
    got = diffusion_loss(net, x0, torch.Generator().manual_seed(3), RectifiedFlow(), prediction="velocity", eps=z)
    u = torch.rand(16, generator=torch.Generator().manual_seed(3), dtype=F64)  # UniformTime draws first
    t = 1e-3 + (1 - 1e-3) * u  # on [eps, 1], eps = 1e-3
    xt = ((1 - t)[:, None] * x0 + t[:, None] * z).float()
    want = ((net(xt, (t * 1000).float()) - (z - x0)) ** 2).mean()
    torch.testing.assert_close(got, want)
    loss = DiffusionLoss(RectifiedFlow(), prediction="velocity", coupled=True)
    assert loss.config()["coupled"] is True
    with pytest.raises(ConfigError, match="paired noise"):
        loss(net, (x0,), torch.Generator())


def test_reflow_straightens_the_flow():
    """After reflow one Euler step lands much closer to the full ODE's endpoint than before
    (Liu et al. 2022): straightness measured on a two-cluster toy distribution."""
    from genlab.flow.reflow import reflow_pairs  # noqa: F401  (the pipeline path is tested in test_flow_pipeline)

    process = RectifiedFlow()
    g = NoisedGaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[[0.05, 0], [0, 0.3]]] * 2, process)
    data = g.sample(20_000, generator=torch.Generator().manual_seed(0)).float()

    def train(batches, init=None, coupled=False):
        torch.manual_seed(0)
        net = ToyDenoiser(ToyDenoiserConfig(hidden=96, num_blocks=2))
        if init is not None:
            net.load_state_dict(init.state_dict())
        fit(net, DiffusionLoss(process, prediction="velocity", coupled=coupled), batches,
            TrainConfig(steps=800, batch_size=512, lr=3e-3, ema_decay=None, warmup_steps=50), progress=False)  # fmt: skip
        return net.eval()

    def one_step_gap(net, z):
        d = NetworkDenoiser(net, process, "velocity")
        full = flow_rk4_sample(d, z, sampling_grid(process, 20))
        one = flow_euler_sample(d, z, sampling_grid(process, 1))
        return ((one - full) ** 2).sum(1).mean().item(), full

    net1 = train((data,))
    z = coupled_noise(4000, (2,), seed=1)
    gap1, x0 = one_step_gap(net1, z)
    net2 = train((x0, z), init=net1, coupled=True)
    gap2, _ = one_step_gap(net2, coupled_noise(2000, (2,), seed=2))
    assert gap2 < 0.1 * gap1, (gap1, gap2)
    assert math.isfinite(gap2)


def test_flow_samplers_refuse_discrete_models():
    from genlab.diffusion import default_grid

    with pytest.raises(ConfigError, match="continuous path"):
        default_grid(make_schedule("linear", 100), "flow-rk4", 10)
