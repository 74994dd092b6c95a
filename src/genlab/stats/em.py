"""EM (expectation–maximisation) for a Gaussian mixture with full covariances, scikit-learn style.

Symbols ↔ names: π ↔ ``weights_`` (K,), μ ↔ ``means_`` (K, D), Σ ↔ ``covariances_`` (K, D, D),
γ ↔ ``resp`` (N, K) responsibilities, N_k = Σ_n γ_nk ↔ ``nk`` (K,), ε ↔ ``reg_covar``.

One iteration (Bishop, PRML §9.2.2):

    E-step  γ_nk = π_k N(x_n | μ_k, Σ_k) / Σ_j π_j N(x_n | μ_j, Σ_j)          (in log space)
    M-step  N_k = Σ_n γ_nk,  π_k = N_k / N,  μ_k = (1/N_k) Σ_n γ_nk x_n,
            Σ_k = (1/N_k) Σ_n γ_nk (x_n - μ_k)(x_n - μ_k)ᵀ + ε I

The mean log-likelihood (1/N) Σ_n log p(x_n) is recorded at the start of every iteration (that is,
for the parameters *before* that iteration's M-step, as scikit-learn does); the loop stops when it
changes by less than ``tol``. With ``reg_covar = 0`` EM never decreases it.
"""

from __future__ import annotations

import warnings

import numpy as np

from genlab.errors import GenlabError
from genlab.stats.gmm import (
    check_gmm_params,
    component_log_densities,
    gmm_sample,
    log_normalize,
    precision_cholesky,
)

# Lloyd (k-means) iterations run after k-means++ seeding when init="kmeans++".
KMEANS_LLOYD_ITERS = 10


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood changed by less than ``tol``."""


# ---------------------------------------------------------------- E-step and M-step (pure functions)
def e_step(X, weights, means, covs) -> tuple[float, np.ndarray]:
    """Mean log-likelihood (1/N) Σ_n log p(x_n) and responsibilities γ (N, K) under (π, μ, Σ)."""
    with np.errstate(divide="ignore"):
        log_joint = component_log_densities(X, means, covs) + np.log(weights)  # (N, K)
    log_norm, resp = log_normalize(log_joint)
    return float(log_norm.mean()), resp


def estimate_counts(resp: np.ndarray) -> np.ndarray:
    """N_k = Σ_n γ_nk (K,), plus 10·machine-eps so that an empty component never divides by 0."""
    return resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps


def estimate_weights(nk: np.ndarray) -> np.ndarray:
    """π_k = N_k / N."""
    return nk / nk.sum()


def estimate_means(X: np.ndarray, resp: np.ndarray, nk: np.ndarray) -> np.ndarray:
    """μ_k = (1/N_k) Σ_n γ_nk x_n → (K, D)."""
    return (resp.T @ X) / nk[:, None]


def estimate_covariances(X, resp, nk, means, reg_covar: float) -> np.ndarray:
    """Σ_k = (1/N_k) Σ_n γ_nk (x_n - μ_k)(x_n - μ_k)ᵀ + ε I → (K, D, D)."""
    k, d = means.shape
    covs = np.empty((k, d, d))
    Xt = np.ascontiguousarray(X.T)  # (D, N)
    for j in range(k):  # a loop over components, not samples
        diff = Xt - means[j][:, None]  # (D, N): x_n - μ_k as columns
        covs[j] = np.einsum("dn,en,n->de", diff, diff, resp[:, j]) / nk[j]
        covs[j].flat[:: d + 1] += reg_covar
    return covs


def m_step(X, resp, reg_covar: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(π, μ, Σ) that maximise the expected complete-data log-likelihood for fixed γ."""
    nk = estimate_counts(resp)
    means = estimate_means(X, resp, nk)
    return estimate_weights(nk), means, estimate_covariances(X, resp, nk, means, reg_covar)


