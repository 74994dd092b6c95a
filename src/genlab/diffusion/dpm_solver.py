"""DPM-Solver++(2M): a second-order multistep solver of the PF-ODE in log-SNR time (Lu et al. 2022b).

With λ = log(α/σ) (half the log-SNR) as the time and the denoiser x̂₀ as what is integrated, the
probability-flow ODE has the exact solution (Lu et al. 2022b, eq. 9), from t to s (λ_s > λ_t):

    x_s = (σ_s/σ_t) x_t + σ_s ∫_{λ_t}^{λ_s} e^λ x̂₀(λ) dλ

The linear part is solved exactly; only x̂₀ is approximated. Holding it constant over the step
gives the first-order step (= DDIM)

    x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) x̂₀,     h = λ_s − λ_t

and the multistep "2M" variant (Algorithm 2) replaces x̂₀ by a linear extrapolation through the
previous step's x̂₀, at no extra denoiser call:

    D = (1 + 1/(2r)) x̂₀(t) − 1/(2r) x̂₀(t_prev),     r = h_prev / h

==========  ===================================================  ============
symbol      meaning                                              name
==========  ===================================================  ============
λ_t         log(α_t/σ_t) (−∞ at α = 0, +∞ at the data)            lam
h           λ_s − λ_t, the step in λ                              h
r           h_prev / h, the ratio of successive steps            r
D           the extrapolated x̂₀ of the second-order step          d
==========  ===================================================  ============

The first step is first order (no history), and so is the last step to the data (σ_s = 0, h = ∞:
x_s = x̂₀), as in diffusers' ``DPMSolverMultistepScheduler`` (``algorithm_type="dpmsolver++"``,
``solver_order=2``, ``final_sigmas_type="zero"``). A step from α = 0 (zero terminal SNR) has
h = ∞ too; the step after it is then first order. One denoiser call per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.samplers import Generator, StepInfo, _alpha_sigma, _check_grid, _report

__all__ = ["dpmpp_2m_sample", "log_snr_half"]


def log_snr_half(alpha: float, sigma: float) -> float:
    """λ = log(α/σ): −∞ where α = 0, +∞ where σ = 0."""
    if alpha == 0:
        return -math.inf
    if sigma == 0:
        return math.inf
    return math.log(alpha) - math.log(sigma)


@torch.no_grad()
def dpmpp_2m_sample(
    denoiser, x: torch.Tensor, grid, *, generator: Generator = None,
    callback: Callable[[StepInfo], torch.Tensor | None] | None = None, progress: bool = False,
) -> torch.Tensor:
    """DPM-Solver++(2M) along ``grid`` (Lu et al. 2022b, Algorithm 2); deterministic.

    ``generator`` is accepted for a common sampler signature and not used. Returns the state at grid[-1].
    """
    ts = _check_grid(grid, denoiser.process)
    ab = _alpha_sigma(denoiser.process, ts)
    lam = [log_snr_half(a, s) for a, s in ab]
    x0_prev, h_prev = None, math.inf
    for i in tqdm(range(len(ts) - 1), desc="DPM-Solver++(2M)", disable=not progress):
        (alpha, sigma), (alpha_s, sigma_s) = ab[i], ab[i + 1]
        h = lam[i + 1] - lam[i]
        x0 = denoiser(x, ts[i])
        d = x0
        if x0_prev is not None and math.isfinite(h) and math.isfinite(h_prev):
            half_over_r = 0.5 * h / h_prev  # 1 / (2r)
            d = (1 + half_over_r) * x0 - half_over_r * x0_prev
        x_next = (sigma_s / sigma) * x - alpha_s * math.expm1(-h) * d
        x = _report(callback, i, ts[i], ts[i + 1], x, x_next, x0)
        x0_prev, h_prev = x0, h
    return x
