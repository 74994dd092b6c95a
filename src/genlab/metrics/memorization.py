"""Memorisation check: how close generated samples lie to their nearest training image.

A generator that copies its training set puts samples much nearer to training images than
fresh real images are. The check compares two distributions of nearest-neighbour distances

    d_gen(i)  = min_j ‖φ(x̂_i) − φ(x_j^train)‖       (generated samples → training set)
    d_real(i) = min_j ‖φ(x_i^held-out) − φ(x_j^train)‖  (held-out real images → training set)

=============  ================  ==================================================
symbol         name              meaning
=============  ================  ==================================================
φ              feature map       features (or flattened pixels) of an image
x̂_i            ``samples``       generated images / their features (N, D)
x_j^train      ``train``         the generator's training images (M, D)
x_i^held-out   ``held_out``      real images the generator never saw (N', D)
=============  ================  ==================================================

``ratio`` = median d_gen / median d_real: ≈ 1 (or above) for a generator that does not copy,
well below 1 for one that memorises; ``copies`` counts samples closer to a training image than
``copy_quantile`` (default 1 %) of held-out images are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.errors import ConfigError
from genlab.metrics.frechet import _as_features
from genlab.metrics.precision_recall import _BLOCK, pairwise_distances

__all__ = ["nearest_neighbour_distances", "MemorizationReport", "memorization_check"]


def nearest_neighbour_distances(queries, reference) -> tuple[np.ndarray, np.ndarray]:
    """(distance (N,), index (N,)) of each query row's nearest row of ``reference``."""
    q, r = _as_features(queries, "queries"), _as_features(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ConfigError(f"nearest_neighbour_distances: queries have D={q.shape[1]}, reference D={r.shape[1]}")
    dist, idx = np.empty(len(q)), np.empty(len(q), dtype=np.int64)
    for i in range(0, len(q), _BLOCK):
        d = pairwise_distances(q[i : i + _BLOCK], r)   # (b, M)
        idx[i : i + _BLOCK] = d.argmin(axis=1)
        dist[i : i + _BLOCK] = d[np.arange(len(d)), idx[i : i + _BLOCK]]
    return dist, idx


@dataclass(frozen=True)
class MemorizationReport:
    generated: np.ndarray       # (N,)  d_gen
    held_out: np.ndarray        # (N',) d_real
    nearest_index: np.ndarray   # (N,)  index of each sample's nearest training image
    ratio: float                # median d_gen / median d_real
    copies: int                 # samples nearer than the copy_quantile of d_real
    threshold: float

    def describe(self) -> str:
        return (f"memorisation: median NN distance to the training set {np.median(self.generated):.4g} for samples vs "
                f"{np.median(self.held_out):.4g} for held-out real images (ratio {self.ratio:.3f}); "
                f"{self.copies}/{len(self.generated)} samples nearer than {self.threshold:.4g}")


def memorization_check(samples, train, held_out, copy_quantile: float = 0.01) -> MemorizationReport:
    """Nearest-training-image distances of ``samples`` next to those of ``held_out`` real images."""
    d_gen, idx = nearest_neighbour_distances(samples, train)
    d_real, _ = nearest_neighbour_distances(held_out, train)
    threshold = float(np.quantile(d_real, copy_quantile))
    med_real = float(np.median(d_real))
    ratio = float(np.median(d_gen) / med_real) if med_real > 0 else float("inf")
    return MemorizationReport(d_gen, d_real, idx, ratio, int((d_gen < threshold).sum()), threshold)
