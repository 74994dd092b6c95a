"""Samplers: short plain functions over a denoiser and a descending grid of times.

    ddpm_sample(denoiser, x, grid, *, variance, generator, callback)   Ho et al. 2020, Algorithm 2
    ddim_sample(denoiser, x, grid, *, eta, generator, callback)        Song et al. 2021, eq. 12

``denoiser(x, t) -> x̂₀`` is any denoiser of :mod:`.denoisers` (a network adapter, possibly wrapped
in guidance, conditioning and clipping); its ``process`` gives α(t), σ(t). ``grid`` holds N + 1
descending times: ``x`` is the state at grid[0], each step moves it to the next time, and after N
steps it is at grid[-1] — usually ``process.t_clean``, the data (σ = 0). Build grids with
:func:`sampling_grid`. At every step, from t to s:

    1. x̂₀ = denoiser(x_t, t)                  one call (guidance batches its two passes into it)
    2. ε̂ = (x_t − α_t x̂₀) / σ_t               the noise direction that x̂₀ implies
    3. x_s = step(x_t, x̂₀, ε̂, noise)          coefficients precomputed in float64

so a step returns x̂₀ itself when s is the data. Coefficients enter the float32 arithmetic as Python
floats. Randomness comes from ``generator`` (a ``torch.Generator`` or a per-sample
:class:`~genlab.diffusion.noise.SampleNoise`), drawn only for steps with non-zero noise, in grid
order. ``callback(StepInfo)`` runs after each step; if it returns a tensor, that tensor replaces
x_s (this is where inpainting and SDEdit hook in). Putting networks in eval mode is the caller's
job; samplers run under ``torch.no_grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.noise import SampleNoise, randn_like
from genlab.diffusion.process import Process, check_finite, posterior_coefficients
from genlab.errors import ConfigError

__all__ = [
    "SPACINGS",
    "DDIMCoefficients",
    "DDPMCoefficients",
    "StepInfo",
    "Trajectory",
    "ddim_coefficients",
    "ddim_sample",
    "ddpm_coefficients",
    "ddpm_sample",
    "learned_std",
    "sampling_grid",
    "timesteps_grid",
]

SPACINGS = ("leading", "trailing", "linspace")
VARIANCES = ("beta_tilde", "beta", "learned")

Generator = torch.Generator | SampleNoise | None


def timesteps_grid(T: int, steps: int, spacing: str = "leading") -> torch.Tensor:
    """``steps`` descending int64 timesteps in [0, T-1] (Lin et al. 2023, Table 2).

    The same grids as diffusers' ``DDIMScheduler.set_timesteps`` with ``steps_offset=0``:

    - ``"leading"``:  k · (T // steps), k = steps-1..0 — ends at 0, may not reach T-1
      (T=1000, steps=50: 980, 960, …, 0). diffusers' default.
    - ``"trailing"``: round(T − k · T/steps) − 1, k = 0..steps-1 — starts at T-1
      (999, 979, …, 19). Recommended with zero-terminal-SNR schedules.
    - ``"linspace"``: round(linspace(0, T-1, steps)) reversed — both ends (999, 979, …, 0).

    Always exactly ``steps`` distinct timesteps. (diffusers 0.42 builds "trailing" with a float
    ``np.arange`` that, for some counts such as T=1000, steps=61, yields one extra timestep −1;
    its first ``steps`` entries are the grid returned here.) A sampler's grid also needs the end
    point: :func:`sampling_grid` appends it.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 < steps <= T:
        raise ConfigError(f"steps must be an int in 1..T={T}, got {steps!r}")
    if spacing == "leading":
        ts = np.arange(steps)[::-1] * (T // steps)
    elif spacing == "trailing":
        # np.arange exactly as diffusers (ties such as 937.5 round the same way), cut to `steps`.
        ts = np.round(np.arange(T, 0, -T / steps))[:steps].astype(np.int64) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round()[::-1]
    else:
        raise ConfigError(f"unknown timestep spacing {spacing!r}; choose one of {SPACINGS}")
    return torch.from_numpy(np.ascontiguousarray(ts).astype(np.int64))


def sampling_grid(process: Process, steps: int, spacing: str = "trailing") -> torch.Tensor:
    """``steps + 1`` descending times for a sampler: ``steps`` denoising points, then the data end.

    Discrete schedules: :func:`timesteps_grid` (``spacing`` as there) followed by t = −1 (ᾱ = 1),
    int64. Continuous processes: ``steps + 1`` times evenly spaced from ``t_max`` to ``t_clean``,
    float64 (``spacing`` is ignored).
    """
    if getattr(process, "discrete", False):
        ts = timesteps_grid(process.t_max + 1, steps, spacing)
        return torch.cat([ts, torch.tensor([process.t_clean], dtype=torch.int64)])
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive int, got {steps!r}")
    return torch.linspace(float(process.t_max), float(process.t_clean), steps + 1, dtype=torch.float64)


@dataclass
class StepInfo:
    """What a sampler reports after step ``i`` (from time ``t`` to ``t_next``)."""

    i: int  # step index, 0..N-1
    t: float  # the time stepped from
    t_next: float  # the time stepped to
    x_t: torch.Tensor  # the state at t
    x: torch.Tensor  # the state at t_next (what the sampler continues with)
    x0: torch.Tensor  # x̂₀ predicted at t


@dataclass
class Trajectory:
    """A sampler callback that records the chain on the CPU (e.g. for an animation).

    times: the grid; x_t: the state at grid[0] followed by the state after each step
    (len(grid) tensors, the last is the sample); x0_pred: x̂₀ predicted at each step.
    """

    times: list = field(default_factory=list)
    x_t: list[torch.Tensor] = field(default_factory=list)
    x0_pred: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, info: StepInfo) -> None:
        if info.i == 0:
            self.times, self.x_t, self.x0_pred = [info.t], [info.x_t.cpu()], []
        self.times.append(info.t_next)
        self.x_t.append(info.x.cpu())
        self.x0_pred.append(info.x0.cpu())


def _check_grid(grid: Sequence | torch.Tensor, process: Process) -> list:
    ts = grid.tolist() if isinstance(grid, torch.Tensor) else list(grid)
    if len(ts) < 2:
        raise ConfigError("a sampling grid needs at least two times (start and end); build one with sampling_grid(process, steps)")
    if any(not isinstance(t, (int, float)) or not math.isfinite(t) for t in ts):
        raise ConfigError("grid times must be finite numbers")
    if any(a <= b for a, b in zip(ts, ts[1:])):
        raise ConfigError("grid times must be strictly descending, e.g. sampling_grid(process, steps)")
    process.check_times(torch.tensor(ts, dtype=torch.float64))
    return ts


def _alpha_sigma(process: Process, ts: list) -> list[tuple[float, float]]:
    exact = all(isinstance(t, int) for t in ts)  # int timesteps stay int64; float times stay float64
    a, s = process.alpha_sigma(torch.tensor(ts, dtype=torch.int64 if exact else torch.float64))
    return list(zip(a.tolist(), s.tolist()))


def _report(callback, i, t, t_next, x_t, x, x0) -> torch.Tensor:
    if callback is None:
        return x
    out = callback(StepInfo(i, t, t_next, x_t, x, x0))
    return x if out is None else out


class DDPMCoefficients(NamedTuple):
    """x_s = c_x0 · x̂₀ + c_xt · x_t + std · z."""

    c_x0: float
    c_xt: float
    std: float


def ddpm_coefficients(alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float, variance: str = "beta_tilde") -> DDPMCoefficients:
    """One ancestral step from t to s < t (Ho et al. 2020, eqs. 6–7 on any grid), in float64.

    ==================  ==========================================  ==================
    symbol              meaning                                     name
    ==================  ==========================================  ==================
    μ̃ = c_x0 x̂₀ + c_xt x_t  mean of q(x_s | x_t, x̂₀)                 c_x0, c_xt
    β̃                   variance of q(x_s | x_t, x₀)               variance="beta_tilde"
    β = σ²_{t|s}        variance of the forward step q(x_t | x_s)   variance="beta"
    ==================  ==========================================  ==================

    (Ho et al. §3.2: both variances give the same ELBO-optimal limits; diffusers' "fixed_small"
    and "fixed_large".) No noise is added when s is the data (σ_s = 0; Algorithm 2's z = 0 at t = 1).
    For ``variance="learned"`` the std depends on the network's output: ``std`` is NaN here and
    :func:`learned_std` gives it from the fraction v.
    """
    if variance not in VARIANCES:
        raise ConfigError(f"unknown DDPM variance {variance!r}; choose 'beta_tilde' (β̃_t), 'beta' (β_t) or 'learned'")
    c_x0, c_xt, beta_tilde = posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s)
    if variance == "learned":
        return DDPMCoefficients(c_x0, c_xt, 0.0 if sigma_s == 0 else math.nan)
    var = beta_tilde if variance == "beta_tilde" else _forward_variance(alpha_t, sigma_t, alpha_s, sigma_s)
    return DDPMCoefficients(c_x0, c_xt, 0.0 if sigma_s == 0 else math.sqrt(max(var, 0.0)))


