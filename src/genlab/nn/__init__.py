"""genlab.nn: the networks of the course.

- :mod:`genlab.nn.embeddings`    sinusoidal timestep encoding
- :mod:`genlab.nn.unet`          time- (and class-) conditioned U-Net for diffusion, optional cross-attention to a context (text)
- :mod:`genlab.nn.dit`           Diffusion Transformer (DiT): patches as tokens, adaLN-Zero blocks; the U-Net's interface
- :mod:`genlab.nn.toy_denoiser`  residual MLP denoiser for 2-D toy data
- :mod:`genlab.nn.mlp`, :mod:`genlab.nn.classifier`  MLP and CNN classifiers
- :mod:`genlab.nn.noisy_classifier`  time-conditioned classifier p(y | x_t, t) for classifier guidance
- :mod:`genlab.nn.vae`           VAE, β-VAE and conditional VAE
- :mod:`genlab.nn.text_encoder`  word-level prompt tokenizer and a tiny transformer text encoder
- :mod:`genlab.nn.autoencoder`   KL-regularised convolutional autoencoder (latent diffusion's first stage)
- :mod:`genlab.nn.gan`           DCGAN and MLP generators/discriminators, GAN losses, WGAN-GP, spectral norm
- :mod:`genlab.nn.stylegan`      a small StyleGAN-style generator: mapping network, modulated convolutions,
  noise inputs, style mixing, truncation
"""

from genlab.nn.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_loss, latent_scale_factor
from genlab.nn.classifier import (
    ConvClassifier,
    ConvClassifierConfig,
    accuracy,
    cross_entropy_loss,
    predict,
    train_classifier,
)
from genlab.nn.dit import DiT, DiTConfig
from genlab.nn.embeddings import TimestepEmbedding, sinusoidal_embedding
from genlab.nn.gan import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    add_spectral_norm,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from genlab.nn.mlp import MLPClassifier, MLPConfig, make_mlp
from genlab.nn.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from genlab.nn.stylegan import StyleGANConfig, StyleGenerator, style_mix, truncate
from genlab.nn.text_encoder import PromptTokenizer, TextEncoder, TextEncoderConfig
from genlab.nn.toy_denoiser import ToyDenoiser, ToyDenoiserConfig
from genlab.nn.unet import UNet, UNetConfig, count_parameters
from genlab.nn.vae import (
    VAE,
    VAEConfig,
    elbo_terms,
    gaussian_kl,
    importance_log_likelihood,
    reconstruction_nll,
    reparameterize,
    vae_loss,
)

__all__ = [
    "Autoencoder", "AutoencoderConfig", "autoencoder_loss", "latent_scale_factor",
    "VAE", "ConvClassifier", "ConvClassifierConfig", "DCGANConfig", "DCGANDiscriminator", "DCGANGenerator", "DiT", "DiTConfig",
    "MLPClassifier", "MLPConfig", "MLPDiscriminator", "MLPGenerator", "NoisyClassifier",
    "NoisyClassifierConfig", "PromptTokenizer", "StyleGANConfig", "StyleGenerator", "TextEncoder", "TextEncoderConfig", "TimestepEmbedding",
    "ToyDenoiser", "ToyDenoiserConfig", "UNet", "UNetConfig", "VAEConfig", "accuracy", "add_spectral_norm", "count_parameters",
    "cross_entropy_loss", "discriminator_loss", "elbo_terms", "gaussian_kl", "generator_loss", "gradient_penalty", "r1_penalty", "importance_log_likelihood", "make_mlp", "predict",
    "reconstruction_nll", "reparameterize", "sinusoidal_embedding", "style_mix", "train_classifier", "truncate", "vae_loss",
]  # fmt: skip
