"""Fast samplers (Euler, Heun, DPM-Solver++(2M), UniPC, the adaptive PF-ODE) and σ-grids.

References: diffusers' schedulers run on the same ε function and grid; the closed-form PF-ODE
solution for Gaussian data (NoisedGaussianMixture.ode_flow); DDIM, which Euler must equal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.diffusion import ContinuousVP, NoisedGaussianMixture, RectifiedFlow, VEProcess, make_schedule
from genlab.diffusion.denoisers import CallCounter
from genlab.diffusion.dpm_solver import dpmpp_2m_sample
from genlab.diffusion.euler_heun import euler_sample, heun_sample
from genlab.diffusion.grids import karras_sigmas, log_snr_sigmas, make_grid, noise_level_range, sigma_grid
from genlab.diffusion.pf_ode import ode_sample
from genlab.diffusion.samplers import Trajectory, ddim_sample, sampling_grid
from genlab.diffusion.unipc import unipc_sample
from genlab.errors import ConfigError

F64 = torch.float64


def _mixture(process, k=2):
    means = [[1.0, -0.5, 0.2], [-1.0, 0.5, 0.0]][:k]
    covs = torch.stack([torch.diag(torch.tensor([0.1, 0.2, 0.05], dtype=F64)), 0.15 * torch.eye(3, dtype=F64)][:k])
    weights = [0.3, 0.7] if k == 2 else [1.0]
    return NoisedGaussianMixture(weights, means, covs, process)


def _gaussian(process):
    a = torch.tensor([[0.4, 0.1, 0.0, 0.2], [0.0, 0.3, -0.1, 0.0], [0.1, 0.0, 0.5, 0.1], [0.0, 0.2, 0.0, 0.3]], dtype=F64)
    return NoisedGaussianMixture([1.0], [[0.5, -1.0, 0.2, 0.3]], (a @ a.T + 0.05 * torch.eye(4, dtype=F64))[None], process)


# --- noise levels and grids -------------------------------------------------------------------


@pytest.mark.parametrize("process", [make_schedule("linear", 1000), make_schedule("cosine", 200), ContinuousVP("linear"),
                                     ContinuousVP("cosine"), RectifiedFlow(), VEProcess(80.0)], ids=lambda p: p.kind)  # fmt: skip
def test_time_of_inverts_noise_level(process):
    lo, hi = noise_level_range(process)
    hi = min(hi, 1e3)
    levels = torch.logspace(math.log10(lo), math.log10(hi), 37, dtype=F64)
    t = process.time_of(levels)
    assert torch.allclose(process.noise_level(t), levels, rtol=1e-10)
    a, s = process.alpha_sigma(t)
    assert torch.allclose(a**2 + s**2, torch.ones_like(a), atol=1e-12) or process.kind in ("ve", "rectified_flow")


def test_discrete_time_of_matches_diffusers_sigma_to_t():
    diffusers = pytest.importorskip("diffusers")
    sch = diffusers.EulerDiscreteScheduler(num_train_timesteps=1000, beta_schedule="linear")
    process = make_schedule("linear", 1000)
    log_sigmas = np.log(((1 - sch.alphas_cumprod.numpy().astype(np.float64)) / sch.alphas_cumprod.numpy()) ** 0.5)
    levels = np.exp(np.random.default_rng(0).uniform(log_sigmas[0], log_sigmas[-1], 50))
    ref = np.array([sch._sigma_to_t(s, log_sigmas) for s in levels]).reshape(-1)
    assert np.allclose(process.time_of(torch.from_numpy(levels)).numpy(), ref, atol=2e-3)  # diffusers' ᾱ are float32
    # integer timesteps are the schedule itself; σ̂ = 0 is the data
    assert process.time_of(torch.tensor([0.0])).item() == -1
    assert torch.allclose(process.time_of(process.noise_level(torch.arange(1000))), torch.arange(1000, dtype=F64), atol=1e-9)


def test_karras_sigmas_closed_form_and_diffusers():
    s = karras_sigmas(10, 0.002, 80.0, rho=7.0)
    assert s[0].item() == pytest.approx(80.0) and s[-1].item() == pytest.approx(0.002)
    ramp = np.linspace(0, 1, 10)
    assert np.allclose(s.numpy(), (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7)
    assert np.allclose(karras_sigmas(5, 0.1, 10.0, rho=1.0).numpy(), np.linspace(10, 0.1, 5))  # ρ = 1: even in σ̂
    assert np.allclose(np.diff(np.log(log_snr_sigmas(6, 0.01, 100.0).numpy())), -np.log(1e4) / 5)
    diffusers = pytest.importorskip("diffusers")
    sch = diffusers.EulerDiscreteScheduler(num_train_timesteps=1000, beta_schedule="linear", use_karras_sigmas=True)
    sch.set_timesteps(12)
    lo, hi = sch.sigmas[-2].item(), sch.sigmas[0].item()  # diffusers' ᾱ are float32: take its own range
    assert np.allclose(karras_sigmas(12, lo, hi).numpy(), sch.sigmas[:-1].numpy(), rtol=1e-5)
    ours = noise_level_range(make_schedule("linear", 1000))
    assert np.allclose(ours, (lo, hi), rtol=1e-4)


def test_make_grid_shapes_and_errors():
    process = make_schedule("linear", 1000)
    g = make_grid(process, 8, "karras")
    assert len(g) == 9 and g[-1].item() == -1 and g[0].item() == pytest.approx(999)
    assert torch.equal(make_grid(process, 8, "timesteps", spacing="trailing"), sampling_grid(process, 8, "trailing"))
    assert len(make_grid(process, 8, "log_snr", to_data=False)) == 8
    zt = make_schedule("linear", 1000, zero_terminal_snr=True)
    with pytest.raises(ConfigError, match="timesteps"):
        make_grid(zt, 8, "karras")
    assert len(make_grid(zt, 8, "karras", sigma_max=100.0)) == 9
    with pytest.raises(ConfigError, match="unknown grid"):
        make_grid(process, 8, "cosine")
    with pytest.raises(ConfigError, match="must lie in"):
        process.time_of(torch.tensor([1e6]))
    with pytest.raises(ConfigError, match="descending"):
        sigma_grid(process, [1.0, 2.0])
    with pytest.raises(ConfigError, match="fractional timesteps"):
        process.alpha_sigma(torch.tensor([-0.5], dtype=F64))


# --- against diffusers ------------------------------------------------------------------------


class _Exact:
    """The mixture's exact denoiser, as a denoiser of its process."""

    def __init__(self, mix):
        self.mix, self.process = mix, mix.process

    def __call__(self, x, t, cond=None):
        return self.mix(x, t)


