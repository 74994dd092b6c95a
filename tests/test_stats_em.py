import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from genlab.data.tabular import load_old_faithful
from genlab.errors import ConfigError, GenlabError
from genlab.stats import ConvergenceWarning, GaussianMixture, gmm_logpdf, gmm_sample, kmeans_plusplus, m_step, mvn_mle


def _synthetic(n=1500, seed=0):
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [-2.0, 3.0, 2.0]])
    covs = np.array([np.eye(3), np.diag([0.5, 2.0, 1.0]), [[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 0.8]]])
    return gmm_sample(n, weights, means, covs, random_state=seed)[0]


def _explicit_init(X, k, seed):
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), k, replace=False)]
    covs = np.repeat(np.cov(X.T, bias=True)[None], k, axis=0)
    return np.full(k, 1.0 / k), means, covs


def _fit_both(X, k, seed, tol=1e-8, max_iter=500, reg_covar=1e-6):
    w0, m0, c0 = _explicit_init(X, k, seed)
    ours = GaussianMixture(k, tol=tol, max_iter=max_iter, reg_covar=reg_covar, weights_init=w0, means_init=m0, covariances_init=c0)
    theirs = SkGaussianMixture(k, covariance_type="full", tol=tol, max_iter=max_iter, reg_covar=reg_covar,
                               weights_init=w0, means_init=m0, precisions_init=np.linalg.inv(c0), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ours.fit(X), theirs.fit(X)


@pytest.mark.parametrize("data", ["old_faithful", "synthetic"])
def test_em_agrees_with_scikit_learn(data):
    X = load_old_faithful().to_numpy() if data == "old_faithful" else _synthetic()
    k = 2 if data == "old_faithful" else 3
    ours, theirs = _fit_both(X, k, seed=1)
    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ == theirs.n_iter_
    assert abs(ours.score(X) - theirs.score(X)) < 1e-6
    np.testing.assert_allclose(ours.log_likelihood_history_, theirs.lower_bounds_, rtol=1e-9)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_unconverged_run_warns_and_matches_scikit_learn_after_max_iter():
    X = _synthetic(600, seed=2)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, tol=0.0, max_iter=3, random_state=0).fit(X)
    ours, theirs = _fit_both(X, 3, seed=2, tol=0.0, max_iter=4)
    assert not ours.converged_ and ours.n_iter_ == 4 == len(ours.log_likelihood_history_)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-9)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-9)


@settings(max_examples=int(os.environ.get("GENLAB_HYPOTHESIS_EXAMPLES", 8)), deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), d=st.integers(1, 3), scale=st.floats(0.5, 5.0))
def test_em_never_decreases_the_log_likelihood(seed, k, d, scale):
    # Exact EM (reg_covar=0) from random responsibilities; the guarantee holds for any data and start.
    rng = np.random.default_rng(seed)
    X = rng.standard_t(df=5, size=(80, d)) + rng.integers(0, 3, size=(80, 1)) * scale  # heavy-tailed, clumpy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(k, tol=0.0, max_iter=20, init="random", reg_covar=0.0, random_state=seed).fit(X)
    h = gm.log_likelihood_history_
    assert np.all(np.diff(h) >= -1e-9 * np.maximum(1.0, np.abs(h[1:])))
    assert gm.score(X) >= h[-1] - 1e-9  # the returned parameters (after the last M-step) score at least as well


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_restarts_never_score_worse(seed):
    X = _synthetic(400, seed=seed)
    one = GaussianMixture(4, init="random", tol=1e-4, random_state=seed).fit(X).score(X)
    five = GaussianMixture(4, init="random", tol=1e-4, random_state=seed, n_init=5).fit(X).score(X)
    assert five >= one


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_fit_recovers_well_separated_components(init):
    weights = np.array([0.3, 0.7])
    means = np.array([[-5.0, 0.0], [5.0, 2.0]])
    covs = np.array([np.eye(2), [[1.0, 0.6], [0.6, 1.0]]])
    X, _ = gmm_sample(3000, weights, means, covs, random_state=0)
    gm = GaussianMixture(2, init=init, random_state=0).fit(X)
    order = np.argsort(gm.means_[:, 0])
    np.testing.assert_allclose(gm.weights_[order], weights, atol=0.03)
    np.testing.assert_allclose(gm.means_[order], means, atol=0.1)
    np.testing.assert_allclose(gm.covariances_[order], covs, atol=0.12)


