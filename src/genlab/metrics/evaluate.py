"""One entry point for scoring generated images: :func:`evaluate` (used by ``genlab eval``).

``evaluate(samples, dataset="mnist")`` extracts the domain feature network's features of the
samples and of as many real held-out images (cached reference statistics) and returns an
:class:`Evaluation`: FID, KID (mean ± std), IS (mean ± std), precision and recall (k = 3),
conditional accuracy when ``labels`` are given, and a memorisation check when asked for. Every
figure is a :class:`~genlab.metrics.result.MetricResult` naming N, the reference set and the
feature network. ``dataset="cifar10"`` computes the Inception-v3 FID instead (weights required).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.errors import ConfigError
from genlab.metrics.features import FEATURE_DATASETS, FeatureNetwork, FeatureRecipe, dataset_splits, feature_network
from genlab.metrics.frechet import frechet_distance, gaussian_stats
from genlab.metrics.inception import INCEPTION_WEIGHTS, find_inception_weights, inception_fid
from genlab.metrics.inception_score import conditional_accuracy, inception_score
from genlab.metrics.kid import kernel_inception_distance
from genlab.metrics.memorization import MemorizationReport, memorization_check
from genlab.metrics.precision_recall import precision_recall
from genlab.metrics.reference import reference_stats
from genlab.metrics.result import MetricResult

__all__ = ["METRICS", "Evaluation", "evaluate", "check_images", "RANGE_TOLERANCE"]

METRICS = ("fid", "kid", "is", "precision_recall", "memorization")
DEFAULT_METRICS = ("fid", "kid", "is", "precision_recall")
RGB_DATASETS = ("cifar10",)
RANGE_TOLERANCE = 1e-3  # values in [-1 - tol, 1 + tol] are accepted (and clipped)


@dataclass
class Evaluation:
    """The figures of one :func:`evaluate` call, by name ("FID", "KID", "IS", "precision", …)."""

    results: dict[str, MetricResult]
    n: int
    feature_net: str
    memorization: MemorizationReport | None = None
    extra: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> MetricResult:
        return self.results[name]

    def __contains__(self, name: str) -> bool:
        return name in self.results

    def describe(self) -> str:
        lines = [r.describe() for r in self.results.values()]
        if self.memorization is not None:
            lines.append(self.memorization.describe())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = {"n": self.n, "feature_net": self.feature_net, "metrics": {k: r.to_dict() for k, r in self.results.items()}}
        if self.memorization is not None:
            m = self.memorization
            out["memorization"] = {"ratio": m.ratio, "copies": m.copies, "threshold": m.threshold,
                                   "median_generated": float(np.median(m.generated)),
                                   "median_held_out": float(np.median(m.held_out))}
        out.update(self.extra)
        return out


def check_images(samples, shape: tuple[int, int, int] | None, what: str = "samples") -> torch.Tensor:
    """``samples`` as float32 (N, C, H, W) in [-1, 1], or ConfigError naming what is wrong."""
    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(samples)
    if not isinstance(samples, torch.Tensor):
        raise ConfigError(f"{what} must be a tensor or NumPy array (N, C, H, W), got {type(samples).__name__}")
    if samples.ndim != 4:
        raise ConfigError(f"{what} must have shape (N, C, H, W), got {tuple(samples.shape)}: add the channel axis "
                          f"(e.g. x[:, None]) or stack the images")
    if shape is not None and tuple(samples.shape[1:]) != tuple(shape):
        raise ConfigError(f"{what} have shape (C, H, W) = {tuple(samples.shape[1:])}, this data set needs {tuple(shape)}")
    if not (samples.is_floating_point()):
        raise ConfigError(f"{what} must be floating point in [-1, 1], got {samples.dtype}: map uint8 pixels with x / 127.5 - 1")
    x = samples.detach().cpu().float()
    if not torch.isfinite(x).all():
        raise ConfigError(f"{what} contain NaN or infinite values: the generator diverged or the file is corrupt")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        hint = " (they look like 0..255 pixels: use x / 127.5 - 1)" if hi > 2 else (
            " (they look like [0, 1] images: use 2 x - 1)" if lo >= 0 else "")
        raise ConfigError(f"{what} values lie in [{lo:.3g}, {hi:.3g}], expected [-1, 1]{hint}")
    return x.clamp_(-1, 1)


def _fid_needs(n: int, d: int, what: str) -> None:
    if n <= d:
        raise ConfigError(
            f"FID needs more {what} than feature dimensions (N > D) for a full-rank covariance: got N={n} for D={d}; "
            f"pass at least {d + 1} (2000 or more for stable figures), or leave 'fid' out of metrics"
        )


def evaluate(
    samples,
    dataset: str = "mnist",
    n: int | None = None,
    labels=None,
    *,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    reference: str = "held_out",
    train_images=None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    k: int = 3,
    recipe: FeatureRecipe | None = None,
    net: FeatureNetwork | None = None,
    progress: bool = False,
    seed: int = 0,
) -> Evaluation:
    """Score ``samples`` (N, C, H, W) in [-1, 1] against real images of ``dataset``.

    - ``n``: use the first n samples and n real reference images (default: all samples).
    - ``labels`` (N,): the classes the samples were generated for → "conditional accuracy".
    - ``metrics``: any of ``METRICS``; "memorization" compares nearest-neighbour feature distances of
      the samples to ``train_images`` (default: the images the feature net trained on) with those of
      real held-out images.
    - ``reference``: "held_out" (default: images no model trained on) or "train".
    - ``net``: a feature network to use instead of ``feature_network(dataset, recipe)``.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; use any of: {', '.join(METRICS)}")
    if dataset in RGB_DATASETS:
        return _evaluate_rgb(samples, dataset, n)
    if dataset not in FEATURE_DATASETS:
        raise ConfigError(f"unknown data set {dataset!r}; use one of: {', '.join((*FEATURE_DATASETS, *RGB_DATASETS))}")
    if net is None:
        net = feature_network(dataset, recipe, progress=progress)
    x = check_images(samples, net.image_shape)
    if n is not None:
        if not (isinstance(n, int) and n >= 2):
            raise ConfigError(f"n must be an integer ≥ 2, got {n!r}")
        if n > len(x):
            raise ConfigError(f"n={n} but only {len(x)} samples were given: generate more or lower n")
        x = x[:n]
    n = len(x)
    if n < 2:
        raise ConfigError(f"need at least 2 samples, got {n}")
    if "fid" in metrics:
        _fid_needs(n, net.dim, "samples")
    if labels is not None:
        labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if labels.shape[0] < n or labels.ndim != 1:
            raise ConfigError(f"labels must be (N,) with N={n} (one class per sample), got {tuple(labels.shape)}")
        labels = labels[:n].long()

    feats, logits = net.features_and_logits(x)       # (N, D), (N, K) float64
    ctx = dict(n=n, feature_net=net.describe(), checksum=net.checksum)
    results: dict[str, MetricResult] = {}
    needs_ref = any(m in metrics for m in ("fid", "kid", "precision_recall"))
    if needs_ref:
        ref = reference_stats(net, n, reference)
        rctx = dict(ctx, reference=ref.reference, n_ref=ref.n)
        if "fid" in metrics:
            mu, sigma = gaussian_stats(feats, "sample features")
            results["FID"] = MetricResult("FID", frechet_distance(mu, sigma, ref.mu, ref.sigma), **rctx)
        if "kid" in metrics:
            # subsets of at most half the samples: subsets of all n would all be the same set (std 0)
            mean, std = kernel_inception_distance(ref.features, feats, subsets=kid_subsets,
                                                  subset_size=min(kid_subset_size, max(n // 2, 2)), seed=seed)
            results["KID"] = MetricResult("KID", mean, std=std, **rctx)
        if "precision_recall" in metrics:
            p, r = precision_recall(ref.features, feats, k=k)
            results["precision"] = MetricResult("precision", p, **rctx)
            results["recall"] = MetricResult("recall", r, **rctx)
    if "is" in metrics:
        # shuffled first: samples often come ordered by class, and a split holding one class scores ≈ 1
        mean, std = inception_score(logits, splits=min(is_splits, n), shuffle_seed=seed)
        results["IS"] = MetricResult("IS", mean, std=std, **ctx)
    if labels is not None:
        results["conditional accuracy"] = MetricResult("conditional accuracy", conditional_accuracy(logits, labels), **ctx)
    memo = None
    if "memorization" in metrics:
        splits = dataset_splits(net.dataset)
        train = net.features(check_images(train_images, net.image_shape, "train_images")) if train_images is not None \
            else net.features(splits.train[0])
        held = reference_stats(net, min(n, len(splits.held_out[0])), "held_out").features
        memo = memorization_check(feats, train, held)
    return Evaluation(results, n, net.describe(), memo,
                      extra={"trained_on": net.trained_on, "offline_half_split": net.offline_half_split,
                             "feature_test_accuracy": net.test_accuracy})


def _evaluate_rgb(samples, dataset: str, n: int | None) -> Evaluation:
    path = find_inception_weights()  # first: the one clear message when the weights are missing
    from genlab.data import load_image_dataset

    x = check_images(samples, None)
    x = x[:n] if n is not None else x
    real, _ = load_image_dataset(dataset, "test")
    real = check_images(real, tuple(x.shape[1:]), f"{dataset} test images")[: len(x)]
    _fid_needs(len(x), 2048, "samples")
    value = inception_fid(x, real, weights_path=path)
    r = MetricResult("FID", value, n=len(x), n_ref=len(real), reference="test",
                     feature_net="Inception-v3 (torch-fidelity FID weights)", checksum=INCEPTION_WEIGHTS)
    return Evaluation({"FID": r}, len(x), r.feature_net)
