"""Latent diffusion on a named image data set (Rombach et al. 2022): an autoencoder first, then a
diffusion model on its scaled latents — the glue the CLI shares with notebooks and benchmarks.

1. :func:`train_autoencoder` trains :class:`~genlab.nn.autoencoder.Autoencoder` (its own run folder,
   resumable like every genlab run).
2. :func:`encode_dataset` maps the training images to latents z ~ q(z | x) (one fixed draw each) and
   s_f = 1/std(z) (:func:`~genlab.nn.autoencoder.latent_scale_factor`'s recipe); the diffusion model
   trains on s_f · z with the ordinary :func:`genlab.pipeline.train_diffusion`, and its checkpoint
   carries the autoencoder as a frozen second model, so it samples on its own.
3. Sampling (:func:`genlab.pipeline.generate`) draws s_f · z with any sampler and decodes
   D(z) through :class:`LatentDiffusionModel`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genlab.nn.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_loss
from genlab.nn.vae import reparameterize
from genlab.train import TrainConfig, TrainResult, fit

AUTOENCODER_KEY = "autoencoder"  # metadata["autoencoder"] of an autoencoder run; the frozen model's name


class LatentDiffusionModel(nn.Module):
    """A network on scaled latents with the autoencoder that maps them back to images.

    ``forward(x_t, t, y)`` is the network's (so every sampler and guidance wrapper works unchanged);
    :meth:`decode` turns sampled s_f · z into images in [−1, 1].
    """

    def __init__(self, network: nn.Module, autoencoder: Autoencoder, scale_factor: float):
        super().__init__()
        self.network, self.autoencoder, self.scale_factor = network, autoencoder, float(scale_factor)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.network(x, t, y=y)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.autoencoder.decode(z / self.scale_factor).clamp(-1, 1) for z in latents.split(batch_size)])


def train_autoencoder(images: torch.Tensor, *, dataset: str, steps: int = 2000, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                      out_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
                      **config_overrides) -> TrainResult:  # fmt: skip
    """Train the KL autoencoder on ``images`` (N, C, S, S) in [−1, 1] (AdamW, warm-up + cosine, no EMA)."""
    c, s, _ = images.shape[1:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Autoencoder(AutoencoderConfig(image_size=s, in_channels=c, **config_overrides))
    info = {"dataset": dataset, "shape": list(images.shape[1:])}
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup_steps=min(100, steps // 10), ema_decay=None,
                         ckpt_every=max(steps // 4, 1))  # fmt: skip
    return fit(model, autoencoder_loss, (images,), config, out_dir=out_dir, resume=resume, overwrite=overwrite,
               identity={AUTOENCODER_KEY: info}, metadata={AUTOENCODER_KEY: info}, progress=progress)  # fmt: skip


@torch.no_grad()
def encode_dataset(autoencoder: Autoencoder, images: torch.Tensor, *, seed: int = 0, batch_size: int = 256) -> tuple[torch.Tensor, float]:
    """``(s_f · z, s_f)``: one draw z ~ q(z | x) per image (from a generator seeded with ``seed``, so
    a resumed run encodes the same latents) and the scale factor s_f = 1/std(z) of those draws."""
    autoencoder = autoencoder.eval()
    g = torch.Generator().manual_seed(seed)
    z = torch.cat([reparameterize(*autoencoder.encode(x), g) for x in images.split(batch_size)])
    scale = float(1.0 / z.double().std())  # = latent_scale_factor on the same draws, without encoding twice
    return z * scale, scale
