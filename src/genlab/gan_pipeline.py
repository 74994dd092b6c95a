"""Train and sample the course's GANs on a named image data set: the glue the CLI and the
benchmarks share (the diffusion counterpart is :mod:`genlab.pipeline`).

Four recipes, each a generator, a discriminator, a loss and Adam's settings from its paper (scaled
to a CPU); :class:`GANSpec` (stored as ``metadata["gan"]``) says which one a checkpoint holds.

============  ======================  ==============================  ===================  =========================
model         generator               discriminator                   loss                 Adam (lr, β₁, β₂), n_critic
============  ======================  ==============================  ===================  =========================
``dcgan``     DCGAN                   DCGAN, batch norm               non-saturating       2e-4, 0.5, 0.999; 1
``wgan-gp``   DCGAN                   DCGAN, layer norm (no BN)       Wasserstein + 10·GP  1e-4, 0.0, 0.9;   5
``sngan``     DCGAN                   DCGAN, spectral norm            hinge                2e-4, 0.5, 0.999; 1
``stylegan``  StyleGAN-style          DCGAN, minibatch std            non-saturating + R1  2e-4, 0.0, 0.99;  1
============  ======================  ==============================  ===================  =========================

(Radford et al. 2016; Gulrajani et al. 2017, Algorithm 1; Miyato et al. 2018; Karras et al. 2020
for the β's and R1 with γ = 1, applied every step.) StyleGAN's critic is regularised by R1 rather
than by spectral normalisation: with spectral norm instead, the StyleGAN generator learned blobs
and noise textures on MNIST at the same budget (see BENCHMARKS.md, StyleGAN section). ``batch_size`` is the number of real images per critic update, so a WGAN-GP step
reads ``n_critic · batch_size`` images. GANs train at a constant learning rate, without gradient
clipping (the trainer's NaN guard stays on), with an EMA of the generator that sampling uses.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from genlab.diffusion.noise import SampleNoise
from genlab.errors import CheckpointError, ConfigError
from genlab.nn.gan import AdversarialStep, DCGANConfig, DCGANDiscriminator, DCGANGenerator, gan_state
from genlab.nn.stylegan import StyleGANConfig, StyleGenerator
from genlab.train import load_model
from genlab.train.checkpoint import read_config, resolve_checkpoint
from genlab.train.engine import TrainConfig, TrainState, train

GAN_KEY = "gan"  # metadata["gan"] of a GAN checkpoint
GAN_DATASETS = ("mnist", "fashion_mnist", "cifar10")  # 28×28 or 32×32 images


@dataclass(frozen=True)
class GANRecipe:
    generator: str  # "dcgan" or "stylegan"
    d_norm: str
    spectral_norm: bool
    loss: str
    n_critic: int
    gp_weight: float
    lr: float
    betas: tuple[float, float]
    r1_weight: float = 0.0  # γ of the R1 penalty γ/2 · E‖∇D(x_real)‖²


GAN_MODELS: dict[str, GANRecipe] = {
    "dcgan": GANRecipe("dcgan", "batch", False, "non_saturating", 1, 0.0, 2e-4, (0.5, 0.999)),
    "wgan-gp": GANRecipe("dcgan", "layer", False, "wasserstein", 5, 10.0, 1e-4, (0.0, 0.9)),
    "sngan": GANRecipe("dcgan", "none", True, "hinge", 1, 0.0, 2e-4, (0.5, 0.999)),
    "stylegan": GANRecipe("stylegan", "none", False, "non_saturating", 1, 0.0, 2e-4, (0.0, 0.99), r1_weight=1.0),
}


@dataclass
class GANSpec:
    """What a GAN checkpoint holds (``metadata["gan"]``): the data it imitates and the recipe."""

    dataset: str = "mnist"
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of one image
    model: str = "dcgan"  # a key of GAN_MODELS
    latent_dim: int = 64
    width: int = 32  # the networks' width (DCGANConfig.width / StyleGANConfig.width)

    def __post_init__(self):
        if self.model not in GAN_MODELS:
            raise ConfigError(f"unknown GAN model {self.model!r}; choose one of: {', '.join(GAN_MODELS)}")
        if len(self.shape) != 3 or self.shape[1] != self.shape[2] or self.shape[1] not in (28, 32):
            raise ConfigError(f"the GANs are built for square 28×28 or 32×32 images, not {tuple(self.shape)}: "
                              f"use one of {', '.join(GAN_DATASETS)}")  # fmt: skip

    @property
    def recipe(self) -> GANRecipe:
        return GAN_MODELS[self.model]

    @classmethod
    def from_json(cls, raw, where: str = "checkpoint") -> GANSpec:
        if not isinstance(raw, dict):
            raise CheckpointError(f"{where}: the GAN metadata is not a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in fields}
            return cls(**values)
        except (ConfigError, TypeError) as e:
            raise CheckpointError(f"{where}: GAN settings {raw!r} are not valid ({e}); the checkpoint was edited or written by another program") from None


def build_gan(spec: GANSpec) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of ``spec``'s recipe (weights from torch's global RNG)."""
    r, (c, h, _) = spec.recipe, spec.shape
    d_config = DCGANConfig(image_size=h, channels=c, latent_dim=spec.latent_dim, width=spec.width, d_norm=r.d_norm, spectral_norm=r.spectral_norm,
                           minibatch_std=r.generator == "stylegan")  # fmt: skip
    if r.generator == "stylegan":
        g = StyleGenerator(StyleGANConfig(image_size=h, channels=c, latent_dim=spec.latent_dim, style_dim=spec.latent_dim, width=spec.width))
    else:
        g = DCGANGenerator(d_config)
    return g, DCGANDiscriminator(d_config)