def _eps_at_level(mix, x, level):
    """The exact ε̂ at noise level σ̂ (the same function for genlab and diffusers)."""
    process = mix.process
    t = process.time_of(torch.tensor([float(level)], dtype=F64)).item()
    a, s = (v.item() for v in process.alpha_sigma(torch.tensor([t], dtype=F64)))
    return (x.double() - a * mix(x.double(), t)) / s


SCHEDULERS = {
    "euler": ("EulerDiscreteScheduler", euler_sample, {}),
    "heun": ("HeunDiscreteScheduler", heun_sample, {}),
    "dpmpp-2m": ("DPMSolverMultistepScheduler", dpmpp_2m_sample, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", unipc_sample, {"solver_order": 2, "solver_type": "bh2", "predict_x0": True}),
}


@pytest.mark.parametrize("karras", [False, True], ids=["timesteps", "karras"])
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize("steps", [6, 12])
def test_samplers_match_diffusers(name, karras, steps):
    diffusers = pytest.importorskip("diffusers")
    cls, fn, extra = SCHEDULERS[name]
    process = make_schedule("linear", 1000)
    mix = _mixture(process)
    sch = getattr(diffusers, cls)(num_train_timesteps=1000, beta_schedule="linear", use_karras_sigmas=karras, **extra)
    sch.set_timesteps(steps)
    ve = name in ("euler", "heun")  # these two step y = x/α (EDM's coordinates); the others x itself
    z = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(steps))
    x = z * sch.init_noise_sigma
    ref = []
    for t in sch.timesteps:
        # ε is a function of the σ̂ the solver steps with (diffusers' DPM-Solver and UniPC round Karras
        # times to integers for the network but step with the Karras σ's), and genlab's grid holds those σ̂.
        level = sch.sigmas[sch.step_index if sch.step_index is not None else 0].item()
        e = _eps_at_level(mix, sch.scale_model_input(x, t), level)
        x = sch.step(e.to(x.dtype), t, x).prev_sample
        ref.append(x)
    levels = sch.sigmas.double()
    if name == "heun":
        levels = torch.cat([levels[:1], levels[1::2]])  # its grid is stored twice (predictor and corrector)
    grid = sigma_grid(process, levels[:-1])
    assert len(grid) == steps + 1
    a0 = process.alpha_sigma(grid[:1])[0].item()
    traj = Trajectory()
    out = fn(_Exact(mix), z * sch.init_noise_sigma * (a0 if ve else 1.0), grid, callback=traj)
    assert torch.allclose(out, ref[-1].double(), atol=1e-5, rtol=0)
    if name != "heun":  # step by step (Heun's stored states interleave its two stages)
        alphas = process.alpha_sigma(grid[1:])[0]
        for k, (mine, theirs) in enumerate(zip(traj.x_t[1:], ref)):
            theirs = theirs.double() * (alphas[k].item() if ve else 1.0)
            assert torch.allclose(mine, theirs, atol=1e-5, rtol=0), k


