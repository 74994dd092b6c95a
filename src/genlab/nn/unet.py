"""A time-conditioned U-Net ε_θ(x_t, t, y) for small images (8×8 digits, 28×28 MNIST, 32×32 CIFAR).

Shape of the network (L = len(channel_mults) levels, resolution halves per level)::

    x (B, C_in, H, W) ─ conv_in ─┬─ level 0: ResBlocks ── skip_0 ─ down ─┐
                                 │  level 1: ResBlocks ── skip_1 ─ down ─┤   … (encoder)
                                 │  middle: ResBlock · Attention · ResBlock (lowest resolution)
                                 │  level 1: concat skip_1 · ResBlocks ─ up ─┐  … (decoder)
                                 └─ level 0: concat skip_0 · ResBlocks ── norm · SiLU · conv_out → (B, C_out, H, W)

Conditioning: the timestep t goes through a sinusoidal encoding and an MLP (genlab.nn.embeddings);
a class label y ∈ {0 … K−1} adds a learned embedding; label K is the "null" class used for
classifier-free guidance (and when y is None). Every residual block receives this vector and
applies it as a per-channel scale and shift after its second GroupNorm (FiLM, as in improved DDPM).
With ``context_dim`` > 0 a :class:`CrossAttention` block follows every self-attention (and the
middle one): the image attends to a context such as a text encoder's hidden states (Stable
Diffusion's text conditioning), its padded tokens masked out.

CPU-first choices: one skip connection per level (not per block), attention only where the
feature map is small (self-attention costs O((HW)²)), channels_last memory format, and no
padding tricks: the image size must halve exactly at each level, checked when the model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.embeddings import TimestepEmbedding


@dataclass
class UNetConfig:
    image_size: int = 28  # H = W of the images the network takes
    in_channels: int = 1  # 1 for MNIST/digits, 3 for RGB
    base_channels: int = 32  # channels at full resolution
    channel_mults: tuple[int, ...] = (1, 2, 2)  # channels per level = base · mult; one level per entry
    num_res_blocks: int = 2  # residual blocks per level (encoder and decoder each)
    attention_resolutions: tuple[int, ...] = (7,)  # feature-map sizes that get self-attention (the middle always does)
    num_heads: int = 4  # attention heads
    num_classes: int = 0  # K > 0 adds class conditioning with a null label K
    dropout: float = 0.0  # inside residual blocks
    groups: int = 8  # GroupNorm groups
    out_channels: int = 0  # output channels; 0: in_channels (2 × in_channels for a learned variance)
    context_dim: int = 0  # > 0: cross-attention to a context (N, L, context_dim), e.g. text, wherever there is self-attention

    def __post_init__(self):
        self.channel_mults = tuple(self.channel_mults)
        self.attention_resolutions = tuple(self.attention_resolutions)
        levels = len(self.channel_mults)
        if levels < 1 or self.base_channels < 1 or self.num_res_blocks < 1:
            raise ConfigError("the U-Net needs at least one level, one channel and one residual block per level")
        factor = 2 ** (levels - 1)
        if self.image_size < factor or self.image_size % factor:
            raise ConfigError(
                f"a U-Net with {levels} levels halves the image {levels - 1} times, so the image size must be a "
                f"multiple of {factor}; got {self.image_size} (use fewer channel_mults or resize the images)"
            )
        for c in (self.base_channels * m for m in self.channel_mults):
            if c % self.groups or c % self.num_heads:
                raise ConfigError(f"channels ({c}) must be divisible by groups ({self.groups}) and num_heads ({self.num_heads})")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.image_size // 2**i for i in range(len(self.channel_mults)))


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv3×3 → GroupNorm · (1 + scale) + shift → SiLU → dropout → conv3×3, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)  # → (scale, shift)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, HW, C): a view in channels_last
        q, k, v = self.qkv(tokens).reshape(b, h * w, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)  # (B, nh, HW, hs) each
        out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, hs)
        out = self.proj(out.transpose(1, 2).reshape(b, h * w, c))  # (B, HW, C)
        return x + out.reshape(b, h, w, c).permute(0, 3, 1, 2)


class CrossAttention(nn.Module):
    """Multi-head attention from the H·W positions of a feature map (queries) to the L tokens of a
    context (keys, values), with a residual connection: how Stable Diffusion's U-Net reads the text.

    ``forward(x (B, C, H, W), context (B, L, d), mask (B, L) bool, True = padding)``. The output
    projection starts at zero, so a new block is the identity. ``keep_attention = True`` keeps the
    last attention probabilities (B, heads, HW, L) in ``attention`` (computed without the fused
    kernel), for attention maps.
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int, groups: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.keep_attention, self.attention = False, None

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        nh, hs = self.num_heads, c // self.num_heads
        q = self.q(self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)).reshape(b, h * w, nh, hs).transpose(1, 2)  # (B, nh, HW, hs)
        k, v = self.kv(context).reshape(b, context.shape[1], 2, nh, hs).permute(2, 0, 3, 1, 4)  # (B, nh, L, hs) each
        keep = None if mask is None else ~mask[:, None, None, :]  # (B, 1, 1, L): True = attend
        if self.keep_attention:
            logits = q @ k.transpose(-1, -2) / hs**0.5
            if keep is not None:
                logits = logits.masked_fill(~keep, float("-inf"))
            self.attention = logits.softmax(-1).detach()
            out = self.attention @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        out = self.proj(out.transpose(1, 2).reshape(b, h * w, c))
        return x + out.reshape(b, h, w, c).permute(0, 3, 1, 2)


