"""Synthetic 2-D point clouds for visual intuition (all roughly unit scale, float32 (n, 2)).

- ``gaussian_mixture``: 8 Gaussians (std 0.1) with means evenly spaced on a circle of radius √2
- ``moons``: two interleaved half circles (scikit-learn's ``make_moons`` shape), centred
- ``swiss_roll``: the 2-D spiral r = θ, θ ∈ [1.5π, 4.5π], scaled by 1/7
- ``rings``: three concentric circles of radius 0.5, 1.0, 1.5 (points spread by arc length)
- ``grid``: 25 Gaussians (std 0.05) with means on the 5×5 grid {−1.5, −0.75, 0, 0.75, 1.5}²

The two mixtures are the usual tests of mode collapse (the ring of 8 and the 5×5 grid): their
components are :func:`toy2d_modes`, so a sample can be assigned to its nearest mode.
"""

from __future__ import annotations

import numpy as np

from genlab.errors import GenlabError

TOY2D = ("gaussian_mixture", "moons", "swiss_roll", "rings", "grid")


def toy2d_modes(name: str) -> tuple[np.ndarray, float]:
    """``(means (K, 2), std)`` of the mixture ``name`` ("gaussian_mixture": the ring of 8, or "grid":
    the 5×5 grid); each component is N(mean, std² I) and all K have the same weight."""
    if name == "gaussian_mixture":
        angle = 2 * np.pi * np.arange(8) / 8
        return np.sqrt(2.0) * np.stack([np.cos(angle), np.sin(angle)], axis=1), 0.1
    if name == "grid":
        side = 0.75 * np.arange(-2, 3)
        return np.stack(np.meshgrid(side, side, indexing="ij"), axis=-1).reshape(-1, 2), 0.05
    raise GenlabError(f"{name!r} is not a Gaussian mixture with known modes; use 'gaussian_mixture' or 'grid'")


def _mixture(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    means, std = toy2d_modes(name)
    k = rng.integers(0, len(means), size=n)  # component of each point
    return means[k] + std * rng.standard_normal((n, 2))


def _gaussian_mixture(n: int, rng: np.random.Generator) -> np.ndarray:
    return _mixture("gaussian_mixture", n, rng)


def _grid(n: int, rng: np.random.Generator) -> np.ndarray:
    return _mixture("grid", n, rng)


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    upper = rng.random(n) < 0.5
    t = np.pi * rng.random(n)
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x - 0.5, y - 0.25], axis=1)  # centred: x ∈ [-1.5, 1.5], y ∈ [-0.75, 0.75]
    return points + 0.05 * rng.standard_normal((n, 2))


def _swiss_roll(n: int, rng: np.random.Generator) -> np.ndarray:
    theta = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    points = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1) / 7.0
    return points + 0.03 * rng.standard_normal((n, 2))


def _rings(n: int, rng: np.random.Generator) -> np.ndarray:
    radii = np.array([0.5, 1.0, 1.5])
    r = rng.choice(radii, size=n, p=radii / radii.sum())  # longer rings get more points
    angle = 2 * np.pi * rng.random(n)
    points = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + 0.03 * rng.standard_normal((n, 2))


_MAKERS = {"gaussian_mixture": _gaussian_mixture, "moons": _moons,
           "swiss_roll": _swiss_roll, "rings": _rings, "grid": _grid}


def toy2d(name: str, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """``n`` points of the 2-D distribution ``name`` (one of ``TOY2D``) → float32 (n, 2).

    ``seed`` is an int or a ``np.random.Generator``; the same seed gives the same points.
    """
    if name not in _MAKERS:
        raise GenlabError(f"unknown toy 2-D data set {name!r}; use one of: {', '.join(TOY2D)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GenlabError(f"toy2d needs a positive integer number of points, got n={n!r}")
    if isinstance(seed, bool) or (isinstance(seed, (int, np.integer)) and seed < 0) or not (seed is None or isinstance(seed, (int, np.integer, np.random.Generator))):
        raise GenlabError(f"toy2d's seed must be a non-negative int or a numpy Generator, got {seed!r}")
    rng = np.random.default_rng(seed)
    return _MAKERS[name](int(n), rng).astype(np.float32)
