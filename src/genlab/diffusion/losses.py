"""Training objective: the simplified DDPM loss, optionally Min-SNR-γ weighted.

    L_simple = E_{t, x_0, ε} ‖ target − model(x_t, t, y) ‖²,   x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε

with t ~ Uniform{0..T-1}, ε ~ N(0, I) and target ε, x_0 or v = √ᾱ_t ε − √(1-ᾱ_t) x_0
(Ho et al. 2020, eq. 14; Salimans & Ho 2022 for v).

Min-SNR-γ (Hang et al. 2023) weights each timestep so that, whatever the target, the loss is
min(SNR_t, γ) · ‖x̂_0 − x_0‖². Because ‖ε̂ − ε‖² = SNR_t ‖x̂_0 − x_0‖² and
‖v̂ − v‖² = (SNR_t + 1) ‖x̂_0 − x_0‖², the weight per target is

    ε:   min(SNR_t, γ) / SNR_t          x_0:  min(SNR_t, γ)          v:  min(SNR_t, γ) / (SNR_t + 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from genlab.diffusion.forward import q_sample
from genlab.diffusion.parameterization import check_prediction, x0_eps_to_v
from genlab.diffusion.schedules import NoiseSchedule, extract
from genlab.errors import ConfigError

__all__ = ["diffusion_loss", "make_diffusion_loss", "min_snr_weight"]


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: str = "epsilon") -> torch.Tensor:
    """Min-SNR-γ loss weight for each SNR value (Hang et al. 2023, eq. 8 and its v/x₀ variants).

    ε: min(SNR, γ)/SNR (written min(1, γ/SNR), which is 1 at SNR = 0), x₀: min(SNR, γ),
    v: min(SNR, γ)/(SNR + 1). ``snr`` is any tensor; the result has its shape and dtype.
    """
    check_prediction(prediction)
    clipped = torch.clamp(snr, max=gamma)
    if prediction == "epsilon":
        return torch.clamp(gamma / snr, max=1.0)
    if prediction == "x0":
        return clipped
    return clipped / (snr + 1)


def diffusion_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    generator: torch.Generator,
    schedule: NoiseSchedule,
    *,
    prediction: str = "epsilon",
    y: torch.Tensor | None = None,
    cond_drop_prob: float = 0.0,
    null_label: int | None = None,
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """One Monte Carlo estimate of L_simple on a batch; returns a scalar tensor.

    x0: (B, ...) clean data; y: int64 (B,) class labels or None.
    Random draws, in this order, on ``generator``'s device (the CPU) and then moved to x0's device:
      1. t ~ Uniform{0..T-1}, int64 (B,)        ``torch.randint``
      2. ε ~ N(0, I), x0's shape                 ``torch.randn``
      3. only if y is given and cond_drop_prob > 0: u ~ U(0,1) (B,); where u < cond_drop_prob,
         y is replaced by ``null_label`` (condition dropout for classifier-free guidance).
    The loss is mean_b[ w_b · mean_pixels (model(x_t, t, y) − target)² ] with w_b = 1, or the
    Min-SNR-γ weight of :func:`min_snr_weight` when ``min_snr_gamma`` is given.
    """
    check_prediction(prediction)
    if y is not None and cond_drop_prob > 0 and null_label is None:
        raise ConfigError("cond_drop_prob > 0 needs null_label=... (the label that means 'no condition')")
    B, T, dev = x0.shape[0], schedule.num_timesteps, generator.device
    t = torch.randint(0, T, (B,), generator=generator, device=dev).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
    if y is not None and cond_drop_prob > 0:
        drop = (torch.rand(B, generator=generator, device=dev) < cond_drop_prob).to(x0.device)
        y = torch.where(drop, torch.full_like(y, null_label), y)

    x_t = q_sample(x0, t, schedule, eps)
    if prediction == "epsilon":
        target = eps
    elif prediction == "x0":
        target = x0
    else:
        target = x0_eps_to_v(x0, eps, extract(schedule.alphas_cumprod, t, x0))

    out = model(x_t, t, y=y)
    per_sample = ((out - target) ** 2).flatten(1).mean(dim=1)  # (B,)
    if min_snr_gamma is not None:
        w = min_snr_weight(schedule.snr, min_snr_gamma, prediction)  # (T,) float64
        per_sample = per_sample * w[t.cpu()].to(device=x0.device, dtype=per_sample.dtype)
    return per_sample.mean()


def make_diffusion_loss(
    schedule: NoiseSchedule,
    *,
    prediction: str = "epsilon",
    conditional: bool = False,
    cond_drop_prob: float = 0.0,
    null_label: int | None = None,
    min_snr_gamma: float | None = None,
) -> Callable[[Callable[..., torch.Tensor], Sequence[torch.Tensor], torch.Generator], torch.Tensor]:
    """``loss_fn(model, batch, generator)`` for :func:`genlab.train.fit`.

    batch is ``(images,)`` or ``(images, labels)``; labels are used only when ``conditional``.
    """
    check_prediction(prediction)
    if conditional and cond_drop_prob > 0 and null_label is None:
        raise ConfigError("cond_drop_prob > 0 needs null_label=... (the label that means 'no condition')")

    def loss_fn(model, batch, generator):
        if conditional and len(batch) < 2:
            raise ConfigError("a conditional diffusion loss needs batches of (images, labels); got images only")
        return diffusion_loss(
            model,
            batch[0],
            generator,
            schedule,
            prediction=prediction,
            y=batch[1] if conditional else None,
            cond_drop_prob=cond_drop_prob,
            null_label=null_label,
            min_snr_gamma=min_snr_gamma,
        )

    return loss_fn
