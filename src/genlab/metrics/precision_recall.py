"""Improved precision and recall with k-NN manifolds (Kynkäänniemi et al., 2019).

Each set's manifold is the union of balls around its points, the ball of φ having the radius of
φ's k-th nearest neighbour within its own set (the point itself not counted):

    f(φ, Φ) = 1  if  ‖φ − φ'‖ ≤ ‖φ' − NN_k(φ', Φ)‖  for some φ' ∈ Φ,  else 0

    precision = 1/|Φ_g| Σ_{φ_g ∈ Φ_g} f(φ_g, Φ_r)      (generated samples on the real manifold)
    recall    = 1/|Φ_r| Σ_{φ_r ∈ Φ_r} f(φ_r, Φ_g)      (real images on the generated manifold)

=========  ========  ======================================
symbol     name      meaning
=========  ========  ======================================
Φ_r        ``real``  real feature vectors (N_r, D)
Φ_g        ``fake``  generated feature vectors (N_g, D)
k          ``k``     neighbour that sets the radius (3)
=========  ========  ======================================

Precision measures fidelity (are samples realistic?), recall measures coverage (is every mode
produced?). Distances are Euclidean in float64, computed in blocks so memory stays O(block·N).
"""

from __future__ import annotations

import numpy as np

from genlab.errors import ConfigError
from genlab.metrics.frechet import _as_features

__all__ = ["pairwise_distances", "knn_radii", "precision_recall"]

_BLOCK = 1024


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, M) between rows of a (N, D) and b (M, D), clipped at 0 before the root."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T  # (N, M)
    return np.sqrt(np.maximum(sq, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance (N,) from each row of x to its k-th nearest other row."""
    radii = np.empty(len(x))
    for i in range(0, len(x), _BLOCK):
        d = pairwise_distances(x[i : i + _BLOCK], x)        # (b, N); column i+j is the point itself (0)
        radii[i : i + _BLOCK] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def _coverage(queries: np.ndarray, support: np.ndarray, radii: np.ndarray) -> float:
    inside = np.empty(len(queries), dtype=bool)
    for i in range(0, len(queries), _BLOCK):
        d = pairwise_distances(queries[i : i + _BLOCK], support)   # (b, M)
        inside[i : i + _BLOCK] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of ``fake`` (N_g, D) against ``real`` (N_r, D) with k-NN manifolds."""
    r, g = _as_features(real, "real features"), _as_features(fake, "fake features")
    if r.shape[1] != g.shape[1]:
        raise ConfigError(f"precision_recall: real features have D={r.shape[1]}, fake D={g.shape[1]}")
    if not (isinstance(k, int) and 1 <= k < min(len(r), len(g))):
        raise ConfigError(f"precision_recall: k must be an integer in 1..{min(len(r), len(g)) - 1} (fewer than each set's size), got {k!r}")
    precision = _coverage(g, r, knn_radii(r, k))
    recall = _coverage(r, g, knn_radii(g, k))
    return precision, recall
