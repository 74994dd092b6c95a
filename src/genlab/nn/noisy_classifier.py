"""A noise-aware classifier p_φ(y | x_t, t): the classifier that classifier guidance differentiates.

An ordinary classifier has only seen clean images; guidance asks it about x_t = α(t) x₀ + σ(t) ε
at every noise level. Dhariwal & Nichol (2021, §4) therefore train the classifier on x_t from the
diffusion model's own process, with the timestep as an input, and build it from the U-Net's
encoder half. :class:`NoisyClassifier` is that design, small enough for a CPU: the U-Net's
residual blocks (:class:`~genlab.nn.unet.ResBlock`, which receive the timestep embedding as a
scale and shift of their normalised features), stride-2 downsampling between levels, then
GroupNorm → SiLU → global average pooling → a linear layer to the logits.

    forward(x_t, t) -> logits (B, num_classes)      t: the network time, as the U-Net takes it

Train it with :class:`genlab.diffusion.NoisyClassifierLoss` through :func:`genlab.train.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.embeddings import TimestepEmbedding
from genlab.nn.unet import ResBlock

__all__ = ["NoisyClassifier", "NoisyClassifierConfig"]


@dataclass
class NoisyClassifierConfig:
    image_size: int = 28  # H = W of the images
    in_channels: int = 1  # 1 for MNIST/digits, 3 for RGB
    num_classes: int = 10  # number of logits
    base_channels: int = 32  # channels at full resolution
    channel_mults: tuple[int, ...] = (1, 2, 2)  # channels per level = base · mult; the image halves between levels
    num_res_blocks: int = 1  # residual blocks per level
    groups: int = 8  # GroupNorm groups

    def __post_init__(self):
        self.channel_mults = tuple(self.channel_mults)
        if min(self.image_size, self.in_channels, self.num_classes, self.base_channels, self.num_res_blocks) < 1 or not self.channel_mults:
            raise ConfigError("NoisyClassifierConfig: sizes must be positive and there must be at least one level")
        for c in (self.base_channels * m for m in self.channel_mults):
            if c % self.groups:
                raise ConfigError(f"NoisyClassifierConfig: channels ({c}) must be divisible by groups ({self.groups})")


class NoisyClassifier(nn.Module):
    """Logits of p_φ(y | x_t, t) for images x_t (B, C, S, S) and network times t (B,)."""

    def __init__(self, config: NoisyClassifierConfig | None = None):
        super().__init__()
        cfg = self.config = config or NoisyClassifierConfig()
        chans = [cfg.base_channels * m for m in cfg.channel_mults]
        emb_dim = 4 * cfg.base_channels
        self.time_embed = TimestepEmbedding(cfg.base_channels, emb_dim)
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)
        self.levels = nn.ModuleList()
        self.down = nn.ModuleList()
        c = chans[0]
        for i, ch in enumerate(chans):
            self.levels.append(nn.ModuleList(ResBlock(c if j == 0 else ch, ch, emb_dim, cfg.groups, 0.0) for j in range(cfg.num_res_blocks)))
            c = ch
            self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i < len(chans) - 1 else nn.Identity())
        self.norm_out = nn.GroupNorm(cfg.groups, c)
        self.head = nn.Linear(c, cfg.num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ConfigError(
                f"this classifier takes images of shape ({cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), got {tuple(x.shape[1:])}"
            )
        emb = F.silu(self.time_embed(t))  # (B, 4·base)
        h = self.conv_in(x)
        for blocks, down in zip(self.levels, self.down):
            for block in blocks:
                h = block(h, emb)
            h = down(h)
        h = F.silu(self.norm_out(h)).mean(dim=(2, 3))  # (B, C): global average pooling
        return self.head(h)
