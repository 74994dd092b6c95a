"""Noise schedules: the betas β_t and everything derived from them.

Index convention (the same as diffusers): timesteps are ``t = 0, 1, …, T-1`` and

    ᾱ_t = prod_{s=0..t} (1 - β_s)          (alphas_cumprod[t])

so ``alphas_cumprod[0] = 1 - β_0`` already contains one step of noise. The paper of Ho et al.
(2020) counts from 1: the paper's x_t is our x_{t-1}, and the clean image x_0 sits "before"
index 0. Where a formula needs ᾱ_{t-1} at t = 0 we use ᾱ_{-1} = 1 (``alphas_cumprod_prev[0]``).

A schedule is data: :class:`NoiseSchedule` is a frozen dataclass of float64 tensors built from
the betas. Every coefficient is computed once, in float64; samplers cast what they need. It is
also a :class:`~genlab.diffusion.process.Process` (α(t) = √ᾱ_t, σ(t) = √(1 − ᾱ_t), t = −1 the
data), so everything written against a process works with it.

The schedules honour T. ``beta_start``/``beta_end`` are the values for T = 1000 (Ho et al.); for
another T the linear, quadratic and sigmoid betas are scaled by 1000/T, as improved DDPM does
(Nichol & Dhariwal 2021, their ``get_named_beta_schedule``), so Σβ — and with it the terminal
SNR — stays about the same: T = 100 still ends in (almost) pure noise. Betas are capped at 0.999.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from genlab.diffusion.process import Process, _check_levels, check_finite, posterior_coefficients
from genlab.errors import ConfigError

__all__ = [
    "SCHEDULES",
    "NoiseSchedule",
    "cosine_betas",
    "extract",
    "linear_betas",
    "make_schedule",
    "quadratic_betas",
    "rescale_zero_terminal_snr",
    "sigmoid_betas",
    "snr",
]

_F64 = torch.float64


REFERENCE_T = 1000  # beta_start / beta_end are given for this T
MAX_BETA = 0.999


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ConfigError(f"number of diffusion steps T must be a positive int, got {T!r}")


def _scaled(T: int, beta_start: float, beta_end: float) -> tuple[float, float]:
    """(beta_start, beta_end) · 1000/T, checked: 0 < beta_start <= beta_end < 1 at T = 1000."""
    _check_T(T)
    b0 = check_finite("beta_start", beta_start, low=0.0, strict_low=True)
    b1 = check_finite("beta_end", beta_end, low=b0, high=1.0)
    scale = REFERENCE_T / T
    return b0 * scale, b1 * scale


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020), both scaled by 1000/T.

    Shape (T,), float64, capped at 0.999.
    """
    b0, b1 = _scaled(T, beta_start, beta_end)
    return torch.linspace(b0, b1, T, dtype=_F64).clamp(max=MAX_BETA)


def quadratic_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t = (linspace(√beta_start, √beta_end, T))²: diffusers' ``"scaled_linear"``.

    Latent diffusion (Stable Diffusion) uses it with beta_start=0.00085, beta_end=0.012. Both ends
    are scaled by 1000/T (module docstring), capped at 0.999.
    """
    b0, b1 = _scaled(T, beta_start, beta_end)
    return (torch.linspace(math.sqrt(b0), math.sqrt(b1), T, dtype=_F64) ** 2).clamp(max=MAX_BETA)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule of Nichol & Dhariwal (2021), eq. 17, diffusers' ``"squaredcos_cap_v2"``.

        f(u) = cos²( (u + s) / (1 + s) · π/2 ),   u = t/T ∈ [0, 1]
        β_t  = min( 1 - f((t+1)/T) / f(t/T),  max_beta )      t = 0..T-1

    so that, where no β was capped, ᾱ_t = f((t+1)/T) / f(0). The cap keeps the last β below 1.
    It depends on t/T only, so it honours T by construction.
    """
    _check_T(T)
    check_finite("s", s, low=0.0)
    check_finite("max_beta", max_beta, low=0.0, high=1.0, strict_low=True)
    u = torch.arange(T + 1, dtype=_F64) / T  # (T+1,) grid points t/T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return torch.clamp(1 - f[1:] / f[:-1], max=max_beta)


