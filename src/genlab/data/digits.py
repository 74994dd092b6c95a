"""scikit-learn's 8×8 handwritten digits (1797 images, ships with scikit-learn: no download)."""

from __future__ import annotations

import numpy as np
import torch

from genlab.errors import GenlabError

DIGITS_SPLITS = ("train", "test")


def load_digits(split: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8×8 digits: images float32 (N, 1, 8, 8) in [-1, 1], labels int64 (N,).

    Pixels are integers 0..16 in the source and are mapped by ``x / 8 - 1``.
    ``split=None`` returns all 1797 images. ``"train"`` / ``"test"`` give a fixed split
    (every fifth image, index 0, 5, 10, … is test: 1437 train, 360 test), so small experiments
    can validate the same way they would on MNIST.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 8.0 - 1.0).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    if split is None:
        return images, labels
    if split not in DIGITS_SPLITS:
        raise GenlabError(f"unknown digits split {split!r}; use one of: {', '.join(DIGITS_SPLITS)} or None")
    is_test = torch.arange(len(labels)) % 5 == 0
    keep = is_test if split == "test" else ~is_test
    return images[keep], labels[keep]