def test_m_step_with_hard_assignments_is_per_cluster_mle():
    X = _synthetic(300)
    labels = np.arange(300) % 3
    resp = np.eye(3)[labels]
    weights, means, covs = m_step(X, resp, reg_covar=0.25)
    for k in range(3):
        mean_k, cov_k = mvn_mle(X[labels == k])
        np.testing.assert_allclose(means[k], mean_k, rtol=1e-10)
        np.testing.assert_allclose(covs[k], cov_k + 0.25 * np.eye(3), rtol=1e-10)
    np.testing.assert_allclose(weights, np.bincount(labels) / 300)


def test_kmeans_plusplus_picks_distinct_data_points_spread_over_clusters():
    X = np.concatenate([np.random.default_rng(0).normal(c, 0.1, size=(50, 2)) for c in (-10, 0, 10)])
    centers = kmeans_plusplus(X, 3, np.random.default_rng(0))
    assert all(any(np.array_equal(c, x) for x in X) for c in centers)
    np.testing.assert_allclose(np.sort(centers[:, 0]), [-10, 0, 10], atol=0.5)


def test_fitted_model_methods_are_consistent():
    X = _synthetic(500)
    gm = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(gm.score_samples(X), gmm_logpdf(X, gm.weights_, gm.means_, gm.covariances_))
    assert gm.score(X) == pytest.approx(gm.score_samples(X).mean())
    proba = gm.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(gm.predict(X), proba.argmax(axis=1))
    Xs, z = gm.sample(50, random_state=0)
    assert Xs.shape == (50, 3) and z.shape == (50,)
    assert gm.bic(X) == pytest.approx(-2 * gm.score(X) * 500 + (2 + 9 + 18) * np.log(500))


def test_same_seed_same_fit():
    X = _synthetic(300)
    a = GaussianMixture(3, init="random", random_state=7).fit(X)
    b = GaussianMixture(3, init="random", random_state=7).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_user_errors():
    X = _synthetic(5)
    with pytest.raises(GenlabError, match="at least"):
        GaussianMixture(10).fit(X)
    with pytest.raises(GenlabError, match="init"):
        GaussianMixture(2, init="kmeans").fit(X)
    with pytest.raises(GenlabError, match="fit"):
        GaussianMixture(2).predict(X)


