"""Samplers: plain functions over a model and a descending grid of timesteps.

    timesteps_grid(T, steps, spacing)        which timesteps to visit (diffusers' conventions)
    ddpm_sample(model, shape, schedule)      ancestral sampling, Ho et al. 2020, Algorithm 2
    ddim_sample(model, shape, schedule, ts)  Song et al. 2021, eq. 12, any η ≥ 0

Both samplers share one loop: at each grid point t (next grid point t', or "−1" after the last)

    1. out = model(x_t, t, y)              one forward call, guided if guidance_scale != 1
    2. (x̂₀, ε̂) from out                    whatever the network predicts (ε, x₀ or v)
    3. x̂₀ ← clip(x̂₀, −1, 1), ε̂ ← from x̂₀   if clip_x0
    4. x_{t'} = step(x_t, x̂₀, ε̂, noise)    ddpm_step or ddim_step, coefficients precomputed

with ᾱ_{−1} = 1, so the last step returns x̂₀ itself. Schedule coefficients are computed once in
float64 and enter the float32 arithmetic as Python floats. All randomness (x_T and the per-step
noise) is drawn with ``generator`` on its device (the CPU unless you pass another) and then moved
to the sampling device, so a seed gives the same images on any hardware. Noise is drawn only for
steps whose σ is not zero, in grid order, after x_T.

Index convention: t = 0..T-1, ᾱ_t = prod_{s<=t} (1 − β_s) (see :mod:`.schedules`).
Putting the model in eval mode is the caller's job; the samplers run under ``torch.no_grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.guidance import as_labels, check_guidance, guided_model_output
from genlab.diffusion.parameterization import check_prediction, predict_x0_eps, x0_to_eps
from genlab.diffusion.schedules import NoiseSchedule
from genlab.device import module_device
from genlab.errors import ConfigError

__all__ = [
    "SPACINGS",
    "DDIMCoefficients",
    "DDPMCoefficients",
    "Trajectory",
    "ddim_coefficients",
    "ddim_sample",
    "ddim_step",
    "ddpm_coefficients",
    "ddpm_sample",
    "ddpm_step",
    "timesteps_grid",
]

SPACINGS = ("leading", "trailing", "linspace")


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
    its first ``steps`` entries are the grid returned here.)
    """
    if not isinstance(steps, (int, np.integer)) or not 0 < steps <= T:
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


@dataclass
class Trajectory:
    """What happened during sampling, on the CPU (e.g. for an animation).

    timesteps: the grid, in visiting order; x_t: x_T followed by the state after each step
    (len(timesteps) + 1 tensors, the last is the sample); x0_pred: x̂₀ predicted at each step.
    """

    timesteps: list[int] = field(default_factory=list)
    x_t: list[torch.Tensor] = field(default_factory=list)
    x0_pred: list[torch.Tensor] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# DDPM: ancestral step
# --------------------------------------------------------------------------------------------


class DDPMCoefficients(NamedTuple):
    """μ = c_x0 · x̂₀ + c_xt · x_t; σ = standard deviation of the added noise."""

    c_x0: float
    c_xt: float
    sigma: float


def ddpm_coefficients(alpha_bar_t: float, alpha_bar_prev: float, variance: str = "beta_tilde") -> DDPMCoefficients:
    """Coefficients of one ancestral step from t to t' (Ho et al. 2020, eqs. 6–7), in float64.

    ==================  =====================================  ==============================
    symbol              meaning                                name
    ==================  =====================================  ==============================
    ᾱ_t, ᾱ_t'          ᾱ at this and the next grid point      alpha_bar_t, alpha_bar_prev
    β_t = 1 − ᾱ_t/ᾱ_t'  the step's β (= betas[t] on the full grid)  beta
    β̃_t                (1 − ᾱ_t')/(1 − ᾱ_t) · β_t             variance="beta_tilde"
    σ_t²                β̃_t or β_t (Ho et al. §3.2)            variance="beta"
    ==================  =====================================  ==============================

    σ = 0 when ᾱ_t' = 1 (the last step returns the mean; Algorithm 2, z = 0 at t = 1).
    """
    if variance not in ("beta_tilde", "beta"):
        raise ConfigError(f"unknown DDPM variance {variance!r}; choose 'beta_tilde' (β̃_t) or 'beta' (β_t)")
    beta = 1.0 - alpha_bar_t / alpha_bar_prev
    c_x0 = math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar_t)
    c_xt = math.sqrt(1.0 - beta) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    var = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta if variance == "beta_tilde" else beta
    sigma = 0.0 if alpha_bar_prev == 1.0 else math.sqrt(var)
    return DDPMCoefficients(c_x0, c_xt, sigma)


