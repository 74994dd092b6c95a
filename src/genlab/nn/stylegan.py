"""A small StyleGAN-style generator (Karras et al. 2019, 2020) that trains on MNIST on a CPU.

Instead of feeding z into the first layer, StyleGAN separates *what* to draw from *how*:

1. **Mapping network** f: z ↦ w, an MLP (after normalising z to unit mean square, "pixel norm").
   w lives in a learned space W that need not be Gaussian, so styles can be disentangled.
2. **Synthesis network** g: starts from a learned constant (C₀, s₀, s₀) and upsamples; every
   convolution is **modulated** by a style s = A(w) (A an affine map per layer, "A" in the paper):

       w'_{o,i,k} = s_i · w_{o,i,k}                       (modulation: scale input channel i)
       w''_{o,i,k} = w'_{o,i,k} / √(Σ_{i,k} w'²_{o,i,k} + ε)  (demodulation: unit output std)

   For inputs with i.i.d. unit-variance entries, demodulation gives outputs of unit variance, which
   is what AdaIN (StyleGAN 1: normalise each feature map, then scale and shift it by the style)
   achieved by normalising the activations; StyleGAN 2 moved it into the weights. This module
   computes it as conv(x · s, w) · d with d_o = 1/√(Σ_i s_i² Σ_k w²_{o,i,k} + ε) — the same numbers
   as the per-sample weights, without a per-sample convolution (tested against one).
3. **Noise inputs**: after each convolution, B · noise is added, noise ~ N(0, 1) of shape
   (N, 1, H, W) and B a learned per-channel strength (initialised to 0): the stochastic detail
   (stroke texture) that the style does not fix.
4. **Style mixing**: each layer reads its own w (``ws[:, i]``, i < ``num_ws``). Training feeds w₁ to
   the layers before a random crossover and w₂ after it, with probability ``mixing_prob``, so that
   neighbouring layers do not learn to rely on sharing one style. At sampling time,
   :func:`style_mix` takes coarse styles (low resolutions: shape, thickness) from one z and fine
   ones from another.
5. **Truncation**: w ← w̄ + ψ (w − w̄), ψ ∈ [0, 1], with w̄ = E[f(z)] (:meth:`StyleGenerator.mean_w`):
   ψ < 1 trades diversity for typicality; ψ = 0 gives the "average" image.

Not here, for a CPU-sized model: equalised learning rate, the skip/residual architectures and path
length regularisation (the mapping network gets a variance-preserving He initialisation instead of
equalised learning rate); R1 is applied every step rather than lazily (the ``stylegan`` recipe of
:mod:`genlab.gan_pipeline`, :func:`genlab.nn.gan.r1_penalty`). The output is linear, as in StyleGAN: a tanh
there saturated at the background value early in training and stopped learning; samples are
clipped to [−1, 1] by :func:`genlab.gan_pipeline.gan_generate`.

======  ==========================  ============
symbol  meaning                     name
======  ==========================  ============
z       latent (N, d)               z
w       style vector (N, d_w)       w
ws      one w per layer (N, L, d_w) ws
s       per-layer style (N, C_in)   style
ψ       truncation                  psi
w̄       mean style                  w_avg
======  ==========================  ============
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.gan import _IMAGE_SIZES, _LatentSampler

__all__ = ["ModulatedConv2d", "StyleGANConfig", "StyleGenerator", "style_mix", "truncate"]

NoiseFn = Callable[[torch.Tensor], torch.Tensor]  # a template (N, 1, H, W) → noise of that shape


@dataclass
class StyleGANConfig:
    image_size: int = 28  # 28 (first map 7×7, two upsamplings) or 32 (4×4, three)
    channels: int = 1  # C of the images
    latent_dim: int = 64  # d, dimension of z
    style_dim: int = 64  # d_w, dimension of w
    mapping_layers: int = 4  # depth of the mapping MLP (8 in StyleGAN; fewer suffice here)
    width: int = 32  # channels at the two finest resolutions; doubled at each coarser one
    mixing_prob: float = 0.9  # style-mixing regularisation: share of training batches mixed

    def __post_init__(self) -> None:
        if self.image_size not in _IMAGE_SIZES:
            raise ConfigError(f"the StyleGAN generator is built for 28×28 or 32×32 images, got image_size={self.image_size}")
        if min(self.channels, self.latent_dim, self.style_dim, self.mapping_layers, self.width) < 1:
            raise ConfigError("StyleGANConfig: channels, latent_dim, style_dim, mapping_layers and width must be positive")
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ConfigError(f"mixing_prob must be in [0, 1], got {self.mixing_prob!r}")

    @property
    def stages(self) -> int:
        return {28: 2, 32: 3}[self.image_size]


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled per sample by a style (and optionally
    demodulated): ``forward(x (N, C_in, H, W), w (N, d_w)) → (N, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(in_channels * kernel_size**2))
        self.affine = nn.Linear(style_dim, in_channels)  # A: w → s
        nn.init.normal_(self.affine.weight, std=1 / math.sqrt(style_dim))  # s = 1 + O(1) per sample: styles differ from the start
        nn.init.ones_(self.affine.bias)  # (zero weights would give every z the same image, a collapse G cannot leave)
        self.demodulate, self.padding = demodulate, kernel_size // 2

    def style(self, w: torch.Tensor) -> torch.Tensor:
        return self.affine(w)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.style(w)  # (N, C_in)
        y = F.conv2d(x * s[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:  # d_o = 1/√(Σ_i s_i² Σ_k w²_oik + ε): the norm of the modulated weight
            d = torch.rsqrt(s.square() @ self.weight.square().sum((2, 3)).T + 1e-8)  # (N, C_out)
            y = y * d[:, :, None, None]
        return y


class _StyleLayer(nn.Module):
    """Modulated 3×3 convolution → + B · noise → + bias → LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim)
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_fn: NoiseFn | None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise_fn is not None:
            n, _, h, wd = x.shape
            x = x + self.noise_strength[:, None, None] * noise_fn(x.new_empty(n, 1, h, wd))
        return F.leaky_relu(x + self.bias[:, None, None], 0.2)