def sigmoid_betas(
    T: int, beta_start: float = 1e-4, beta_end: float = 0.02, low: float = -6.0, high: float = 6.0
) -> torch.Tensor:
    """β_t = beta_start + (beta_end - beta_start) · sigmoid(linspace(low, high, T)).

    The GeoDiff schedule (Xu et al. 2022), diffusers' ``"sigmoid"``: flat at both ends. Both ends
    are scaled by 1000/T (module docstring), capped at 0.999.
    """
    b0, b1 = _scaled(T, beta_start, beta_end)
    return (b0 + (b1 - b0) * torch.sigmoid(torch.linspace(low, high, T, dtype=_F64))).clamp(max=MAX_BETA)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale √ᾱ so that ᾱ_{T-1} = 0 and ᾱ_0 is unchanged (Lin et al. 2023, Algorithm 1).

        √ᾱ'_t = (√ᾱ_t - √ᾱ_{T-1}) · √ᾱ_0 / (√ᾱ_0 - √ᾱ_{T-1})

    then β'_t = 1 - ᾱ'_t / ᾱ'_{t-1}. The last step becomes β'_{T-1} = 1: pure noise, SNR = 0.
    With such a schedule an ε-predicting model cannot recover x_0 at t = T-1 (1/√ᾱ = ∞), which is
    why Lin et al. train with v-prediction. Computed in float64.
    """
    betas = torch.as_tensor(betas, dtype=_F64)
    sqrt_ab = torch.cumprod(1 - betas, dim=0).sqrt()  # √ᾱ_t, (T,)
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    alphas = torch.cat([ab[:1], ab[1:] / ab[:-1]])  # undo the cumulative product
    return 1 - alphas


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio SNR_t = ᾱ_t / (1 - ᾱ_t) (Kingma et al. 2021). ∞ where ᾱ_t = 1."""
    ab = torch.as_tensor(alphas_cumprod)
    return ab / (1 - ab)


