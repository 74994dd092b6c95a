"""A small, general trainer.

It knows nothing about diffusion, VAEs or classifiers: it gets a model, a loss function
``loss_fn(model, batch, generator) -> scalar`` and in-memory tensors, and does the rest —
AdamW, warm-up + cosine learning rate, gradient clipping, an EMA of the weights, a progress
bar, periodic samples, atomic checkpoints, an exact resume, and a guard against NaN losses.

Determinism: the batch order is a pure function of ``(seed, step)``, and every random draw of
the loss comes from one CPU ``torch.Generator`` whose state is saved in each checkpoint (the
global torch RNG, used by dropout, is seeded inside a fork and saved too). So a run resumed
from a checkpoint continues exactly as the uninterrupted run would have on the same device.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.device import resolve_device
from genlab.errors import CheckpointError, ConfigError, GenlabError
from genlab.train.checkpoint import (
    CHECKPOINT_DIR,
    load_state_into,
    load_tensors,
    model_spec,
    read_config,
    save_checkpoint,
)
from genlab.train.ema import EMA
from genlab.train.lr import warmup_cosine_lr

LossFn = Callable[[nn.Module, tuple, torch.Generator], torch.Tensor]


class TrainingDivergedError(GenlabError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    steps: int = 1000  # optimiser steps in total (a resumed run counts from its checkpoint)
    batch_size: int = 128  # examples per step; capped at the data set size
    lr: float = 1e-3  # peak learning rate after warm-up (AdamW)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup_steps: int = 50  # linear warm-up from 0 to lr
    lr_min_ratio: float = 0.1  # cosine decay ends at lr * lr_min_ratio
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    ema_decay: float | None = None  # e.g. 0.999 keeps an EMA of the weights; None disables it
    seed: int = 0  # batch order, loss randomness and dropout all follow from it
    ckpt_every: int = 0  # write a checkpoint every N steps (0: only at the end); ignored without out_dir
    sample_every: int = 0  # call sample_fn every N steps (0: never)
    log_every: int = 10  # progress-bar refresh interval in steps
    device: str = "auto"  # "auto" → CUDA, then MPS, then CPU

    def __post_init__(self):
        if self.steps <= 0:
            raise ConfigError(f"steps must be positive, got {self.steps}")
        if self.batch_size <= 0:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")


# Fields that must match for a resume to continue the same run. `steps` (and with it the length of
# the warm-up and of the cosine decay) may change: re-running the same command after an interruption
# continues exactly; asking for more steps continues on the longer schedule.
_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "lr_min_ratio", "grad_clip", "ema_decay", "seed")


@dataclass
class TrainResult:
    model: nn.Module  # the trained weights (train mode)
    ema: nn.Module | None  # the EMA copy (eval mode), or None
    losses: list[float] = field(default_factory=list)  # one loss per step, resumed history included
    step: int = 0  # steps completed
    out_dir: Path | None = None

    @property
    def best_model(self) -> nn.Module:
        """The weights to sample or evaluate with: EMA when kept, else the raw model."""
        return self.ema if self.ema is not None else self.model


class _BatchOrder:
    """Epoch-wise random permutations, each a pure function of (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[j * self.batch_size : (j + 1) * self.batch_size]


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta["scalars"].items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


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
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn`` over ``data`` and return a :class:`TrainResult`.

    ``data`` is a tuple of tensors sharing their first dimension, e.g. ``(images, labels)``;
    each step passes a batch tuple of the same structure to ``loss_fn``. With ``out_dir`` a
    checkpoint is written every ``config.ckpt_every`` steps and at the end; ``resume=True``
    continues from ``out_dir``'s checkpoint when there is one. ``metadata`` (JSON-able) is
    stored in the checkpoint for whoever loads the model later. ``sample_fn(model, step)`` is
    called every ``config.sample_every`` steps with the EMA model (or the model) in eval mode.
    """
    data = tuple(data)
    if not data or any(len(t) != len(data[0]) for t in data):
        raise ConfigError("data must be a non-empty tuple of tensors with the same first dimension")
    n = len(data[0])
    batch_size = min(config.batch_size, n)
    device = resolve_device(config.device)
    data = tuple(t.to(device) for t in data)
    model.to(device).train()
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume and out_dir is None:
        raise ConfigError("resume needs the output folder of the run to continue (out_dir)")

    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    loss_gen = torch.Generator().manual_seed(config.seed)
    order = _BatchOrder(n, batch_size, config.seed)
    train_config = dataclasses.asdict(config)
    losses: list[float] = []
    start = 0

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if resume and out_dir is not None and (out_dir / CHECKPOINT_DIR / "config.json").is_file():
            start, losses = _restore(out_dir / CHECKPOINT_DIR, model, opt, ema, loss_gen, config)

        def checkpoint(step: int) -> None:
            tensors, opt_meta = _optimizer_state(opt)
            tensors["rng.loss"] = loss_gen.get_state()
            tensors["rng.torch"] = torch.get_rng_state()
            save_checkpoint(
                out_dir, model, ema=ema.shadow if ema else None, step=step,
                metadata={**(metadata or {}), "train_config": train_config},
                state_tensors=tensors,
                state={"step": step, "losses": losses, "optimizer": opt_meta,
                       "ema_updates": ema.num_updates if ema else 0, "train_config": train_config},
            )

        bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
        smooth = None
        for step in range(start, config.steps):
            batch = tuple(t[order.indices(step).to(device)] for t in data)
            lr = warmup_cosine_lr(step, lr=config.lr, total_steps=config.steps,
                                  warmup_steps=config.warmup_steps, min_ratio=config.lr_min_ratio)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = loss_fn(model, batch, loss_gen)
            value = loss.item()
            if value != value or value in (float("inf"), float("-inf")):
                bar.close()
                where = f"the last good checkpoint is in {out_dir / CHECKPOINT_DIR}" if out_dir and (out_dir / CHECKPOINT_DIR).is_dir() else "no checkpoint was written"
                raise TrainingDivergedError(f"loss became {value} at step {step}; {where}. Lower the learning rate or keep gradient clipping on")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            if ema is not None:
                ema.update(model)
            losses.append(value)
            done = step + 1
            smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
            if done % config.log_every == 0 or done == config.steps:
                bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(done - bar.n)
            if out_dir is not None and config.ckpt_every and done % config.ckpt_every == 0 and done != config.steps:
                checkpoint(done)
            if sample_fn is not None and config.sample_every and done % config.sample_every == 0:
                _sample(sample_fn, ema.shadow if ema else model, done)
        bar.close()
        final_step = max(start, config.steps)
        if out_dir is not None:
            checkpoint(final_step)

    return TrainResult(model=model, ema=ema.shadow if ema else None, losses=losses, step=final_step, out_dir=out_dir)


def _sample(sample_fn, model: nn.Module, step: int) -> None:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        sample_fn(model, step)
    model.train(was_training)


def _restore(ckpt: Path, model, opt, ema, loss_gen, config: TrainConfig) -> tuple[int, list[float]]:
    cfg = read_config(ckpt)
    saved_spec, spec = cfg.get("model", {}), json.loads(json.dumps(model_spec(model)))  # tuples → lists, as saved
    if saved_spec != spec:
        raise CheckpointError(f"cannot resume from {ckpt}: it holds a different model ({saved_spec.get('class')} {saved_spec.get('config')}); use the same model options or a new output folder")
    try:
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot resume from {ckpt}: state.json is missing or corrupt ({e})") from None
    saved = state.get("train_config", {})
    now = dataclasses.asdict(config)
    diffs = [f"{k}={saved.get(k)!r} (now {now[k]!r})" for k in _RESUME_KEYS if saved.get(k) != now[k]]
    if diffs:
        raise CheckpointError(f"cannot resume from {ckpt}: it was trained with {', '.join(diffs)}; pass the same options or use a new output folder")
    load_state_into(model, ckpt / "model.safetensors")
    if ema is not None:
        load_state_into(ema.shadow, ckpt / "ema.safetensors")
        ema.num_updates = state["ema_updates"]
    tensors = load_tensors(ckpt / "state.safetensors")
    device = next(model.parameters()).device
    _load_optimizer_state(opt, {k: v.to(device) if k.startswith("optim.") and v.dim() > 0 else v for k, v in tensors.items()}, state["optimizer"])
    loss_gen.set_state(tensors["rng.loss"])
    torch.set_rng_state(tensors["rng.torch"])
    return int(state["step"]), list(state["losses"])
