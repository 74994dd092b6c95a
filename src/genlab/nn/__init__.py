"""genlab.nn: the networks of the course.

- :mod:`genlab.nn.embeddings`  sinusoidal timestep encoding
- :mod:`genlab.nn.unet`        time- (and class-) conditioned U-Net for diffusion
- :mod:`genlab.nn.mlp`, :mod:`genlab.nn.classifier`  MLP and CNN classifiers
- :mod:`genlab.nn.vae`         VAE and conditional VAE
"""

from genlab.nn.embeddings import TimestepEmbedding, sinusoidal_embedding
from genlab.nn.unet import UNet, UNetConfig, count_parameters

__all__ = ["TimestepEmbedding", "UNet", "UNetConfig", "count_parameters", "sinusoidal_embedding"]
