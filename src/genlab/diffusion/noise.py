"""Per-sample noise: sample i of a request depends on (seed, i) only.

Drawing all noise of a batch from one generator ties each image to its batch: the same seed gives
another image when the batch size or the image's position changes. :class:`SampleNoise` gives
every sample its own generator, seeded from (seed, index) with NumPy's ``SeedSequence`` (no
collisions between nearby seeds and indices), so a large request can be sampled in chunks of any
size and still give the same images (EDM's ``generate.py`` does the same per image).

Samplers accept either a ``torch.Generator`` (one stream for the batch; what the diffusers
comparisons use) or a :class:`SampleNoise`; :func:`randn_like` draws from either, always on the
CPU, then moves the noise to x's device, so a seed gives the same images on any hardware.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genlab.errors import ConfigError

__all__ = ["SampleNoise", "randn_like"]


class SampleNoise:
    """Independent N(0, 1) streams, one per sample index.

    ``SampleNoise(seed, range(64, 128))`` covers samples 64..127 of request ``seed``;
    ``randn_like(x)`` (x of shape (B, ...), B = number of indices) returns noise whose row b comes
    from sample ``indices[b]``'s own stream. Each stream is drawn ``block`` draws at a time (one
    call per sample per block, not per step), so per-sample noise costs little; the k-th draw of a
    sample is the same whatever request or chunk the sample is in.
    """

    def __init__(self, seed: int, indices: Sequence[int], block: int = 16):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
        self.seed, self.indices = int(seed), [int(i) for i in indices]
        if any(i < 0 for i in self.indices):
            raise ConfigError("sample indices must be non-negative")
        self.generators = [
            torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, i]).generate_state(1, dtype=np.uint64)[0] >> 1))
            for i in self.indices
        ]
        self.block = block
        self._buffer: torch.Tensor | None = None  # (B, block, *shape): the next draws of every stream
        self._used = 0

    def __len__(self) -> int:
        return len(self.indices)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.generators):
            raise ConfigError(f"noise for {len(self.generators)} samples was asked for a batch of {x.shape[0]}")
        shape = tuple(x.shape[1:])
        if self._buffer is None or self._used == self.block or tuple(self._buffer.shape[2:]) != shape:
            self._buffer = torch.stack([torch.randn((self.block, *shape), generator=g, dtype=torch.float32) for g in self.generators])
            self._used = 0
        z = self._buffer[:, self._used]
        self._used += 1
        return z.to(device=x.device, dtype=x.dtype)


def randn_like(x: torch.Tensor, generator: torch.Generator | SampleNoise | None) -> torch.Tensor:
    """N(0, I) noise with x's shape, dtype and device, from ``generator`` (see the module docstring)."""
    if isinstance(generator, SampleNoise):
        return generator.randn_like(x)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