class _Stage(nn.Module):
    """The residual blocks (and optional attention) of one U-Net level, in one direction."""

    def __init__(self, c_in: int, c_out: int, n: int, emb_dim: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c_in if i == 0 else c_out, c_out, emb_dim, cfg.groups, cfg.dropout) for i in range(n))
        self.attn = nn.ModuleList(SelfAttention(c_out, cfg.num_heads, cfg.groups) if attention else nn.Identity() for _ in range(n))
        cross = attention and cfg.context_dim > 0
        self.cross = nn.ModuleList(CrossAttention(c_out, cfg.context_dim, cfg.num_heads, cfg.groups) for _ in range(n)) if cross else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor, context=None, mask=None) -> torch.Tensor:
        for i, (block, attn) in enumerate(zip(self.blocks, self.attn)):
            h = attn(block(h, emb))
            if self.cross is not None:
                h = self.cross[i](h, context, mask)
        return h


class UNet(nn.Module):
    """ε_θ(x_t, t, y): predicts the noise (or x₀, or v) of a noisy image at timestep t.

    ``forward(x, t, y=None)``: x (B, C, H, W) float, t (B,) int64 timesteps, y (B,) int64 labels
    in [0, num_classes] (num_classes = the null label) or None. Returns (B, C, H, W).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = self.config = config or UNetConfig()
        chans = [cfg.base_channels * m for m in cfg.channel_mults]
        emb_dim = 4 * cfg.base_channels
        self.time_embed = TimestepEmbedding(cfg.base_channels, emb_dim)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)

        attn_at = set(cfg.attention_resolutions)
        self.encoder, self.down = nn.ModuleList(), nn.ModuleList()
        c = chans[0]
        for i, (ch, res) in enumerate(zip(chans, cfg.resolutions)):
            self.encoder.append(_Stage(c, ch, cfg.num_res_blocks, emb_dim, cfg, res in attn_at))
            c = ch
            last = i == len(chans) - 1
            self.down.append(nn.Identity() if last else nn.Conv2d(ch, chans[i + 1], 3, stride=2, padding=1))
            c = ch if last else chans[i + 1]

        self.mid1 = ResBlock(c, c, emb_dim, cfg.groups, cfg.dropout)
        self.mid_attn = SelfAttention(c, cfg.num_heads, cfg.groups)
        self.mid_cross = CrossAttention(c, cfg.context_dim, cfg.num_heads, cfg.groups) if cfg.context_dim else None
        self.mid2 = ResBlock(c, c, emb_dim, cfg.groups, cfg.dropout)

        self.decoder, self.up = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(chans))):
            ch, res = chans[i], cfg.resolutions[i]
            self.decoder.append(_Stage(c + ch, ch, cfg.num_res_blocks, emb_dim, cfg, res in attn_at))
            c = ch
            self.up.append(nn.Identity() if i == 0 else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, chans[i - 1], 3, padding=1)))
            c = ch if i == 0 else chans[i - 1]

        self.norm_out = nn.GroupNorm(cfg.groups, c)
        self.conv_out = nn.Conv2d(c, cfg.out_channels or cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.to(memory_format=torch.channels_last)

    @property
    def null_label(self) -> int | None:
        """The label meaning "no condition" (for classifier-free guidance), or None if unconditional."""
        return self.config.num_classes if self.config.num_classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``context`` (B, L, context_dim) and its padding mask (B, L), True = padding, for a U-Net
        built with ``context_dim``."""
        cfg = self.config
        if x.shape[1:] != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ConfigError(f"this U-Net takes images of shape ({cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), got {tuple(x.shape[1:])}")
        if (context is None) != (cfg.context_dim == 0) or (context is not None and context.shape[-1] != cfg.context_dim):
            raise ConfigError(f"this U-Net takes a context of width {cfg.context_dim}" if cfg.context_dim else "this U-Net takes no context (context_dim=0)")
        emb = self.time_embed(t)  # (B, 4·base)
        if self.class_embed is not None:
            if y is None:
                y = torch.full((x.shape[0],), cfg.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.class_embed(y)
        emb = F.silu(emb)

        h = self.conv_in(x.contiguous(memory_format=torch.channels_last))
        skips = []
        for stage, down in zip(self.encoder, self.down):
            h = stage(h, emb, context, context_mask)
            skips.append(h)
            h = down(h)
        h = self.mid_attn(self.mid1(h, emb))
        if self.mid_cross is not None:
            h = self.mid_cross(h, context, context_mask)
        h = self.mid2(h, emb)
        for stage, up in zip(self.decoder, self.up):
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
