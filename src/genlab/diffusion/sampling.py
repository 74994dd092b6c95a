"""Drawing many samples: per-sample noise, in chunks, with an optional condition per sample.

:data:`SAMPLERS` names every sampler (the CLI's ``--sampler``) and :func:`default_grid` gives each
its usual grid (count a sampler's denoiser calls with :class:`~genlab.diffusion.denoisers.CallCounter`).

:func:`sample` runs any sampler of :mod:`.samplers` over ``n`` samples in chunks of
``batch_size``. Sample i's starting noise and every noise it meets on the way come from its own
stream (seed, i) (:class:`~genlab.diffusion.noise.SampleNoise`), so the result does not depend on
the chunk size or on where in a chunk the sample sits — and a large request runs at the speed of
a good batch size instead of one huge batch (2000 MNIST samples in one batch ran at a third of the
throughput of batches of 64 on a 2-core CPU).

The starting state at t₀ = grid[0] is z · √(α(t₀)² + σ(t₀)²): exactly N(0, I) for a
variance-preserving process (diffusers' ``init_noise_sigma`` = 1), N(0, 1 + σ_max²) for EDM's
process, N(0, I) at t = 1 of rectified flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.denoisers import Conditioned
from genlab.diffusion.dpm_solver import dpmpp_2m_sample
from genlab.diffusion.euler_heun import euler_sample, heun_sample
from genlab.diffusion.flow_solvers import flow_euler_sample, flow_midpoint_sample, flow_rk4_sample
from genlab.diffusion.grids import make_grid, noise_level_range, sigma_grid
from genlab.diffusion.noise import SampleNoise
from genlab.diffusion.pf_ode import ode_sample
from genlab.diffusion.samplers import Trajectory, ddim_sample, ddpm_sample
from genlab.diffusion.unipc import unipc_sample
from genlab.errors import ConfigError

__all__ = ["SAMPLERS", "default_grid", "grid_kind", "sample"]

SAMPLERS = {
    "ddpm": ddpm_sample,  # ancestral, Ho et al. 2020
    "ddim": ddim_sample,  # Song et al. 2021; = Euler on the PF-ODE
    "euler": euler_sample,  # Karras et al. 2022, Algorithm 2
    "heun": heun_sample,  # Karras et al. 2022, Algorithm 1
    "dpmpp-2m": dpmpp_2m_sample,  # Lu et al. 2022b, Algorithm 2
    "unipc": unipc_sample,  # Zhao et al. 2023, bh2, order 2
    "ode": ode_sample,  # scipy's adaptive RK45 on the PF-ODE
    "flow-euler": flow_euler_sample,  # Euler on dx/dt = u(x, t) in the path's time (flow matching)
    "flow-midpoint": flow_midpoint_sample,  # the explicit midpoint method, second order
    "flow-rk4": flow_rk4_sample,  # classic Runge–Kutta, fourth order
}
FLOW_SAMPLERS = ("flow-euler", "flow-midpoint", "flow-rk4")  # need a continuous path: uniform grids in t


def default_grid(process, sampler: str, steps: int, kind: str | None = None) -> torch.Tensor:
    """The grid genlab samples ``sampler`` on: ``kind`` ∈ {karras, log_snr, timesteps}, or its default.

    DDPM and DDIM default to trailing timesteps; the ODE solvers to Karras' ρ = 7 grid, or to
    trailing timesteps where the process reaches pure noise (σ̂ = ∞, which no σ-grid can hold).
    The adaptive ``ode`` sampler ignores ``steps``: its grid only marks the start (the largest
    finite noise level, after one Euler step from pure noise if the process has it), the smallest
    noise level and the data.
    """
    kind = grid_kind(process, sampler, kind)
    lo, hi = noise_level_range(process)
    if kind == "adaptive":
        if hi != float("inf"):
            return make_grid(process, 2, "karras")
        below = process.noise_level(torch.tensor([process.t_max - 1 if process.discrete else 0.99 * process.t_max])).item()
        return torch.cat([torch.tensor([float(process.t_max)], dtype=torch.float64), sigma_grid(process, [below, lo])])
    return make_grid(process, steps, kind, spacing="trailing")


def grid_kind(process, sampler: str, kind: str | None = None) -> str:
    """The kind of grid :func:`default_grid` builds: ``kind`` when given, else the sampler's default
    (``"adaptive"`` for ``ode``, whose solver picks its own steps)."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if sampler == "ode":
        return "adaptive"
    if kind is not None:
        return kind
    if sampler in FLOW_SAMPLERS:
        if getattr(process, "discrete", False):
            raise ConfigError(f"the {sampler} sampler integrates dx/dt = u(x, t) and needs a continuous path "
                              "(a flow-matching model); sample this model with ddim, heun, dpmpp-2m or unipc")  # fmt: skip
        return "timesteps"  # evenly spaced in t, the path's own time
    hi = noise_level_range(process)[1]
    return "timesteps" if sampler in ("ddpm", "ddim") or hi == float("inf") else "karras"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def sample(
    sampler: Callable[..., torch.Tensor],
    denoiser,
    n: int,
    shape: Sequence[int],
    grid,
    *,
    seed: int = 0,
    cond: torch.Tensor | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    trajectory: bool = False,
    progress: bool = False,
    **sampler_kwargs,
):
    """``n`` samples of one-sample shape ``shape`` from ``sampler(denoiser, x, grid, …)``, on the CPU.

    cond: one condition per sample (n, ...) or None; each chunk's slice is bound to the denoiser
    with :class:`~genlab.diffusion.denoisers.Conditioned`. ``trajectory=True`` also returns a
    :class:`~genlab.diffusion.samplers.Trajectory` whose tensors hold all n samples.
    ``sampler_kwargs`` go to the sampler (``eta=``, ``variance=``, ``callback=``, …).
    """
    n, batch_size = _positive_int("the number of samples", n), _positive_int("batch size", batch_size)
    seed = int(seed)
    if cond is not None and len(cond) != n:
        raise ConfigError(f"cond must hold one condition per sample: {n} asked for, {len(cond)} given")
    t0 = grid[0].item() if isinstance(grid, torch.Tensor) else grid[0]
    a0, s0 = (v.item() for v in denoiser.process.alpha_sigma(t0))
    scale = math.sqrt(a0**2 + s0**2)
    device = torch.device(device)
    outs, trajs = [], []
    chunks = range(0, n, batch_size)
    for start in tqdm(chunks, desc="sampling", unit="batch", disable=not progress or len(chunks) < 2):
        idx = range(start, min(n, start + batch_size))
        noise = SampleNoise(seed, idx)
        x = noise.randn_like(torch.empty(len(idx), *shape, device=device))
        if scale != 1.0:
            x = x * scale
        den = denoiser if cond is None else Conditioned(denoiser, cond[start : idx.stop].to(device))
        kwargs = dict(sampler_kwargs)
        if trajectory:
            trajs.append(Trajectory())
            user_cb = kwargs.get("callback")
            kwargs["callback"] = _both(trajs[-1], user_cb)
        outs.append(sampler(den, x, grid, generator=noise, progress=progress and len(chunks) == 1, **kwargs).cpu())
    out = torch.cat(outs)
    if not trajectory:
        return out
    merged = Trajectory(
        times=trajs[0].times,
        x_t=[torch.cat(parts) for parts in zip(*(tr.x_t for tr in trajs))],
        x0_pred=[torch.cat(parts) for parts in zip(*(tr.x0_pred for tr in trajs))],
    )
    return out, merged


def _both(record: Trajectory, user: Callable | None):
    def callback(info):
        out = user(info) if user is not None else None
        record(info if out is None else replace(info, x=out))  # record the state the sampler continues with
        return out

    return callback
