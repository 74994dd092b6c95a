"""A Diffusion Transformer (DiT; Peebles & Xie 2023, "Scalable Diffusion Models with Transformers").

The image is cut into p×p patches, each patch becomes a token, and a plain transformer whose
blocks are conditioned by adaLN-Zero predicts the noise (or x₀, v, velocity) of every patch. It
has the U-Net's interface — ``forward(x (B, C, H, W), t (B,), y=None) -> (B, C_out, H, W)`` — so
every loss and sampler in genlab.diffusion (and the flow-matching trainer) takes either network::

    x (B, C, H, W)
      │ patchify                      (B, N, p·p·C)          N = (H/p)(W/p) tokens
      │ patch_embed (Linear)          (B, N, d)
      │ + pos_embed                   (1, N, d)              2-D sin-cos (fixed) or learned
      ▼
    ┌──────────────── DiTBlock × depth ─────────────────┐    c = time_embed(t) + class_embed(y)   (B, d)
    │ h = x + α₁ · Attn(LN(x) · (1 + γ₁) + β₁)          │    (β₁, γ₁, α₁, β₂, γ₂, α₂) = Linear(SiLU(c))
    │ x = h + α₂ · MLP(LN(h) · (1 + γ₂) + β₂)           │    Linear initialised to zero: α = 0, the
    └───────────────────────────────────────────────────┘    block is the identity at initialisation
      │ final layer: Linear(LN(x) · (1 + γ) + β)    (B, N, p·p·C_out)   (β, γ) = Linear(SiLU(c)); zero init
      │ unpatchify
      ▼
    out (B, C_out, H, W)              a fresh DiT outputs zeros

Symbols ↔ names:

====================  =========================================================
N = (H/p)·(W/p)       number of tokens (``num_tokens``)
p                     ``patch_size``
d                     ``hidden_size`` (token width)
depth, heads          ``depth``, ``num_heads`` (head size d / heads)
c                     the conditioning vector, ``time_embed(t) + class_embed(y)``
β, γ, α               adaLN-Zero ``shift``, ``scale``, ``gate`` (1 = attention, 2 = MLP)
LN                    LayerNorm without learned affine (eps 1e-6): γ, β take its place
K                     ``num_classes``; label K is the null label (classifier-free guidance, y=None)
====================  =========================================================

Patch embedding: a Linear on the patchified tokens. It is the same map as DiT's strided convolution
``Conv2d(C, d, kernel_size=p, stride=p)``: the conv weight (d, C, p, p), permuted to (d, p, p, C) and
flattened to (d, p·p·C), is the Linear's weight (tests/test_dit.py checks it).

Position embedding: :func:`sincos_2d_position_embedding` (MAE/DiT convention) is a fixed buffer
computed from the config, not stored in checkpoints; ``pos_embed="learned"`` makes it a parameter.

CPU notes: at p = 4 a 28×28 image is N = 49 tokens (8×8 digits at p = 2: 16 tokens); attention costs
O(N²·d) per block and the Linears O(N·d²), so halving p quadruples N and multiplies the attention
cost by 16. At the default size (d = 128, depth 4, p = 4) the Linears dominate (per block 24·N·d²
FLOPs against 4·N²·d for attention); ``benchmarks/dit_vs_unet.py`` counts the FLOPs per image of
both networks and compares them at equal CPU time and at equal FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.embeddings import TimestepEmbedding, sinusoidal_embedding

POS_EMBEDS = ("sincos", "learned")


@dataclass
class DiTConfig:
    image_size: int = 28  # H = W of the images the network takes
    in_channels: int = 1  # 1 for MNIST/digits, 3 for RGB
    out_channels: int = 0  # output channels; 0: in_channels (2 × in_channels for a learned variance)
    patch_size: int = 4  # p: each p×p patch is one token (28×28 at p=4: 49 tokens)
    hidden_size: int = 128  # d: token width
    depth: int = 4  # number of DiT blocks
    num_heads: int = 4  # attention heads (head size d / heads)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio · d
    num_classes: int = 0  # K > 0 adds class conditioning with a null label K
    pos_embed: str = "sincos"  # "sincos": fixed 2-D sin-cos (MAE/DiT); "learned": a trained (1, N, d) parameter

    def __post_init__(self):
        for name in ("image_size", "in_channels", "patch_size", "hidden_size", "depth", "num_heads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"DiT {name} must be an int >= 1, got {v!r}")
        for name in ("out_channels", "num_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"DiT {name} must be an int >= 0, got {v!r}")
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, (int, float)) or not self.mlp_ratio > 0:
            raise ConfigError(f"DiT mlp_ratio must be a number > 0, got {self.mlp_ratio!r}")
        if self.pos_embed not in POS_EMBEDS:
            raise ConfigError(f"unknown DiT pos_embed {self.pos_embed!r}; choose one of {', '.join(POS_EMBEDS)}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image size {self.image_size} is not divisible by patch size {self.patch_size}: "
                f"choose a patch size that divides it (e.g. {_divisor_near(self.image_size, self.patch_size)})"
            )
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.hidden_size % 2:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be even for the sinusoidal timestep encoding")
        if self.pos_embed == "sincos" and self.hidden_size % 4:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by 4 for the 2-D sin-cos position embedding "
                "(half for rows, half for columns, each sin and cos); use a multiple of 4 or pos_embed='learned'"
            )

    @property
    def grid_size(self) -> int:
        """H/p = W/p: patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """N = (H/p)(W/p)."""
        return self.grid_size**2