# ---------------------------------------------------------------- checks of the constructor arguments
# X has D = 2 features and the mixture K = 3 components, so every init shape below is unambiguous.
_K, _D = 3, 2
_X = np.random.default_rng(0).normal(size=(60, _D))
_W = np.array([0.2, 0.3, 0.5])
_M = np.array([[-1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
_C = np.array([np.eye(2), [[2.0, 0.3], [0.3, 0.5]], [[1.0, -0.4], [-0.4, 1.0]]])
_ASYM = _C.copy()
_ASYM[1, 0, 1] += 0.1
_INDEF = _C.copy()
_INDEF[2] = np.diag([1.0, -0.5])
_NAN_M = _M.copy()
_NAN_M[1, 0] = np.nan
_INF_C = _C.copy()
_INF_C[0, 0, 0] = np.inf

# (constructor kwargs, the parameter the message must name, a regex it must also match,
#  whether scikit-learn refuses the same array too — then it is passed to it as precisions_init)
_BAD = [
    (dict(n_components=0), "n_components", r">= 1; got 0"),
    (dict(n_components=2.0), "n_components", r"integer"),
    (dict(n_components=True), "n_components", r"integer"),
    (dict(max_iter=0), "max_iter", r">= 1"),
    (dict(max_iter=10.5), "max_iter", r"integer"),
    (dict(n_init=0), "n_init", r">= 1"),
    (dict(tol=-1e-3), "tol", r">= 0"),
    (dict(tol=float("nan")), "tol", r"finite"),
    (dict(tol="1e-3"), "tol", r"number"),
    (dict(reg_covar=-1e-6), "reg_covar", r">= 0"),
    (dict(reg_covar=float("inf")), "reg_covar", r"finite"),
    (dict(covariance_type="diag"), "covariance_type", r"'full'"),
    (dict(random_state=-1), "random_state", r"non-negative"),
    (dict(weights_init=_W[:2]), "weights_init", r"shape \(2,\) but n_components=3 needs \(3,\)"),
    (dict(weights_init=_W[:, None]), "weights_init", r"shape \(3, 1\)"),
    (dict(weights_init=[0.5, 0.7, -0.2]), "weights_init", r"non-negative.*weights_init\[2\] = -0.2"),
    (dict(weights_init=_W * 0.99), "weights_init", r"sum to 1.*0\.99"),
    (dict(weights_init=_W + [1e-7, 0, 0]), "weights_init", r"sum to 1"),
    (dict(weights_init=[np.nan, 0.5, 0.5]), "weights_init", r"NaN or infinite"),
    (dict(weights_init=["a", "b", "c"]), "weights_init", r"numeric"),
    (dict(means_init=_M.T), "means_init", r"shape \(2, 3\) but n_components=3, n_features=2 need \(3, 2\); did you pass it transposed\?"),
    (dict(means_init=np.zeros((3, 3))), "means_init", r"need \(3, 2\)"),
    (dict(means_init=_M.ravel()), "means_init", r"shape \(6,\)"),
    (dict(means_init=_NAN_M), "means_init", r"NaN or infinite"),
    (dict(means_init=[[0.0, 1.0], [2.0], [3.0, 4.0]]), "means_init", r"numeric"),
    (dict(covariances_init=_C[:2]), "covariances_init", r"shape \(2, 2, 2\) but .* need \(3, 2, 2\)"),
    (dict(covariances_init=np.moveaxis(_C, 0, -1)), "covariances_init", r"first axis"),
    (dict(covariances_init=_ASYM), "covariances_init", r"covariances_init\[1\] is not symmetric"),
    (dict(covariances_init=_INDEF), "covariances_init", r"covariances_init\[2\] is not positive definite"),
    (dict(covariances_init=np.zeros((3, 2, 2))), "covariances_init", r"covariances_init\[0\] is not positive definite"),
    (dict(covariances_init=_INF_C), "covariances_init", r"NaN or infinite"),
    (dict(precisions_init=np.moveaxis(_C, 0, -1)), "precisions_init", r"first axis"),
    (dict(precisions_init=_ASYM), "precisions_init", r"precisions_init\[1\] is not symmetric"),
    (dict(precisions_init=_INDEF), "precisions_init", r"precisions_init\[2\] is not positive definite"),
    (dict(covariances_init=_C, precisions_init=_C), "precisions_init", r"only one"),
]


@pytest.mark.parametrize(("kwargs", "name", "pattern"), _BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(_BAD)])
def test_each_bad_argument_raises_one_line_config_error_naming_it(kwargs, name, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        GaussianMixture(**{"n_components": _K, **kwargs}).fit(_X)
    message = str(info.value)
    assert name in message and "\n" not in message


_SKLEARN_ALSO_REFUSES = [
    dict(weights_init=_W[:, None]),
    dict(weights_init=[0.5, 0.7, -0.2]),
    dict(weights_init=_W + [1e-7, 0, 0]),  # the same sum tolerance as scikit-learn
    dict(weights_init=[np.nan, 0.5, 0.5]),
    dict(means_init=_M.T),
    dict(means_init=_NAN_M),
    dict(precisions_init=np.moveaxis(_C, 0, -1)),
    dict(precisions_init=_ASYM),
    dict(precisions_init=_INDEF),
]


@pytest.mark.parametrize("kwargs", _SKLEARN_ALSO_REFUSES)
def test_init_arrays_refused_exactly_where_scikit_learn_refuses_them(kwargs):
    with pytest.raises(ValueError):
        SkGaussianMixture(_K, **kwargs, random_state=0).fit(_X)
    with pytest.raises(ConfigError):
        GaussianMixture(_K, **kwargs).fit(_X)


def test_transposed_means_init_is_refused_not_scrambled():
    # Before the check, (D, K) = (2, 3) was reshaped to (3, 2) row by row: [[-1, 0], [1, 0], [1, -1]].
    X, _ = gmm_sample(300, _W, _M * 4, _C, random_state=0)
    with pytest.raises(ConfigError, match="transposed"):
        GaussianMixture(_K, means_init=(_M * 4).T).fit(X)


def test_inits_within_scikit_learns_tolerances_are_accepted_by_both_and_fit_the_same():
    # Weights off by 5e-9 (sklearn allows 1e-8) and precisions asymmetric at 1e-9 (np.allclose) pass both.
    X = _synthetic(800, seed=3)
    w0, m0, c0 = _explicit_init(X, 3, seed=4)
    p0 = np.linalg.inv(c0)
    p0[0, 0, 1] += 1e-9 * abs(p0[0, 0, 1])
    w0 = w0 + np.array([5e-9, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkGaussianMixture(3, tol=1e-8, max_iter=500, weights_init=w0, means_init=m0, precisions_init=p0,
                                   random_state=0).fit(X)
        # as plain lists, the way a user may type them
        ours = GaussianMixture(3, tol=1e-8, max_iter=500, weights_init=w0.tolist(), means_init=m0.tolist(),
                               precisions_init=p0.tolist()).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.log_likelihood_history_, theirs.lower_bounds_, rtol=1e-9)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-7)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("data", ["old_faithful", "synthetic"])
def test_precisions_init_matches_scikit_learn_and_covariances_init(data):
    X = load_old_faithful().to_numpy() if data == "old_faithful" else _synthetic()
    k = 2 if data == "old_faithful" else 3
    w0, m0, c0 = _explicit_init(X, k, seed=5)
    p0 = np.linalg.inv(c0)
    kw = dict(tol=1e-8, max_iter=500, weights_init=w0, means_init=m0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkGaussianMixture(k, precisions_init=p0, random_state=0, **kw).fit(X)
        by_prec = GaussianMixture(k, precisions_init=p0, **kw).fit(X)
        by_cov = GaussianMixture(k, covariances_init=c0, **kw).fit(X)
    for ours in (by_prec, by_cov):
        assert ours.converged_ and ours.n_iter_ == theirs.n_iter_
        np.testing.assert_allclose(ours.log_likelihood_history_, theirs.lower_bounds_, rtol=1e-9)
        np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-6)


def test_partial_inits_are_used_as_given():
    # All three given: the history starts at the log-likelihood of exactly (w0, m0, c0).
    X = _synthetic(400, seed=6)
    w0, m0, c0 = _explicit_init(X, 3, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, max_iter=1, means_init=m0, weights_init=w0, covariances_init=c0).fit(X)
    np.testing.assert_allclose(gm.log_likelihood_history_[0], gmm_logpdf(X, w0, m0, c0).mean(), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, max_iter=1, means_init=m0).fit(X)  # means only: points go to the nearest mean
    labels = np.argmin(((X[:, None, :] - m0[None]) ** 2).sum(-1), axis=1)
    w1, mu1, c1 = m_step(X, np.eye(3)[labels], reg_covar=1e-6)
    np.testing.assert_allclose(gm.log_likelihood_history_[0], gmm_logpdf(X, w1, m0, c1).mean(), rtol=1e-12)