# ---------------------------------------------------------------- initialisation
def kmeans_plusplus(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre uniformly at random, each
    next one drawn with probability ∝ D(x)², the squared distance to the nearest centre so far."""
    n = X.shape[0]
    centers = np.empty((n_clusters, X.shape[1]))
    centers[0] = X[rng.integers(n)]
    d2 = ((X - centers[0]) ** 2).sum(axis=1)  # (N,)
    for j in range(1, n_clusters):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centers[j] = X[idx]
        np.minimum(d2, ((X - centers[j]) ** 2).sum(axis=1), out=d2)
    return centers


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = (X**2).sum(1)[:, None] - 2 * X @ centers.T + (centers**2).sum(1)  # (N, K)
    return d2.argmin(axis=1)


def lloyd(X: np.ndarray, centers: np.ndarray, n_iter: int = KMEANS_LLOYD_ITERS) -> np.ndarray:
    """A few Lloyd iterations (assign to nearest centre, move centres to cluster means) → labels (N,)."""
    centers = centers.copy()
    labels = _nearest(X, centers)
    for _ in range(n_iter):
        for j in range(centers.shape[0]):
            members = labels == j
            if members.any():  # an empty cluster keeps its centre
                centers[j] = X[members].mean(axis=0)
        new = _nearest(X, centers)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    resp = np.zeros((labels.shape[0], k))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


# ---------------------------------------------------------------- the estimator
class GaussianMixture:
    """Gaussian mixture with full covariances, fitted by EM (scikit-learn conventions).

    Parameters
    ----------
    n_components : K, the number of Gaussian components.
    max_iter : maximum number of EM iterations per initialisation.
    tol : stop when the mean log-likelihood per sample changes by less than ``tol``.
    init : "kmeans++" — k-means++ seeding followed by up to ``KMEANS_LLOYD_ITERS`` (10) Lloyd
        iterations; the hard cluster labels then give the first (π, μ, Σ) through one M-step.
        "random" — random responsibilities (uniform, rows normalised) then one M-step.
    reg_covar : ε added to the diagonal of every Σ_k (keeps Σ_k invertible when a component
        collapses onto a few points).
    weights_init, means_init, covariances_init : explicit starting π (K,), μ (K, D), Σ (K, D, D);
        each one given overrides the corresponding part of ``init``. With ``means_init`` alone the
        points are first assigned to the nearest given mean.
    random_state : None, int seed or ``np.random.Generator``.
    n_init : number of initialisations; the fit with the highest final log-likelihood is kept.

    Fitted attributes: ``weights_``, ``means_``, ``covariances_``, ``converged_``, ``n_iter_``,
    ``log_likelihood_history_`` (mean log-likelihood per sample, one per iteration, the first being
    that of the initial parameters), ``lower_bound_`` (its last value), ``n_features_in_``.
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        max_iter: int = 200,
        tol: float = 1e-6,
        init: str = "kmeans++",
        reg_covar: float = 1e-6,
        weights_init=None,
        means_init=None,
        covariances_init=None,
        random_state=None,
        n_init: int = 1,
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.reg_covar = reg_covar
        self.weights_init = weights_init
        self.means_init = means_init
        self.covariances_init = covariances_init
        self.random_state = random_state
        self.n_init = n_init

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, init={self.init!r}, tol={self.tol}, max_iter={self.max_iter})"

    # -- checks
    def _check_X(self, X, fitted: bool = False) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or not np.all(np.isfinite(X)):
            raise GenlabError(f"X must be a finite array of shape (N, D); got shape {X.shape}.")
        if fitted and X.shape[1] != self.n_features_in_:
            raise GenlabError(f"X has {X.shape[1]} features but the mixture was fitted on {self.n_features_in_}.")
        return X

    def _check_params(self, X: np.ndarray) -> None:
        k = self.n_components
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise GenlabError(f"n_components must be a positive integer; got {k!r}.")
        if X.shape[0] < k:
            raise GenlabError(f"n_components={k} needs at least {k} samples; got {X.shape[0]}. Use fewer components.")
        if self.init not in ("kmeans++", "random"):
            raise GenlabError(f"init must be 'kmeans++' or 'random'; got {self.init!r}.")
        if self.max_iter < 0 or self.tol < 0 or self.reg_covar < 0 or self.n_init < 1:
            raise GenlabError("max_iter, tol and reg_covar must be >= 0 and n_init >= 1; check the constructor arguments.")

    def _initial_params(self, X: np.ndarray, rng: np.random.Generator):
        k, d = self.n_components, X.shape[1]
        given = (self.weights_init, self.means_init, self.covariances_init)
        if all(g is not None for g in given):
            return check_gmm_params(*given)
        if self.means_init is not None:
            means0 = np.asarray(self.means_init, dtype=float).reshape(k, d)
            resp = _one_hot(_nearest(X, means0), k)
        elif self.init == "kmeans++":
            resp = _one_hot(lloyd(X, kmeans_plusplus(X, k, rng)), k)
        else:
            resp = rng.uniform(size=(X.shape[0], k))
            resp /= resp.sum(axis=1, keepdims=True)
        weights, means, covs = m_step(X, resp, self.reg_covar)
        weights = weights if self.weights_init is None else np.asarray(self.weights_init, dtype=float)
        means = means if self.means_init is None else np.asarray(self.means_init, dtype=float).reshape(k, d)
        covs = covs if self.covariances_init is None else np.asarray(self.covariances_init, dtype=float)
        weights, means, covs = check_gmm_params(weights, means, covs)
        if means.shape != (k, d):
            raise GenlabError(f"means_init must have shape ({k}, {d}); got {means.shape}.")
        precision_cholesky(covs)  # raises a GenlabError if an initial Σ_k is not positive definite
        return weights, means, covs

    # -- fitting
    def _run_em(self, X: np.ndarray, params):
        history, prev, converged, n_iter = [], -np.inf, False, 0
        for n_iter in range(1, self.max_iter + 1):
            ll, resp = e_step(X, *params)  # log-likelihood of the current parameters
            history.append(ll)
            params = m_step(X, resp, self.reg_covar)
            if abs(ll - prev) < self.tol:
                converged = True
                break
            prev = ll
        return params, np.asarray(history), converged, n_iter

    def fit(self, X) -> "GaussianMixture":
        """Fit (π, μ, Σ) to the rows of X (N, D) by EM; returns ``self``."""
        X = self._check_X(X)
        self._check_params(X)
        rng = np.random.default_rng(self.random_state)
        best = None
        for _ in range(self.n_init):
            params = self._initial_params(X, rng)
            params, history, converged, n_iter = self._run_em(X, params)
            final = e_step(X, *params)[0]  # the score of the parameters actually returned
            if best is None or final > best[0]:
                best = (final, params, history, converged, n_iter)
        _, (self.weights_, self.means_, self.covariances_), history, self.converged_, self.n_iter_ = best
        self.log_likelihood_history_ = history
        self.lower_bound_ = float(history[-1]) if history.size else -np.inf
        self.n_features_in_ = X.shape[1]
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (tol={self.tol}); "
                "increase max_iter or tol, or try another initialisation.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    # -- using the fitted model
    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise GenlabError("this GaussianMixture is not fitted yet; call .fit(X) first.")

    def _log_joint(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._check_X(X, fitted=True)
        with np.errstate(divide="ignore"):
            return component_log_densities(X, self.means_, self.covariances_) + np.log(self.weights_)

    def score_samples(self, X) -> np.ndarray:
        """log p(x_n) for each row → (N,)."""
        return log_normalize(self._log_joint(X))[0]

    def score(self, X) -> float:
        """Mean log-likelihood per sample (1/N) Σ_n log p(x_n)."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities γ_nk = p(z_n = k | x_n) → (N, K)."""
        return log_normalize(self._log_joint(X))[1]

    def predict(self, X) -> np.ndarray:
        """The most responsible component argmax_k γ_nk for each row → (N,)."""
        return self._log_joint(X).argmax(axis=1)

    def sample(self, n: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw n points from the fitted mixture → (X (n, D), component labels z (n,))."""
        self._check_fitted()
        return gmm_sample(n, self.weights_, self.means_, self.covariances_, random_state=random_state)

    def n_parameters(self) -> int:
        """Free parameters: (K-1) weights + K·D means + K·D(D+1)/2 covariance entries."""
        self._check_fitted()
        k, d = self.means_.shape
        return (k - 1) + k * d + k * d * (d + 1) // 2

    def bic(self, X) -> float:
        """Bayesian information criterion -2 log L + p log N (lower is better)."""
        X = self._check_X(X, fitted=True)
        return -2 * self.score(X) * X.shape[0] + self.n_parameters() * np.log(X.shape[0])

    def aic(self, X) -> float:
        """Akaike information criterion -2 log L + 2p (lower is better)."""
        X = self._check_X(X, fitted=True)
        return -2 * self.score(X) * X.shape[0] + 2 * self.n_parameters()
