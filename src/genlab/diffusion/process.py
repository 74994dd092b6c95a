"""Noising processes: x_t = α(t) x₀ + σ(t) ε, ε ~ N(0, I) — one interface for all of them.

A process is data: two functions of a time t, and where t starts and ends.

    ==================  =================================  ==========================================
    process             α(t), σ(t)                         time t
    ==================  =================================  ==========================================
    NoiseSchedule       √ᾱ_t, √(1 − ᾱ_t)  (discrete VP)    index 0..T-1; t = −1 is the data (ᾱ = 1)
    ContinuousVP        α² + σ² = 1 (Song et al. 2021)     [0, 1]
    VEProcess (EDM)     1, t                               σ itself, [0, sigma_max] (Karras et al. 2022)
    RectifiedFlow       1 − t, t                           [0, 1] (Liu et al. 2022; Lipman et al. 2022)
    ==================  =================================  ==========================================

Every process has ``alpha_sigma(t)`` (float64), ``t_max`` (where sampling starts), ``t_clean``
(where σ = 0 and sampling ends), ``net_time(t)`` (what the network is told) and ``config()``
(JSON, so a checkpoint can rebuild it with :func:`process_from_config`). ``noise_level(t)`` is
σ̂ = σ/α, EDM's σ and diffusers' ``sigmas`` (∞ where α = 0), and ``time_of(σ̂)`` its inverse: every
process is the same ODE in σ̂ (Karras et al. 2022, eq. 4), so a grid of σ̂'s serves them all. Continuous processes
also have ``d_alpha_sigma(t)`` = (dα/dt, dσ/dt), which velocity prediction needs.

Names: ``alpha`` ↔ α(t) (for a discrete VP schedule √ᾱ_t, not the α_t = 1 − β_t of Ho et al.),
``sigma`` ↔ σ(t), ``noise_level`` ↔ σ̂(t) = σ/α, SNR(t) = α²/σ² = 1/σ̂², λ(t) = log(α/σ) = −log σ̂
(DPM-Solver's λ is this half log-SNR).

The one Gaussian posterior all samplers and the ELBO use (Kingma et al. 2021, "VDM", eq. 22–23):
for s < t, with α_{t|s} = α_t/α_s and σ²_{t|s} = σ_t² − α_{t|s}² σ_s² (the forward step's variance,
β_t for a discrete VP schedule on its full grid),

    q(x_s | x_t, x₀) = N( c_x0 x₀ + c_xt x_t,  σ²_{t|s} σ_s² / σ_t² )
    c_x0 = α_s σ²_{t|s} / σ_t²,     c_xt = α_{t|s} σ_s² / σ_t²            :func:`posterior_coefficients`
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from genlab.errors import ConfigError

__all__ = [
    "PROCESSES",
    "ContinuousVP",
    "Process",
    "RectifiedFlow",
    "VEProcess",
    "check_finite",
    "posterior_coefficients",
    "process_from_config",
]

_F64 = torch.float64


def check_finite(name: str, value, *, low: float | None = None, high: float | None = None, strict_low: bool = False) -> float:
    """``float(value)`` if it is a finite number in range, else a one-line ConfigError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be a finite number, got {v}")
    if low is not None and (v <= low if strict_low else v < low):
        raise ConfigError(f"{name} must be {'>' if strict_low else '>='} {low}, got {v}")
    if high is not None and v > high:
        raise ConfigError(f"{name} must be <= {high}, got {v}")
    return v


def posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s):
    """``(c_x0, c_xt, variance)`` of q(x_s | x_t, x₀) for s < t (module docstring; floats or tensors).

    =============  =================================  =====================
    symbol         meaning                            name
    =============  =================================  =====================
    α_t, σ_t       the process at the later time t    alpha_t, sigma_t
    α_s, σ_s       the process at the earlier time s  alpha_s, sigma_s
    α_{t|s}        α_t / α_s                          (computed)
    σ²_{t|s}       σ_t² − α_{t|s}² σ_s²               (computed; β_t for DDPM)
    =============  =================================  =====================

    At the data end (σ_s = 0, α_s = 1) the posterior is the point x₀: c_x0 = 1, c_xt = 0, variance 0.
    """
    alpha_ts = alpha_t / alpha_s
    var_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2
    c_x0 = alpha_s * var_ts / sigma_t**2
    c_xt = alpha_ts * sigma_s**2 / sigma_t**2
    variance = var_ts * sigma_s**2 / sigma_t**2
    return c_x0, c_xt, variance


