"""The variational bound of a discrete diffusion model, in bits per dimension.

Index convention of :mod:`.schedules`: the data is x (genlab's "x_{−1}"), the latents are
x_0, …, x_{T−1}. The negative ELBO (Ho et al. 2020, eq. 5; Sohl-Dickstein et al. 2015) splits into

    −log p_θ(x) ≤ L = L_prior + Σ_{t=1}^{T−1} L_t + L_dec                              (nats)

    L_prior = KL( q(x_{T−1} | x) ‖ N(0, I) )                   no parameters: ≈ 0 for a good schedule
    L_t     = E_q KL( q(x_{t−1} | x_t, x) ‖ p_θ(x_{t−1} | x_t) )   t = 1..T−1, x_t ~ q(x_t | x)
    L_dec   = E_q [ −log p_θ(x | x_0) ]                         the discretised decoder, x_0 ~ q(x_0 | x)

with p_θ(x_{t−1} | x_t) = N(μ_θ, Σ_θ), μ_θ = μ̃_t(x_t, x̂₀) the posterior mean at the model's x̂₀
(:func:`~genlab.diffusion.process.posterior_coefficients`; at t = 0 it is x̂₀ itself) and Σ_θ one of

    ==============  =========================================  ==========================
    variance        Σ_θ at step t                              name in Ho / Nichol–Dhariwal
    ==============  =========================================  ==========================
    "beta_tilde"    β̃_t  (β̃_0 = 0 clipped to β̃_1)             σ_t² = β̃_t, "fixed small"
    "beta"          β_t                                        σ_t² = β_t, "fixed large"
    "learned"       exp(v log β_t + (1 − v) log β̃_t), v ∈ [0,1]  Nichol & Dhariwal 2021, eq. 15
    ==============  =========================================  ==========================

The decoder (Ho et al. §3.3): data in [−1, 1] on 256 levels; each pixel's probability is the mass
of N(μ_θ, Σ_θ) on its bin [x − 1/255, x + 1/255], the outer bins reaching to ±∞ — so the bound is a
bound on the negative log-likelihood of the 8-bit image, and bits/dim = L / (D ln 2), D = C·H·W,
compares with the literature (a uniform model scores 8 bits/dim).

:func:`variational_bound` evaluates every term of every image (T network calls per batch), or an
unbiased stratified estimate of the sum over t from fewer times (``n_times``). :func:`vlb_term`
is the one per-time term, shared with the hybrid loss of :mod:`.learned_variance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.forward import q_sample
from genlab.diffusion.process import posterior_coefficients
from genlab.diffusion.schedules import NoiseSchedule
from genlab.errors import ConfigError

__all__ = [
    "VARIANCES",
    "VariationalBound",
    "discretized_gaussian_log_likelihood",
    "model_log_variance",
    "normal_kl",
    "prior_term",
    "quantize",
    "variational_bound",
    "vlb_term",
]

VARIANCES = ("beta_tilde", "beta", "learned")


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL( N(mean1, e^logvar1) ‖ N(mean2, e^logvar2) ) per element, in nats (broadcasting)."""
    mean1, logvar1, mean2, logvar2 = (torch.as_tensor(v) for v in (mean1, logvar1, mean2, logvar2))
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def quantize(x: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """x ∈ [−1, 1] rounded to the nearest of ``bins`` levels −1, −1 + 2/(bins−1), …, 1."""
    k = torch.round((x.clamp(-1, 1) + 1) * (bins - 1) / 2)
    return k * 2 / (bins - 1) - 1


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """log P(x) per element for N(mean, e^log_variance) discretised to ``bins`` levels on [−1, 1].

    x must lie on the levels (:func:`quantize`). P(x) = Φ(z⁺) − Φ(z⁻), z^± = (x ± 1/(bins−1) − mean)/σ,
    with Φ(z⁻) := 0 at x = −1 and Φ(z⁺) := 1 at x = 1; computed in logs (log Φ via ``log_ndtr``) so
    that tiny bin masses far in a tail stay finite. Over all levels the masses sum to 1.
    """
    half = 1.0 / (bins - 1)
    inv_std = torch.exp(-0.5 * log_variance)
    z_hi = (x + half - mean) * inv_std
    z_lo = (x - half - mean) * inv_std
    log_cdf_hi = torch.special.log_ndtr(z_hi)  # log Φ(z⁺)
    log_sf_lo = torch.special.log_ndtr(-z_lo)  # log (1 − Φ(z⁻))
    # log(Φ(z⁺) − Φ(z⁻)): on the side where both CDF values are near 1, use the survival functions
    mid_upper = z_lo > 0
    a = torch.where(mid_upper, log_sf_lo, log_cdf_hi)
    b = torch.where(mid_upper, torch.special.log_ndtr(-z_hi), torch.special.log_ndtr(z_lo))
    log_mid = a + _log1mexp(a - b)  # log(e^a − e^b), a ≥ b
    edge = 1.0 - 1e-3  # the outer levels (±1, up to rounding of quantised data)
    return torch.where(x < -edge, log_cdf_hi, torch.where(x > edge, log_sf_lo, log_mid))


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 − e^{−d}) for d ≥ 0, accurate at both ends (Mächler 2012); −∞ at d = 0."""
    d = d.clamp(min=0.0)
    return torch.where(d < math.log(2.0), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


def model_log_variance(schedule: NoiseSchedule, t: torch.Tensor, variance: str = "beta_tilde", fraction: torch.Tensor | None = None) -> torch.Tensor:
    """log Σ_θ at steps t (int64 (B,), 0..T−1) for ``variance`` ∈ VARIANCES (module table), float64.

    Fixed variances return shape (B,). "learned" needs ``fraction`` v ∈ [0, 1] of shape (B, …) (the
    network's per-element output) and returns v log β_t + (1 − v) log β̃_t of that shape.
    """
    if variance not in VARIANCES:
        raise ConfigError(f"unknown variance {variance!r}; choose one of {VARIANCES}")
    t = torch.as_tensor(t).long().cpu()
    log_beta = torch.log(schedule.betas)[t]
    log_beta_tilde = schedule.posterior_log_variance_clipped[t]
    if variance == "beta":
        return log_beta
    if variance == "beta_tilde":
        return log_beta_tilde
    if fraction is None:
        raise ConfigError("variance='learned' needs the network's variance fraction v (a model trained with a learned variance)")
    view = (-1,) + (1,) * (fraction.ndim - 1)
    lb, lbt = (v.to(device=fraction.device, dtype=fraction.dtype).view(view) for v in (log_beta, log_beta_tilde))
    return fraction * lb + (1 - fraction) * lbt


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(dim=1)


def vlb_term(schedule: NoiseSchedule, x: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, x0_pred: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """L_t of each sample in nats, summed over its dimensions: (B,).

    x: the (quantised) data (B, …); x_t: the latent at step t ~ q(x_t | x); t: int64 (B,) in 0..T−1;
    x0_pred: the model's x̂₀ at (x_t, t); log_variance: log Σ_θ (from :func:`model_log_variance`,
    (B,) or x's shape). t ≥ 1: KL(q(x_{t−1}|x_t, x) ‖ N(μ̃(x_t, x̂₀), Σ_θ)); t = 0: −log p_θ(x | x_0),
    the discretised decoder with mean x̂₀.
    """
    t = torch.as_tensor(t).long().cpu()
    view = (-1,) + (1,) * (x.ndim - 1)
    a_t, s_t = schedule.alpha_sigma(t)
    a_s, s_s = schedule.alpha_sigma(t - 1)
    c_x0, c_xt, var = posterior_coefficients(a_t, s_t, a_s, s_s)
    c_x0, c_xt = (c.to(device=x.device, dtype=x.dtype).view(view) for c in (c_x0, c_xt))
    log_var = log_variance.to(device=x.device, dtype=x.dtype)
    log_var = log_var.view(view) if log_var.ndim == 1 else log_var
    true_mean = c_x0 * x + c_xt * x_t
    model_mean = c_x0 * x0_pred + c_xt * x_t
    true_log_var = schedule.posterior_log_variance_clipped[t].to(device=x.device, dtype=x.dtype).view(view)
    at_data = t.to(x.device) == 0
    kl = _per_sample(normal_kl(true_mean, true_log_var, model_mean, log_var))
    if not bool(at_data.any()):
        return kl  # no decoder term in this batch: skip the discretised likelihood
    nll = -_per_sample(discretized_gaussian_log_likelihood(x, model_mean, log_var.expand_as(x)))
    return torch.where(at_data, nll, kl)


def prior_term(schedule: NoiseSchedule, x: torch.Tensor) -> torch.Tensor:
    """L_prior = KL(q(x_{T−1} | x) ‖ N(0, I)) of each sample in nats: (B,)."""
    a, s = (v.item() for v in schedule.alpha_sigma(schedule.t_max))
    return _per_sample(normal_kl(a * x, 2 * math.log(s) if s > 0 else -math.inf, torch.zeros_like(x), torch.zeros_like(x)))


@dataclass
class VariationalBound:
    """The bound of each image, in bits/dim, and the terms it is made of.

    ``bits_per_dim`` (B,): L / (D ln 2) of each image. ``times`` the steps evaluated — (K,) when every
    step is, (B, K) for a stratified estimate (each image draws its own) — and ``weights`` (K,) how
    many steps each column stands for (all 1 when every step is evaluated);
    ``terms`` (B, K) L_t of each image at those steps, in bits/dim (unweighted); ``prior`` (B,)
    L_prior in bits/dim. ``exact`` is False for a stratified estimate.
    """

    bits_per_dim: torch.Tensor
    terms: torch.Tensor
    times: torch.Tensor
    weights: torch.Tensor
    prior: torch.Tensor
    exact: bool

    @property
    def decoder(self) -> torch.Tensor:
        """L_dec of each image in bits/dim (the term at t = 0)."""
        return self.terms[:, 0]

    def mean(self) -> float:
        return self.bits_per_dim.mean().item()


def _times(T: int, n_times: int | None, generator, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(times, weights): all T steps with weight 1, or t = 0 and one uniform pick per stratum of 1..T−1,
    drawn independently for each of ``batch`` images ((batch, K) times), weighted by the stratum sizes."""
    if n_times is None or n_times >= T:
        return torch.arange(T), torch.ones(T, dtype=torch.float64)
    if isinstance(n_times, bool) or not isinstance(n_times, int) or n_times < 2:
        raise ConfigError(f"n_times must be an int >= 2 (t = 0 plus at least one stratum) or None for all T steps, got {n_times!r}")
    edges = torch.linspace(1, T, n_times).round().long()  # strata [edges[k], edges[k+1]) of 1..T−1
    lo, hi = edges[:-1], edges[1:]
    u = torch.rand(batch, len(lo), generator=generator, dtype=torch.float64)
    picks = lo + torch.minimum((u * (hi - lo)).long(), hi - lo - 1)
    times = torch.cat([torch.zeros(batch, 1, dtype=torch.long), picks], dim=1)
    return times, torch.cat([torch.ones(1, dtype=torch.float64), (hi - lo).double()])


@torch.no_grad()
def variational_bound(
    denoiser,
    x: torch.Tensor,
    *,
    variance: str = "beta_tilde",
    n_times: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> VariationalBound:
    """The bound −log p_θ(x) ≤ L of each image of ``x`` (B, …), quantised to 8 bits first.

    ``denoiser(x_t, t) -> x̂₀`` on a discrete schedule (its ``process``); for ``variance="learned"``
    it must also have ``x0_and_fraction(x_t, t)`` (:class:`~genlab.diffusion.learned_variance.
    LearnedVarianceDenoiser`). One x_t ~ q(x_t | x) per image and step, drawn on ``generator``.
    ``n_times=None`` evaluates all T steps (T denoiser calls per batch); ``n_times=K`` evaluates t = 0
    and, for each image independently, one uniformly random step in each of K − 1 equal strata of
    1..T−1, weighted by the stratum's size: an unbiased estimate of the sum from K calls per batch.
    """
    schedule = denoiser.process
    if not isinstance(schedule, NoiseSchedule):
        raise ConfigError("the variational bound in bits/dim is defined here for discrete schedules (NoiseSchedule)")
    if variance == "learned" and not hasattr(denoiser, "x0_and_fraction"):
        raise ConfigError("variance='learned' needs a denoiser with a learned variance (LearnedVarianceDenoiser)")
    x = quantize(x)
    B, D = x.shape[0], x[0].numel()
    times, weights = _times(schedule.num_timesteps, n_times, generator, B)
    to_bits = 1.0 / (D * math.log(2.0))
    terms = torch.empty(B, len(weights), dtype=torch.float64)
    for k in tqdm(range(len(weights)), desc="bound", disable=not progress):
        t = times[:, k] if times.ndim == 2 else torch.full((B,), int(times[k]), dtype=torch.long)
        x_t = q_sample(x, t, schedule, generator=generator)
        if variance == "learned":
            x0_pred, frac = denoiser.x0_and_fraction(x_t, t)
            log_var = model_log_variance(schedule, t, variance, frac)
        else:
            x0_pred = denoiser(x_t, t)
            log_var = model_log_variance(schedule, t, variance)
        terms[:, k] = vlb_term(schedule, x, x_t, t, x0_pred, log_var).double().cpu() * to_bits
    prior = prior_term(schedule, x).double().cpu() * to_bits
    total = prior + (terms * weights).sum(dim=1)
    return VariationalBound(total, terms, times, weights, prior, exact=bool((weights == 1).all()))

