"""Inception-Score-style score with a domain classifier, and conditional accuracy.

    IS = exp( E_x[ KL(p(y|x) ‖ p(y)) ] ),   p(y) = E_x[p(y|x)]

=========  ============  ===============================================
symbol     name          meaning
=========  ============  ===============================================
p(y|x)     ``probs``     classifier's softmax for one image, (N, K)
p(y)       ``marginal``  mean of p(y|x) over the split, (K,)
K          classes       the score lies in [1, K]
=========  ============  ===============================================

The score is computed on each of ``splits`` consecutive chunks (``np.array_split``: sizes differ
by at most one; torchmetrics' ``torch.chunk`` agrees when ``splits`` divides N) and reported as mean ± std (sample std,
divisor splits − 1, as in the original code and torchmetrics). High when each image is
classified confidently (low H(y|x)) and the classes are balanced (high H(y)). On MNIST its
classifier is genlab's feature network, not Inception-v3: figures are comparable only within genlab.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from genlab.errors import ConfigError

__all__ = ["inception_score", "conditional_accuracy"]


def inception_score(logits, splits: int = 10, shuffle_seed: int | None = None) -> tuple[float, float]:
    """IS (mean, std) from classifier logits (N, K) over ``splits`` chunks (see the module docstring).

    ``shuffle_seed`` permutes the images first (None keeps their order).
    """
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().double().numpy()
    z = np.asarray(logits, np.float64)
    if z.ndim != 2:
        raise ConfigError(f"inception_score: logits must be (N, K), got shape {z.shape}")
    if not (isinstance(splits, int) and 1 <= splits <= len(z)):
        raise ConfigError(f"inception_score: splits must be an integer in 1..N={len(z)}, got {splits!r}")
    if shuffle_seed is not None:
        z = z[np.random.default_rng(shuffle_seed).permutation(len(z))]
    scores = []
    for chunk in np.array_split(z, splits):
        log_p = log_softmax(chunk, axis=1)                           # (n, K)  log p(y|x)
        log_marginal = np.log(np.exp(log_p).mean(axis=0))            # (K,)    log p(y)
        kl = (np.exp(log_p) * (log_p - log_marginal)).sum(axis=1)    # (n,)    KL(p(y|x) ‖ p(y))
        scores.append(np.exp(kl.mean()))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std(ddof=1)) if splits > 1 else 0.0


def conditional_accuracy(logits, labels) -> float:
    """Fraction of class-conditional samples that the classifier assigns to the class they were asked for."""
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    z, y = np.asarray(logits), np.asarray(labels)
    if z.ndim != 2 or y.shape != (len(z),):
        raise ConfigError(f"conditional_accuracy: need logits (N, K) and labels (N,), got {z.shape} and {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1] or not np.issubdtype(y.dtype, np.integer)):
        raise ConfigError(f"conditional_accuracy: labels must be integers in 0..{z.shape[1] - 1}")
    return float((z.argmax(axis=1) == y).mean())