def _as_f64(t) -> torch.Tensor:
    return torch.as_tensor(t, dtype=_F64).cpu()


def _check_levels(noise_level) -> torch.Tensor:
    """Noise levels σ̂ as float64, checked: ≥ 0 and not NaN (∞ is allowed: α = 0)."""
    s = _as_f64(noise_level)
    if bool(torch.isnan(s).any()) or bool((s < 0).any()):
        raise ConfigError(f"noise levels sigma/alpha must be >= 0, got {s.min().item()}")
    return s


class Process:
    """The interface (see the module docstring). Subclasses are frozen dataclasses."""

    kind: str = ""
    t_max: float
    t_clean: float
    discrete: bool = False

    def alpha_sigma(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(α(t), σ(t)) as float64 tensors of t's shape (t: a number or a tensor)."""
        raise NotImplementedError

    def noise_level(self, t) -> torch.Tensor:
        """σ̂(t) = σ(t)/α(t) as float64 (∞ where α = 0): EDM's noise level, diffusers' ``sigmas``."""
        a, s = self.alpha_sigma(t)
        return s / a

    def time_of(self, noise_level) -> torch.Tensor:
        """The time t with σ̂(t) = ``noise_level`` (float64; the inverse of :meth:`noise_level`)."""
        raise NotImplementedError

    def d_alpha_sigma(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(dα/dt, dσ/dt) as float64 tensors; only continuous processes have them."""
        raise ConfigError(f"the {self.kind} process has no time derivative: velocity prediction needs a continuous process")

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """What the network receives as its time input (float32, the U-Net's embedding range ~0..1000)."""
        return t.float() * 1000.0

    def check_times(self, t: torch.Tensor) -> None:
        """Raise ConfigError for times outside [t_clean, t_max]."""
        lo, hi = min(self.t_clean, self.t_max), max(self.t_clean, self.t_max)
        if not bool(torch.isfinite(t).all()) or bool((t < lo).any()) or bool((t > hi).any()):
            raise ConfigError(f"times must lie in [{lo}, {hi}] for the {self.kind} process, got {t.min().item()}..{t.max().item()}")

    def config(self) -> dict:
        """JSON-able description; :func:`process_from_config` rebuilds the process from it."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RectifiedFlow(Process):
    """x_t = (1 − t) x₀ + t ε, t ∈ [0, 1]: the straight path of rectified flow / flow matching.

    Its velocity dx_t/dt = ε − x₀ is what a flow-matching network predicts (``"velocity"``).
    At t = 1, α = 0: pure noise, so sampling starts from N(0, I) exactly.
    """

    kind = "rectified_flow"
    t_max = 1.0
    t_clean = 0.0

    def alpha_sigma(self, t):
        t = _as_f64(t)
        return 1 - t, t.clone()

    def time_of(self, noise_level):
        s = _check_levels(noise_level)
        return torch.where(torch.isinf(s), 1.0, s / (1 + s))  # σ̂ = t / (1 − t)

    def d_alpha_sigma(self, t):
        t = _as_f64(t)
        return -torch.ones_like(t), torch.ones_like(t)


@dataclass(frozen=True)
class ContinuousVP(Process):
    """A variance-preserving process in continuous time t ∈ [0, 1], α² + σ² = 1.

    - ``schedule="linear"``: the VP-SDE of Song et al. (2021) with β(t) = β_min + t (β_max − β_min),
      α(t) = exp(−½ ∫₀ᵗ β) = exp(−¼ t² (β_max − β_min) − ½ t β_min).
    - ``schedule="cosine"``: α(t) = cos(π t / 2), σ(t) = sin(π t / 2) (Nichol & Dhariwal's schedule
      with s = 0): SNR(1) = 0, zero terminal SNR by construction.
    """

    schedule: str = "cosine"
    beta_min: float = 0.1
    beta_max: float = 20.0
    kind = "continuous_vp"
    t_max = 1.0
    t_clean = 0.0

    def __post_init__(self):
        if self.schedule not in ("linear", "cosine"):
            raise ConfigError(f"unknown continuous VP schedule {self.schedule!r}; choose 'linear' or 'cosine'")
        check_finite("beta_min", self.beta_min, low=0.0, strict_low=True)
        check_finite("beta_max", self.beta_max, low=self.beta_min, strict_low=True)

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha_sigma(self, t):
        t = _as_f64(t)
        if self.schedule == "cosine":  # α(1) = 0 exactly (cos(π/2) is 6e-17 in floating point)
            return torch.where(t == 1, 0.0, torch.cos(math.pi / 2 * t)), torch.sin(math.pi / 2 * t)
        log_a = self._log_alpha(t)
        return log_a.exp(), (-torch.expm1(2 * log_a)).sqrt()  # σ = √(1 − α²), accurate near t = 0

    def time_of(self, noise_level):
        s = _check_levels(noise_level)
        if self.schedule == "cosine":
            return 2 / math.pi * torch.atan(s)  # σ̂ = tan(π t / 2)
        # α² = 1/(1 + σ̂²): ¼ Δ t² + ½ β_min t = ½ log(1 + σ̂²), Δ = β_max − β_min; the positive root.
        c, d, b = 0.5 * torch.log1p(s**2), self.beta_max - self.beta_min, self.beta_min
        t = (-0.5 * b + torch.sqrt(0.25 * b**2 + d * c)) / (0.5 * d)
        if bool((t > 1 + 1e-12).any()):
            raise ConfigError(f"noise level {s.max().item():g} is beyond this process's largest, {self.noise_level(1.0).item():g}")
        return t.clamp(max=1.0)

    def d_alpha_sigma(self, t):
        t = _as_f64(t)
        if self.schedule == "cosine":
            return -math.pi / 2 * torch.sin(math.pi / 2 * t), math.pi / 2 * torch.cos(math.pi / 2 * t)
        a, s = self.alpha_sigma(t)
        d_log_a = -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min))
        da = a * d_log_a
        return da, -a * da / s  # from α² + σ² = 1


@dataclass(frozen=True)
class VEProcess(Process):
    """Variance exploding, in EDM's time: α = 1, σ(t) = t, t ∈ [0, sigma_max] (Karras et al. 2022).

    Pair it with :class:`genlab.diffusion.denoisers.EDMPrecond`, which turns σ into the network's
    c_noise = ¼ ln σ; ``net_time`` is therefore σ itself.
    """

    sigma_max: float = 80.0
    kind = "ve"
    t_clean = 0.0

    def __post_init__(self):
        check_finite("sigma_max", self.sigma_max, low=0.0, strict_low=True)

    @property
    def t_max(self) -> float:  # type: ignore[override]
        return self.sigma_max

    def alpha_sigma(self, t):
        t = _as_f64(t)
        return torch.ones_like(t), t.clone()

    def time_of(self, noise_level):
        s = _check_levels(noise_level)
        if bool((s > self.sigma_max).any()):
            raise ConfigError(f"noise level {s.max().item():g} is beyond sigma_max = {self.sigma_max:g}")
        return s.clone()

    def d_alpha_sigma(self, t):
        t = _as_f64(t)
        return torch.zeros_like(t), torch.ones_like(t)

    def net_time(self, t):
        return t.float()


PROCESSES = {"rectified_flow": RectifiedFlow, "continuous_vp": ContinuousVP, "ve": VEProcess}


def process_from_config(config: dict) -> Process:
    """Rebuild a process from :meth:`Process.config` (discrete schedules included)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ConfigError(f"a process config must be a dict with a 'kind', got {config!r}")
    kind = config["kind"]
    fields = {k: v for k, v in config.items() if k != "kind"}
    if kind == "discrete_vp":
        from genlab.diffusion.schedules import NoiseSchedule

        betas = fields.get("betas")
        if not isinstance(betas, list) or not all(isinstance(b, (int, float)) for b in betas):
            raise ConfigError("a discrete_vp process config needs 'betas', a list of numbers")
        return NoiseSchedule.from_betas(torch.tensor(betas, dtype=_F64))
    if kind not in PROCESSES:
        raise ConfigError(f"unknown process kind {kind!r}; known: discrete_vp, {', '.join(PROCESSES)}")
    try:
        return PROCESSES[kind](**fields)
    except TypeError as e:
        raise ConfigError(f"bad {kind} process config {fields}: {e}") from None
