"""Variational autoencoder (Kingma & Welling 2014): Gaussian encoder, Bernoulli or Gaussian decoder.

Model and notation (symbol ↔ name):

    p(z)      = N(0, I)                         prior over the latent z ∈ R^d        (d ↔ latent_dim)
    p_θ(x|z)  = Bernoulli(σ(logits)) or N(mean, s² I)                               (decoder; s ↔ decoder_std)
    q_φ(z|x)  = N(μ, diag σ²)                   amortised posterior                  (μ ↔ mu, log σ² ↔ logvar)
    z = μ + σ ⊙ ε,  ε ~ N(0, I)                 reparameterisation                   (ε ↔ eps)

    ELBO(x) = E_q[log p_θ(x|z)] − KL(q_φ(z|x) ‖ p(z))  ≤  log p_θ(x)
            =       −recon      −        kl

:func:`elbo_terms` returns ``recon`` (one-sample estimate of −E_q[log p(x|z)]) and ``kl`` (closed form),
both as means over the batch of per-sample sums, in nats, and ``loss = recon + β·kl`` (β-VAE,
Higgins et al. 2017; β = 1 is the plain negative ELBO).

Data convention: images live in [-1, 1] (genlab's convention); the encoder sees them as they are.

- ``likelihood="bernoulli"``: the decoder outputs logits; the target is x mapped to [0, 1],
  t = (x + 1)/2, and −log p(x|z) = Σ_pixels BCE_with_logits(logits, t). This is an exact
  log-probability only for binary t (binarised images); for grey values it is the usual
  (unnormalised, "continuous Bernoulli") surrogate.
- ``likelihood="gaussian"``: the decoder outputs the mean on the [-1, 1] scale, and
  −log p(x|z) = Σ_pixels [ (x − mean)²/(2s²) + log s + ½ log 2π ], a true density in nats.
  ``decoder_std`` s is fixed (``gaussian_std``) unless ``learn_std=True``, in which case one shared
  log s is a learned parameter (initialised at log ``gaussian_std``). With s fixed, the loss is
  MSE/(2s²) up to a constant, so s plays the role of an inverse β.

``num_classes > 0`` makes it a conditional VAE (Sohn et al. 2015): the one-hot label is
concatenated to the encoder's features and to z before decoding, so q(z|x, y) and p(x|z, y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.device import module_device
from genlab.errors import ConfigError, GenlabError
from genlab.nn.mlp import make_mlp

__all__ = [
    "VAEConfig",
    "VAE",
    "reparameterize",
    "gaussian_kl",
    "reconstruction_nll",
    "elbo_terms",
    "vae_loss",
    "importance_log_likelihood",
]

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    kind: str = "mlp"            # "mlp" (flattened pixels) or "conv" (two stride-2 convolutions)
    in_channels: int = 1         # C
    image_size: int = 28         # S (images are C×S×S); "conv" needs S divisible by 4 (8, 16, 28, 32…)
    latent_dim: int = 2          # d, dimension of z
    hidden: tuple[int, ...] | None = None  # mlp: hidden widths, default (512, 256), () = linear maps;
    #                                        conv: (channels 1, channels 2, dense width), default (16, 32, 128)
    likelihood: str = "bernoulli"  # decoder p(x|z): "bernoulli" (logits) or "gaussian" (mean)
    beta: float = 1.0            # weight of the KL term in the loss (β-VAE); 1 = the ELBO
    num_classes: int = 0         # > 0: conditional VAE on one-hot labels
    gaussian_std: float = 1.0    # s of the Gaussian decoder on the [-1, 1] scale (fixed, or initial value)
    learn_std: bool = False      # Gaussian decoder: learn one shared log s

    def __post_init__(self) -> None:
        if self.kind not in ("mlp", "conv"):
            raise ConfigError(f"VAEConfig: kind must be 'mlp' or 'conv', got {self.kind!r}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ConfigError(f"VAEConfig: likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.hidden is None:
            self.hidden = (512, 256) if self.kind == "mlp" else (16, 32, 128)
        self.hidden = tuple(int(h) for h in self.hidden)  # JSON gives lists back
        if self.kind == "conv" and len(self.hidden) != 3:
            raise ConfigError("VAEConfig: kind='conv' takes hidden=(channels1, channels2, dense_width)")
        if self.kind == "conv" and self.image_size % 4 != 0:
            raise ConfigError(f"VAEConfig: kind='conv' needs image_size divisible by 4, got {self.image_size}; use kind='mlp'")
        if min((self.in_channels, self.image_size, self.latent_dim) + self.hidden) < 1 or self.num_classes < 0:
            raise ConfigError("VAEConfig: sizes must be positive (num_classes ≥ 0)")
        if self.beta < 0 or self.gaussian_std <= 0:
            raise ConfigError("VAEConfig: beta must be ≥ 0 and gaussian_std > 0")


class VAE(nn.Module):
    """Encoder x (N, C, S, S) → (μ, log σ²) (N, d); decoder z (N, d) → logits or mean (N, C, S, S)."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config if config is not None else VAEConfig()
        c = self.config
        d, k = c.latent_dim, c.num_classes
        if c.kind == "mlp":
            n_pix = c.in_channels * c.image_size**2
            self.encoder = make_mlp(n_pix + k, c.hidden, 2 * d)
            self.decoder = make_mlp(d + k, tuple(reversed(c.hidden)), n_pix)
        else:
            c1, c2, dense = c.hidden
            s4 = c.image_size // 4
            self.encoder_conv = nn.Sequential(
                nn.Conv2d(c.in_channels, c1, 4, stride=2, padding=1), nn.ReLU(),  # (N, c1, S/2, S/2)
                nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),             # (N, c2, S/4, S/4)
                nn.Flatten(),                                                     # (N, c2·(S/4)²)
            )
            self.encoder = make_mlp(c2 * s4 * s4 + k, (dense,), 2 * d)
            self.decoder_fc = nn.Sequential(make_mlp(d + k, (dense,), c2 * s4 * s4), nn.ReLU())
            self.decoder_conv = nn.Sequential(
                nn.Unflatten(1, (c2, s4, s4)),                                    # (N, c2, S/4, S/4)
                nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),    # (N, c1, S/2, S/2)
                nn.ConvTranspose2d(c1, c.in_channels, 4, stride=2, padding=1),    # (N, C, S, S)
            )
        if c.likelihood == "gaussian" and c.learn_std:
            self.log_std = nn.Parameter(torch.tensor(math.log(c.gaussian_std)))  # log s, learned
        else:
            self.log_std = None  # s = gaussian_std, fixed

    # -- helpers -------------------------------------------------------------------------------
    def decoder_log_std(self, like: torch.Tensor) -> torch.Tensor:
        """log s of the Gaussian decoder, as a tensor with the dtype and device of ``like``."""
        if self.log_std is not None:
            return self.log_std.to(like.dtype)
        return torch.tensor(math.log(self.config.gaussian_std), dtype=like.dtype, device=like.device)

    @property
    def decoder_std(self) -> torch.Tensor:
        """s, the standard deviation of the Gaussian decoder (unused by the Bernoulli decoder)."""
        return self.decoder_log_std(torch.empty(())).exp().detach()

    def _one_hot(self, y: torch.Tensor | int | None, n: int, device: torch.device) -> torch.Tensor | None:
        k = self.config.num_classes
        if k == 0:
            if y is not None:
                raise GenlabError("this VAE is unconditional (num_classes=0): call it without labels y")
            return None
        if y is None:
            raise GenlabError(f"this conditional VAE needs labels y in 0..{k - 1}: pass y=...")
        y = torch.as_tensor(y, device=device).long()
        if y.ndim == 0:
            y = y.expand(n)
        if y.shape != (n,) or y.min() < 0 or y.max() >= k:
            raise GenlabError(f"labels y must be {n} integers in 0..{k - 1}, got shape {tuple(y.shape)}")
        return F.one_hot(y, k).float()

    # -- encoder / decoder ---------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x[, y]) = N(μ, diag exp(logvar)): returns (mu, logvar), each (N, d)."""
        c = self.config
        if x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ConfigError(
                f"VAE expects images (N, {c.in_channels}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}: "
                "match VAEConfig(in_channels, image_size) to the data"
            )
        h = x.flatten(1) if c.kind == "mlp" else self.encoder_conv(x)  # (N, features)
        onehot = self._one_hot(y, len(x), x.device)
        if onehot is not None:
            h = torch.cat([h, onehot], dim=1)
        mu, logvar = self.encoder(h).chunk(2, dim=1)  # (N, 2d) → 2 × (N, d)
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """p(x|z[, y]): Bernoulli logits or Gaussian mean, shape (N, C, S, S)."""
        c = self.config
        onehot = self._one_hot(y, len(z), z.device)
        if onehot is not None:
            z = torch.cat([z, onehot], dim=1)
        if c.kind == "mlp":
            return self.decoder(z).view(len(z), c.in_channels, c.image_size, c.image_size)
        return self.decoder_conv(self.decoder_fc(z))

    def forward(self, x: torch.Tensor, y=None, generator: torch.Generator | None = None):
        """One pass x → (μ, logvar) → z = μ + σ ε → decoder output. Returns (output, mu, logvar, z)."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, generator)
        return self.decode(z, y), mu, logvar, z

    # -- images --------------------------------------------------------------------------------
    def to_image(self, output: torch.Tensor) -> torch.Tensor:
        """Decoder output → the mean image E[x|z] on genlab's [-1, 1] scale."""
        if self.config.likelihood == "bernoulli":
            return 2 * torch.sigmoid(output) - 1
        return output.clamp(-1, 1)

    def decode_image(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """z (N, d) → mean image (N, C, S, S) in [-1, 1]."""
        return self.to_image(self.decode(z, y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """x → decoder mean at z = μ(x), in [-1, 1] (a deterministic reconstruction)."""
        mu, _ = self.encode(x, y)
        return self.decode_image(mu, y)

    @torch.no_grad()
    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the model: z ~ N(0, I) (drawn on the generator's device), then E[x|z] in [-1, 1]."""
        device = next(self.parameters()).device
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=gen_device).to(device)
        return self.decode_image(z, y)


# -- the pieces of the ELBO --------------------------------------------------------------------
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + exp(½ logvar) ⊙ ε with ε ~ N(0, I): a sample of N(μ, diag σ²) that is differentiable in μ, σ.

    ε is drawn on the generator's device (e.g. a CPU generator gives the same z on any hardware).
    """
    gen_device = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, device=gen_device, dtype=mu.dtype).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²), one value per row (N,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def reconstruction_nll(model: VAE, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) summed over pixels, one value per image (N,), in nats (see the module docstring)."""
    if model.config.likelihood == "bernoulli":
        target = ((x + 1) / 2).clamp(0, 1)  # [-1, 1] → [0, 1]
        nll = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    else:
        log_s = model.decoder_log_std(output)
        nll = 0.5 * (x - output).pow(2) * torch.exp(-2 * log_s) + log_s + 0.5 * LOG_2PI
    return nll.flatten(1).sum(dim=1)


def elbo_terms(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    beta: float | None = None,
) -> dict[str, torch.Tensor]:
    """One-sample ELBO pieces, batch means of per-image sums, in nats.

    Returns ``recon`` = −log p(x|z) with z ~ q(z|x) (reparameterised), ``kl`` = KL(q(z|x) ‖ p(z))
    (closed form), ``loss`` = recon + β·kl (β defaults to ``model.config.beta``) and
    ``elbo`` = −(recon + kl) (β-free; its expectation is ≤ log p(x)).
    """
    beta = model.config.beta if beta is None else beta
    output, mu, logvar, _ = model(x, y, generator)
    recon = reconstruction_nll(model, output, x).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "elbo": -(recon + kl)}


def vae_loss(model: VAE, batch: tuple[torch.Tensor, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """``loss_fn`` for :func:`genlab.train.fit`: batch (x,) or (x, y); labels are used iff the VAE is conditional."""
    device = module_device(model)
    x = batch[0].to(device)
    y = batch[1].to(device) if model.config.num_classes > 0 else None
    return elbo_terms(model, x, y, generator)["loss"]


@torch.no_grad()
def importance_log_likelihood(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_samples: int = 64,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) per image (N,), with q(z|x) as proposal (Burda et al. 2016):

        log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x),   K ↔ num_samples.

    K = 1 gives the ELBO in expectation; the estimate increases towards log p(x) as K grows.
    ``chunk`` bounds how many decoder rows (samples × images) are evaluated at once.
    """
    n = len(x)
    mu, logvar = model.encode(x, y)  # (N, d)
    per = max(1, chunk // n)  # samples per chunk
    log_w = []
    for start in range(0, num_samples, per):
        k = min(per, num_samples - start)
        z = reparameterize(mu.repeat(k, 1), logvar.repeat(k, 1), generator)  # (k·N, d), sample-major
        xk = x.repeat(k, *([1] * (x.ndim - 1)))
        yk = None if y is None else torch.as_tensor(y, device=x.device).expand(n).repeat(k)
        log_px_z = -reconstruction_nll(model, model.decode(z, yk), xk)
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(1)
        m, lv = mu.repeat(k, 1), logvar.repeat(k, 1)
        log_qz = -0.5 * ((z - m).pow(2) / lv.exp() + lv + LOG_2PI).sum(1)
        log_w.append((log_px_z + log_pz - log_qz).view(k, n))
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(num_samples)
