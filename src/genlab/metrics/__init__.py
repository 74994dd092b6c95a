"""genlab.metrics: sample-quality metrics on domain features, each figure naming what it was measured on.

- :func:`evaluate` — the entry point: samples (N, C, H, W) in [-1, 1] → :class:`Evaluation`
- features: :func:`feature_network` (a small CNN per data set, trained by genlab, cached with a
  checksum under ``data_root()/features/<dataset>/``), :class:`FeatureRecipe`, :class:`FeatureNetwork`
- reference statistics: :func:`reference_stats` (cached per data set, split, N and checksum);
  :func:`generator_training_set`: the real images a generator may train on without seeing them
- metrics on features/logits (float64): :func:`frechet_distance`, :func:`gaussian_stats`,
  :func:`kernel_inception_distance`, :func:`inception_score`, :func:`conditional_accuracy`,
  :func:`precision_recall`, :func:`memorization_check`
- 2-D mixtures: :func:`mode_coverage` (modes covered, share of high-quality samples, balance)
- natural RGB images: :func:`inception_fid` (Inception-v3 via torchmetrics, weights required)
- :class:`MetricResult` — value + N + reference + feature network; ``describe()`` prints it
"""

from genlab.metrics.evaluate import METRICS, Evaluation, check_images, evaluate
from genlab.metrics.features import (
    FEATURE_DATASETS, FeatureNetwork, FeatureRecipe, dataset_splits, dead_unit_fraction, feature_cache_dir,
    feature_network,
)
from genlab.metrics.frechet import frechet_distance, frechet_distance_from_features, gaussian_stats
from genlab.metrics.inception import INCEPTION_WEIGHTS, find_inception_weights, inception_fid
from genlab.metrics.inception_score import conditional_accuracy, inception_score
from genlab.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from genlab.metrics.modes import ModeCoverage, mode_coverage
from genlab.metrics.memorization import MemorizationReport, memorization_check, nearest_neighbour_distances
from genlab.metrics.precision_recall import knn_radii, precision_recall
from genlab.metrics.reference import ReferenceStats, generator_training_set, reference_images, reference_stats
from genlab.metrics.result import MetricResult

__all__ = [
    "METRICS", "Evaluation", "check_images", "evaluate",
    "FEATURE_DATASETS", "FeatureNetwork", "FeatureRecipe", "dataset_splits", "dead_unit_fraction",
    "feature_cache_dir", "feature_network",
    "frechet_distance", "frechet_distance_from_features", "gaussian_stats",
    "INCEPTION_WEIGHTS", "find_inception_weights", "inception_fid",
    "conditional_accuracy", "inception_score",
    "kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel",
    "ModeCoverage", "mode_coverage",
    "MemorizationReport", "memorization_check", "nearest_neighbour_distances",
    "knn_radii", "precision_recall",
    "ReferenceStats", "generator_training_set", "reference_images", "reference_stats",
    "MetricResult",
]
