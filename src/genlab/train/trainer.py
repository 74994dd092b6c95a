"""``fit``: the simple path — one model, one loss — built on :func:`genlab.train.engine.train`.

It gets a model, a loss function ``loss_fn(model, batch, generator) -> scalar`` and in-memory
tensors, and does the rest: AdamW, warm-up + cosine learning rate, gradient clipping, an EMA of
the weights, a progress bar, periodic samples, crash-safe checkpoints, an exact resume, and a
guard against NaN/inf losses and gradients (see :mod:`genlab.train.engine` for the guarantees).

Written with the engine, ``fit`` is a one-line step function::

    state = TrainState(models={"model": model}, optimizers={"model": AdamW(...)}, emas={"model": EMA(...)})
    train(state, lambda ctx, batch: {"loss": ctx.optimize("model", loss_fn(model, batch, ctx.generator))}, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from genlab.device import resolve_device
from genlab.train.ema import EMA
from genlab.train.engine import RunExistsError, TrainConfig, TrainingDivergedError, TrainState, train

__all__ = ["LossFn", "RunExistsError", "TrainConfig", "TrainResult", "TrainingDivergedError", "fit"]

LossFn = Callable[[nn.Module, tuple, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    model: nn.Module  # the trained weights (train mode)
    ema: nn.Module | None  # the EMA copy (eval mode), or None
    losses: list[float] = field(default_factory=list)  # one loss per step, resumed history included
    step: int = 0  # steps completed
    out_dir: Path | None = None
    checkpoint: Path | None = None  # the version folder of the last checkpoint (None without out_dir)

    @property
    def best_model(self) -> nn.Module:
        """The weights to sample or evaluate with: EMA when kept, else the raw model."""
        return self.ema if self.ema is not None else self.model


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[torch.Tensor],
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    sample_fn: Callable[[nn.Module, int], None] | None = None,
    metadata: dict | None = None,
    progress: bool = True,
    identity: dict | None = None,
    overwrite: bool = False,
    frozen: dict[str, nn.Module] | None = None,
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn`` over ``data`` and return a :class:`TrainResult`.

    ``data`` is a tuple of tensors sharing their first dimension, e.g. ``(images, labels)``;
    each step passes a batch tuple of the same structure to ``loss_fn``. With ``out_dir`` a
    checkpoint is written every ``config.ckpt_every`` steps and at the end; ``resume=True``
    continues from ``out_dir``'s latest checkpoint, ``overwrite=True`` replaces a run already
    there (without either, an existing run is refused). ``identity`` (JSON-able) must be equal
    to resume; ``metadata`` (JSON-able) is stored for whoever loads the model later.
    ``sample_fn(model, step)`` is called every ``config.sample_every`` steps with the EMA model
    (or the model) in eval mode. ``frozen`` models (by name, e.g. a latent diffusion model's
    autoencoder) are not trained but saved in every checkpoint with the model, so that it is
    self-contained; ``loss_fn`` does not see them.
    """
    model.to(resolve_device(config.device)).train()
    frozen = frozen or {}
    if "model" in frozen:
        raise ValueError("a frozen model cannot be named 'model' (that is the trained one)")
    state = TrainState(
        models={"model": model, **{name: m.eval().requires_grad_(False) for name, m in frozen.items()}},
        optimizers={"model": torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)},
        emas={"model": EMA(model, config.ema_decay)} if config.ema_decay else {},
    )

    def step_fn(ctx, batch):
        return {"loss": ctx.optimize("model", loss_fn(model, batch, ctx.generator))}

    def sample(state: TrainState) -> None:
        sample_fn(state.emas["model"].shadow if state.emas else model, state.step)

    train(
        state, step_fn, data, config, out_dir=out_dir, resume=resume, overwrite=overwrite, identity=identity,
        metadata=metadata, sample_fn=sample if sample_fn is not None else None, progress=progress,
    )  # fmt: skip
    ema = state.emas["model"].shadow if state.emas else None
    return TrainResult(model=model, ema=ema, losses=state.history.get("loss", []), step=state.step,
                       out_dir=Path(out_dir) if out_dir is not None else None, checkpoint=state.checkpoint)  # fmt: skip