def _divisor_near(n: int, p: int) -> int:
    return min((q for q in range(1, n + 1) if n % q == 0), key=lambda q: (abs(q - p), q))


# ----------------------------------------------------------------------------- patches


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, p·p·C): token n = i·(W/p) + j is the patch of rows i·p … i·p+p−1 and
    columns j·p … j·p+p−1 (row-major over the grid), its features ordered (row in patch, column in
    patch, channel) — channels last, as DiT's unpatchify reads them."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)  # (B, C, h, p, w, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, p: int, c: int, h: int, w: int) -> torch.Tensor:
    """(B, N, p·p·C) → (B, C, H, W): the exact inverse of :func:`patchify`."""
    b = tokens.shape[0]
    x = tokens.reshape(b, h // p, w // p, p, p, c)  # (B, h, w, p, p, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p, w, p)
    return x.reshape(b, c, h, w)


def sincos_2d_position_embedding(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """(grid_h · grid_w, dim) fixed 2-D sin-cos embedding of a row-major grid (MAE/DiT convention).

    Token n = i·grid_w + j (row i, column j). The first dim/2 channels are the 1-D sin-cos encoding
    (:func:`genlab.nn.embeddings.sinusoidal_embedding`, [sin …, cos …]) of the column j, the last
    dim/2 that of the row i. (MAE's and diffusers' code call the halves ``emb_h`` and ``emb_w`` but
    feed the column coordinate into the first: the order here is theirs, so their tables match.)
    """
    if dim % 4:
        raise ConfigError(f"a 2-D sin-cos position embedding needs dim divisible by 4, got {dim}")
    rows = torch.arange(grid_h, dtype=torch.float32).repeat_interleave(grid_w)  # (N,) i of token n
    cols = torch.arange(grid_w, dtype=torch.float32).repeat(grid_h)  # (N,) j of token n
    return torch.cat([sinusoidal_embedding(cols, dim // 2), sinusoidal_embedding(rows, dim // 2)], dim=1)


# ----------------------------------------------------------------------------- blocks


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x · (1 + γ) + β, with (B, 1, d) shift β and scale γ broadcast over the N tokens of x (B, N, d)."""
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head self-attention over the N tokens: (B, N, d) → (B, N, d), without the residual.

    ``keep_attention = True`` keeps the last attention probabilities softmax(QKᵀ/√d_head), shape
    (B, heads, N, N), in ``attention`` (computed without the fused kernel), for attention maps.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)  # [W_q; W_k; W_v], as nn.MultiheadAttention's in_proj
        self.proj = nn.Linear(dim, dim)
        self.keep_attention, self.attention = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        nh, hs = self.num_heads, d // self.num_heads
        q, k, v = self.qkv(x).reshape(b, n, 3, nh, hs).permute(2, 0, 3, 1, 4)  # (B, nh, N, hs) each
        if self.keep_attention:
            self.attention = (q @ k.transpose(-1, -2) / hs**0.5).softmax(-1).detach()  # (B, nh, N, N)
            out = self.attention @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, N, hs)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class DiTBlock(nn.Module):
    """One transformer block with adaLN-Zero conditioning::

        (β₁, γ₁, α₁, β₂, γ₂, α₂) = modulation(SiLU(c))          (B, d) each; shift, scale, gate
        h = x + α₁ · Attn(LN(x) · (1 + γ₁) + β₁)
        out = h + α₂ · MLP(LN(h) · (1 + γ₂) + β₂)

    ``modulation`` starts at zero, so α₁ = α₂ = 0 and a new block is the identity.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c))[:, None, :].chunk(6, dim=-1)  # (B, 1, d) each
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """Linear(LN(x) · (1 + γ) + β) → (B, N, p·p·C_out), with (β, γ) = modulation(SiLU(c)); both
    Linears start at zero, so a new DiT outputs zeros."""

    def __init__(self, dim: int, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out_features)
        for layer in (self.modulation, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(F.silu(c))[:, None, :].chunk(2, dim=-1)  # (B, 1, d) each
        return self.linear(modulate(self.norm(x), shift, scale))


# ----------------------------------------------------------------------------- the network


class DiT(nn.Module):
    """ε_θ(x_t, t, y) as a Diffusion Transformer (see the module docstring for the diagram).

    ``forward(x, t, y=None)``: x (B, C, H, W) float, t (B,) timesteps (int or float, e.g. 0 … 1000),
    y (B,) int64 labels in [0, num_classes] (num_classes = the null label) or None (= the null
    label). Returns (B, C_out, H, W). :meth:`attention_maps` returns every block's attention.
    """

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        cfg = self.config = config or DiTConfig()
        d, p = cfg.hidden_size, cfg.patch_size
        self.patch_embed = nn.Linear(p * p * cfg.in_channels, d)  # = Conv2d(C, d, p, stride=p) on the image
        if cfg.pos_embed == "sincos":
            table = sincos_2d_position_embedding(d, cfg.grid_size, cfg.grid_size)[None]  # (1, N, d)
            self.register_buffer("pos_embed", table, persistent=False)  # rebuilt from the config, not saved
        else:
            self.pos_embed = nn.Parameter(0.02 * torch.randn(1, cfg.num_tokens, d))
        self.time_embed = TimestepEmbedding(d, d)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, d) if cfg.num_classes else None
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final = FinalLayer(d, p * p * self.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation: Xavier-uniform Linears with zero bias in the patch embedding and the
        blocks, N(0, 0.02²) for the timestep MLP and the class table; adaLN-Zero layers stay zero."""
        for block in self.blocks:
            for layer in (block.attn.qkv, block.attn.proj, block.mlp[0], block.mlp[2]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight)
        nn.init.zeros_(self.patch_embed.bias)
        for layer in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        if self.class_embed is not None:
            nn.init.normal_(self.class_embed.weight, std=0.02)

    @property
    def out_channels(self) -> int:
        return self.config.out_channels or self.config.in_channels

    @property
    def null_label(self) -> int | None:
        """The label meaning "no condition" (for classifier-free guidance), or None if unconditional."""
        return self.config.num_classes if self.config.num_classes else None

    def condition(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """c = time_embed(t) [+ class_embed(y)], (B, d); y=None means the null label K."""
        c = self.time_embed(t)
        if self.class_embed is not None:
            if y is None:
                y = torch.full((t.shape[0],), self.config.num_classes, dtype=torch.long, device=t.device)
            c = c + self.class_embed(y)
        return c

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if x.shape[1:] != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ConfigError(f"this DiT takes images of shape ({cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), got {tuple(x.shape[1:])}")
        h = self.patch_embed(patchify(x, cfg.patch_size)) + self.pos_embed  # (B, N, d)
        c = self.condition(t, y)  # (B, d)
        for block in self.blocks:
            h = block(h, c)
        out = self.final(h, c)  # (B, N, p·p·C_out)
        return unpatchify(out, cfg.patch_size, self.out_channels, cfg.image_size, cfg.image_size)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        """One forward pass; the attention probabilities of every block, a list of ``depth``
        tensors (B, heads, N, N) (rows: query tokens, each row sums to 1; token n = row·(H/p) + column)."""
        attns = [block.attn for block in self.blocks]
        kept = [a.keep_attention for a in attns]
        try:
            for a in attns:
                a.keep_attention = True
            self(x, t, y)
            return [a.attention for a in attns]
        finally:
            for a, k in zip(attns, kept):
                a.keep_attention = k
                if not k:
                    a.attention = None
