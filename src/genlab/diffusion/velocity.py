"""The velocity of a probability path, from any denoiser (Lipman et al. 2022; Liu et al. 2022).

A path x_t = α(t) x₀ + σ(t) ε moves each pair (x₀, ε) with the *conditional velocity*
dx_t/dt = α̇ x₀ + σ̇ ε. Averaging it over the pairs that pass through x gives the *marginal
velocity*, the field whose ODE dx/dt = u(x, t) carries the noise distribution to the data:

    u(x, t) = E[α̇ x₀ + σ̇ ε | x_t = x] = α̇ x̂₀ + σ̇ ε̂,    ε̂ = (x − α x̂₀) / σ

so a denoiser's x̂₀ = E[x₀ | x_t = x] is all it takes (flow matching learns u directly; its
regression target is the conditional velocity, whose conditional mean is u). On the optimal-
transport path of rectified flow (α = 1 − t, σ = t) this is u = ε̂ − x̂₀.

At the data end (σ = 0) x_t = x₀ carries no information about ε, so E[ε | x_t = x] = E[ε] = 0
and u(x, t_clean) = α̇ x exactly: no network call is needed there (the last stage of an RK4 step
that ends at the data costs nothing).

Guidance carries over: classifier-free guidance on x̂₀ (:class:`~genlab.diffusion.guidance.ClassifierFreeGuidance`)
is the same guidance on u, because u is affine in x̂₀ with an x-term that does not depend on it.

======  =================================  ===========
symbol  meaning                            name
======  =================================  ===========
u       marginal velocity dx/dt            velocity
α̇, σ̇    dα/dt, dσ/dt                       d_alpha, d_sigma
x̂₀, ε̂   the denoiser's estimates           x0, eps
======  =================================  ===========
"""

from __future__ import annotations

import torch

from genlab.diffusion.denoisers import batch_times
from genlab.errors import ConfigError

__all__ = ["velocity", "velocity_and_x0"]


def _column(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))


def velocity_and_x0(denoiser, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    """(u(x, t), x̂₀): the velocity and the denoiser's estimate it came from (x̂₀ = x at σ = 0)."""
    process = denoiser.process
    if getattr(process, "discrete", False):
        raise ConfigError("the velocity dx/dt needs a continuous path (rectified flow or continuous VP); "
                          "a discrete schedule is sampled with ddim, euler, heun, dpmpp-2m or unipc")  # fmt: skip
    tb = batch_times(t, x)
    a, s = process.alpha_sigma(tb)
    da, ds = process.d_alpha_sigma(tb)
    if bool((s == 0).all()):  # the data end: E[ε | x₀] = 0
        return _column(da, x) * x, x
    if bool((s == 0).any()):
        raise ConfigError("velocity(): evaluate the data end (σ = 0) separately from noisy times")
    x0 = denoiser(x, t)
    eps = (x - _column(a, x) * x0) / _column(s, x)
    return _column(da, x) * x0 + _column(ds, x) * eps, x0


def velocity(denoiser, x: torch.Tensor, t) -> torch.Tensor:
    """u(x, t) = α̇ x̂₀ + σ̇ ε̂ for ``denoiser``'s process (one denoiser call where σ(t) > 0, none at σ = 0).

    ``t``: one time or one per sample. The process must be continuous (it needs dα/dt, dσ/dt).
    """
    return velocity_and_x0(denoiser, x, t)[0]
