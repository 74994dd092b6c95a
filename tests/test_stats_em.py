import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from genlab.data.tabular import load_old_faithful
from genlab.errors import GenlabError
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
