"""Score-based models: the score ∇ₓ log p, score matching, annealed Langevin and the reverse-time SDE.

For x_t = α x₀ + σ ε (any :class:`~genlab.diffusion.process.Process`), Tweedie's formula ties the
score of the noised density to the denoiser and to the noise prediction (Vincent 2011; Song et al. 2021):

    ∇ log p_t(x_t) = (α x̂₀ − x_t) / σ²  = −ε̂ / σ          x̂₀ = E[x₀|x_t],  ε̂ = E[ε|x_t]

so a DDPM's ε-network is a score network scaled by −σ. In EDM's coordinates y = x/α, σ̂ = σ/α the
same reads ∇_y log p(y; σ̂) = (x̂₀ − y)/σ̂²: the score NCSN's annealed Langevin needs (:func:`noise_level_score`).

The SDE view (Song et al. 2021, "Score-Based Generative Modeling through SDEs"): every process is
the marginal of dx = f(t) x dt + g(t) dw with (:func:`sde_coefficients`)

    f = (dα/dt)/α,    g² = dσ²/dt − 2 f σ²        VP: f = −½β(t), g² = β(t);   VE: f = 0, g² = dσ²/dt

and runs backwards by Anderson's (1982) reverse-time SDE dx = [f x − g² ∇ log p_t(x)] dt + g dw̄.

==========  ===================================  ==================
symbol      meaning                              name
==========  ===================================  ==================
s_θ(x, σ)   score network at noise level σ       score_net, score
σ_i         NCSN's noise levels, σ_1 > … > σ_L   sigmas
λ(σ)        DSM weighting, σ² (NCSN)             weighting
ε           Langevin step scale (α_i = ε σ_i²/σ_L²)  step_scale
v           projection of sliced SM              v (projections)
==========  ===================================  ==================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from genlab.diffusion.denoisers import batch_times
from genlab.errors import ConfigError

__all__ = [
    "annealed_langevin_sample", "denoiser_score", "denoising_score_matching_loss", "eps_from_score",
    "ncsn_sigmas", "noise_level_score", "reverse_sde_sample", "score_from_eps", "score_from_x0",
    "sde_coefficients", "sliced_score_matching_loss", "x0_from_score",
]  # fmt: skip


def score_from_x0(x_t, x0_hat, alpha, sigma):
    """Tweedie: ∇ log p_t(x_t) = (α x̂₀ − x_t)/σ²."""
    return (alpha * x0_hat - x_t) / sigma**2


def x0_from_score(score, x_t, alpha, sigma):
    """Tweedie inverted: x̂₀ = (x_t + σ² ∇ log p_t(x_t))/α."""
    return (x_t + sigma**2 * score) / alpha


def score_from_eps(eps_hat, sigma):
    """DDPM's ε as a scaled score: ∇ log p_t(x_t) = −ε̂/σ."""
    return -eps_hat / sigma


def eps_from_score(score, sigma):
    """ε̂ = −σ ∇ log p_t(x_t)."""
    return -sigma * score


def _coef(v: torch.Tensor, x: torch.Tensor):
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, …)


def denoiser_score(denoiser) -> Callable:
    """``score(x, t)`` = (α x̂₀ − x)/σ² from a genlab denoiser (x̂₀ = denoiser(x, t)), in its process's coordinates."""

    def score(x, t):
        a, s = denoiser.process.alpha_sigma(batch_times(t, x))
        return score_from_x0(x, denoiser(x, t), _coef(a, x), _coef(s, x))

    return score


def noise_level_score(denoiser) -> Callable:
    """``score(y, σ̂)`` = ∇_y log p(y; σ̂) = (x̂₀ − y)/σ̂² for y = x₀ + σ̂ ε, from any genlab denoiser.

    The denoiser is called at x = α y and the time t with σ/α = σ̂ (``process.time_of``).
    """
    process = denoiser.process

    def score(y, sigma_hat: float):
        t = process.time_of(torch.tensor([float(sigma_hat)], dtype=torch.float64))
        alpha = process.alpha_sigma(t)[0].item()
        return (denoiser(alpha * y, t.item()) - y) / float(sigma_hat) ** 2

    return score


def denoising_score_matching_loss(score_net, x0, sigmas, *, weighting: str | None = None, generator=None):
    """Denoising score matching (Vincent 2011), one σ or NCSN's set (Song & Ermon 2019, eq. 5–6).

        ℓ(θ; σ) = ½ E ‖s_θ(x₀ + σz, σ) + z/σ‖²    (the target ∇ log N(x̃; x₀, σ²I) = −z/σ)
        L(θ)    = E_σ λ(σ) ℓ(θ; σ),  σ uniform on ``sigmas``,  λ(σ) = σ² ("sigma2") or 1 ("none")

    ``sigmas`` a number: ``score_net(x̃)``, weighting "none" by default; a sequence: ``score_net(x̃, σ)``
    with σ (B,), weighting "sigma2" by default. The squared norm is summed over a sample's dimensions
    and averaged over the batch.
    """
    conditional = not isinstance(sigmas, (int, float))
    weighting = weighting or ("sigma2" if conditional else "none")
    if weighting not in ("sigma2", "none"):
        raise ConfigError(f"unknown DSM weighting {weighting!r}; choose 'sigma2' or 'none'")
    levels = torch.as_tensor(sigmas if conditional else [sigmas], dtype=x0.dtype, device=x0.device).reshape(-1)
    idx = torch.randint(len(levels), (x0.shape[0],), generator=generator, device=levels.device)
    sigma = levels[idx]  # (B,)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    sb = _coef(sigma, x0)
    x_noisy = x0 + sb * z
    s = score_net(x_noisy, sigma) if conditional else score_net(x_noisy)
    per = 0.5 * (s + z / sb).pow(2).flatten(1).sum(1)  # (B,)
    return (per * sigma**2 if weighting == "sigma2" else per).mean()


