"""The forward (noising) process q and its Bayes posterior.

For any process (:mod:`.process`), x_t = α(t) x₀ + σ(t) ε: :func:`q_sample`. For a discrete
schedule (index convention of :mod:`.schedules`: t = 0..T-1, ᾱ_t = prod_{s<=t} (1 - β_s), and
"x_{-1}" is the clean data x₀) also

    q(x_t | x_{t-1})      = N( √(1-β_t) x_{t-1},  β_t I )                     q_step
    q(x_t | x_0)          = N( √ᾱ_t x_0,  (1-ᾱ_t) I )                        q_sample
    q(x_{t-1} | x_t, x_0) = N( μ̃_t(x_t, x_0),  β̃_t I )                      q_posterior

(Ho et al. 2020, eqs. 2, 4, 6, 7.) ``t`` is a number or a tensor of shape (B,), one time per
batch element. Noise is passed in, or drawn on ``generator``'s device (the CPU by default) and
then moved to the data's device, so results do not depend on the hardware.
"""

from __future__ import annotations

import torch

from genlab.diffusion.noise import randn_like
from genlab.diffusion.process import Process, posterior_coefficients
from genlab.diffusion.schedules import NoiseSchedule, extract

__all__ = ["q_posterior", "q_sample", "q_step"]


def _coef(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """float64 coefficients of t's shape → x's dtype/device, shaped to broadcast over x's sample dims."""
    values = values.to(device=x.device, dtype=x.dtype)
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim)) if values.ndim else values


def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor | float,
    process: Process,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Jump straight to time t: x_t = α(t) x_0 + σ(t) ε, ε ~ N(0, I) (VP: √ᾱ_t x_0 + √(1-ᾱ_t) ε).

    x0: (B, ...) clean data; t: a number or (B,); noise: ε with x0's shape (drawn with
    ``generator`` when None). Returns x_t with x0's shape and dtype.
    """
    eps = randn_like(x0, generator) if noise is None else noise
    a, s = process.alpha_sigma(t)
    return _coef(a, x0) * x0 + _coef(s, x0) * eps


def q_step(
    x_prev: torch.Tensor,
    t: torch.Tensor | int,
    schedule: NoiseSchedule,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One forward step of a discrete schedule: x_t = √(1-β_t) x_{t-1} + √β_t ε, ε ~ N(0, I).

    Applying ``q_step`` for s = 0, 1, …, t to x_0 gives a sample with the law of
    ``q_sample(x0, t)`` (the closed form is the product of the Gaussian steps).
    """
    eps = randn_like(x_prev, generator) if noise is None else noise
    return extract(schedule.alphas.sqrt(), t, x_prev) * x_prev + extract(schedule.betas.sqrt(), t, x_prev) * eps


def q_posterior(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int, schedule: NoiseSchedule
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6–7).

        μ̃_t = β_t √ᾱ_{t-1} / (1-ᾱ_t) · x_0  +  √α_t (1-ᾱ_{t-1}) / (1-ᾱ_t) · x_t
        β̃_t = β_t (1-ᾱ_{t-1}) / (1-ᾱ_t)

    computed by :func:`~genlab.diffusion.process.posterior_coefficients` (the one posterior of the
    library). At t = 0 (ᾱ_{-1} = 1) the posterior is the point x_0: mean x_0, variance 0; the
    returned log-variance there is log β̃_1 so that it stays finite. Returns ``(mean, variance,
    log_variance)``: mean has x_t's shape, the other two broadcast against it.
    """
    t = torch.as_tensor(t)
    a_t, s_t = schedule.alpha_sigma(t)
    a_s, s_s = schedule.alpha_sigma(t - 1)
    c_x0, c_xt, var = posterior_coefficients(a_t, s_t, a_s, s_s)
    mean = _coef(c_x0, x_t) * x0 + _coef(c_xt, x_t) * x_t
    log_variance = extract(schedule.posterior_log_variance_clipped, t if t.ndim else int(t), x_t)
    return mean, _coef(var, x_t), log_variance