@dataclass
class GANTrainOptions:
    steps: int = 2000  # generator updates
    batch_size: int = 64  # real images per critic update
    seed: int = 0
    ema_decay: float = 0.999
    ckpt_every: int = 500
    sample_every: int = 0


def train_gan(
    spec: GANSpec,
    images: torch.Tensor,
    options: GANTrainOptions,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    sample_fn: Callable[[nn.Module, int], None] | None = None,
    progress: bool = True,
) -> TrainState:
    """Train ``spec``'s recipe on ``images`` (N, C, H, W) in [−1, 1] with the trainer's guarantees
    (exact resume, crash-safe checkpoints, NaN guard). ``sample_fn(ema_generator, step)`` runs every
    ``options.sample_every`` steps. The caller's global RNG is left untouched."""
    if tuple(images.shape[1:]) != tuple(spec.shape):
        raise ConfigError(f"the images have shape {tuple(images.shape[1:])}, the GAN was set up for {tuple(spec.shape)}")
    r = spec.recipe
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)  # the initial weights
        g, d = build_gan(spec)
    state = gan_state(g, d, lr=r.lr, betas=r.betas, ema_decay=options.ema_decay)
    config = TrainConfig(steps=options.steps, batch_size=options.batch_size * r.n_critic, lr=r.lr, warmup_steps=0, lr_min_ratio=1.0,
                         grad_clip=None, ema_decay=options.ema_decay, seed=options.seed, ckpt_every=options.ckpt_every,
                         sample_every=options.sample_every)  # fmt: skip
    spec_json = json.loads(json.dumps(dataclasses.asdict(spec)))
    identity = {GAN_KEY: spec_json, "recipe": json.loads(json.dumps(dataclasses.asdict(r)))}
    metadata = {GAN_KEY: spec_json, "recipe": identity["recipe"], "train_options": dataclasses.asdict(options)}
    step = AdversarialStep(loss=r.loss, n_critic=r.n_critic, gp_weight=r.gp_weight, r1_weight=r.r1_weight)
    hook = None
    if sample_fn is not None:
        hook = lambda st: sample_fn(st.emas["generator"].shadow if st.emas else st.models["generator"], st.step)  # noqa: E731
    return train(state, step, (images,), config, out_dir=out_dir, resume=resume, overwrite=overwrite,
                 identity=identity, metadata=metadata, sample_fn=hook, progress=progress)  # fmt: skip


def is_gan_checkpoint(path: str | Path) -> bool:
    """Whether the run or checkpoint folder at ``path`` holds a GAN (``metadata["gan"]``)."""
    return GAN_KEY in read_config(resolve_checkpoint(path)).get("metadata", {})


def load_gan(path: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu") -> tuple[nn.Module, GANSpec]:
    """The generator (EMA weights by default, eval mode) and the :class:`GANSpec` of a GAN checkpoint."""
    model, cfg = load_model(path, use_ema=use_ema, device=device, name="generator")
    raw = cfg.get("metadata", {}).get(GAN_KEY)
    if raw is None:
        raise CheckpointError(f"checkpoint at {path} holds no GAN (no gan metadata)")
    return model, GANSpec.from_json(raw, where=f"checkpoint at {path}")


@torch.no_grad()
def gan_generate(generator: nn.Module, n: int, *, seed: int = 0, batch_size: int = 64, psi: float = 1.0) -> torch.Tensor:
    """``n`` images (n, C, H, W) in [−1, 1]. Sample i depends on (seed, i) only — its z and, for the
    StyleGAN generator, its noise inputs come from its own stream — so chunking does not change it.
    ``psi`` < 1 truncates the StyleGAN generator's styles towards w̄ (estimated from 4096 latents of
    a fixed stream); the DCGAN generator has no style space and takes only ``psi = 1``."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"the number of samples must be a positive int, got {n!r}")
    style = isinstance(generator, StyleGenerator)
    if psi != 1.0 and not style:
        raise ConfigError("truncation (--truncation) needs the StyleGAN generator; a DCGAN generator has no style space")
    if not 0.0 <= psi <= 1.0:
        raise ConfigError(f"the truncation psi must be in [0, 1], got {psi}")
    generator = generator.eval()
    device = next(generator.parameters()).device
    w_avg = generator.mean_w(4096, torch.Generator().manual_seed(0)) if style and psi != 1.0 else None
    out = []
    for start in range(0, n, batch_size):
        noise = SampleNoise(seed, range(start, min(start + batch_size, n)))
        z = noise.randn_like(torch.empty(len(noise), generator.latent_dim)).to(device)
        if style:  # its output is linear: clip to the data range
            out.append(generator(z, psi=psi, w_avg=w_avg, noise_fn=noise.randn_like).clamp(-1, 1).cpu())
        else:
            out.append(generator(z).cpu())
    return torch.cat(out)
