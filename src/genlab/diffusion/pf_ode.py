"""The probability-flow ODE solved by a general-purpose adaptive solver (scipy's ``solve_ivp``).

Song et al. (2021, eq. 13) showed that the ODE dx/dt = f(t) x − ½ g(t)² ∇ log p_t(x) moves samples
along the same marginals p_t as the noising SDE. In EDM's coordinates y = x/α, σ̂ = σ/α it is
dy/dσ̂ = (y − x̂₀)/σ̂ (:mod:`.euler_heun`); in τ = log σ̂ it becomes autonomous-looking and well
scaled over the many decades σ̂ spans,

    dy/dτ = y − D(α y, t(τ))

which is what is handed to the solver (RK45 by default: Dormand–Prince 5(4) with error control,
``rtol``/``atol``). The solver chooses its own steps; the grid only fixes where the solution is
read out. Where the grid ends at the data (σ̂ = 0, τ = −∞) the ODE is solved to the last positive
noise level and finished with one denoiser call, x = x̂₀ (the Euler/DDIM step to σ = 0); where it
starts at α = 0 (σ̂ = ∞) one Euler step leads to the next grid time first.

The whole batch is one ODE system, so the solver's steps — and with them each sample, to within
the tolerance — depend on the batch it is in. Count the denoiser calls (NFE) with
:class:`~genlab.diffusion.denoisers.CallCounter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from genlab.diffusion.process import check_finite
from genlab.diffusion.samplers import Generator, StepInfo, _alpha_sigma, _check_grid, _report
from genlab.errors import ConfigError

__all__ = ["ode_sample"]

METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


@torch.no_grad()
def ode_sample(
    denoiser, x: torch.Tensor, grid, *, rtol: float = 1e-4, atol: float = 1e-4, method: str = "RK45",
    generator: Generator = None, callback: Callable[[StepInfo], torch.Tensor | None] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Solve the PF-ODE from grid[0] to grid[-1] with ``scipy.integrate.solve_ivp`` (module docstring).

    The state is reported at every grid time (``callback``, which can watch but not replace it;
    its x̂₀ costs one extra denoiser call per grid time, so pass no callback when counting NFE). ``generator`` and ``progress`` are
    accepted for a common sampler signature. Returns the state at grid[-1].
    """
    from scipy.integrate import solve_ivp

    if method not in METHODS:
        raise ConfigError(f"unknown ODE method {method!r}; choose one of {', '.join(METHODS)}")
    rtol = check_finite("rtol", rtol, low=0.0, strict_low=True)
    atol = check_finite("atol", atol, low=0.0, strict_low=True)
    process = denoiser.process
    ts = _check_grid(grid, process)
    ab = _alpha_sigma(process, ts)
    shape, dtype, device = x.shape, x.dtype, x.device

    def report(i, x_from, x_to):
        if callback is None:
            return x_to
        if _report(callback, i, ts[i], ts[i + 1], x_from, x_to, denoiser(x_to, ts[i + 1])) is not x_to:
            raise ConfigError("the ODE sampler solves the whole path at once: its callback can watch the state but not replace it")
        return x_to

    i = 0
    if ab[0][0] == 0:  # σ̂ = ∞: one Euler (DDIM) step to the next grid time
        (alpha_n, sigma_n) = ab[1]
        x0 = denoiser(x, ts[0])
        x_next = alpha_n * x0 + sigma_n * (x / ab[0][1])
        x = _report(callback, 0, ts[0], ts[1], x, x_next, x0)
        i = 1
    last_noisy = max(k for k in range(len(ts)) if ab[k][1] > 0)
    if last_noisy > i:
        taus = [math.log(s / a) for a, s in ab[i : last_noisy + 1]]

        def rhs(tau, y_flat):
            t = process.time_of(torch.tensor([math.exp(tau)], dtype=torch.float64)).item()
            alpha = process.alpha_sigma(torch.tensor([t], dtype=torch.float64))[0].item()
            y = torch.from_numpy(y_flat).to(device=device, dtype=dtype).reshape(shape)
            x0 = denoiser(alpha * y, t)
            return (y - x0).reshape(-1).double().cpu().numpy()

        y0 = (x / ab[i][0]).reshape(-1).double().cpu().numpy()
        sol = solve_ivp(rhs, (taus[0], taus[-1]), y0, method=method, rtol=rtol, atol=atol, t_eval=taus)
        if not sol.success:
            raise RuntimeError(f"the ODE solver failed: {sol.message}")
        for k in range(1, len(taus)):
            x_next = ab[i + k][0] * torch.from_numpy(sol.y[:, k]).to(device=device, dtype=dtype).reshape(shape)
            x = report(i + k - 1, x, x_next)
        i = last_noisy
    if i < len(ts) - 1:  # the data end: x = x̂₀
        x0 = denoiser(x, ts[i])
        x = _report(callback, i, ts[i], ts[i + 1], x, x0, x0)
    return x