def _forward_variance(alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float) -> float:
    """β_{t|s} = σ_t² − α_{t|s}² σ_s², the variance of the forward step q(x_t | x_s)."""
    return sigma_t**2 - (alpha_t / alpha_s) ** 2 * sigma_s**2


def learned_std(alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float, fraction: torch.Tensor) -> torch.Tensor:
    """exp(½ (v log β_{t|s} + (1 − v) log β̃_{t|s})) per element: the std of a learned-variance step
    (:mod:`.learned_variance`; β_{t|s} = σ_t² − α_{t|s}² σ_s², β̃_{t|s} its posterior variance)."""
    _, _, beta_tilde = posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s)
    log_beta, log_beta_tilde = math.log(_forward_variance(alpha_t, sigma_t, alpha_s, sigma_s)), math.log(beta_tilde)
    return torch.exp(0.5 * (fraction * log_beta + (1 - fraction) * log_beta_tilde))


@torch.no_grad()
def ddpm_sample(
    denoiser, x: torch.Tensor, grid, *, variance: str = "beta_tilde", generator: Generator = None,
    callback: Callable[[StepInfo], torch.Tensor | None] | None = None, progress: bool = False,
) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2) along ``grid``: x_s ~ q(x_s | x_t, x̂₀).

    On the full grid T−1, …, 0, −1 this is DDPM; on a sub-grid the step's β is σ²_{t|s}
    (diffusers' DDPMScheduler with custom timesteps). ``variance="learned"`` takes each step's
    variance from the network (a :class:`~genlab.diffusion.learned_variance.LearnedVarianceDenoiser`,
    possibly clipped). Returns the state at grid[-1].
    """
    ts = _check_grid(grid, denoiser.process)
    if variance == "learned" and not hasattr(denoiser, "x0_and_fraction"):
        raise ConfigError("variance='learned' needs a model trained with a learned variance (LearnedVarianceDenoiser)")
    ab = _alpha_sigma(denoiser.process, ts)
    coefs = [ddpm_coefficients(*ab[i], *ab[i + 1], variance) for i in range(len(ts) - 1)]
    for i in tqdm(range(len(coefs)), desc="DDPM", disable=not progress):
        c = coefs[i]
        if variance == "learned":
            x0, frac = denoiser.x0_and_fraction(x, ts[i])
        else:
            x0 = denoiser(x, ts[i])
        x_next = c.c_x0 * x0 + c.c_xt * x
        if math.isnan(c.std):
            x_next = x_next + learned_std(*ab[i], *ab[i + 1], frac) * randn_like(x, generator)
        elif c.std > 0:
            x_next = x_next + c.std * randn_like(x, generator)
        x = _report(callback, i, ts[i], ts[i + 1], x, x_next, x0)
    return x


class DDIMCoefficients(NamedTuple):
    """x_s = alpha_s · x̂₀ + c_eps · ε̂ + std · z."""

    alpha_s: float
    c_eps: float
    std: float


def ddim_coefficients(alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float, eta: float = 0.0) -> DDIMCoefficients:
    """One DDIM step from t to s < t (Song et al. 2021, eqs. 12 and 16), in float64.

    ==========  =====================================================  ==============
    symbol      meaning                                                name
    ==========  =====================================================  ==============
    α, σ        the process at t and s (VP: Song et al.'s √α_t, √(1−α_t))  alpha_*, sigma_*
    η           0 = deterministic DDIM, 1 = DDPM's β̃ variance          eta
    σ_t(η)      η √β̃  (β̃: variance of q(x_s | x_t, x₀))               std
    c_eps       √(σ_s² − σ_t(η)²), "direction pointing to x_t"          c_eps
    ==========  =====================================================  ==============
    """
    eta = check_finite("eta", eta, low=0.0, high=1.0)
    beta_tilde = posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s)[2]
    std = eta * math.sqrt(max(beta_tilde, 0.0))
    return DDIMCoefficients(alpha_s, math.sqrt(max(sigma_s**2 - std**2, 0.0)), std)


@torch.no_grad()
def ddim_sample(
    denoiser, x: torch.Tensor, grid, *, eta: float = 0.0, generator: Generator = None,
    callback: Callable[[StepInfo], torch.Tensor | None] | None = None, progress: bool = False,
) -> torch.Tensor:
    """DDIM along ``grid``: x_s = α_s x̂₀ + √(σ_s² − σ_t(η)²) ε̂ + σ_t(η) z (Song et al. 2021, eq. 12).

    η = 0 is deterministic given x (Euler on the probability-flow ODE in the right coordinates);
    η = 1 on the full grid is DDPM with β̃. Returns the state at grid[-1].
    """
    ts = _check_grid(grid, denoiser.process)
    ab = _alpha_sigma(denoiser.process, ts)
    coefs = [ddim_coefficients(*ab[i], *ab[i + 1], eta) for i in range(len(ts) - 1)]
    for i in tqdm(range(len(coefs)), desc="DDIM", disable=not progress):
        c, (alpha_t, sigma_t) = coefs[i], ab[i]
        x0 = denoiser(x, ts[i])
        eps = (x - alpha_t * x0) / sigma_t
        x_next = c.alpha_s * x0 + c.c_eps * eps
        if c.std > 0:
            x_next = x_next + c.std * randn_like(x, generator)
        x = _report(callback, i, ts[i], ts[i + 1], x, x_next, x0)
    return x