def ddpm_step(
    x_t: torch.Tensor,
    x0_hat: torch.Tensor,
    eps_hat: torch.Tensor,
    coef: DDPMCoefficients,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_{t-1} = μ̃_t(x_t, x̂₀) + σ_t z (Ho et al. 2020, Algorithm 2 with eq. 7's posterior mean).

    =========  ================================  ==================
    symbol     meaning                           name
    =========  ================================  ==================
    x_t        current sample                    x_t
    x̂₀         predicted clean sample            x0_hat
    μ̃_t        c_x0 · x̂₀ + c_xt · x_t            (computed here)
    σ_t, z     noise std, z ~ N(0, I)            coef.sigma, noise
    =========  ================================  ==================

    Written with x̂₀ (clipped or not) rather than ε̂, so clipping acts on the posterior mean;
    ``eps_hat`` is unused and present only so that every step has one signature.
    """
    x_prev = coef.c_x0 * x0_hat + coef.c_xt * x_t
    if coef.sigma > 0:
        x_prev = x_prev + coef.sigma * noise
    return x_prev


# --------------------------------------------------------------------------------------------
# DDIM: non-Markovian step
# --------------------------------------------------------------------------------------------


class DDIMCoefficients(NamedTuple):
    """x_t' = sqrt_alpha_bar_prev · x̂₀ + c_eps · ε̂ + σ · z."""

    sqrt_alpha_bar_prev: float
    c_eps: float
    sigma: float


def ddim_coefficients(alpha_bar_t: float, alpha_bar_prev: float, eta: float = 0.0) -> DDIMCoefficients:
    """Coefficients of one DDIM step from t to t' (Song et al. 2021, eqs. 12 and 16), in float64.

    ==========  ===================================================  =====================
    symbol      meaning                                              name
    ==========  ===================================================  =====================
    α_t, α_t'   ᾱ at this / the next grid point (Song et al.'s α)   alpha_bar_t, alpha_bar_prev
    η           0 = deterministic DDIM, 1 = DDPM's β̃ variance       eta
    σ_t(η)      η √((1 − ᾱ_t')/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_t')           sigma
    ==========  ===================================================  =====================
    """
    if eta < 0:
        raise ConfigError(f"eta must be >= 0 (0 = deterministic DDIM, 1 = DDPM-like), got {eta}")
    sigma = eta * math.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * (1.0 - alpha_bar_t / alpha_bar_prev))
    c_eps = math.sqrt(max(1.0 - alpha_bar_prev - sigma**2, 0.0))
    return DDIMCoefficients(math.sqrt(alpha_bar_prev), c_eps, sigma)


def ddim_step(
    x_t: torch.Tensor,
    x0_hat: torch.Tensor,
    eps_hat: torch.Tensor,
    coef: DDIMCoefficients,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_t' = √ᾱ_t' x̂₀ + √(1 − ᾱ_t' − σ_t²) ε̂ + σ_t z   (Song et al. 2021, eq. 12).

    ===========  =====================================  ==================
    symbol       meaning                                name
    ===========  =====================================  ==================
    x̂₀           "predicted x_0"                        x0_hat
    ε̂            ε_θ(x_t, t), direction pointing to x_t  eps_hat
    σ_t, z       noise std, z ~ N(0, I)                 coef.sigma, noise
    ===========  =====================================  ==================

    When x̂₀ was clipped, the sampling loop passes the ε̂ re-derived from the clipped x̂₀
    (ε̂ = (x_t − √ᾱ_t x̂₀)/√(1 − ᾱ_t), as GLIDE does and diffusers' ``use_clipped_model_output=True``).
    ``x_t`` is unused and present only so that every step has one signature.
    """
    x_prev = coef.sqrt_alpha_bar_prev * x0_hat + coef.c_eps * eps_hat
    if coef.sigma > 0:
        x_prev = x_prev + coef.sigma * noise
    return x_prev


# --------------------------------------------------------------------------------------------
# The shared loop
# --------------------------------------------------------------------------------------------


def _check_grid(timesteps: Sequence[int] | torch.Tensor, T: int) -> list[int]:
    ts = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, torch.Tensor) else timesteps)]
    if not ts:
        raise ConfigError("the timestep grid is empty; build one with timesteps_grid(T, steps)")
    if ts[0] >= T or ts[-1] < 0:
        raise ConfigError(f"timesteps must lie in 0..{T - 1} for this schedule, got {ts[0]}..{ts[-1]}")
    if any(a <= b for a, b in zip(ts, ts[1:])):
        raise ConfigError("timesteps must be strictly descending, e.g. timesteps_grid(T, steps)")
    return ts


def _infer_device(model, x_T: torch.Tensor | None, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if x_T is not None:
        return x_T.device
    return module_device(model)


@torch.no_grad()
def _sample_loop(
    model: Callable[..., torch.Tensor],
    shape: Sequence[int],
    schedule: NoiseSchedule,
    grid: list[int],
    coefs: list,
    step: Callable[..., torch.Tensor],
    *,
    prediction: str,
    y,
    guidance_scale: float,
    null_label: int | None,
    clip_x0: bool,
    generator: torch.Generator | None,
    x_T: torch.Tensor | None,
    device,
    return_trajectory: bool,
    progress: bool,
    desc: str,
):
    check_prediction(prediction)
    check_guidance(y, guidance_scale, null_label)
    alpha_bar = schedule.alphas_cumprod.tolist()  # float64 → Python floats, once
    if prediction == "epsilon" and alpha_bar[grid[0]] == 0.0:
        raise ConfigError(
            f"an epsilon-predicting model cannot denoise at t={grid[0]} where alpha_bar_t = 0 (zero terminal SNR); "
            "train with prediction='v' or start the grid at a smaller t"
        )
    device = _infer_device(model, x_T, device)
    shape = tuple(shape)
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def randn() -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32).to(device)

    x = randn() if x_T is None else x_T.to(device=device, dtype=torch.float32)
    if tuple(x.shape) != shape:
        raise ConfigError(f"x_T has shape {tuple(x.shape)} but shape={shape} was asked for")
    labels = as_labels(y, shape[0], device)  # (B,) or None
    traj = Trajectory(timesteps=list(grid), x_t=[x.cpu()]) if return_trajectory else None

    for t, coef in zip(tqdm(grid, desc=desc, disable=not progress), coefs):
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)  # (B,)
        out = guided_model_output(model, x, t_batch, labels, guidance_scale=guidance_scale, null_label=null_label)
        x0_hat, eps_hat = predict_x0_eps(out, x, alpha_bar[t], prediction)
        if clip_x0:
            # Keep ε̂ consistent with the clipped x̂₀ (GLIDE; diffusers' use_clipped_model_output=True).
            # Without this, DDIM with strong guidance follows an ε̂ that points far outside the data
            # range and saturates the images.
            x0_hat = x0_hat.clamp(-1.0, 1.0)
            eps_hat = x0_to_eps(x0_hat, x, alpha_bar[t])
        x = step(x, x0_hat, eps_hat, coef, randn() if coef.sigma > 0 else None)
        if traj is not None:
            traj.x_t.append(x.cpu())
            traj.x0_pred.append(x0_hat.cpu())

    if clip_x0:
        x = x.clamp(-1.0, 1.0)  # already so up to rounding: the last step returns x̂₀
    return (x, traj) if return_trajectory else x


def _alpha_bar_pairs(schedule: NoiseSchedule, grid: list[int]) -> list[tuple[float, float]]:
    """(ᾱ_t, ᾱ_t') for each grid point; ᾱ_t' = 1 after the last one."""
    ab = schedule.alphas_cumprod.tolist()
    return [(ab[t], ab[grid[i + 1]] if i + 1 < len(grid) else 1.0) for i, t in enumerate(grid)]


def ddpm_sample(
    model: Callable[..., torch.Tensor],
    shape: Sequence[int],
    schedule: NoiseSchedule,
    *,
    timesteps: Sequence[int] | torch.Tensor | None = None,
    variance: str = "beta_tilde",
    prediction: str = "epsilon",
    y: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    null_label: int | None = None,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
):
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) over all T steps.

    model(x_t, t, y=None) → ε̂ / x̂₀ / v̂ (``prediction``); shape: (B, C, H, W) or any (B, ...);
    variance: σ_t² = β̃_t (``"beta_tilde"``, diffusers' fixed_small) or β_t (``"beta"``,
    fixed_large); timesteps: a descending sub-grid instead of T-1..0 (β_t then becomes
    1 − ᾱ_t/ᾱ_t', as in diffusers' DDPMScheduler with custom timesteps); y: labels int64 (B,)
    or one int; guidance_scale/null_label: classifier-free guidance (see :mod:`.guidance`);
    x_T: the starting noise (drawn with ``generator`` when None); device: inferred from x_T,
    then from the model's parameters, else the CPU.

    Returns x_0 of shape ``shape`` (float32), or ``(x_0, Trajectory)`` if ``return_trajectory``.
    """
    T = schedule.num_timesteps
    grid = _check_grid(range(T - 1, -1, -1) if timesteps is None else timesteps, T)
    coefs = [ddpm_coefficients(a, a_prev, variance) for a, a_prev in _alpha_bar_pairs(schedule, grid)]
    return _sample_loop(
        model, shape, schedule, grid, coefs, ddpm_step,
        prediction=prediction, y=y, guidance_scale=guidance_scale, null_label=null_label,
        clip_x0=clip_x0, generator=generator, x_T=x_T, device=device,
        return_trajectory=return_trajectory, progress=progress, desc="DDPM",
    )  # fmt: skip


def ddim_sample(
    model: Callable[..., torch.Tensor],
    shape: Sequence[int],
    schedule: NoiseSchedule,
    timesteps: Sequence[int] | torch.Tensor,
    *,
    eta: float = 0.0,
    prediction: str = "epsilon",
    y: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    null_label: int | None = None,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
):
    """DDIM sampling (Song et al. 2021, eq. 12) along any strictly descending grid of timesteps.

    Each step goes from a grid point t to the next one t'; after the last grid point ᾱ_t' = 1
    (diffusers' ``set_alpha_to_one=True``), so the result is the final x̂₀. η = 0 is
    deterministic given x_T; η = 1 on the full grid is DDPM with σ_t² = β̃_t. Build grids with
    :func:`timesteps_grid`. Other arguments and the return value as in :func:`ddpm_sample`.
    """
    grid = _check_grid(timesteps, schedule.num_timesteps)
    coefs = [ddim_coefficients(a, a_prev, eta) for a, a_prev in _alpha_bar_pairs(schedule, grid)]
    return _sample_loop(
        model, shape, schedule, grid, coefs, ddim_step,
        prediction=prediction, y=y, guidance_scale=guidance_scale, null_label=null_label,
        clip_x0=clip_x0, generator=generator, x_T=x_T, device=device,
        return_trajectory=return_trajectory, progress=progress, desc="DDIM",
    )  # fmt: skip
