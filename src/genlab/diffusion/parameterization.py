"""What the network predicts — ε, x₀, v or the velocity — and exact conversions between them.

For any process x_t = α x₀ + σ ε (see :mod:`.process`), at a fixed time t:

    ε         the noise                              ("epsilon"; diffusers: "epsilon")
    x₀        the clean data                         ("x0";      diffusers: "sample")
    v         α ε − σ x₀   (Salimans & Ho 2022)      ("v";       diffusers: "v_prediction")
    u         dx_t/dt = α̇ x₀ + σ̇ ε  (flow matching)  ("velocity"; needs α̇ = dα/dt, σ̇ = dσ/dt)

Each is a linear function of (x₀, ε), so together with x_t any one gives back the other two:

    from ε:   x₀ = (x_t − σ ε) / α
    from v:   x₀ = (α x_t − σ v) / (α² + σ²)            ε = (σ x_t + α v) / (α² + σ²)
    from u:   x₀ = (σ̇ x_t − σ u) / (α σ̇ − σ α̇)          ε = (α u − α̇ x_t) / (α σ̇ − σ α̇)

(for a variance-preserving process α² + σ² = 1 and the v formulas reduce to the familiar
x₀ = α x_t − σ v, ε = σ x_t + α v). For a fixed x_t every map is affine in the prediction, so a
weighted sum of predictions whose weights add up to 1 — classifier-free guidance — commutes with
conversion. Dividing by α fails at α = 0 (zero terminal SNR, rectified flow at t = 1): from v or u,
x₀ and ε stay finite there.

``alpha``/``sigma`` (and ``d_alpha``/``d_sigma``) are floats or tensors that broadcast against x_t.
"""

from __future__ import annotations

import torch

from genlab.errors import ConfigError

__all__ = ["PREDICTIONS", "check_prediction", "convert", "predict_x0_eps", "target_from_x0_eps", "x0_error_factor"]

PREDICTIONS = ("epsilon", "x0", "v", "velocity")

Scalar = torch.Tensor | float


def check_prediction(prediction: str) -> str:
    """Return ``prediction`` if it is one of :data:`PREDICTIONS`, else raise ConfigError."""
    if prediction not in PREDICTIONS:
        raise ConfigError(
            f"unknown prediction type {prediction!r}; choose one of {PREDICTIONS} "
            "(diffusers' 'sample' is 'x0', 'v_prediction' is 'v')"
        )
    return prediction


def _need_derivatives(d_alpha, d_sigma) -> None:
    if d_alpha is None or d_sigma is None:
        raise ConfigError("velocity prediction needs dα/dt and dσ/dt: use a continuous process (e.g. RectifiedFlow)")


def predict_x0_eps(
    pred: torch.Tensor, x_t: torch.Tensor, alpha: Scalar, sigma: Scalar, prediction: str,
    d_alpha: Scalar | None = None, d_sigma: Scalar | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both (x̂₀, ε̂) from a prediction of kind ``prediction`` (module docstring)."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return (x_t - sigma * pred) / alpha, pred
    if prediction == "x0":
        return pred, (x_t - alpha * pred) / sigma
    if prediction == "v":
        norm = alpha**2 + sigma**2
        return (alpha * x_t - sigma * pred) / norm, (sigma * x_t + alpha * pred) / norm
    _need_derivatives(d_alpha, d_sigma)
    det = alpha * d_sigma - sigma * d_alpha
    return (d_sigma * x_t - sigma * pred) / det, (alpha * pred - d_alpha * x_t) / det


def target_from_x0_eps(
    x0: torch.Tensor, eps: torch.Tensor, alpha: Scalar, sigma: Scalar, prediction: str,
    d_alpha: Scalar | None = None, d_sigma: Scalar | None = None,
) -> torch.Tensor:
    """The training target of kind ``prediction`` for data x₀ and noise ε (needs no x_t)."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return alpha * eps - sigma * x0
    _need_derivatives(d_alpha, d_sigma)
    return d_alpha * x0 + d_sigma * eps


def convert(
    pred: torch.Tensor, from_: str, to: str, x_t: torch.Tensor, alpha: Scalar, sigma: Scalar,
    d_alpha: Scalar | None = None, d_sigma: Scalar | None = None,
) -> torch.Tensor:
    """Turn a prediction of kind ``from_`` into kind ``to`` (both in :data:`PREDICTIONS`)."""
    check_prediction(from_)
    check_prediction(to)
    if from_ == to:
        return pred
    x0, eps = predict_x0_eps(pred, x_t, alpha, sigma, from_, d_alpha, d_sigma)
    return target_from_x0_eps(x0, eps, alpha, sigma, to, d_alpha, d_sigma)


def x0_error_factor(prediction: str, alpha: Scalar, sigma: Scalar, d_alpha: Scalar | None = None, d_sigma: Scalar | None = None):
    """f with ‖pred − target‖² = f · ‖x̂₀ − x₀‖² at a fixed x_t (module docstring's maps):

        ε: α²/σ² = SNR     x₀: 1     v: (α² + σ²)² / σ²     u: ((α σ̇ − σ α̇) / σ)²

    (VP: v gives SNR + 1.) Min-SNR-γ weighting divides by it (:mod:`.losses`).
    """
    check_prediction(prediction)
    if prediction == "epsilon":
        return alpha**2 / sigma**2
    if prediction == "x0":
        return alpha * 0 + 1.0
    if prediction == "v":
        return (alpha**2 + sigma**2) ** 2 / sigma**2
    _need_derivatives(d_alpha, d_sigma)
    return ((alpha * d_sigma - sigma * d_alpha) / sigma) ** 2
