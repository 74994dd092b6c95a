"""Fixed-step ODE solvers for dx/dt = u(x, t) in the path's own time (Euler, midpoint, RK4).

Flow matching samples by integrating the velocity field (:mod:`.velocity`) from t_max (noise) to
t_clean (data) along a descending grid t_0 > t_1 > … > t_N, with steps h = t_{i+1} − t_i < 0:

    Euler     x' = x + h k₁                                        1 call per step
    midpoint  x' = x + h k₂,  k₂ = u(x + h/2 k₁, t + h/2)          2 calls
    RK4       x' = x + h/6 (k₁ + 2k₂ + 2k₃ + k₄)                   4 calls (classic Runge–Kutta)
              k₂ = u(x + h/2 k₁, t + h/2), k₃ = u(x + h/2 k₂, t + h/2), k₄ = u(x + h k₃, t + h)

with k₁ = u(x, t). Their global errors shrink as h¹, h², h⁴ (tests measure the orders against the
closed-form flow of Gaussian data). A stage at the data end (σ = 0) costs no call, so RK4 over N
steps that end at the data makes 4N − 1 calls, midpoint 2N, Euler N.

On rectified flow's straight path (α = 1 − t, σ = t) the Euler step is *exactly* DDIM's step,
x' = α' x̂₀ + σ' ε̂ (expand x + h (ε̂ − x̂₀)); on a curved path such as the VP path the two differ.
torchdiffeq's ``"rk4"`` is Kutta's 3/8 rule, another fourth-order method; genlab's is the classic one.

The signature is every genlab sampler's (:mod:`genlab.diffusion.samplers`): ``denoiser`` gives x̂₀
and the process, ``callback(StepInfo)`` sees each step (x̂₀ at the step's start) and may replace the
state, ``generator`` is accepted and unused (these solvers are deterministic).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.samplers import Generator, StepInfo, _check_grid, _report
from genlab.errors import ConfigError
from genlab.diffusion.velocity import velocity, velocity_and_x0

__all__ = ["METHODS", "flow_euler_sample", "flow_midpoint_sample", "flow_rk4_sample", "flow_step"]

METHODS = ("euler", "midpoint", "rk4")


def flow_step(denoiser, x: torch.Tensor, t: float, t_next: float, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ``method`` from t to t_next: (x at t_next, x̂₀ at t)."""
    h = t_next - t
    k1, x0 = velocity_and_x0(denoiser, x, t)
    if method == "euler":
        return x + h * k1, x0
    k2 = velocity(denoiser, x + 0.5 * h * k1, t + 0.5 * h)
    if method == "midpoint":
        return x + h * k2, x0
    if method != "rk4":
        raise ConfigError(f"unknown ODE method {method!r}; choose one of {', '.join(METHODS)}")
    k3 = velocity(denoiser, x + 0.5 * h * k2, t + 0.5 * h)
    k4 = velocity(denoiser, x + h * k3, t_next)
    return x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4), x0


def _solve(denoiser, x, grid, method, callback, progress):
    ts = [float(t) for t in _check_grid(grid, denoiser.process)]
    for i in tqdm(range(len(ts) - 1), desc=f"flow {method}", disable=not progress):
        x_next, x0 = flow_step(denoiser, x, ts[i], ts[i + 1], method)
        x = _report(callback, i, ts[i], ts[i + 1], x, x_next, x0)
    return x


@torch.no_grad()
def flow_euler_sample(denoiser, x: torch.Tensor, grid, *, generator: Generator = None,
                      callback: Callable[[StepInfo], torch.Tensor | None] | None = None, progress: bool = False) -> torch.Tensor:  # fmt: skip
    """Euler's method on dx/dt = u(x, t) along ``grid`` (module docstring); the state at grid[-1]."""
    return _solve(denoiser, x, grid, "euler", callback, progress)


@torch.no_grad()
def flow_midpoint_sample(denoiser, x: torch.Tensor, grid, *, generator: Generator = None,
                         callback: Callable[[StepInfo], torch.Tensor | None] | None = None, progress: bool = False) -> torch.Tensor:  # fmt: skip
    """The explicit midpoint method (second order) on dx/dt = u(x, t) along ``grid``."""
    return _solve(denoiser, x, grid, "midpoint", callback, progress)


@torch.no_grad()
def flow_rk4_sample(denoiser, x: torch.Tensor, grid, *, generator: Generator = None,
                    callback: Callable[[StepInfo], torch.Tensor | None] | None = None, progress: bool = False) -> torch.Tensor:  # fmt: skip
    """Classic fourth-order Runge–Kutta on dx/dt = u(x, t) along ``grid``."""
    return _solve(denoiser, x, grid, "rk4", callback, progress)
