"""Learned reverse variances and the hybrid loss (Nichol & Dhariwal 2021, "Improved DDPM", §3.1).

The network outputs 2C channels for C data channels: the usual prediction (ε, x₀ or v) and a raw
value r per element, read as the fraction v = (r + 1)/2 of a log-space interpolation

    log Σ_θ(x_t, t) = v log β_t + (1 − v) log β̃_t           (their eq. 15; diffusers' "learned_range")

between the two fixed choices of Ho et al. — on a sub-grid t → s, β_t and β̃_t are those of the
step (β_{t|s} = σ_t² − α_{t|s}² σ_s², β̃_{t|s}), which is why a learned variance helps most when
sampling in few steps. v is not clamped (values slightly outside [0, 1] extrapolate), as in both
reference implementations.

L_simple carries no signal about Σ_θ, so the variance is trained with the bound:

    L_hybrid = L_simple + λ L_vlb,   λ = 0.001,   L_vlb = Σ_t L_t ≈ T · L_t at one random t

with L_t (:func:`~genlab.diffusion.vlb.vlb_term`, here in bits per dimension) computed from a
stop-gradient copy of the mean prediction, so that L_vlb trains only the variance and L_simple
alone trains the mean.

==================  ======================================  ===================
symbol              meaning                                 name
==================  ======================================  ===================
r                   the network's extra output per element  ``raw``
v = (r + 1)/2       interpolation fraction                  ``fraction``
λ                   weight of the bound                     ``vlb_weight``
==================  ======================================  ===================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from genlab.diffusion.denoisers import NetworkDenoiser
from genlab.diffusion.parameterization import check_prediction, predict_x0_eps, target_from_x0_eps
from genlab.diffusion.schedules import NoiseSchedule
from genlab.diffusion.vlb import model_log_variance, quantize, vlb_term
from genlab.errors import ConfigError

__all__ = ["HybridLoss", "LearnedVarianceDenoiser", "split_output"]


def split_output(out: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, fraction v) from a network output of 2·``channels`` channels (dim 1)."""
    if out.shape[1] != 2 * channels:
        raise ConfigError(
            f"a learned-variance model outputs 2 × {channels} channels (prediction and variance), this one {out.shape[1]}: "
            "build the network with out_channels = 2 × in_channels"
        )
    pred, raw = out.split(channels, dim=1)
    return pred, (raw + 1) / 2


class LearnedVarianceDenoiser:
    """The denoiser of a network with a learned variance: x̂₀ as :class:`NetworkDenoiser`, plus v.

    ``denoiser(x, t)`` returns x̂₀ alone, so every sampler runs it (the variance is then unused);
    ``x0_and_fraction(x, t)`` returns (x̂₀, v) from the same single network call, which the DDPM
    sampler (``variance="learned"``) and :func:`~genlab.diffusion.vlb.variational_bound` use.
    """

    def __init__(self, net: Callable[..., torch.Tensor], process, prediction: str = "epsilon"):
        self.net, self.process = net, process
        self._fraction: torch.Tensor | None = None
        self._mean = NetworkDenoiser(self._prediction_only, process, prediction)

    def _prediction_only(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        pred, self._fraction = split_output(self.net(x, t, y=y), x.shape[1])
        return pred

    def x0_and_fraction(self, x: torch.Tensor, t, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self._mean(x, t, cond)
        frac, self._fraction = self._fraction, None
        return x0, frac

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_and_fraction(x, t, cond)[0]


@dataclass
class HybridLoss:
    """``loss_fn(model, batch, generator)`` for :func:`genlab.train.fit`: L_simple + λ · T · L_t.

    Random draws, in this order, on ``generator``'s device: t ~ U{0..T−1} (B,), ε ~ N(0, I). The
    data is quantised to 8 bits for the decoder term (MNIST-family data already is). Per sample:
    mean_dims (pred − target)² + λ T L_t / (D ln 2), L_t from the detached mean; averaged over the batch.
    """

    process: NoiseSchedule
    prediction: str = "epsilon"
    vlb_weight: float = 0.001  # λ

    def __post_init__(self):
        check_prediction(self.prediction)
        if not isinstance(self.process, NoiseSchedule):
            raise ConfigError("the hybrid loss needs a discrete schedule (NoiseSchedule): its bound is over T steps")
        if self.prediction == "velocity":
            raise ConfigError("the hybrid loss is for epsilon, x0 or v prediction on a discrete schedule")

    def __call__(self, model, batch: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x0 = quantize(batch[0])
        B, T, dev = x0.shape[0], self.process.num_timesteps, generator.device
        t = torch.randint(0, T, (B,), generator=generator, device=dev).cpu()
        eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
        view = (-1,) + (1,) * (x0.ndim - 1)
        a, s = (v.to(device=x0.device, dtype=x0.dtype).view(view) for v in self.process.alpha_sigma(t))
        x_t = a * x0 + s * eps
        pred, frac = split_output(model(x_t, self.process.net_time(t).to(x0.device), y=None), x0.shape[1])
        simple = ((pred - target_from_x0_eps(x0, eps, a, s, self.prediction)) ** 2).flatten(1).mean(dim=1)
        x0_hat = predict_x0_eps(pred.detach(), x_t, a, s, self.prediction)[0]  # stop-gradient: L_vlb trains Σ only
        log_var = model_log_variance(self.process, t, "learned", frac)
        bits = vlb_term(self.process, x0, x_t, t, x0_hat, log_var) / (x0[0].numel() * math.log(2.0))
        return (simple + self.vlb_weight * T * bits).mean()

    def config(self) -> dict:
        return {"process": self.process.kind, "prediction": self.prediction, "loss": "hybrid", "vlb_weight": self.vlb_weight}
