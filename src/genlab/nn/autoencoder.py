"""A KL-regularised convolutional autoencoder: the first stage of latent diffusion (Rombach et al.
2022, the "KL-f" autoencoders of Stable Diffusion), sized for MNIST-family images on a CPU.

An encoder E maps an image x (C, S, S) to a diagonal Gaussian q(z | x) = N(μ(x), diag σ²(x)) over a
small latent grid z (c, s, s); a decoder D maps z back. Training minimises

    L = ‖x − D(z)‖₁ + ‖x − D(z)‖²₂  (per pixel, averaged)  +  λ_KL · KL(q(z | x) ‖ N(0, I)) / dim(x),
    z = μ + σ ⊙ ε,

with a tiny λ_KL (1e-6 in Stable Diffusion): the KL term only keeps the latents near the origin and
at a bounded scale, it is no VAE prior; the reconstruction keeps the detail. Stable Diffusion adds a
perceptual (LPIPS) and an adversarial loss; for 28×28 digits an L1 + L2 reconstruction is enough
(no pretrained network is needed — none can be downloaded here), at the price of slightly blurrier
strokes.

The diffusion model then runs on the latents times a **scale factor** s_f = 1 / std(z), computed once
from a batch of training latents (:func:`latent_scale_factor`; SD's 0.18215 is the same recipe for
its autoencoder), so that the latents the U-Net sees have unit variance like images scaled to
[−1, 1]. Sampling draws latents with the diffusion model and decodes D(z / s_f).

The grid: 28×28 images are zero-padded to 32×32 and halved twice → 8×8 latents (4×8×8 = 256 numbers
for 784 pixels): an even side that the course U-Net can halve again (7×7 could not be).

======  ==========================  ==================
symbol  meaning                     name
======  ==========================  ==================
μ, σ²   posterior mean, variance    mean, logvar (log)
z       latent (N, c, s, s)         z
s_f     latent scale factor         scale_factor
λ_KL    weight of the KL term       kl_weight
======  ==========================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.vae import gaussian_kl, reparameterize

__all__ = ["Autoencoder", "AutoencoderConfig", "autoencoder_loss", "latent_scale_factor"]


@dataclass
class AutoencoderConfig:
    image_size: int = 28  # S; padded up to a multiple of 8 (28 → 32), so the latent side s = S/4 is even
    in_channels: int = 1  # C
    latent_channels: int = 4  # c of the latent grid
    channels: tuple[int, ...] = (16, 32)  # feature channels at full and half resolution (the latent is at a quarter); CPU-sized
    kl_weight: float = 1e-6  # λ_KL

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != 2 or min(self.channels) < 8 or any(c % 8 for c in self.channels):
            raise ConfigError(f"channels must be two multiples of 8 (full and half resolution), got {self.channels}")
        if min(self.image_size, self.in_channels, self.latent_channels) < 1 or not self.kl_weight >= 0:
            raise ConfigError("AutoencoderConfig: image_size, in_channels and latent_channels must be positive, kl_weight >= 0")

    @property
    def padded_size(self) -> int:
        return -(-self.image_size // 8) * 8

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.padded_size // 4, self.padded_size // 4)


class _Block(nn.Module):
    """GroupNorm → SiLU → conv3×3 → GroupNorm → SiLU → conv3×3, plus a skip."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.GroupNorm(8, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))  # fmt: skip
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Autoencoder(nn.Module):
    """``encode(x) → (mean, logvar)``, ``decode(z) → x̂``; images in [−1, 1] (module docstring)."""

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else AutoencoderConfig()
        c1, c2 = c.channels
        self.pad = (c.padded_size - c.image_size) // 2, c.padded_size - c.image_size - (c.padded_size - c.image_size) // 2
        self.encoder = nn.Sequential(
            nn.Conv2d(c.in_channels, c1, 3, padding=1), _Block(c1, c1),
            nn.Conv2d(c1, c1, 3, stride=2, padding=1), _Block(c1, c2),
            nn.Conv2d(c2, c2, 3, stride=2, padding=1), _Block(c2, c2),
            nn.GroupNorm(8, c2), nn.SiLU(), nn.Conv2d(c2, 2 * c.latent_channels, 3, padding=1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(c.latent_channels, c2, 3, padding=1), _Block(c2, c2),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c2, c2, 3, padding=1), _Block(c2, c1),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c1, c1, 3, padding=1), _Block(c1, c1),
            nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, c.in_channels, 3, padding=1),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): (mean, logvar), each (N, c, s, s); logvar clamped to [−30, 20] as in SD."""
        c = self.config
        if x.shape[1:] != c.image_shape:
            raise ConfigError(f"the autoencoder takes images of shape {c.image_shape}, got {tuple(x.shape[1:])}")
        lo, hi = self.pad
        mean, logvar = self.encoder(F.pad(x, (lo, hi, lo, hi), value=-1.0)).chunk(2, dim=1)  # pad with background
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """D(z): (N, c, s, s) → images (N, C, S, S) (not clipped: the loss sees the raw output)."""
        lo, hi = self.pad
        x = self.decoder(z)
        return x[..., lo : x.shape[-2] - hi, lo : x.shape[-1] - hi]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """x → (x̂ = D(z), mean, logvar) with z = mean + σ ε (ε from ``generator``)."""
        mean, logvar = self.encode(x)
        return self.decode(reparameterize(mean, logvar, generator)), mean, logvar


def autoencoder_loss(model: Autoencoder, batch: tuple[torch.Tensor, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """``loss_fn`` for :func:`genlab.train.fit`: L1 + L2 reconstruction per pixel + λ_KL · KL per pixel."""
    x = batch[0]
    recon, mean, logvar = model(x, generator)
    kl = gaussian_kl(mean.flatten(1), logvar.flatten(1)).mean() / x[0].numel()
    return (recon - x).abs().mean() + (recon - x).square().mean() + model.config.kl_weight * kl


@torch.no_grad()
def latent_scale_factor(model: Autoencoder, images: torch.Tensor, generator: torch.Generator | None = None, batch_size: int = 256) -> float:
    """s_f = 1 / std(z) over the latents z ~ q(z | x) of ``images`` (all entries pooled, as Stable
    Diffusion computed its 0.18215)."""
    model = model.eval()
    zs = [reparameterize(*model.encode(x), generator) for x in images.split(batch_size)]
    return float(1.0 / torch.cat(zs).double().std())
