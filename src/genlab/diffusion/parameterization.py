"""What the network predicts: ε, x₀ or v — and exact conversions between them.

Given x_t and ᾱ = ᾱ_t, the three targets carry the same information:

    x_t = √ᾱ x₀ + √(1-ᾱ) ε                      (forward process)
    v   = √ᾱ ε − √(1-ᾱ) x₀                      (Salimans & Ho 2022, "v-prediction")

and, solving these two linear equations,

    x₀ = (x_t − √(1-ᾱ) ε) / √ᾱ          ε = (x_t − √ᾱ x₀) / √(1-ᾱ)
    x₀ = √ᾱ x_t − √(1-ᾱ) v              ε = √(1-ᾱ) x_t + √ᾱ v
    v  = (√ᾱ x_t − x₀) / √(1-ᾱ)         v = (ε − √(1-ᾱ) x_t) / √ᾱ

Every map is affine in the prediction for a fixed x_t (so a weighted sum of predictions whose
weights add up to 1 — classifier-free guidance — commutes with conversion). Conversions that
divide by √ᾱ break at ᾱ = 0 (zero terminal SNR): from v, both x₀ and ε stay finite.

Names: ``prediction`` is ``"epsilon"`` (diffusers: "epsilon"), ``"x0"`` (diffusers: "sample")
or ``"v"`` (diffusers: "v_prediction"). ``alpha_bar`` is ᾱ_t as a float or a tensor that
broadcasts against x_t, e.g. shape (B, 1, 1, 1).
"""

from __future__ import annotations

import torch

from genlab.errors import ConfigError

__all__ = [
    "PREDICTIONS",
    "check_prediction",
    "convert",
    "eps_to_v",
    "eps_to_x0",
    "predict_x0_eps",
    "v_to_eps",
    "v_to_x0",
    "x0_eps_to_v",
    "x0_to_eps",
    "x0_to_v",
]

PREDICTIONS = ("epsilon", "x0", "v")

Alpha = torch.Tensor | float


def check_prediction(prediction: str) -> str:
    """Return ``prediction`` if it is one of :data:`PREDICTIONS`, else raise ConfigError."""
    if prediction not in PREDICTIONS:
        raise ConfigError(
            f"unknown prediction type {prediction!r}; choose one of {PREDICTIONS} "
            "(diffusers' 'sample' is 'x0', 'v_prediction' is 'v')"
        )
    return prediction


def _roots(alpha_bar: Alpha) -> tuple[Alpha, Alpha]:
    """(√ᾱ, √(1-ᾱ)) for a float or a tensor."""
    if isinstance(alpha_bar, torch.Tensor):
        return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return alpha_bar**0.5, (1 - alpha_bar) ** 0.5


def eps_to_x0(eps: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """x₀ = (x_t − √(1-ᾱ) ε) / √ᾱ   (Ho et al. 2020, eq. 15)."""
    a, s = _roots(alpha_bar)
    return (x_t - s * eps) / a


def x0_to_eps(x0: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """ε = (x_t − √ᾱ x₀) / √(1-ᾱ)."""
    a, s = _roots(alpha_bar)
    return (x_t - a * x0) / s


def v_to_x0(v: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """x₀ = √ᾱ x_t − √(1-ᾱ) v."""
    a, s = _roots(alpha_bar)
    return a * x_t - s * v


def v_to_eps(v: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """ε = √(1-ᾱ) x_t + √ᾱ v."""
    a, s = _roots(alpha_bar)
    return s * x_t + a * v


def x0_eps_to_v(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """v = √ᾱ ε − √(1-ᾱ) x₀ (the training target; needs no x_t)."""
    a, s = _roots(alpha_bar)
    return a * eps - s * x0


def x0_to_v(x0: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """v = (√ᾱ x_t − x₀) / √(1-ᾱ)."""
    a, s = _roots(alpha_bar)
    return (a * x_t - x0) / s


def eps_to_v(eps: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """v = (ε − √(1-ᾱ) x_t) / √ᾱ."""
    a, s = _roots(alpha_bar)
    return (eps - s * x_t) / a


_CONVERSIONS = {
    ("epsilon", "x0"): eps_to_x0,
    ("epsilon", "v"): eps_to_v,
    ("x0", "epsilon"): x0_to_eps,
    ("x0", "v"): x0_to_v,
    ("v", "x0"): v_to_x0,
    ("v", "epsilon"): v_to_eps,
}


def convert(pred: torch.Tensor, from_: str, to: str, x_t: torch.Tensor, alpha_bar: Alpha) -> torch.Tensor:
    """Turn a prediction of kind ``from_`` into kind ``to`` (both in :data:`PREDICTIONS`)."""
    check_prediction(from_)
    check_prediction(to)
    if from_ == to:
        return pred
    return _CONVERSIONS[(from_, to)](pred, x_t, alpha_bar)


def predict_x0_eps(
    model_out: torch.Tensor, x_t: torch.Tensor, alpha_bar: Alpha, prediction: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both (x̂₀, ε̂) from a network output of kind ``prediction``; the output itself is kept as is.

    This is the one adapter that lets every sampler speak to ε-, x₀- and v-networks alike.
    """
    check_prediction(prediction)
    if prediction == "epsilon":
        return eps_to_x0(model_out, x_t, alpha_bar), model_out
    if prediction == "x0":
        return model_out, x0_to_eps(model_out, x_t, alpha_bar)
    return v_to_x0(model_out, x_t, alpha_bar), v_to_eps(model_out, x_t, alpha_bar)
