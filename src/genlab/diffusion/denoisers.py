"""One denoiser interface for every sampler: x̂₀ = D(x_t, t), for any process and network.

    denoiser(x, t, cond=None) -> x̂₀          x: (B, ...) at time t of ``denoiser.process``
                                              t: a number (one time for the batch) or (B,)
                                              cond: labels (B,), a context tensor (B, ...), or None

This is EDM's D(x; σ) (Karras et al. 2022) written in the process's own coordinates,
x_t = α(t) x₀ + σ(t) ε, rather than in EDM's x/α with noise level σ/α. The reason: σ/α is
infinite where α = 0 — the first step of a zero-terminal-SNR schedule, t = 1 of rectified flow —
while x_t and (α, σ) stay finite there; for EDM's own process (α = 1, t = σ) the two coincide.
Samplers read α(t), σ(t) from ``denoiser.process`` and recover ε̂ = (x_t − α x̂₀)/σ when they need it.

Adapters:

- :class:`NetworkDenoiser` turns an ε-, x₀-, v- or velocity-network ``net(x_t, t_net, y=cond)``
  into a denoiser (the one place where predictions are converted).
- :class:`EDMPrecond` wraps a raw network F into EDM's preconditioned x₀-predictor
  D(x; σ) = c_skip x + c_out F(c_in x, c_noise) (Karras et al. 2022, Table 1).
- :class:`Conditioned` binds a condition, so a sampler can call ``denoiser(x, t)``.

Guidance and clipping are wrappers too (:mod:`.guidance`, :mod:`.thresholding`); every wrapper
has the same call signature and a ``process`` attribute, so they compose in any order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genlab.diffusion.parameterization import check_prediction, predict_x0_eps
from genlab.diffusion.process import Process, VEProcess, check_finite
from genlab.errors import ConfigError

__all__ = ["CallCounter", "Conditioned", "EDMPrecond", "NetworkDenoiser", "batch_times"]


def batch_times(t, x: torch.Tensor) -> torch.Tensor:
    """t (a number or (B,)) as a float64 CPU tensor of shape (B,)."""
    t = torch.as_tensor(t, dtype=torch.float64).cpu()
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def _broadcast(v: torch.Tensor, x: torch.Tensor):
    """A float64 (B,) coefficient → a Python float if constant, else (B, 1, …) in x's dtype/device."""
    if v.numel() and bool((v == v[0]).all()):
        return v[0].item()
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


class NetworkDenoiser:
    """x̂₀ from a network that predicts ``prediction`` ∈ {epsilon, x0, v, velocity} for ``process``.

    ``net(x_t, process.net_time(t), y=cond)`` is called once per denoiser call. Coefficients are
    float64 and enter the network's dtype as Python floats when the batch shares one time.
    """

    def __init__(self, net: Callable[..., torch.Tensor], process: Process, prediction: str = "epsilon"):
        self.net, self.process, self.prediction = net, process, check_prediction(prediction)
        if prediction == "velocity":
            process.d_alpha_sigma(0.5 * (process.t_max + process.t_clean))  # fails early for discrete schedules

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        tb = batch_times(t, x)  # (B,) float64
        a, s = self.process.alpha_sigma(tb)
        if self.prediction == "epsilon" and bool((a == 0).any()):
            raise ConfigError(
                f"an epsilon-predicting model cannot denoise at t={tb.max().item():g} where alpha = 0 (zero terminal SNR); "
                "train with prediction='v' or start the grid at a smaller t"
            )
        t_net = self.process.net_time(tb).to(x.device)
        out = self.net(x, t_net, y=cond)
        da = ds = None
        if self.prediction == "velocity":
            da, ds = (_broadcast(v, x) for v in self.process.d_alpha_sigma(tb))
        return predict_x0_eps(out, x, _broadcast(a, x), _broadcast(s, x), self.prediction, da, ds)[0]


class EDMPrecond(nn.Module):
    """EDM's preconditioning (Karras et al. 2022, Table 1, "Ours"): a raw network F → an x₀-predictor.

        D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ))

    ==========  ===================================  =========================
    symbol      value                                name
    ==========  ===================================  =========================
    σ_data      std of the data (0.5 for [−1, 1])    sigma_data
    c_skip      σ_data² / (σ² + σ_data²)             c_skip
    c_out       σ σ_data / √(σ² + σ_data²)           c_out
    c_in        1 / √(σ² + σ_data²)                  c_in
    c_noise     ¼ ln σ  (·1000 here: the U-Net's     c_noise
                time embedding expects ~0..1000)
    ==========  ===================================  =========================

    ``forward(x, sigma, y=None)`` with sigma (B,): it behaves as an ``"x0"`` network for
    :class:`VEProcess`, so train it with target x₀ and EDM's weighting λ(σ) = 1/c_out² and sample
    it with ``NetworkDenoiser(EDMPrecond(F), VEProcess(), "x0")``.
    """

    process_class = VEProcess

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.net = net
        self.sigma_data = check_finite("sigma_data", sigma_data, low=0.0, strict_low=True)

    def coefficients(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in, c_noise) for σ (any shape), in σ's dtype."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        c_noise = 1000.0 * 0.25 * sigma.clamp(min=1e-20).log()
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, y=None) -> torch.Tensor:
        sigma = sigma.to(device=x.device, dtype=x.dtype).reshape(-1)  # (B,)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        view = (-1,) + (1,) * (x.ndim - 1)
        f = self.net(c_in.view(view) * x, c_noise, y=y)
        return c_skip.view(view) * x + c_out.view(view) * f


class PassesVariance:
    """Mixin of wrappers around ``self.denoiser``: they have ``x0_and_fraction`` exactly when the
    wrapped denoiser has a learned variance (:mod:`.learned_variance`), via their ``_with_variance``."""

    def __getattr__(self, name):
        if name == "x0_and_fraction" and hasattr(self.__dict__.get("denoiser"), name):
            return self._with_variance
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class Conditioned(PassesVariance):
    """``denoiser`` with its condition bound: ``Conditioned(d, y)(x, t) == d(x, t, y)``.

    ``cond`` is whatever the network takes — int64 labels (B,), a context tensor (B, L, D)
    for cross-attention — or None.
    """

    def __init__(self, denoiser, cond):
        self.denoiser, self.cond, self.process = denoiser, cond, denoiser.process

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        if cond is not None:
            raise ConfigError("this denoiser's condition is already bound (Conditioned); pass cond only once")
        return self.denoiser(x, t, self.cond)

    def _with_variance(self, x: torch.Tensor, t, cond=None):
        return self.denoiser.x0_and_fraction(x, t, self.cond)


class CallCounter(PassesVariance):
    """``denoiser`` that counts its calls: the number of function evaluations (NFE) of a sampler.

    ``calls`` counts denoiser calls; guidance that batches two network passes into one call
    counts once (``network_passes`` = calls × passes is the caller's to compute).
    """

    def __init__(self, denoiser):
        self.denoiser, self.process, self.calls = denoiser, denoiser.process, 0

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        self.calls += 1
        return self.denoiser(x, t, cond)

    def _with_variance(self, x: torch.Tensor, t, cond=None):
        self.calls += 1
        return self.denoiser.x0_and_fraction(x, t, cond)