def sliced_score_matching_loss(score_net, x, *, n_projections: int = 1, projection: str = "rademacher",
                               v: torch.Tensor | None = None, generator=None):  # fmt: skip
    """Sliced score matching with variance reduction (Song et al. 2019, "SSM-VR"):

        J(θ) = E_x E_v [ vᵀ ∇ₓs_θ(x) v + ½ ‖s_θ(x)‖² ],   E[v vᵀ] = I

    an unbiased estimate of Hyvärinen's tr(∇ₓs_θ) + ½‖s_θ‖². vᵀ(∇ₓs)v = ∇ₓ(vᵀs)·v costs one
    backward pass per projection (a vector–Jacobian product, kept in the graph for training).
    ``v`` (M, B, …) fixes the projections; otherwise M = ``n_projections`` are drawn (Rademacher
    ±1 or Gaussian). ``score_net(x)`` → same shape as x.
    """
    if projection not in ("rademacher", "gaussian"):
        raise ConfigError(f"unknown projection {projection!r}; choose 'rademacher' or 'gaussian'")
    x = x.detach().requires_grad_(True)
    s = score_net(x)
    if v is None:
        v = torch.randn((n_projections, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
        v = v.sign() if projection == "rademacher" else v
    terms = []
    for vm in v:  # vm: (B, …)
        (grad_vs,) = torch.autograd.grad((vm * s).sum(), x, create_graph=True)  # ∇ₓ(vᵀs) = (∇ₓs)ᵀ v
        terms.append((grad_vs * vm).flatten(1).sum(1))  # vᵀ (∇ₓs) v, (B,)
    return (torch.stack(terms).mean(0) + 0.5 * s.pow(2).flatten(1).sum(1)).mean()


def ncsn_sigmas(sigma_max: float, sigma_min: float, n: int) -> torch.Tensor:
    """NCSN's levels: a geometric sequence σ_1 = sigma_max > … > σ_L = sigma_min (float64, (n,))."""
    if not (sigma_max > sigma_min > 0) or n < 2:
        raise ConfigError(f"NCSN levels need sigma_max > sigma_min > 0 and n >= 2, got {sigma_max}, {sigma_min}, {n}")
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64))


@torch.no_grad()
def annealed_langevin_sample(score, x, sigmas: Sequence[float], *, step_scale: float = 2e-5, steps_per_level: int = 100,
                             denoise_last: bool = False, generator=None):  # fmt: skip
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) from x, over decreasing ``sigmas``.

    For each σ_i, with α_i = ε σ_i²/σ_L² (ε = ``step_scale``), T = ``steps_per_level`` times:
    x ← x + (α_i/2) s(x, σ_i) + √α_i z, z ~ N(0, I) drawn from ``generator``.
    ``denoise_last`` adds Tweedie's step x ← x + σ_L² s(x, σ_L) (Jolicoeur-Martineau et al. 2021).
    """
    sigmas = [float(s) for s in sigmas]
    for sigma in sigmas:
        alpha = step_scale * sigma**2 / sigmas[-1] ** 2
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + 0.5 * alpha * score(x, sigma) + math.sqrt(alpha) * z
    if denoise_last:
        x = x + sigmas[-1] ** 2 * score(x, sigmas[-1])
    return x


def sde_coefficients(process, t) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(t), g(t)²) of the forward SDE dx = f x dt + g dw whose marginals are ``process``'s (module docstring).

    f = α'/α, g² = 2σσ' − 2 f σ² (float64); needs a continuous process (``d_alpha_sigma``). Where a VP
    process starts (σ = 0, σ' = ∞, σ = √(1 − α²)) the product σσ' is taken as its limit −αα'.
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    (a, s), (da, ds) = process.alpha_sigma(t), process.d_alpha_sigma(t)
    f = da / a
    s_ds = torch.where((s == 0) & ~torch.isfinite(ds), -a * da, s * ds)  # σσ' (0·∞ at the data end of VP)
    return f, 2 * s_ds - 2 * f * s**2


@torch.no_grad()
def reverse_sde_sample(score, x, process, grid, *, noise_last: bool = False, generator=None):
    """Euler–Maruyama on the reverse-time SDE dx = [f x − g² s(x, t)] dt + g dw̄ (Anderson 1982; Song et al. 2021).

    ``grid``: decreasing times t_0 > … > t_N of ``process``; each step, h = t_i − t_{i+1} > 0:
    x ← x − h (f x − g² s(x, t_i)) + g √h z. The last step adds no noise unless ``noise_last``
    (its mean is the sample, as in Song et al.'s code). ``score(x, t)`` takes a float t.
    """
    ts = [float(t) for t in grid]
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ConfigError("the reverse SDE's grid must decrease (from noise to data)")
    for i, (t, t_next) in enumerate(zip(ts, ts[1:])):
        f, g2 = (v.item() for v in sde_coefficients(process, t))
        h = t - t_next
        x = x - h * (f * x - g2 * score(x, t))
        if noise_last or i < len(ts) - 2:
            x = x + math.sqrt(g2 * h) * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x
