"""Euler and Heun on the probability-flow ODE (Karras et al. 2022, "EDM", Algorithms 1 and 2).

In EDM's coordinates y = x/α and σ̂ = σ/α (any process: see :mod:`.grids`) the probability-flow
ODE is

    dy/dσ̂ = (y − D(y; σ̂)) / σ̂ = ε̂                                    (Karras eq. 4 with s = 1)

so one Euler step from σ̂ to σ̂' is y' = y + (σ̂' − σ̂) ε̂. Multiplying by α' gives, in the process's
own coordinates, x' = α' x̂₀ + σ' ε̂: **exactly the deterministic DDIM step** (Song et al. 2021,
eq. 12 with η = 0). DDIM is Euler on the PF-ODE in y and σ̂ (tests check it step by step). Heun
corrects the Euler step with the slope at its end point, one more denoiser call per step (not at
the last step to the data, where σ̂' = 0 and the slope is undefined):

    y' = y + (σ̂' − σ̂) (ε̂ + ε̂') / 2,    ε̂' = the slope at the Euler prediction

==============  ==============================================  ===================
symbol          meaning                                         name
==============  ==============================================  ===================
σ̂_i             noise level σ/α at grid time t_i                sigma_hat
ε̂               (x − α x̂₀)/σ = dy/dσ̂, the ODE's slope            eps
γ_i             churn: σ̂ raised to σ̂(1 + γ) by fresh noise      churn (S_churn)
S_tmin, S_tmax  churn only where S_tmin ≤ σ̂ ≤ S_tmax             s_tmin, s_tmax
S_noise         scale of the churn noise                        s_noise
==============  ==============================================  ===================

With ``churn > 0`` (Algorithm 2) each step first adds noise, y ← y + S_noise √(σ̂'² − σ̂²) z with
σ̂' = σ̂(1 + γ), γ = min(S_churn/N, √2 − 1) (σ̂' capped at the process's largest noise level),
then steps from σ̂': a stochastic sampler that forgets some of the errors of earlier steps. Where α = 0 (zero terminal SNR) σ̂ is infinite: churn is
skipped and Heun's correction too (the first step is then an Euler step).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.grids import noise_level_range
from genlab.diffusion.noise import randn_like
from genlab.diffusion.process import check_finite
from genlab.diffusion.samplers import Generator, StepInfo, _alpha_sigma, _check_grid, _report

__all__ = ["euler_sample", "heun_sample"]


def _churn_gammas(sigma_hats: list[float], churn: float, s_tmin: float, s_tmax: float) -> list[float]:
    n = len(sigma_hats) - 1
    g = min(churn / n, math.sqrt(2) - 1) if n else 0.0
    return [g if (s_tmin <= s <= s_tmax and math.isfinite(s) and g > 0) else 0.0 for s in sigma_hats[:-1]]


def _sample(denoiser, x, grid, heun, churn, s_tmin, s_tmax, s_noise, generator, callback, progress, name):
    process = denoiser.process
    ts = _check_grid(grid, process)
    ab = _alpha_sigma(process, ts)
    sigma_hats = [s / a if a > 0 else math.inf for a, s in ab]
    churn = check_finite("churn", churn, low=0.0)
    s_noise = check_finite("s_noise", s_noise, low=0.0)
    gammas = _churn_gammas(sigma_hats, churn, s_tmin, s_tmax)
    s_top = noise_level_range(process)[1] if any(gammas) else math.inf
    for i in tqdm(range(len(ts) - 1), desc=name, disable=not progress):
        t, (alpha, sigma), (alpha_n, sigma_n) = ts[i], ab[i], ab[i + 1]
        x_start = x
        if gammas[i] > 0:  # Algorithm 2, lines 5–6: raise the noise level to σ̂(1 + γ)
            s_hat = min(sigma_hats[i] * (1 + gammas[i]), s_top)  # no higher than the process reaches
            t = process.time_of(torch.tensor([s_hat], dtype=torch.float64)).item()
            alpha_c, sigma_c = (v.item() for v in process.alpha_sigma(torch.tensor([t], dtype=torch.float64)))
            y = x / alpha + s_noise * math.sqrt(s_hat**2 - sigma_hats[i] ** 2) * randn_like(x, generator)
            x, alpha, sigma = alpha_c * y, alpha_c, sigma_c
        x0 = denoiser(x, t)
        eps = (x - alpha * x0) / sigma
        x_next = alpha_n * x0 + sigma_n * eps  # Euler = DDIM
        if heun and sigma_n > 0 and alpha > 0:  # Algorithm 1, lines 7–8: the trapezoidal correction
            eps_n = (x_next - alpha_n * denoiser(x_next, ts[i + 1])) / sigma_n
            x_next = x_next + alpha_n * (sigma_n / alpha_n - sigma / alpha) * 0.5 * (eps_n - eps)
        x = _report(callback, i, ts[i], ts[i + 1], x_start, x_next, x0)
    return x


@torch.no_grad()
def euler_sample(
    denoiser, x: torch.Tensor, grid, *, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
    s_noise: float = 1.0, generator: Generator = None, callback: Callable[[StepInfo], torch.Tensor | None] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler on the PF-ODE along ``grid`` (Karras et al. 2022, Algorithm 2; churn = 0: deterministic).

    One denoiser call per step. With churn = 0 this is deterministic DDIM in other words (module
    docstring). Returns the state at grid[-1].
    """
    return _sample(denoiser, x, grid, False, churn, s_tmin, s_tmax, s_noise, generator, callback, progress, "Euler")


@torch.no_grad()
def heun_sample(
    denoiser, x: torch.Tensor, grid, *, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
    s_noise: float = 1.0, generator: Generator = None, callback: Callable[[StepInfo], torch.Tensor | None] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Heun's second-order method on the PF-ODE (Karras et al. 2022, Algorithm 1; churn as Algorithm 2).

    Two denoiser calls per step except the last one to the data: 2N − 1 calls for N steps that
    end at σ = 0. Returns the state at grid[-1].
    """
    return _sample(denoiser, x, grid, True, churn, s_tmin, s_tmax, s_noise, generator, callback, progress, "Heun")
