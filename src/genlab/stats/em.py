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

from genlab.errors import ConfigError, GenlabError
from genlab.stats.gmm import (
    component_log_densities,
    gmm_sample,
    log_normalize,
    precision_cholesky,
)

# Lloyd (k-means) iterations run after k-means++ seeding when init="kmeans++".
KMEANS_LLOYD_ITERS = 10

# weights_init must sum to 1 within this absolute tolerance (scikit-learn's value for float64).
WEIGHTS_SUM_ATOL = 1e-8


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


# ---------------------------------------------------------------- checks of constructor arguments
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_nonnegative_real(name: str, value) -> float:
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not (real and np.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}.")
    return float(value)


def _as_float_array(name: str, value, need: tuple[int, ...]) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a numeric array of shape {need}; the {type(value).__name__} given cannot be read as one.") from None


def _check_finite(name: str, arr: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} contains NaN or infinite values; pass finite numbers only.")
    return arr


def _as_init_array(name: str, value, k: int, d: int, need: tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float array of exactly the shape ``need`` built from K and D (never reshaped)."""
    arr = _as_float_array(name, value, need)
    if arr.shape != need:
        if len(need) == 2 and arr.shape == need[::-1]:
            hint = "did you pass it transposed?"
        elif sorted(arr.shape) == sorted(need):
            hint = "the components must be on the first axis; did you stack them along another one?"
        else:
            hint = f"give one entry per component on the first axis, sized for the {d} features of X."
        raise ConfigError(f"{name} has shape {arr.shape} but n_components={k}, n_features={d} need {need}; {hint}")
    return _check_finite(name, arr)


def check_weights_init(weights, k: int) -> np.ndarray:
    """π (K,): finite, non-negative, summing to 1 within ``WEIGHTS_SUM_ATOL``."""
    w = _as_float_array("weights_init", weights, (k,))
    if w.shape != (k,):
        raise ConfigError(f"weights_init has shape {w.shape} but n_components={k} needs ({k},); pass a flat array with one weight per component.")
    _check_finite("weights_init", w)
    if np.any(w < 0):
        j = int(np.argmin(w))
        raise ConfigError(f"weights_init must be non-negative but weights_init[{j}] = {w[j]:.6g}; pass mixing proportions in [0, 1].")
    if abs(w.sum() - 1.0) > WEIGHTS_SUM_ATOL:
        raise ConfigError(f"weights_init must sum to 1 (within {WEIGHTS_SUM_ATOL:g}) but sums to {w.sum():.10g}; divide it by its sum.")
    return w


def check_spd_init(name: str, mats, k: int, d: int) -> np.ndarray:
    """K symmetric positive-definite (D, D) matrices, (K, D, D); the tests scikit-learn applies to
    precisions: symmetric to ``np.allclose`` and every eigenvalue > 0."""
    a = _as_init_array(name, mats, k, d, (k, d, d))
    for j in range(k):
        if not np.allclose(a[j], a[j].T):
            raise ConfigError(f"{name}[{j}] is not symmetric; pass symmetric matrices, e.g. (A + A.T) / 2.")
        smallest = np.linalg.eigvalsh(a[j])[0]
        if not smallest > 0:
            raise ConfigError(
                f"{name}[{j}] is not positive definite (smallest eigenvalue {smallest:.3g}); "
                "add a small multiple of the identity to it."
            )
    return a


# ---------------------------------------------------------------- the estimator
class GaussianMixture:
    """Gaussian mixture with full covariances, fitted by EM (scikit-learn conventions).

    Parameters
    ----------
    n_components : K ≥ 1, the number of Gaussian components.
    max_iter : maximum number (≥ 1) of EM iterations per initialisation.
    tol : stop when the mean log-likelihood per sample changes by less than ``tol`` (≥ 0, as in
        scikit-learn; 0 runs exactly ``max_iter`` iterations).
    init : "kmeans++" — k-means++ seeding followed by up to ``KMEANS_LLOYD_ITERS`` (10) Lloyd
        iterations; the hard cluster labels then give the first (π, μ, Σ) through one M-step.
        "random" — random responsibilities (uniform, rows normalised) then one M-step.
    reg_covar : ε ≥ 0 added to the diagonal of every Σ_k (keeps Σ_k invertible when a component
        collapses onto a few points).
    weights_init, means_init, covariances_init : explicit starting π (K,), μ (K, D), Σ (K, D, D);
        each one given overrides the corresponding part of ``init``. With ``means_init`` alone the
        points are first assigned to the nearest given mean. Shapes must be exactly these (nothing
        is reshaped, so a transposed array is refused), values finite, π ≥ 0 with Σ_k π_k = 1
        (within 1e-8, as scikit-learn), every Σ_k symmetric positive definite.
    precisions_init : starting precisions Σ_k⁻¹ (K, D, D), scikit-learn's way of giving Σ; an
        alternative to ``covariances_init`` (not both), checked the same way.
    covariance_type : only "full" is implemented (accepted for scikit-learn compatibility).
    random_state : None, int seed or ``np.random.Generator``.
    n_init : number (≥ 1) of initialisations; the fit with the highest final log-likelihood is kept.

    Every argument is checked when ``fit`` is called (scikit-learn's convention: the initial arrays
    need the number of features of X); each problem raises a one-line ``ConfigError`` naming it.

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
        precisions_init=None,
        random_state=None,
        n_init: int = 1,
        covariance_type: str = "full",
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.reg_covar = reg_covar
        self.weights_init = weights_init
        self.means_init = means_init
        self.covariances_init = covariances_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.n_init = n_init
        self.covariance_type = covariance_type

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

    def _check_params(self, X: np.ndarray):
        """Check every constructor argument against X (N, D); returns the initial (π, μ, Σ), each
        None where not given. Each problem raises a one-line ConfigError naming the argument."""
        k = _check_int("n_components", self.n_components, 1)
        _check_int("max_iter", self.max_iter, 1)
        _check_int("n_init", self.n_init, 1)
        _check_nonnegative_real("tol", self.tol)
        _check_nonnegative_real("reg_covar", self.reg_covar)
        if self.covariance_type != "full":
            raise ConfigError(f"covariance_type must be 'full' (the only one genlab implements); got {self.covariance_type!r}.")
        if self.init not in ("kmeans++", "random"):
            raise ConfigError(f"init must be 'kmeans++' or 'random'; got {self.init!r}.")
        if X.shape[0] < k:
            raise ConfigError(f"n_components={k} needs at least {k} samples; got {X.shape[0]}. Use fewer components.")
        d = X.shape[1]
        weights = None if self.weights_init is None else check_weights_init(self.weights_init, k)
        means = None if self.means_init is None else _as_init_array("means_init", self.means_init, k, d, (k, d))
        if self.covariances_init is not None and self.precisions_init is not None:
            raise ConfigError("covariances_init and precisions_init were both given; pass only one of them.")
        covs = None
        if self.covariances_init is not None:
            covs = check_spd_init("covariances_init", self.covariances_init, k, d)
        elif self.precisions_init is not None:
            covs = np.linalg.inv(check_spd_init("precisions_init", self.precisions_init, k, d))
            covs = (covs + covs.transpose(0, 2, 1)) / 2  # inv() leaves asymmetry at the 1e-16 level
        try:
            np.random.default_rng(self.random_state)
        except (TypeError, ValueError):
            raise ConfigError(f"random_state must be None, a non-negative integer or a numpy Generator; got {self.random_state!r}.") from None
        return weights, means, covs

    def _initial_params(self, X: np.ndarray, rng: np.random.Generator, given):
        k = self.n_components
        weights0, means0, covs0 = given
        if all(g is not None for g in given):
            return weights0, means0, covs0
        if means0 is not None:
            resp = _one_hot(_nearest(X, means0), k)
        elif self.init == "kmeans++":
            resp = _one_hot(lloyd(X, kmeans_plusplus(X, k, rng)), k)
        else:
            resp = rng.uniform(size=(X.shape[0], k))
            resp /= resp.sum(axis=1, keepdims=True)
        weights, means, covs = m_step(X, resp, self.reg_covar)
        weights = weights if weights0 is None else weights0
        means = means if means0 is None else means0
        covs = covs if covs0 is None else covs0
        precision_cholesky(covs)  # raises a GenlabError if an estimated Σ_k is not positive definite
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
        given = self._check_params(X)
        rng = np.random.default_rng(self.random_state)
        best = None
        for _ in range(self.n_init):
            params = self._initial_params(X, rng, given)
            params, history, converged, n_iter = self._run_em(X, params)
            final = e_step(X, *params)[0]  # the score of the parameters actually returned
            if best is None or final > best[0]:
                best = (final, params, history, converged, n_iter)
        _, (self.weights_, self.means_, self.covariances_), history, self.converged_, self.n_iter_ = best
        self.log_likelihood_history_ = history
        self.lower_bound_ = float(history[-1]) if history.size else -np.inf
        self.n_features_in_ = X.shape[1]
        if not self.converged_:
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
