"""An MLP ε_θ(x_t, t, y) for low-dimensional data (the toy 2-D distributions).

    h_0 = Linear(x_t) + emb(t) [+ emb(y)]
    h_{i+1} = h_i + Linear(SiLU(Linear(SiLU(h_i))))     (residual MLP blocks)
    out = Linear(SiLU(h_L))

The same interface as the U-Net, so every sampler and loss in genlab.diffusion works with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.embeddings import TimestepEmbedding


@dataclass
class ToyDenoiserConfig:
    dim: int = 2  # data dimension
    hidden: int = 128  # width of every layer
    num_blocks: int = 3  # residual blocks
    num_classes: int = 0  # K > 0 adds class conditioning with a null label K


class ToyDenoiser(nn.Module):
    """``forward(x, t, y=None)``: x (B, dim), t (B,) int64, y (B,) int64 or None → (B, dim)."""

    def __init__(self, config: ToyDenoiserConfig | None = None):
        super().__init__()
        cfg = self.config = config or ToyDenoiserConfig()
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.time_embed = TimestepEmbedding(cfg.hidden, cfg.hidden)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, cfg.hidden) if cfg.num_classes else None
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
            for _ in range(cfg.num_blocks)
        )
        self.out = nn.Linear(cfg.hidden, cfg.dim)

    @property
    def null_label(self) -> int | None:
        return self.config.num_classes if self.config.num_classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(x) + self.time_embed(t)  # (B, hidden)
        if self.class_embed is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.config.num_classes, dtype=torch.long, device=x.device)
            h = h + self.class_embed(y)
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.silu(h))
