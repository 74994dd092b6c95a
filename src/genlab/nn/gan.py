"""Generative adversarial networks: DCGAN and MLP generators/discriminators, the usual losses.

A generator G maps noise z ~ N(0, I) to data; a discriminator (a *critic* for WGAN) D maps data to
one real number per sample, a logit. The game (Goodfellow et al. 2014) and its variants differ only
in how the two losses read D's outputs — written here with real logits r = D(x) and fake logits
f = D(G(z)), softplus(u) = log(1 + e^u), means over the batch:

    ==================  ==========================================  =============================
    kind                discriminator / critic loss                  generator loss
    ==================  ==========================================  =============================
    "non_saturating"    softplus(−r) + softplus(f)                   softplus(−f)   (= −log σ(f))
                        (= −log σ(r) − log(1 − σ(f)), the GAN BCE)
    "minimax"           the same                                     −softplus(f)   (= log(1 − σ(f)))
    "hinge"             relu(1 − r) + relu(1 + f)   (Miyato et al.)  −f
    "wasserstein"       f − r   (+ λ · gradient_penalty, WGAN-GP)    −f
    ==================  ==========================================  =============================

The minimax generator loss is the game itself; it saturates (vanishing gradient) when D rejects the
fakes confidently, which is why Goodfellow et al. train G with the non-saturating one.

:func:`gradient_penalty` is WGAN-GP's E[(‖∇_x̂ D(x̂)‖₂ − 1)²] at random interpolates x̂ between real
and fake samples (Gulrajani et al. 2017, Algorithm 1). It needs per-sample gradients, so a critic
trained with it must not use batch normalisation (``norm="none"`` or ``"layer"``).
:func:`add_spectral_norm` wraps every convolution and linear layer in PyTorch's spectral-norm
parametrisation (Miyato et al. 2018): W / σ(W), σ the largest singular value by power iteration.

DCGAN (Radford et al. 2016) design rules, which :class:`DCGANGenerator` and
:class:`DCGANDiscriminator` follow: strided (transposed) convolutions instead of pooling, batch norm
in G (and in D unless the loss forbids it), ReLU in G with tanh at the output (data in [−1, 1]),
LeakyReLU(0.2) in D, no fully connected hidden layers beyond the projection of z.

Training: :class:`AdversarialStep` is a step function for :func:`genlab.train.engine.train` (models
``"generator"`` and ``"discriminator"``, made by :func:`gan_state` with Adam and an EMA of the
generator), so a GAN gets the trainer's guarantees — exact resume, crash-safe checkpoints, the NaN
guard — and the trainer learns nothing about GANs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.mlp import make_mlp
from genlab.train.ema import EMA
from genlab.train.engine import TrainState

__all__ = [
    "GAN_LOSSES",
    "AdversarialStep",
    "DCGANConfig",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "add_spectral_norm",
    "discriminator_loss",
    "gan_state",
    "generator_loss",
    "gradient_penalty",
    "minibatch_std",
    "r1_penalty",
]

GAN_LOSSES = ("non_saturating", "minimax", "hinge", "wasserstein")
NORMS = ("batch", "layer", "none")
_IMAGE_SIZES = {28: 7, 32: 4}  # image size → side of the first feature map (two or three upsamplings)


@dataclass
class DCGANConfig:
    image_size: int = 28  # S: 28 (MNIST family) or 32 (CIFAR-10)
    channels: int = 1  # C of the images
    latent_dim: int = 64  # d, dimension of z
    width: int = 32  # channels of the widest-resolution layer; doubled at each halving
    d_norm: str = "batch"  # the discriminator's normalisation: "batch", "layer" (for WGAN-GP) or "none"
    spectral_norm: bool = False  # wrap the discriminator's layers in spectral normalisation (SN-GAN)
    minibatch_std: bool = False  # give the discriminator the spread of its batch as one more channel before its last conv (ProGAN)

    def __post_init__(self) -> None:
        if self.image_size not in _IMAGE_SIZES:
            raise ConfigError(f"DCGAN is built for 28×28 or 32×32 images, got image_size={self.image_size}")
        if self.d_norm not in NORMS:
            raise ConfigError(f"d_norm must be one of {NORMS}, got {self.d_norm!r}")
        if min(self.channels, self.latent_dim, self.width) < 1:
            raise ConfigError("DCGANConfig: channels, latent_dim and width must be positive")

    @property
    def stages(self) -> int:
        """Number of ×2 resolution steps between the first feature map and the image."""
        return {28: 2, 32: 3}[self.image_size]


class _LatentSampler:
    """``sample_latent`` for a generator with a ``latent_dim``."""

    latent_dim: int

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), (n, d), on the module's device (drawn on the CPU for reproducibility)."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)


class DCGANGenerator(_LatentSampler, nn.Module):
    """z (N, d) → images (N, C, S, S) in [−1, 1]: project to (width·2^k, s₀, s₀), then k transposed
    convolutions (kernel 4, stride 2) each halving the channels, BN + ReLU, tanh at the end."""

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else DCGANConfig()
        self.latent_dim = c.latent_dim
        s0, k = _IMAGE_SIZES[c.image_size], c.stages
        top = c.width * 2 ** (k - 1)
        self.project = nn.Sequential(nn.Linear(c.latent_dim, top * s0 * s0, bias=False), nn.Unflatten(1, (top, s0, s0)),
                                     nn.BatchNorm2d(top), nn.ReLU())  # fmt: skip
        layers: list[nn.Module] = []
        ch = top
        for i in range(k):
            last = i == k - 1
            out = c.channels if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z))


def _norm(kind: str, channels: int, side: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [nn.LayerNorm([channels, side, side])]
    return []


class DCGANDiscriminator(nn.Module):
    """images (N, C, S, S) → logits (N,): k strided convolutions (kernel 4, stride 2) doubling the
    channels, LeakyReLU(0.2), the chosen normalisation after all but the first, then one linear map
    (every layer spectrally normalised when ``config.spectral_norm``)."""

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else DCGANConfig()
        s0, k = _IMAGE_SIZES[c.image_size], c.stages
        layers: list[nn.Module] = []
        ch_in, ch, side = c.channels, c.width, c.image_size
        for i in range(k):
            side //= 2
            last = i == k - 1
            if last:
                self._std_at = len(layers)  # the minibatch-std map joins the input of the last convolution
            extra = int(c.minibatch_std and last)
            layers.append(nn.Conv2d(ch_in + extra, ch, 4, stride=2, padding=1, bias=i == 0 or c.d_norm == "none"))
            layers += ([] if i == 0 else _norm(c.d_norm, ch, side)) + [nn.LeakyReLU(0.2)]
            ch_in, ch = ch, ch * 2
        assert side == s0
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(ch_in * s0 * s0, 1)
        if c.spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.minibatch_std:
            return self.head(self.features(x)).squeeze(1)
        h = self.features[: self._std_at](x)
        n, _, hh, ww = h.shape
        h = torch.cat([h, minibatch_std(h.flatten(1))[:, :, None, None].expand(n, 1, hh, ww)], dim=1)  # one more channel
        return self.head(self.features[self._std_at :](h)).squeeze(1)


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """ProGAN's minibatch standard deviation (Karras et al. 2018): in groups of ``group`` samples
    (the whole batch if it does not divide), the std of each feature over the group, averaged over
    the features — (N, 1), the same for the group's members. A generator that gives every z the same
    image has spread 0, which the discriminator then sees; without a cross-sample feature (or batch
    norm) it cannot tell a collapsed batch from a varied one. The std is √(var + 1e-8), as in ProGAN:
    features equal across a group (the blank border of real digits) would make √var's gradient 0/0."""
    n = h.shape[0]
    g = group if n % group == 0 else n
    spread = (h.reshape(n // g, g, -1).var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=1)  # (N/g,)
    return spread.repeat_interleave(g)[:, None]


class MLPGenerator(_LatentSampler, nn.Module):
    """z (N, d) → points (N, D): an MLP with ReLU hidden layers (for 2-D toy data)."""

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: tuple[int, ...] = (128, 128)):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = make_mlp(latent_dim, hidden, data_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points (N, D) → logits (N,): an MLP with LeakyReLU hidden layers (no normalisation, so it
    works with every loss including WGAN-GP)."""

    def __init__(self, data_dim: int = 2, hidden: tuple[int, ...] = (128, 128)):
        super().__init__()
        self.net = make_mlp(data_dim, hidden, 1, activation="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def _check_kind(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ConfigError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The discriminator's (critic's) loss for ``kind`` ∈ GAN_LOSSES (module table), a scalar."""
    _check_kind(kind)
    if kind in ("non_saturating", "minimax"):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return fake_logits.mean() - real_logits.mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss for ``kind`` ∈ GAN_LOSSES (module table), a scalar."""
    _check_kind(kind)
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    return -fake_logits.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's E[(‖∇_x̂ D(x̂)‖₂ − 1)²], x̂ = u·real + (1 − u)·fake, u ~ U(0, 1) per sample (drawn on
    ``generator``, on the CPU). Differentiable in the critic's parameters (create_graph=True)."""
    if real.shape != fake.shape:
        raise ConfigError(f"real and fake batches differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    u = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), generator=generator, dtype=real.dtype).to(real.device)
    x_hat = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(critic: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[‖∇_x D(x)‖²₂] on real images only — it pushes the critic
    towards zero slope on the data, so that near the equilibrium it stops pulling generated images
    past the real ones. Differentiable in the critic's parameters (create_graph=True)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()


def add_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Wrap every Conv2d, ConvTranspose2d and Linear of ``module`` in spectral normalisation (in place;
    returns ``module``). Batch norm layers are left alone: pair it with ``d_norm="none"``."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # PyTorch reads a transposed convolution's weight (in, out, kh, kw) with dim=1 by itself
            nn.utils.parametrizations.spectral_norm(child, n_power_iterations=n_power_iterations)
    return module


@dataclass
class AdversarialStep:
    """One GAN training step for :func:`genlab.train.engine.train`: ``n_critic`` discriminator
    updates, each on its share of the batch of real examples, then one generator update on as many
    fresh latents as one share. ``gp_weight`` λ adds λ · :func:`gradient_penalty` to the critic's
    loss (WGAN-GP: ``loss="wasserstein"``, λ = 10, ``n_critic`` = 5 in Gulrajani et al.);
    ``r1_weight`` γ adds γ/2 · :func:`r1_penalty` (StyleGAN: γ/2 · E‖∇D(x_real)‖², every step here
    rather than lazily every 16). Every draw
    (z, the interpolation weights) is from the trainer's generator, so runs resume bit for bit.
    """

    loss: str = "non_saturating"
    n_critic: int = 1
    gp_weight: float = 0.0
    r1_weight: float = 0.0
    _checked: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_kind(self.loss)
        if isinstance(self.n_critic, bool) or not isinstance(self.n_critic, int) or self.n_critic < 1:
            raise ConfigError(f"n_critic must be a positive int, got {self.n_critic!r}")
        if not self.gp_weight >= 0 or not self.r1_weight >= 0:
            raise ConfigError(f"gp_weight and r1_weight must be >= 0, got {self.gp_weight!r} and {self.r1_weight!r}")

    def __call__(self, ctx, batch) -> dict[str, float]:
        gen, disc, rng = ctx.models["generator"], ctx.models["discriminator"], ctx.generator
        if (self.gp_weight or self.r1_weight) and disc is not self._checked:  # once per discriminator, not on every step
            if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules()):
                raise ConfigError("the gradient penalty needs per-sample gradients: build the discriminator without batch norm "
                                  "(DCGANConfig(d_norm='layer') or 'none')")  # fmt: skip
            self._checked = disc
        real_all = batch[0]
        if len(real_all) < self.n_critic:
            raise ConfigError(f"a batch of {len(real_all)} cannot feed {self.n_critic} critic updates: raise the batch size")
        for real in real_all.chunk(self.n_critic):
            with torch.no_grad():
                fake = gen(gen.sample_latent(len(real), rng))
            d_loss = discriminator_loss(disc(real), disc(fake), self.loss)
            if self.gp_weight:
                d_loss = d_loss + self.gp_weight * gradient_penalty(disc, real, fake, rng)
            if self.r1_weight:
                d_loss = d_loss + self.r1_weight / 2 * r1_penalty(disc, real)
            d_value = ctx.optimize("discriminator", d_loss)
        # the generator's backward also fills the discriminator's gradients; its next optimize clears them
        g_value = ctx.optimize("generator", generator_loss(disc(gen(gen.sample_latent(len(real), rng))), self.loss))
        return {"d_loss": d_value, "g_loss": g_value}


def gan_state(generator: nn.Module, discriminator: nn.Module, *, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
              ema_decay: float | None = 0.999) -> TrainState:  # fmt: skip
    """A :class:`~genlab.train.engine.TrainState` for :class:`AdversarialStep`: Adam for both models
    (DCGAN's lr and β₁ = 0.5), and an EMA of the generator (``ema_decay=None``: none)."""
    return TrainState(
        models={"generator": generator, "discriminator": discriminator},
        optimizers={name: torch.optim.Adam(m.parameters(), lr=lr, betas=betas) for name, m in
                    (("generator", generator), ("discriminator", discriminator))},
        emas={"generator": EMA(generator, ema_decay)} if ema_decay else {},
    )  # fmt: skip
