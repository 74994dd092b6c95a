"""Class conditioning and classifier-free guidance (Ho & Salimans 2022).

The model interface everywhere in genlab.diffusion is

    model(x_t, t, y=None) -> Tensor          x_t: (B, ...), t: int64 (B,), y: int64 (B,) or None

and the output is ε̂, x̂₀ or v̂ depending on how the network was trained. Classifier-free
guidance mixes a conditional and an unconditional prediction (y replaced by the "null" label
that the network saw under condition dropout during training):

    ε̂ = ε_u + w (ε_c − ε_u)          w ↔ guidance_scale, ε_c ↔ cond, ε_u ↔ uncond

(Ho & Salimans 2022, eq. 6, written with w = 1 + their w). w = 1 is the plain conditional
model, w = 0 the unconditional one, w > 1 pushes samples towards the class.

The rule is stated in ε-space. Each conversion x₀ ↔ ε ↔ v is affine in the prediction for a
fixed x_t, and the weights (1 − w, w) add up to one, so mixing the raw outputs and converting
afterwards gives exactly the ε-space result for every prediction type — without dividing by
√ᾱ_t, which is 0 at the last step of a zero-terminal-SNR schedule.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genlab.errors import ConfigError

__all__ = ["cfg_combine", "check_guidance", "guided_model_output", "as_labels"]

Model = Callable[..., torch.Tensor]


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """uncond + w · (cond − uncond)."""
    return uncond + guidance_scale * (cond - uncond)


def check_guidance(y: torch.Tensor | int | None, guidance_scale: float, null_label: int | None) -> None:
    """Raise ConfigError, with the fix, for a guidance setting that cannot work."""
    if guidance_scale == 1.0:
        return
    if y is None:
        raise ConfigError(
            f"guidance_scale={guidance_scale} needs class labels: pass y=... or use guidance_scale=1.0"
        )
    if null_label is None:
        raise ConfigError(
            f"guidance_scale={guidance_scale} needs the unconditional label: pass null_label=... "
            "(the label used for condition dropout in training), or use guidance_scale=1.0"
        )


def as_labels(y: torch.Tensor | int | None, batch_size: int, device: torch.device) -> torch.Tensor | None:
    """Labels as int64 (B,) on ``device``; an int means "this class for every sample"."""
    if y is None:
        return None
    if isinstance(y, int):
        return torch.full((batch_size,), y, dtype=torch.long, device=device)
    y = torch.as_tensor(y, dtype=torch.long).to(device)
    if y.shape != (batch_size,):
        raise ConfigError(f"labels y must have shape ({batch_size},), got {tuple(y.shape)}")
    return y


def guided_model_output(
    model: Model,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    guidance_scale: float = 1.0,
    null_label: int | None = None,
) -> torch.Tensor:
    """The model's output at (x_t, t), guided when ``guidance_scale != 1``.

    x_t: (B, ...); t: int64 (B,); y: int64 (B,) or None. With guidance, the conditional and the
    unconditional passes run as ONE forward call on a batch of 2B. The result has the model's own
    parameterisation (ε, x₀ or v) and x_t's shape.
    """
    if guidance_scale == 1.0 or y is None:
        check_guidance(y, guidance_scale, null_label)
        return model(x_t, t, y=y)
    check_guidance(y, guidance_scale, null_label)
    y_null = torch.full_like(y, null_label)
    out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), y=torch.cat([y, y_null]))  # (2B, ...)
    cond, uncond = out.chunk(2)  # (B, ...) each
    return cfg_combine(cond, uncond, guidance_scale)
