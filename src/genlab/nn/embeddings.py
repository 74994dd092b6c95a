"""Sinusoidal position encoding (Vaswani et al. 2017, §3.5), used for diffusion timesteps.

For a position (timestep) t and an even dimension d, with frequencies
ω_i = max_period^(−i / (d/2)), i = 0 … d/2 − 1:

    PE(t) = [sin(t ω_0), …, sin(t ω_{d/2−1}), cos(t ω_0), …, cos(t ω_{d/2−1})]

Nearby timesteps get similar vectors, distant ones different vectors, and every t a
distinct one. Computed for the whole batch at once: an outer product, no Python loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) timesteps (int or float) → (B, dim) float32 encodings."""
    if dim % 2:
        raise ValueError(f"embedding dimension must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimestepEmbedding(nn.Module):
    """t → sinusoidal encoding → Linear → SiLU → Linear: the vector every residual block receives."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))