# --- DDIM is Euler ----------------------------------------------------------------------------


@pytest.mark.parametrize("zero_terminal", [False, True])
def test_ddim_is_euler_on_the_pf_ode(zero_terminal):
    """Step by step: DDIM (η = 0) in x equals Euler on dy/dσ̂ = (y − x̂₀)/σ̂ in y = x/α."""
    process = make_schedule("linear", 100, zero_terminal_snr=zero_terminal)
    mix = _mixture(process)
    den = _Exact(mix)
    grid = sampling_grid(process, 10, "trailing")
    x = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    ddim, euler = Trajectory(), Trajectory()
    ddim_sample(den, x, grid, callback=ddim)
    euler_sample(den, x, grid, callback=euler)
    # Euler written out by hand in EDM's coordinates, from the first finite σ̂ on
    ts = grid.tolist()
    a, s = process.alpha_sigma(grid)
    y = ddim.x_t[1] / a[1] if zero_terminal else x / a[0]
    for i in range(1 if zero_terminal else 0, len(ts) - 1):
        sh, sh_next = (s[i] / a[i]).item(), (s[i + 1] / a[i + 1]).item()
        y = y + (sh_next - sh) * (y - mix(a[i].item() * y, ts[i])) / sh
        assert torch.allclose(a[i + 1] * y, ddim.x_t[i + 1], atol=1e-10)
    for d, e in zip(ddim.x_t, euler.x_t):
        assert torch.allclose(d, e, atol=1e-12)


# --- exact answers: convergence to the closed-form PF-ODE solution ----------------------------

ORDERS = {
    "euler": (euler_sample, 1),
    "heun": (heun_sample, 2),
    "dpmpp-2m": (dpmpp_2m_sample, 2),
    "unip-2": (lambda d, x, g: unipc_sample(d, x, g, corrector=False), 2),
    "unipc-2": (unipc_sample, 3),  # the corrector adds one order
    # UniC-3 would make it 4, but the last step (first order, no corrector after it) limits the
    # measured slope to about 3 at these step counts
    "unipc-3": (lambda d, x, g: unipc_sample(d, x, g, order=3), 3),
}