class StyleGenerator(_LatentSampler, nn.Module):
    """z (N, d) → images (N, C, S, S) in [−1, 1] through the mapping network and the modulated
    synthesis network (module docstring). Layers, coarse to fine: one at s₀, two per upsampling,
    then the modulated 1×1 "toRGB" (no demodulation): ``num_ws`` = 2 · stages + 2 styles."""

    def __init__(self, config: StyleGANConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else StyleGANConfig()
        self.latent_dim, k, s0 = c.latent_dim, c.stages, _IMAGE_SIZES[c.image_size]
        mapping: list[nn.Module] = []
        for i in range(c.mapping_layers):
            mapping += [nn.Linear(c.latent_dim if i == 0 else c.style_dim, c.style_dim), nn.LeakyReLU(0.2)]
        self.mapping_net = nn.Sequential(*mapping)
        for layer in self.mapping_net:  # variance-preserving (He) init: PyTorch's default shrinks w by ~1/√6 a layer,
            if isinstance(layer, nn.Linear):  # so every z would map to almost the same style and G would start collapsed
                nn.init.kaiming_normal_(layer.weight, a=0.2)
                nn.init.zeros_(layer.bias)
        chans = [c.width * 2 ** max(k - 1 - i, 0) for i in range(k + 1)]  # per resolution, coarse → fine
        self.const = nn.Parameter(torch.randn(1, chans[0], s0, s0))
        layers = [_StyleLayer(chans[0], chans[0], c.style_dim)]
        for i in range(1, k + 1):
            layers += [_StyleLayer(chans[i - 1], chans[i], c.style_dim), _StyleLayer(chans[i], chans[i], c.style_dim)]
        self.layers = nn.ModuleList(layers)
        self.to_rgb = ModulatedConv2d(chans[-1], c.channels, 1, c.style_dim, demodulate=False)
        self.rgb_bias = nn.Parameter(torch.zeros(c.channels))
        self.num_ws = len(layers) + 1

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """f(z): pixel-normalised z through the MLP → w (N, d_w)."""
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        return self.mapping_net(z)

    def synthesis(self, ws: torch.Tensor, noise_fn: NoiseFn | None = torch.randn_like) -> torch.Tensor:
        """g(ws): ws (N, num_ws, d_w), one style per layer → images. ``noise_fn`` draws the noise
        inputs (default: torch's global RNG; ``None``: no noise, a deterministic image)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ConfigError(f"ws must have shape (N, {self.num_ws}, {self.config.style_dim}), got {tuple(ws.shape)}")
        x = self.const.expand(len(ws), -1, -1, -1)
        for i, layer in enumerate(self.layers):
            if i and i % 2 == 1:  # layers 1, 3, …: the first at a new resolution
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = layer(x, ws[:, i], noise_fn)
        return self.to_rgb(x, ws[:, -1]) + self.rgb_bias[:, None, None]

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """w (N, d_w) → ws (N, num_ws, d_w): the same style for every layer."""
        return w[:, None].expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, *, psi: float = 1.0, w_avg: torch.Tensor | None = None,
                noise_fn: NoiseFn | None = torch.randn_like) -> torch.Tensor:  # fmt: skip
        """Images from z. In training mode a share ``mixing_prob`` of batches mixes in the styles of
        a second z (from torch's global RNG) after a random crossover layer; ``psi`` < 1 truncates
        towards ``w_avg`` (required then; see :meth:`mean_w`)."""
        ws = self.broadcast(truncate(self.mapping(z), w_avg, psi))
        if self.training and self.config.mixing_prob > 0 and torch.rand(()) < self.config.mixing_prob:
            crossover = int(torch.randint(1, self.num_ws, ()))
            ws = style_mix(self, ws, self.broadcast(self.mapping(torch.randn_like(z))), crossover)
        return self.synthesis(ws, noise_fn)

    @torch.no_grad()
    def mean_w(self, n: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """w̄ ≈ E[f(z)], the mean of ``n`` mapped latents (1, d_w)."""
        return self.mapping(self.sample_latent(n, generator)).mean(0, keepdim=True)


def truncate(w: torch.Tensor, w_avg: torch.Tensor | None, psi: float) -> torch.Tensor:
    """The truncation trick w̄ + ψ (w − w̄); ψ = 1 returns ``w`` unchanged."""
    if psi == 1.0:
        return w
    if w_avg is None:
        raise ConfigError("truncation (psi != 1) needs the mean style w_avg: use generator.mean_w()")
    if not 0.0 <= psi <= 1.0:
        raise ConfigError(f"the truncation psi must be in [0, 1], got {psi!r}")
    return w_avg + psi * (w - w_avg)


def style_mix(generator: StyleGenerator, ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """Per-layer styles: layers < ``crossover`` from ``ws_a`` (coarse), the rest from ``ws_b`` (fine)."""
    if not 0 <= crossover <= generator.num_ws:
        raise ConfigError(f"crossover must be in 0..{generator.num_ws}, got {crossover}")
    layer = torch.arange(generator.num_ws, device=ws_a.device)[None, :, None]
    return torch.where(layer < crossover, ws_a, ws_b)
