"""Animated GIFs of image batches (e.g. the reverse diffusion process), with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

from genlab.errors import GenlabError
from genlab.viz.grid import make_grid, upscale

#: How long the last frame stays on screen before the animation loops (at least).
LAST_FRAME_MS = 1000


def save_gif(frames, path: str | os.PathLike, nrow: int | None = None, scale: int = 4,
             duration_ms: int = 80) -> Path:
    """Save a list of batches (each (N, C, H, W) in [-1, 1]) as a looping GIF, one grid per frame.

    Each frame shows ``duration_ms``; the last is held for ``max(LAST_FRAME_MS, 10 · duration_ms)``
    so that the final result can be seen. (GIF stores times in 10 ms steps. Pillow merges
    consecutive identical frames into one longer frame.)
    """
    from PIL import Image

    frames = list(frames)
    if not frames:
        raise GenlabError("save_gif needs at least one frame (a list of (N, C, H, W) batches)")
    images = [Image.fromarray(upscale(make_grid(batch, nrow=nrow), scale)) for batch in frames]
    durations = [int(duration_ms)] * (len(images) - 1) + [max(LAST_FRAME_MS, 10 * int(duration_ms))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=0)
    return path
