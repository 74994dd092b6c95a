"""UniPC: a unified predictor–corrector for the PF-ODE (Zhao et al. 2023), data-prediction form.

Like DPM-Solver++ (:mod:`.dpm_solver`), UniPC integrates the exact solution in λ = log(α/σ),

    x_s = (σ_s/σ_t) x_t + σ_s ∫_{λ_t}^{λ_s} e^λ x̂₀(λ) dλ,     h = λ_s − λ_t,

but approximates x̂₀ through the differences D_m = (x̂₀(t_m) − x̂₀(t)) / r_m to earlier points t_m
(r_m = (λ_{t_m} − λ_t)/h < 0), with weights a that solve one small linear system R a = b
(Zhao et al. 2023, Algorithm 2, "UniP-p" and "UniC-p"):

    R_{k,m} = r_m^{k−1},    b_k = k! ψ_{k+1}(h) / B(h),    k = 1..p
    ψ_1 = e^{−h} − 1,   ψ_{k+1} = ψ_k / (−h) − 1/k!         (the φ-functions of exponential integrators)
    x_s = (σ_s/σ_t) x_t − α_s ψ_1 x̂₀(t) − α_s B(h) Σ_m a_m D_m

- **UniP-p** (predictor): the p − 1 earlier points give order p (p = 2 uses a = ½).
- **UniC-p** (corrector): once x̂₀ at the new point s is known — the next step evaluates it
  anyway — the same formula with that point added (r = 1) recomputes x_s one order higher, at no
  extra denoiser call. The corrected x_s is what the next step starts from; x̂₀(s) is not
  re-evaluated (the paper's trick: the corrector is free).
- **B(h)**: ``variant="bh2"`` uses B(h) = e^{−h} − 1, ``"bh1"`` uses B(h) = −h; bh2 is the
  paper's recommendation for few steps and guided sampling.

==============  ================================================  ==========
symbol          meaning                                           name
==============  ================================================  ==========
p               the order of this step's predictor                order
r_m             (λ_{t_m} − λ_t)/h, earlier points in step units   rks
D_m             (x̂₀(t_m) − x̂₀(t)) / r_m                           d1s
a (ρ)           the weights solving R a = b                        rhos
==============  ================================================  ==========

Orders follow diffusers' ``UniPCMultistepScheduler`` (``predict_x0=True``, ``lower_order_final``):
step i uses p = min(order, i + 1, N − i), the corrector has the previous predictor's order, and
the last step (to the data, h = ∞) is first order with no corrector after it. Points at α = 0
(λ = −∞) are too far back to use and lower the order. One denoiser call per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.dpm_solver import log_snr_half
from genlab.diffusion.samplers import Generator, StepInfo, _alpha_sigma, _check_grid, _report
from genlab.errors import ConfigError

__all__ = ["VARIANTS", "unipc_sample", "unipc_weights"]

VARIANTS = ("bh1", "bh2")


def unipc_weights(h: float, rks: list[float], variant: str = "bh2", predictor: bool = True) -> tuple[list[float], float, float]:
    """(a, e^{−h} − 1, B(h)) for a step of size h with earlier points ``rks`` (the last entry is 1).

    ``rks`` holds r_1..r_{p−1} followed by 1.0 (the new point, used by the corrector only). The
    predictor solves the (p−1)×(p−1) system without that point (a = [½] for p = 2); the corrector
    the full p×p system (a = [½] for p = 1).
    """
    hh = -h  # the data-prediction form integrates in −λ
    h_phi_1 = math.expm1(hh)  # ψ_1 = e^{−h} − 1
    b_h = hh if variant == "bh1" else h_phi_1
    p = len(rks)
    h_phi_k, factorial = h_phi_1 / hh - 1, 1  # ψ_2 (and k! as k grows)
    rows, b = [], []
    for k in range(1, p + 1):
        rows.append([r ** (k - 1) for r in rks])
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    if predictor:
        if p == 1:
            return [], h_phi_1, b_h
        if p == 2:
            return [0.5], h_phi_1, b_h
        return np.linalg.solve(np.array(rows)[:-1, :-1], np.array(b)[:-1]).tolist(), h_phi_1, b_h
    if p == 1:
        return [0.5], h_phi_1, b_h
    return np.linalg.solve(np.array(rows), np.array(b)).tolist(), h_phi_1, b_h


def _update(x, x0, history, lam_t, lam_s, alpha_s, sigma_t, sigma_s, order, variant, x0_new=None):
    """One UniP (x0_new None) or UniC step from t to s of the given order; history = [(λ_m, x̂₀_m), …] newest first."""
    h = lam_s - lam_t
    earlier = [(lm, xm) for lm, xm in history[: order - 1] if math.isfinite(lm)]
    rks = [(lm - lam_t) / h for lm, _ in earlier] + [1.0]
    rhos, h_phi_1, b_h = unipc_weights(h, rks, variant, predictor=x0_new is None)
    out = (sigma_s / sigma_t) * x - alpha_s * h_phi_1 * x0
    diffs = [(xm - x0) / r for (_, xm), r in zip(earlier, rks)]
    if x0_new is not None:
        diffs.append(x0_new - x0)
    if rhos and diffs:
        res = sum(a * d for a, d in zip(rhos, diffs))
        out = out - alpha_s * b_h * res
    return out


@torch.no_grad()
def unipc_sample(
    denoiser, x: torch.Tensor, grid, *, order: int = 2, variant: str = "bh2", corrector: bool = True,
    generator: Generator = None, callback: Callable[[StepInfo], torch.Tensor | None] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """UniPC along ``grid`` (Zhao et al. 2023): UniP-``order`` predictor + UniC corrector; deterministic.

    ``corrector=False`` is the predictor alone (UniP). ``generator`` is accepted for a common
    sampler signature and not used. A ``callback`` that replaces the state replaces the
    predictor's output, which the next step's corrector then revises. Returns the state at grid[-1].
    """
    if isinstance(order, bool) or order not in (1, 2, 3):
        raise ConfigError(f"UniPC order must be 1, 2 or 3, got {order!r}")
    if variant not in VARIANTS:
        raise ConfigError(f"unknown UniPC variant {variant!r}; choose one of {VARIANTS}")
    ts = _check_grid(grid, denoiser.process)
    ab = _alpha_sigma(denoiser.process, ts)
    lam = [log_snr_half(a, s) for a, s in ab]
    n = len(ts) - 1
    history: list[tuple[float, torch.Tensor]] = []  # (λ, x̂₀) at earlier grid points, newest first
    last = None  # (x at the previous point, the order its predictor used)
    for i in tqdm(range(n), desc="UniPC", disable=not progress):
        x0 = denoiser(x, ts[i])
        if corrector and last is not None:  # UniC: redo the previous step with x̂₀ at its end point
            x_prev, p_prev = last
            lam_prev, x0_prev = history[0]
            x = _update(x_prev, x0_prev, history[1:], lam_prev, lam[i], ab[i][0], ab[i - 1][1], ab[i][1], p_prev, variant, x0_new=x0)
        p = min(order, i + 1, n - i)
        x_next = _update(x, x0, history, lam[i], lam[i + 1], ab[i + 1][0], ab[i][1], ab[i + 1][1], p, variant)
        history.insert(0, (lam[i], x0))
        last = (x, p)
        x = _report(callback, i, ts[i], ts[i + 1], x, x_next, x0)
    return x
