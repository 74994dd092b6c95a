"""Training objective = process + prediction target + weighting + time sampler.

    L = E_{t ~ p(t), x₀, ε} [ w(t) · ‖ target − model(x_t, t, y) ‖² ],   x_t = α(t) x₀ + σ(t) ε

- process: any of :mod:`.process` (a discrete VP schedule, continuous VP, VE, rectified flow);
- target: ε, x₀, v = α ε − σ x₀, or the velocity u = α̇ x₀ + σ̇ ε (:mod:`.parameterization`);
- weighting w(t): ``"none"`` (L_simple, Ho et al. 2020, eq. 14), ``"min_snr"`` (Hang et al. 2023),
  ``"edm"`` (λ(σ) = (σ² + σ_data²)/(σ σ_data)², Karras et al. 2022, for an x₀-predicting
  :class:`~genlab.diffusion.denoisers.EDMPrecond`);
- time sampler p(t): :class:`UniformTime` (uniform over {0..T−1} for a discrete schedule),
  :class:`LogitNormalTime` (Esser et al. 2024, for rectified flow), :class:`LogNormalSigma` (EDM).

Min-SNR-γ weights each time so that, whatever the target, the loss is min(SNR, γ) · ‖x̂₀ − x₀‖².
At a fixed x_t, ‖pred − target‖² = f · ‖x̂₀ − x₀‖² with f from
:func:`~genlab.diffusion.parameterization.x0_error_factor` (ε: SNR, x₀: 1, v: SNR + 1 for a VP
process), so w = min(SNR, γ) / f — for ε written min(1, γ/SNR), which is 1 at SNR = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from genlab.diffusion.guidance import null_like
from genlab.diffusion.parameterization import check_prediction, target_from_x0_eps, x0_error_factor
from genlab.diffusion.process import Process, VEProcess, check_finite
from genlab.errors import ConfigError

__all__ = [
    "WEIGHTINGS",
    "DiffusionLoss",
    "LogNormalSigma",
    "LogitNormalTime",
    "UniformTime",
    "diffusion_loss",
    "make_diffusion_loss",
    "min_snr_weight",
]

WEIGHTINGS = ("none", "min_snr", "edm")


# --- time samplers: t ~ p(t), one per batch element, drawn with the loss's generator ---------


@dataclass(frozen=True)
class UniformTime:
    """t uniform: over {0..T−1} for a discrete schedule (``torch.randint``), else over
    [t_clean + eps·Δ, t_max] with Δ = t_max − t_clean (eps keeps σ(t) > 0)."""

    eps: float = 1e-3

    def __call__(self, process: Process, n: int, generator: torch.Generator) -> torch.Tensor:
        if getattr(process, "discrete", False):
            return torch.randint(0, process.t_max + 1, (n,), generator=generator, device=generator.device).cpu()
        u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64).cpu()
        lo, hi = float(process.t_clean), float(process.t_max)
        return lo + (hi - lo) * (self.eps + (1 - self.eps) * u)


@dataclass(frozen=True)
class LogitNormalTime:
    """t = sigmoid(mean + std · n), n ~ N(0, 1): more weight on middle times (SD3's choice for flows)."""

    mean: float = 0.0
    std: float = 1.0

    def __call__(self, process: Process, n: int, generator: torch.Generator) -> torch.Tensor:
        if getattr(process, "discrete", False) or (process.t_clean, process.t_max) != (0.0, 1.0):
            raise ConfigError("LogitNormalTime needs a process on t ∈ [0, 1] (rectified flow, continuous VP)")
        z = torch.randn(n, generator=generator, device=generator.device, dtype=torch.float64).cpu()
        return torch.sigmoid(self.mean + self.std * z)


@dataclass(frozen=True)
class LogNormalSigma:
    """σ = exp(p_mean + p_std · n), n ~ N(0, 1) (Karras et al. 2022, Table 1), for :class:`VEProcess`."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def __call__(self, process: Process, n: int, generator: torch.Generator) -> torch.Tensor:
        if not isinstance(process, VEProcess):
            raise ConfigError("LogNormalSigma samples EDM noise levels: use it with VEProcess")
        z = torch.randn(n, generator=generator, device=generator.device, dtype=torch.float64).cpu()
        return torch.exp(self.p_mean + self.p_std * z)


TIME_SAMPLERS = {"uniform": UniformTime, "logit_normal": LogitNormalTime, "lognormal_sigma": LogNormalSigma}


def min_snr_weight(alpha, sigma, gamma: float, prediction: str = "epsilon", d_alpha=None, d_sigma=None) -> torch.Tensor:
    """Min-SNR-γ loss weight min(SNR, γ)/f at (α, σ) (module docstring), float64 like its inputs.

    ε: min(1, γ/SNR); x₀: min(SNR, γ); v: min(SNR, γ) · σ² / (α² + σ²)² (VP: /(SNR + 1)).
    """
    gamma = check_finite("min_snr_gamma", gamma, low=0.0, strict_low=True)
    check_prediction(prediction)
    snr = alpha**2 / sigma**2
    if prediction == "epsilon":
        return torch.clamp(gamma / snr, max=1.0)
    return torch.clamp(snr, max=gamma) / x0_error_factor(prediction, alpha, sigma, d_alpha, d_sigma)


def diffusion_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    generator: torch.Generator,
    process: Process,
    *,
    prediction: str = "epsilon",
    y: torch.Tensor | None = None,
    cond_drop_prob: float = 0.0,
    null_label=None,
    min_snr_gamma: float | None = None,
    weighting: str | None = None,
    sigma_data: float = 0.5,
    time_sampler: Callable = UniformTime(),
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """One Monte Carlo estimate of the loss on a batch; returns a scalar tensor.

    x0: (B, ...) clean data; y: the condition (B, ...) (int64 labels or a context) or None.
    Random draws, in this order, on ``generator``'s device (the CPU) and then moved to x0's device:
      1. t ~ time_sampler, (B,)                 (discrete uniform: ``torch.randint(0, T, (B,))``)
      2. ε ~ N(0, I), x0's shape                ``torch.randn`` — unless ``eps`` gives the noise
         paired with each x₀ (a coupling, as in rectified flow's reflow: no draw then)
      3. only if y is given and cond_drop_prob > 0: u ~ U(0,1) (B,); where u < cond_drop_prob,
         y is replaced by ``null_label`` (condition dropout for classifier-free guidance).
    The loss is mean_b[ w_b · mean_dims (model(x_t, net_time(t), y) − target)² ]. ``weighting``
    defaults to ``"min_snr"`` when ``min_snr_gamma`` is given, else ``"none"``.
    """
    check_prediction(prediction)
    weighting = weighting or ("min_snr" if min_snr_gamma is not None else "none")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown loss weighting {weighting!r}; choose one of {WEIGHTINGS}")
    if weighting == "edm" and prediction != "x0":
        raise ConfigError("the EDM weighting is for an x0-predicting EDMPrecond network: use prediction='x0'")
    cond_drop_prob = check_finite("cond_drop_prob", cond_drop_prob, low=0.0, high=1.0)
    if y is not None and cond_drop_prob > 0 and null_label is None:
        raise ConfigError("cond_drop_prob > 0 needs null_label=... (the label that means 'no condition')")
    B, dev = x0.shape[0], generator.device
    t = time_sampler(process, B, generator)  # (B,) on the CPU
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
    elif eps.shape != x0.shape:
        raise ConfigError(f"paired noise must have the data's shape {tuple(x0.shape)}, got {tuple(eps.shape)}")
    if y is not None and cond_drop_prob > 0:
        drop = (torch.rand(B, generator=generator, device=dev) < cond_drop_prob).to(x0.device)
        y = torch.where(drop.view(-1, *([1] * (y.ndim - 1))), null_like(y, null_label), y)

    a64, s64 = process.alpha_sigma(t)  # float64 (B,)
    view = (-1,) + (1,) * (x0.ndim - 1)
    a, s = (v.to(device=x0.device, dtype=x0.dtype).view(view) for v in (a64, s64))
    da64 = ds64 = da = ds = None
    if prediction == "velocity":
        da64, ds64 = process.d_alpha_sigma(t)
        da, ds = (v.to(device=x0.device, dtype=x0.dtype).view(view) for v in (da64, ds64))
    x_t = a * x0 + s * eps
    target = target_from_x0_eps(x0, eps, a, s, prediction, da, ds)

    out = model(x_t, process.net_time(t).to(x0.device), y=y)
    per_sample = ((out - target) ** 2).flatten(1).mean(dim=1)  # (B,)
    if weighting == "min_snr":
        w = min_snr_weight(a64, s64, min_snr_gamma if min_snr_gamma is not None else 5.0, prediction, da64, ds64)
    elif weighting == "edm":
        sd = check_finite("sigma_data", sigma_data, low=0.0, strict_low=True)
        sig = s64 / a64  # EDM's σ (= t for VEProcess)
        w = (sig**2 + sd**2) / (sig * sd) ** 2
    else:
        return per_sample.mean()
    return (per_sample * w.to(device=x0.device, dtype=per_sample.dtype)).mean()


@dataclass
class DiffusionLoss:
    """``loss_fn(model, batch, generator)`` for :func:`genlab.train.fit`: the objective as data.

    batch is ``(x0,)`` or ``(x0, y)``; y is used only when ``conditional``. With ``coupled`` the
    batch ends with the noise paired with each x₀ — ``(x0, z)`` or ``(x0, y, z)`` — instead of a
    fresh draw (reflow, :mod:`genlab.flow.reflow`). :meth:`config` describes the objective as JSON
    (a checkpoint stores it; resuming with another one is refused).
    """

    process: Process
    prediction: str = "epsilon"
    weighting: str = "none"  # "none" | "min_snr" | "edm"
    min_snr_gamma: float = 5.0  # γ, for weighting="min_snr"
    sigma_data: float = 0.5  # σ_data, for weighting="edm"
    time_sampler: Callable = field(default_factory=UniformTime)
    conditional: bool = False
    cond_drop_prob: float = 0.0  # condition dropout (classifier-free guidance)
    null_label: int | None = None  # the label that means "no condition"
    coupled: bool = False  # the batch's last tensor is the noise paired with each x₀ (reflow)

    def __post_init__(self):
        check_prediction(self.prediction)
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown loss weighting {self.weighting!r}; choose one of {WEIGHTINGS}")
        check_finite("min_snr_gamma", self.min_snr_gamma, low=0.0, strict_low=True)
        check_finite("cond_drop_prob", self.cond_drop_prob, low=0.0, high=1.0)
        if self.conditional and self.cond_drop_prob > 0 and self.null_label is None:
            raise ConfigError("cond_drop_prob > 0 needs null_label=... (the label that means 'no condition')")

    def __call__(self, model, batch: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        if self.conditional and len(batch) < 2:
            raise ConfigError("a conditional diffusion loss needs batches of (images, labels); got images only")
        if self.coupled and len(batch) < (3 if self.conditional else 2):
            raise ConfigError("a coupled loss needs batches that end with the paired noise: (x0, z) or (x0, y, z)")
        return diffusion_loss(
            model, batch[0], generator, self.process, prediction=self.prediction,
            y=batch[1] if self.conditional else None,
            cond_drop_prob=self.cond_drop_prob if self.conditional else 0.0, null_label=self.null_label,
            min_snr_gamma=self.min_snr_gamma, weighting=self.weighting, sigma_data=self.sigma_data,
            time_sampler=self.time_sampler, eps=batch[-1] if self.coupled else None,
        )  # fmt: skip

    def config(self) -> dict:
        """The objective as JSON (the process by kind; its full config is stored separately)."""
        sampler = self.time_sampler
        name = next((k for k, v in TIME_SAMPLERS.items() if isinstance(sampler, v)), type(sampler).__name__)
        return {
            "process": self.process.kind, "prediction": self.prediction, "weighting": self.weighting,
            "min_snr_gamma": self.min_snr_gamma if self.weighting == "min_snr" else None,
            "sigma_data": self.sigma_data if self.weighting == "edm" else None,
            "time_sampler": {"name": name, **(asdict(sampler) if hasattr(sampler, "__dataclass_fields__") else {})},
            "conditional": self.conditional, "cond_drop_prob": self.cond_drop_prob, "null_label": self.null_label,
            **({"coupled": True} if self.coupled else {}),  # absent for independent noise (older checkpoints)
        }  # fmt: skip


def make_diffusion_loss(
    process: Process,
    *,
    prediction: str = "epsilon",
    conditional: bool = False,
    cond_drop_prob: float = 0.0,
    null_label: int | None = None,
    min_snr_gamma: float | None = None,
) -> DiffusionLoss:
    """A :class:`DiffusionLoss` with L_simple (or Min-SNR-γ when ``min_snr_gamma`` is given)."""
    return DiffusionLoss(
        process, prediction=prediction, weighting="min_snr" if min_snr_gamma is not None else "none",
        min_snr_gamma=min_snr_gamma if min_snr_gamma is not None else 5.0, conditional=conditional,
        cond_drop_prob=cond_drop_prob if conditional else 0.0, null_label=null_label,
    )  # fmt: skip
