"""Image data sets by name, so that a notebook can switch with one parameter (``DATASET``)."""

from __future__ import annotations

import torch

from genlab.data.cifar import load_cifar10
from genlab.data.digits import load_digits
from genlab.data.mnist import SPLITS, load_fashion_mnist, load_mnist
from genlab.errors import GenlabError

IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")


def load_image_dataset(name: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 (N, C, H, W) in [-1, 1] and int64 labels of the data set ``name``.

    ``name`` is one of ``IMAGE_DATASETS``: ``"digits"`` (8×8 gray, no download; see
    :func:`load_digits` for its fixed split), ``"mnist"`` or ``"fashion_mnist"`` (28×28 gray),
    ``"cifar10"`` (32×32 RGB, C = 3; see :func:`load_cifar10`).
    """
    if name not in IMAGE_DATASETS:
        raise GenlabError(f"unknown image data set {name!r}; use one of: {', '.join(IMAGE_DATASETS)}")
    if split not in SPLITS:
        raise GenlabError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    if name == "digits":
        return load_digits(split)
    if name == "cifar10":
        return load_cifar10(split)
    loader = load_mnist if name == "mnist" else load_fashion_mnist
    return loader(split)