@dataclass(frozen=True, eq=False)
class NoiseSchedule(Process):
    """Every per-timestep coefficient of a diffusion process, as float64 tensors of shape (T,).

    Build it with :meth:`from_betas` or :func:`make_schedule`; index it with t = 0..T-1
    (see the module docstring: ᾱ_t = prod_{s<=t} (1 - β_s)).

    ==================================  ===================================================
    symbol                              field
    ==================================  ===================================================
    β_t                                 ``betas``
    α_t = 1 - β_t                       ``alphas``
    ᾱ_t = prod_{s<=t} α_s               ``alphas_cumprod``
    ᾱ_{t-1}  (ᾱ_{-1} = 1)               ``alphas_cumprod_prev``
    √ᾱ_t                                ``sqrt_alphas_cumprod``
    √(1 - ᾱ_t)                          ``sqrt_one_minus_alphas_cumprod``
    β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)  ``posterior_variance``  (variance of q(x_{t-1}|x_t,x_0))
    log β̃_t, with β̃_0 := β̃_1           ``posterior_log_variance_clipped`` (β̃_0 = 0)
    β_t √ᾱ_{t-1} / (1 - ᾱ_t)            ``posterior_mean_coef1``  (multiplies x_0)
    √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)      ``posterior_mean_coef2``  (multiplies x_t)
    ==================================  ===================================================

    The posterior mean is μ̃_t(x_t, x_0) = coef1 · x_0 + coef2 · x_t (Ho et al. 2020, eq. 7), from
    the one posterior formula :func:`~genlab.diffusion.process.posterior_coefficients`.

    As a process: time t is the index, α(t) = √ᾱ_t, σ(t) = √(1 − ᾱ_t), and t = −1 is the data
    (ᾱ_{-1} = 1, σ = 0), where every sampler ends.
    """

    kind = "discrete_vp"
    discrete = True
    t_clean = -1

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> NoiseSchedule:
        """Derive every coefficient from β (any 1-D sequence with 0 < β_t <= 1), in float64."""
        betas = torch.as_tensor(betas, dtype=_F64).detach().cpu().clone()
        if betas.ndim != 1 or betas.numel() < 1:
            raise ConfigError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ConfigError("every beta must lie in (0, 1]; check the schedule's beta_start/beta_end")
        alphas = 1 - betas
        ab = torch.cumprod(alphas, dim=0)
        ab_prev = torch.cat([torch.ones(1, dtype=_F64), ab[:-1]])
        coef1, coef2, post_var = posterior_coefficients(ab.sqrt(), (1 - ab).sqrt(), ab_prev.sqrt(), (1 - ab_prev).sqrt())
        # β̃_0 = 0; use β̃_1 there so the log stays finite (Ho et al.'s "clipped" log-variance).
        log_src = torch.cat([post_var[1:2], post_var[1:]]) if len(betas) > 1 else post_var
        return cls(
            betas=betas,
            alphas=alphas,
            alphas_cumprod=ab,
            alphas_cumprod_prev=ab_prev,
            sqrt_alphas_cumprod=ab.sqrt(),
            sqrt_one_minus_alphas_cumprod=(1 - ab).sqrt(),
            posterior_variance=post_var,
            posterior_log_variance_clipped=torch.log(log_src),
            posterior_mean_coef1=coef1,
            posterior_mean_coef2=coef2,
        )

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return len(self.betas)

    def __len__(self) -> int:
        return len(self.betas)

    @property
    def snr(self) -> torch.Tensor:
        """SNR_t = ᾱ_t / (1 - ᾱ_t), float64 (T,)."""
        return snr(self.alphas_cumprod)

    def to_dict(self) -> dict[str, torch.Tensor]:
        """The fields as a dict of tensors (e.g. to save with safetensors)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # --- the Process interface -------------------------------------------------------------

    @property
    def t_max(self) -> int:  # type: ignore[override]
        return len(self.betas) - 1

    def alpha_sigma(self, t):
        """(√ᾱ_t, √(1 − ᾱ_t)) for t in −1..T−1 (a number or a tensor), float64.

        Integer t index the schedule. Fractional t in [0, T−1] (the times of σ-grids, e.g. Karras')
        interpolate log σ̂ = ½ log((1 − ᾱ)/ᾱ) linearly between the neighbouring indices, then
        α = (1 + σ̂²)^(−½), σ = σ̂ α: the interpolation diffusers' Euler and Heun schedulers use
        (``_sigma_to_t``), so ``time_of`` inverts it exactly. Between −1 (the data) and 0 there is
        nothing to interpolate: only t = −1 itself.
        """
        t = torch.as_tensor(t).cpu()
        if t.is_floating_point() and not bool((t == t.round()).all()):
            t = t.to(_F64)
            frac = t != t.round()
            a, s = torch.empty_like(t), torch.empty_like(t)
            a[frac], s[frac] = self._alpha_sigma_fractional(t[frac])
            a[~frac], s[~frac] = self.alpha_sigma(t[~frac].long())
            return a, s
        t = t.long()
        if bool((t < -1).any()) or bool((t > self.t_max).any()):
            raise ConfigError(f"timesteps must lie in -1..{self.t_max} for this schedule")
        ab = torch.cat([torch.ones(1, dtype=_F64), self.alphas_cumprod])[t + 1]
        return ab.sqrt(), (1 - ab).sqrt()

    def log_noise_levels(self) -> torch.Tensor:
        """log σ̂_t = ½ log((1 − ᾱ_t)/ᾱ_t) for t = 0..T−1, float64 (T,), increasing (+∞ at zero terminal SNR)."""
        ab = self.alphas_cumprod
        return 0.5 * (torch.log1p(-ab) - torch.log(ab))

    def _alpha_sigma_fractional(self, t: torch.Tensor):
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > self.t_max).any()):
            raise ConfigError(f"fractional timesteps must lie in 0..{self.t_max} (only t = -1 lies below 0), got {t.min().item()}..{t.max().item()}")
        logs = self.log_noise_levels()
        lo = t.floor().long().clamp(max=max(self.t_max - 1, 0))
        w = t - lo
        hi = (lo + 1).clamp(max=self.t_max)
        ls = torch.where(w == 0, logs[lo], torch.where(w == 1, logs[hi], (1 - w) * logs[lo] + w * logs[hi]))
        return torch.sigmoid(-2 * ls).sqrt(), torch.sigmoid(2 * ls).sqrt()  # α² = 1/(1 + σ̂²), σ² = σ̂²/(1 + σ̂²)

    def time_of(self, noise_level) -> torch.Tensor:
        """t with σ̂(t) = noise_level: −1 for 0, else log-linear interpolation over the indices (float64).

        The inverse of :meth:`alpha_sigma` on fractional t (diffusers' ``_sigma_to_t``, without
        its silent clipping: levels outside [σ̂_0, σ̂_{T−1}] are an error).
        """
        s = _check_levels(noise_level)
        logs = self.log_noise_levels()
        finite = logs[torch.isfinite(logs)]
        out = torch.empty_like(s)
        zero, inf = s == 0, torch.isinf(s)
        if bool(inf.any()) and bool(torch.isfinite(logs[-1])):
            raise ConfigError("noise level inf (alpha = 0) needs a zero-terminal-SNR schedule")
        rest = ~(zero | inf)
        ls = s[rest].log()
        tol = 1e-6  # float32 noise levels round by ~1e-7
        if ls.numel() and (bool((ls < finite[0] - tol).any()) or bool((ls > finite[-1] + tol).any())):
            raise ConfigError(
                f"noise levels must lie in [{finite[0].exp().item():.4g}, {finite[-1].exp().item():.4g}] (this schedule's "
                f"sigma/alpha at t = 0 and t = {len(finite) - 1}) or be 0, got {s[rest].min().item():.4g}..{s[rest].max().item():.4g}"
            )
        out[zero], out[inf] = -1.0, float(self.t_max)
        idx = np.interp(ls.clamp(finite[0], finite[-1]).numpy(), finite.numpy(), np.arange(len(finite), dtype=np.float64))
        out[rest] = torch.from_numpy(idx)
        return out

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """The index t as the network saw it in training (int64); fractional t stay float32."""
        if t.is_floating_point() and not bool((t == t.round()).all()):
            return t.float()
        return t.round().long() if t.is_floating_point() else t.long()

    def config(self) -> dict:
        return {"kind": self.kind, "betas": self.betas.tolist()}


SCHEDULES = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "quadratic": quadratic_betas,
    "sigmoid": sigmoid_betas,
}


def make_schedule(name: str, T: int = 1000, *, zero_terminal_snr: bool = False, **kwargs) -> NoiseSchedule:
    """A :class:`NoiseSchedule` by name: ``"linear" | "cosine" | "quadratic" | "sigmoid"``.

    ``kwargs`` go to the beta function (e.g. ``beta_start=``, ``beta_end=``, ``s=``);
    ``zero_terminal_snr=True`` applies :func:`rescale_zero_terminal_snr`.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    try:
        betas = SCHEDULES[name](T, **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad arguments for the {name} schedule: {e}") from None
    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    return NoiseSchedule.from_betas(betas)


def extract(values: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """Pick ``values[t]`` per batch element, shaped to broadcast against ``x``.

    values: (T,) coefficients (any dtype/device); t: int or int64 (B,); x: (B, ...).
    Returns a tensor of x's dtype and device with shape (B, 1, 1, ...) — or a 0-d tensor for int t.
    """
    if isinstance(t, int):
        return values[t].to(device=x.device, dtype=x.dtype)
    out = values[t.to(values.device)].to(device=x.device, dtype=x.dtype)  # (B,)
    return out.reshape(out.shape + (1,) * (x.ndim - out.ndim))  # (B, 1, ..., 1)
