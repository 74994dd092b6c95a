"""Sampling grids in noise level σ̂ = σ/α: Karras' ρ-grid, uniform in log-SNR, the schedule's own.

Every process x_t = α x₀ + σ ε has the same probability-flow ODE in the coordinates y = x/α and
σ̂ = σ/α (Karras et al. 2022, eq. 4), so a sampler's grid is best chosen in σ̂ and then turned into
the process's own times with ``process.time_of`` (for a discrete schedule, fractional timesteps:
the network is then asked about times between the ones it was trained on, as in diffusers' Euler
and Heun schedulers with Karras sigmas).

==============  ===============================================  =====================================
grid            σ̂_i, i = 0..n−1                                  where it spends its steps
==============  ===============================================  =====================================
``karras``      (σ̂_max^{1/ρ} + i/(n−1) (σ̂_min^{1/ρ} − σ̂_max^{1/ρ}))^ρ   near the data (ρ = 7; Karras eq. 5)
``log_snr``     geometric from σ̂_max to σ̂_min                     evenly in λ = log(α/σ) (Lu et al. 2022)
``timesteps``   the schedule's own σ̂ at a timestep grid           evenly in t (:func:`.samplers.sampling_grid`)
==============  ===============================================  =====================================

:func:`make_grid` returns descending times that end at the data (σ = 0) unless ``to_data=False``.
"""

from __future__ import annotations

import torch

from genlab.diffusion.process import Process, check_finite
from genlab.diffusion.samplers import SPACINGS, sampling_grid
from genlab.errors import ConfigError

__all__ = ["GRIDS", "karras_sigmas", "log_snr_sigmas", "make_grid", "noise_level_range", "sigma_grid"]

GRIDS = ("karras", "log_snr", "timesteps")
EDM_SIGMA_MIN = 0.002  # Karras et al.'s σ_min, used for continuous processes (σ̂ → 0 at t_clean)


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of grid points must be a positive int, got {n!r}")
    return n


def _check_range(sigma_min, sigma_max) -> tuple[float, float]:
    lo = check_finite("sigma_min", sigma_min, low=0.0, strict_low=True)
    hi = check_finite("sigma_max", sigma_max, low=lo)
    return lo, hi


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """n descending noise levels from σ̂_max to σ̂_min, evenly spaced in σ̂^{1/ρ} (Karras et al. 2022, eq. 5).

    ρ = 1 is evenly spaced in σ̂; larger ρ crowds the points towards σ̂_min, where the ODE's
    curvature (and the truncation error of a step) is largest. Float64 (n,).
    """
    n, (lo, hi) = _check_n(n), _check_range(sigma_min, sigma_max)
    rho = check_finite("rho", rho, low=0.0, strict_low=True)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    return (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def log_snr_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """n descending noise levels evenly spaced in log σ̂ (= evenly in log-SNR and in DPM-Solver's λ). Float64 (n,)."""
    n, (lo, hi) = _check_n(n), _check_range(sigma_min, sigma_max)
    return torch.logspace(torch.log10(torch.tensor(hi)).item(), torch.log10(torch.tensor(lo)).item(), n, dtype=torch.float64)


def noise_level_range(process: Process) -> tuple[float, float]:
    """(σ̂_min, σ̂_max) a sampler can reach: the schedule's σ̂ at t = 0 and T−1, or EDM's 0.002 and σ̂(t_max).

    σ̂_max is ∞ where the process ends in pure noise (zero terminal SNR, rectified flow's t = 1).
    """
    if getattr(process, "discrete", False):
        lo, hi = process.noise_level(torch.tensor([0, process.t_max])).tolist()
        return lo, hi
    return EDM_SIGMA_MIN, process.noise_level(float(process.t_max)).item()


def sigma_grid(process: Process, sigmas, *, to_data: bool = True) -> torch.Tensor:
    """The process's times at descending noise levels ``sigmas`` (+ the data end t_clean if ``to_data``), float64."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if s.numel() < 1 or bool((s[1:] >= s[:-1]).any()):
        raise ConfigError("noise levels of a grid must be strictly descending")
    ts = process.time_of(s)
    if to_data:
        ts = torch.cat([ts, torch.tensor([float(process.t_clean)], dtype=torch.float64)])
    return ts


def make_grid(
    process: Process, steps: int, kind: str = "karras", *, rho: float = 7.0, spacing: str = "trailing",
    sigma_min: float | None = None, sigma_max: float | None = None, to_data: bool = True,
) -> torch.Tensor:
    """``steps`` descending sampling times of ``kind`` ∈ GRIDS, then the data end (if ``to_data``).

    ``sigma_min``/``sigma_max`` default to :func:`noise_level_range`. Karras and log-SNR grids need a
    finite σ̂_max: a zero-terminal-SNR schedule (σ̂ = ∞ at its last step) takes ``kind="timesteps"``
    (trailing, which starts at pure noise) or an explicit ``sigma_max``.
    """
    if kind not in GRIDS:
        raise ConfigError(f"unknown grid {kind!r}; choose one of {', '.join(GRIDS)}")
    if kind == "timesteps":
        if spacing not in SPACINGS:
            raise ConfigError(f"unknown timestep spacing {spacing!r}; choose one of {SPACINGS}")
        grid = sampling_grid(process, steps, spacing)
        return grid if to_data else grid[:-1]
    lo, hi = noise_level_range(process)
    lo = lo if sigma_min is None else sigma_min
    hi = hi if sigma_max is None else sigma_max
    if hi == float("inf"):
        raise ConfigError(
            f"a {kind} grid needs a finite largest noise level, but this process reaches pure noise (sigma/alpha = inf, "
            "zero terminal SNR): use grid='timesteps' (trailing) or pass sigma_max"
        )
    sigmas = karras_sigmas(_check_n(steps), lo, hi, rho) if kind == "karras" else log_snr_sigmas(_check_n(steps), lo, hi)
    return sigma_grid(process, sigmas, to_data=to_data)
