"""Reference statistics of real images: features, mean and covariance, cached per
(data set, split, N, feature-network checksum).

Cache file::

    data_root()/features/<dataset>/reference/<split>-n<N>-<checksum[:16]>.safetensors

with tensors ``features`` (N, D), ``logits`` (N, K), ``mu`` (D,), ``sigma`` (D, D), all float64,
and the key in the file's metadata. The N images are the first N of a fixed permutation
(seed 0) of the split, so the same N always means the same images; a feature network with
another checksum never reuses another's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.errors import ConfigError
from genlab.metrics.features import FeatureNetwork, _atomic_write, dataset_splits
from genlab.metrics.frechet import gaussian_stats

__all__ = ["ReferenceStats", "reference_stats", "reference_images", "generator_training_set", "REFERENCE_SPLITS"]

#: "held_out": the real images the feature net did not train on (test split, or test half B);
#: "train": the images it trained on (train split, or test half A), e.g. for the real-data floor.
REFERENCE_SPLITS = ("held_out", "train")


@dataclass(frozen=True)
class ReferenceStats:
    features: np.ndarray   # (N, D) float64
    logits: np.ndarray     # (N, K) float64
    mu: np.ndarray         # (D,)
    sigma: np.ndarray      # (D, D)
    reference: str         # "test", "test half B", "train split", "test half A"
    n: int
    path: Path
    loaded: bool


def _split_name(net: FeatureNetwork, split: str) -> str:
    if split not in REFERENCE_SPLITS:
        raise ConfigError(f"unknown reference split {split!r}; use one of: {', '.join(REFERENCE_SPLITS)}")
    if split == "held_out":
        return net.reference
    return "train" if net.trained_on == "train split" else net.trained_on


def reference_images(net: FeatureNetwork, split: str = "held_out", n: int | None = None, *, with_labels: bool = False):
    """The first ``n`` images (all when None) of the fixed permutation of the reference split;
    ``(images, labels)`` with ``with_labels=True``."""
    _split_name(net, split)
    splits = dataset_splits(net.dataset)
    x, y = splits.held_out if split == "held_out" else splits.train
    idx = _reference_order(net, split, len(x), n)[0]
    return (x[idx], y[idx]) if with_labels else x[idx]


def _reference_order(net: FeatureNetwork, split: str, size: int, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the n reference indices, the other indices) of a split of ``size`` images: a fixed permutation (seed 0)."""
    n = size if n is None else n
    if n > size:
        raise ConfigError(f"{net.dataset} {_split_name(net, split)}: asked for N={n} reference images, "
                          f"only {size} exist; pass n ≤ {size}")
    perm = torch.from_numpy(np.random.default_rng(0).permutation(size))
    return perm[:n], perm[n:]


def generator_training_set(net: FeatureNetwork, n_ref: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` a generator may train on without seeing the ``n_ref`` held-out reference
    images that :func:`reference_stats` (split "held_out") scores it against: the feature network's
    training images plus the held-out images outside the reference. Offline (only MNIST's test
    split) that is test half A and 3000 of half B for ``n_ref = 2000``."""
    splits = dataset_splits(net.dataset)
    held_x, held_y = splits.held_out
    _, rest = _reference_order(net, "held_out", len(held_x), n_ref)
    return torch.cat([splits.train[0], held_x[rest]]), torch.cat([splits.train[1], held_y[rest]])


def reference_stats(net: FeatureNetwork, n: int, split: str = "held_out") -> ReferenceStats:
    """Features and Gaussian statistics of ``n`` real images of ``split``, from the cache if there."""
    name = _split_name(net, split)
    if not (isinstance(n, int) and n >= 2):
        raise ConfigError(f"reference statistics need an integer N ≥ 2, got {n!r}")
    path = net.path / "reference" / f"{name.replace(' ', '-')}-n{n}-{net.checksum[:16]}.safetensors"
    if path.is_file():
        try:
            t = load_file(str(path))
            if t["features"].shape[0] == n:
                f = t["features"].numpy()
                return ReferenceStats(f, t["logits"].numpy(), t["mu"].numpy(), t["sigma"].numpy(), name, n, path, True)
        except (SafetensorError, KeyError, OSError):
            pass  # unreadable: recompute below
    x = reference_images(net, split, n)
    feats, logits = net.features_and_logits(x)        # (N, D), (N, K)
    mu, sigma = gaussian_stats(feats, f"{n} reference images", require_full_rank=False)
    tensors = {"features": feats.contiguous(), "logits": logits.contiguous(),
               "mu": torch.from_numpy(mu).contiguous(), "sigma": torch.from_numpy(sigma).contiguous()}
    meta = {"dataset": net.dataset, "split": name, "n": str(n), "feature_net": net.name, "checksum": net.checksum}
    _atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))
    return ReferenceStats(feats.numpy(), logits.numpy(), mu, sigma, name, n, path, False)
