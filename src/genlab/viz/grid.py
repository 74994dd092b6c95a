"""Image grids: a batch (N, C, H, W) in [-1, 1] → one uint8 picture (NumPy + Pillow)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

#: Gray value of the lines between images (visible on black MNIST and on white backgrounds).
PAD_VALUE = 128


def to_uint8(images) -> np.ndarray:
    """Map values in [-1, 1] to pixels 0..255: ``round((x + 1) · 127.5)``, clipped; NaN → 0."""
    if hasattr(images, "detach"):  # a torch.Tensor, on any device
        images = images.detach().to("cpu").float().numpy()
    x = np.nan_to_num(np.asarray(images, dtype=np.float64), nan=-1.0)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, nrow: int | None = None, padding: int = 1, pad_value: int = PAD_VALUE) -> np.ndarray:
    """Tile a batch into one image.

    ``images``: Tensor or ndarray (N, C, H, W) with C = 1 or 3, values in [-1, 1].
    ``nrow``: images per row (default ⌈√N⌉). ``padding`` pixels of ``pad_value`` separate the
    images and frame the grid. Returns uint8 (H', W') for C = 1, (H', W', 3) for C = 3, with
    H' = rows · (H + padding) + padding and W' = nrow · (W + padding) + padding.
    """
    pixels = to_uint8(images)
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3) or pixels.shape[0] == 0:
        raise GenlabError(
            f"make_grid needs a non-empty batch (N, C, H, W) with C = 1 or 3, got shape {pixels.shape}"
        )
    n, c, h, w = pixels.shape
    nrow = min(n, nrow if nrow is not None else math.ceil(math.sqrt(n)))
    if nrow < 1 or padding < 0:
        raise GenlabError(f"make_grid needs nrow ≥ 1 and padding ≥ 0, got nrow={nrow}, padding={padding}")
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        top = padding + (i // nrow) * (h + padding)
        left = padding + (i % nrow) * (w + padding)
        grid[top:top + h, left:left + w] = pixels[i].transpose(1, 2, 0)  # (C, H, W) → (H, W, C)
    return grid[..., 0] if c == 1 else grid


def upscale(grid: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a ``scale``×``scale`` block."""
    if int(scale) < 1:
        raise GenlabError(f"scale must be a positive integer, got {scale!r}")
    return grid.repeat(int(scale), axis=0).repeat(int(scale), axis=1)


def save_grid(images, path: str | os.PathLike, nrow: int | None = None, scale: int = 4,
              padding: int = 1, format: str = "PNG") -> Path:
    """Save :func:`make_grid` of ``images`` (PNG, or ``format="JPEG"``) enlarged ``scale`` times; returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(upscale(make_grid(images, nrow=nrow, padding=padding), scale)).save(path, format=format)
    return path
