"""Image data sets by name, so that a notebook can switch with one parameter (``DATASET``)."""

from __future__ import annotations

import torch

from genlab.data.digits import load_digits
from genlab.data.mnist import SPLITS, load_fashion_mnist, load_mnist
from genlab.errors import GenlabError

IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist")


def load_image_dataset(name: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 (N, 1, H, W) in [-1, 1] and int64 labels of the data set ``name``.

    ``name`` is one of ``IMAGE_DATASETS``: ``"digits"`` (8×8, no download; see
    :func:`load_digits` for its fixed split), ``"mnist"`` or ``"fashion_mnist"`` (28×28).
    """
    if name not in IMAGE_DATASETS:
        raise GenlabError(f"unknown image data set {name!r}; use one of: {', '.join(IMAGE_DATASETS)}")
    if split not in SPLITS:
        raise GenlabError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    if name == "digits":
        return load_digits(split)
    loader = load_mnist if name == "mnist" else load_fashion_mnist
    return loader(split)
