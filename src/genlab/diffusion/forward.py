"""The forward (noising) process q and its Bayes posterior.

Index convention of :mod:`genlab.diffusion.schedules`: t = 0..T-1, ᾱ_t = prod_{s<=t} (1 - β_s).
One forward step with β_t turns x_{t-1} into x_t, and "x_{-1}" is the clean data x_0.

    q(x_t | x_{t-1})      = N( √(1-β_t) x_{t-1},  β_t I )                     q_step
    q(x_t | x_0)          = N( √ᾱ_t x_0,  (1-ᾱ_t) I )                        q_sample
    q(x_{t-1} | x_t, x_0) = N( μ̃_t(x_t, x_0),  β̃_t I )                      q_posterior

(Ho et al. 2020, eqs. 2, 4, 6, 7.) ``t`` is an int or an int64 tensor of shape (B,), one
timestep per batch element. Noise is passed in, or drawn on ``generator``'s device (the CPU by
default) and then moved to the data's device, so results do not depend on the hardware.
"""

from __future__ import annotations

import torch

from genlab.diffusion.schedules import NoiseSchedule, extract

__all__ = ["q_posterior", "q_sample", "q_step"]


def _noise_like(x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    if noise is not None:
        return noise
    gen_device = generator.device if generator is not None else "cpu"
    return torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)


def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor | int,
    schedule: NoiseSchedule,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Jump straight to step t: x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, ε ~ N(0, I).

    x0: (B, ...) clean data; t: int or int64 (B,); noise: ε with x0's shape (drawn with
    ``generator`` when None). Returns x_t with x0's shape and dtype.
    """
    eps = _noise_like(x0, noise, generator)
    return extract(schedule.sqrt_alphas_cumprod, t, x0) * x0 + extract(
        schedule.sqrt_one_minus_alphas_cumprod, t, x0
    ) * eps


def q_step(
    x_prev: torch.Tensor,
    t: torch.Tensor | int,
    schedule: NoiseSchedule,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One forward step: x_t = √(1-β_t) x_{t-1} + √β_t ε, ε ~ N(0, I).

    Applying ``q_step`` for s = 0, 1, …, t to x_0 gives a sample with the law of
    ``q_sample(x0, t)`` (the closed form is the product of the Gaussian steps).
    """
    eps = _noise_like(x_prev, noise, generator)
    return extract(schedule.alphas.sqrt(), t, x_prev) * x_prev + extract(schedule.betas.sqrt(), t, x_prev) * eps


def q_posterior(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int, schedule: NoiseSchedule
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6–7).

        μ̃_t = β_t √ᾱ_{t-1} / (1-ᾱ_t) · x_0  +  √α_t (1-ᾱ_{t-1}) / (1-ᾱ_t) · x_t
        β̃_t = β_t (1-ᾱ_{t-1}) / (1-ᾱ_t)

    At t = 0 (ᾱ_{-1} = 1) the posterior is the point x_0: mean x_0, variance 0; the returned
    log-variance there is log β̃_1 so that it stays finite. Returns ``(mean, variance,
    log_variance)``: mean has x_t's shape, the other two broadcast against it.
    """
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    variance = extract(schedule.posterior_variance, t, x_t)
    log_variance = extract(schedule.posterior_log_variance_clipped, t, x_t)
    return mean, variance, log_variance
