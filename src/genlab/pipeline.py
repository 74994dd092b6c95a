"""Train and sample a diffusion model on a named data set: the glue the CLI, the demo and the
benchmarks share.

Everything here composes the pieces of the course, nothing is new: a data set from
:mod:`genlab.data`, a network from :mod:`genlab.nn`, a schedule and a loss from
:mod:`genlab.diffusion`, the trainer from :mod:`genlab.train`. What a checkpoint must remember to
be sampled later (schedule, T, prediction target, data shape, classes) is a
:class:`DiffusionSpec`, stored as JSON in the checkpoint's metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from genlab.diffusion import ddim_sample, ddpm_sample, make_diffusion_loss, make_schedule, timesteps_grid
from genlab.errors import CheckpointError, ConfigError
from genlab.nn.toy_denoiser import ToyDenoiser, ToyDenoiserConfig
from genlab.nn.unet import UNet, UNetConfig
from genlab.train import TrainConfig, TrainResult, fit, load_model

DATASETS = ("digits", "mnist", "fashion_mnist", "toy2d")
SAMPLERS = ("ddpm", "ddim")


@dataclass
class DiffusionSpec:
    """The diffusion setup a model was trained with (saved as ``metadata["diffusion"]``)."""

    dataset: str = "digits"  # one of DATASETS
    shape: tuple[int, ...] = (1, 8, 8)  # one sample: (C, H, W) for images, (dim,) for toy data
    num_classes: int = 0  # > 0: class-conditional, null label = num_classes
    schedule: str = "linear"  # β schedule name (genlab.diffusion.SCHEDULES)
    T: int = 1000  # diffusion steps
    prediction: str = "epsilon"  # what the network predicts: "epsilon", "x0" or "v"
    toy: str | None = None  # the toy 2-D distribution, for dataset="toy2d"

    @property
    def null_label(self) -> int | None:
        return self.num_classes if self.num_classes else None

    def schedule_data(self):
        return make_schedule(self.schedule, self.T)


def default_unet_config(image_size: int, in_channels: int = 1, num_classes: int = 0, **overrides) -> UNetConfig:
    """The course's default U-Net for a given image size (about 0.9 M parameters at 28×28).

    8×8 digits: two levels (8 → 4); 16/28/32: three levels with attention at the lowest one.
    """
    if image_size <= 8:
        base = dict(base_channels=32, channel_mults=(1, 2), attention_resolutions=(image_size // 2,), num_res_blocks=1)
    else:
        base = dict(base_channels=32, channel_mults=(1, 2, 2), attention_resolutions=(image_size // 4,), num_res_blocks=1)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return UNetConfig(image_size=image_size, in_channels=in_channels, num_classes=num_classes, **base)


def load_training_data(dataset: str, *, split: str = "train", toy: str = "moons", n_toy: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(images, labels)`` for image data sets, ``(points,)`` for toy2d."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown data set {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if dataset == "toy2d":
        from genlab.data import toy2d

        return (torch.from_numpy(toy2d(toy, n_toy, seed=seed)),)
    from genlab.data import load_image_dataset

    if dataset == "digits":
        from genlab.data import load_digits

        return load_digits(None if split == "all" else split)
    return load_image_dataset(dataset, split=split)


def build_model(spec: DiffusionSpec, **unet_overrides) -> nn.Module:
    if spec.dataset == "toy2d":
        return ToyDenoiser(ToyDenoiserConfig(dim=spec.shape[0], num_classes=spec.num_classes))
    c, h, w = spec.shape
    return UNet(default_unet_config(h, c, spec.num_classes, **unet_overrides))


@dataclass
class TrainOptions:
    steps: int = 2000  # optimiser steps
    batch_size: int = 128
    lr: float = 2e-3
    ema_decay: float = 0.995  # short CPU runs: a fast EMA
    seed: int = 0
    cond_drop_prob: float = 0.1  # classifier-free guidance: share of labels replaced by the null label
    min_snr_gamma: float | None = None  # Min-SNR-γ loss weighting (None: plain L_simple)
    ckpt_every: int = 500
    sample_every: int = 0
    unet: dict = field(default_factory=dict)  # UNetConfig overrides (base_channels, channel_mults, …)


def train_diffusion(
    spec: DiffusionSpec,
    data: tuple[torch.Tensor, ...],
    options: TrainOptions,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    sample_fn: Callable[[nn.Module, int], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Build the default network for ``spec`` and train it on ``data`` with L_simple."""
    torch.manual_seed(options.seed)  # the network's initial weights
    model = build_model(spec, **options.unet)
    schedule = spec.schedule_data()
    conditional = spec.num_classes > 0
    loss_fn = make_diffusion_loss(
        schedule, prediction=spec.prediction, conditional=conditional,
        cond_drop_prob=options.cond_drop_prob if conditional else 0.0,
        null_label=spec.null_label, min_snr_gamma=options.min_snr_gamma,
    )  # fmt: skip
    config = TrainConfig(
        steps=options.steps, batch_size=options.batch_size, lr=options.lr, ema_decay=options.ema_decay,
        seed=options.seed, ckpt_every=options.ckpt_every, sample_every=options.sample_every,
        warmup_steps=min(100, options.steps // 10),
    )  # fmt: skip
    metadata = {"diffusion": dataclasses.asdict(spec), "train_options": dataclasses.asdict(options)}
    return fit(model, loss_fn, data, config, out_dir=out_dir, resume=resume, sample_fn=sample_fn, metadata=metadata, progress=progress)


def load_diffusion(path: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu") -> tuple[nn.Module, DiffusionSpec]:
    """The model (EMA weights by default, eval mode) and its :class:`DiffusionSpec`."""
    model, cfg = load_model(path, use_ema=use_ema, device=device)
    raw = cfg.get("metadata", {}).get("diffusion")
    if not raw:
        raise CheckpointError(f"checkpoint at {path} holds a {type(model).__name__}, not a diffusion model (no diffusion metadata)")
    fields = {f.name for f in dataclasses.fields(DiffusionSpec)}
    spec = DiffusionSpec(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in fields})
    return model, spec


def generate(
    model: nn.Module,
    spec: DiffusionSpec,
    n: int,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    labels: torch.Tensor | int | None = None,
    guidance: float = 1.0,
    seed: int = 0,
    return_trajectory: bool = False,
    progress: bool = False,
):
    """Draw ``n`` samples. DDIM on a ``trailing`` grid of ``steps`` timesteps, or DDPM (ancestral)
    on the same grid (``steps = T`` gives the original T-step sampler).

    ``labels``: int64 (n,) or one int, for class-conditional models; ``guidance`` w is the
    classifier-free guidance scale (1 = no guidance). Noise comes from a CPU generator seeded
    with ``seed``: the same seed gives the same samples on any device.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if n <= 0:
        raise ConfigError(f"the number of samples must be positive, got {n}")
    if not 0 < steps <= spec.T:
        raise ConfigError(f"sampling steps must be in 1..{spec.T} (the model's T), got {steps}")
    if guidance != 1.0 and not spec.num_classes:
        raise ConfigError("guidance needs a class-conditional model; this one was trained without --conditional (drop --guidance)")
    if labels is not None and not spec.num_classes:
        raise ConfigError("a class was given but this model is unconditional; train with --conditional to choose classes")
    if isinstance(labels, int):
        if not 0 <= labels < spec.num_classes:
            raise ConfigError(f"class {labels} is out of range: this model knows classes 0..{spec.num_classes - 1}")
        labels = torch.full((n,), labels, dtype=torch.long)
    schedule = spec.schedule_data()
    grid = timesteps_grid(spec.T, steps, "trailing")
    kwargs = dict(
        prediction=spec.prediction, y=labels, guidance_scale=guidance, null_label=spec.null_label,
        clip_x0=spec.dataset != "toy2d", generator=torch.Generator().manual_seed(seed),
        return_trajectory=return_trajectory, progress=progress,
    )  # fmt: skip
    shape = (n, *spec.shape)
    if sampler == "ddim":
        return ddim_sample(model, shape, schedule, grid, eta=eta, **kwargs)
    return ddpm_sample(model, shape, schedule, timesteps=None if steps == spec.T else grid, **kwargs)


def save_samples(samples: torch.Tensor, spec: DiffusionSpec, path: str | Path, nrow: int | None = None) -> Path:
    """Images → a PNG grid; 2-D points → a PNG scatter plot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(spec.shape) == 3:
        from genlab.viz import save_grid

        return save_grid(samples, path, nrow=nrow, scale=4 if spec.shape[-1] >= 16 else 6)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pts = samples.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6)
    ax.set_aspect("equal")
    ax.set_title(f"{len(pts)} samples ({spec.toy})")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