@pytest.mark.parametrize("process", [make_schedule("linear", 1000), ContinuousVP("linear")], ids=["discrete", "continuous"])
@pytest.mark.parametrize("name", list(ORDERS))
def test_error_vs_steps_slope_matches_order(name, process):
    fn, order = ORDERS[name]
    gauss = _gaussian(process)
    x = torch.randn(16, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    errs = []
    steps = (32, 64, 128)
    for n in steps:
        grid = make_grid(process, n, "log_snr", to_data=False)
        x_start = x * math.hypot(*(v.item() for v in process.alpha_sigma(grid[:1])))
        out = fn(gauss, x_start, grid)
        errs.append((out - gauss.ode_flow(x_start, grid[0].item(), grid[-1].item())).abs().max().item())
    slope = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert slope == pytest.approx(order, abs=0.45), errs


def test_every_solver_converges_on_a_mixture():
    """No closed form for two components: a tight adaptive solve is the reference."""
    process = make_schedule("linear", 1000)
    mix = _mixture(process)
    den = _Exact(mix)
    x = torch.randn(32, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    ref = ode_sample(den, x, make_grid(process, 2, "karras", to_data=False), rtol=1e-9, atol=1e-9)
    for name, (fn, order) in ORDERS.items():
        errs = [(fn(den, x, make_grid(process, n, "karras", to_data=False)) - ref).abs().max().item() for n in (16, 32, 64, 128)]
        assert all(b < a for a, b in zip(errs, errs[1:])), (name, errs)
        assert errs[-1] < (0.3 if order == 1 else 0.01), (name, errs)


def test_adaptive_ode_solver_is_exact_and_counts_nfe():
    process = ContinuousVP("cosine")  # reaches α = 0: the first step is an Euler step from pure noise
    gauss = _gaussian(process)
    x = torch.randn(8, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    counted = CallCounter(gauss)
    grid = torch.tensor([1.0, 0.98, 0.5, 0.01], dtype=F64)
    out = ode_sample(counted, x, grid, rtol=1e-8, atol=1e-8)
    first = ddim_sample(gauss, x, grid[:2])  # the Euler step from α = 0 (exact there: ε̂ = x)
    assert torch.allclose(out, gauss.ode_flow(first, 0.98, 0.01), atol=1e-5)
    assert counted.calls > 20
    loose = CallCounter(gauss)
    ode_sample(loose, x, grid, rtol=1e-3, atol=1e-3)
    assert loose.calls < counted.calls  # looser tolerance, fewer evaluations
    with pytest.raises(ConfigError, match="watch"):
        ode_sample(gauss, x, grid, callback=lambda info: info.x * 0)
    to_data = ode_sample(gauss, x, torch.tensor([0.98, 0.01, 0.0], dtype=F64))
    assert torch.isfinite(to_data).all()


@pytest.mark.parametrize("name", list(ORDERS))
def test_zero_terminal_snr_start_from_pure_noise(name):
    """From α = 0 (σ̂ = ∞) every solver runs and converges to the exact flow of pure noise."""
    fn, _ = ORDERS[name]
    process = make_schedule("linear", 1000, zero_terminal_snr=True)
    gauss = _gaussian(process)
    x = torch.randn(16, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    errs = []
    for n in (10, 160):
        grid = sampling_grid(process, n, "trailing")[:-1]  # end at t = 0, where the exact flow is finite
        out = fn(gauss, x, grid)
        assert torch.isfinite(out).all()
        errs.append((out - gauss.ode_flow(x, grid[0].item(), grid[-1].item())).abs().max().item())
    assert errs[1] < errs[0] / 5, errs


def test_churn_samples_the_data_distribution():
    """Stochastic Heun (Algorithm 2) with the exact denoiser draws from the data distribution."""
    process = make_schedule("linear", 1000)
    gauss = _gaussian(process)
    n = 4000
    x = torch.randn(n, 4, dtype=F64, generator=torch.Generator().manual_seed(5))
    grid = make_grid(process, 200, "karras")
    out = heun_sample(gauss, x, grid, churn=20.0, generator=torch.Generator().manual_seed(6))
    det = heun_sample(gauss, x, grid)
    assert not torch.allclose(out, det)
    assert torch.allclose(out.mean(0), gauss.means[0], atol=0.05)
    assert torch.allclose(torch.cov(out.T), gauss.covs[0], atol=0.03)
    assert torch.equal(euler_sample(gauss, x[:5], grid, churn=0.0), euler_sample(gauss, x[:5], grid))


def test_unipc_and_ode_reject_bad_options():
    process = make_schedule("linear", 100)
    gauss = _gaussian(process)
    x = torch.randn(2, 4, dtype=F64)
    grid = sampling_grid(process, 5)
    with pytest.raises(ConfigError, match="order"):
        unipc_sample(gauss, x, grid, order=4)
    with pytest.raises(ConfigError, match="variant"):
        unipc_sample(gauss, x, grid, variant="bh3")
    with pytest.raises(ConfigError, match="method"):
        ode_sample(gauss, x, grid, method="Euler")
    with pytest.raises(ConfigError, match="churn"):
        euler_sample(gauss, x, grid, churn=-1)


def test_grid_kind_names_the_grid_default_grid_builds():
    from genlab.diffusion.sampling import default_grid, grid_kind

    plain, zt = make_schedule("linear", 1000), make_schedule("linear", 1000, zero_terminal_snr=True)
    cases = [(plain, "ddim", None, "timesteps"), (plain, "ddpm", None, "timesteps"), (plain, "euler", None, "karras"),
             (plain, "unipc", "log_snr", "log_snr"), (zt, "dpmpp-2m", None, "timesteps"), (plain, "ode", "karras", "adaptive")]
    for process, sampler, asked, expected in cases:
        assert grid_kind(process, sampler, asked) == expected
        if expected != "adaptive":  # the grid built is the named kind's
            torch.testing.assert_close(default_grid(process, sampler, 7, asked), make_grid(process, 7, expected, spacing="trailing"))
