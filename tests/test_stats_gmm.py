import numpy as np
import pytest
from scipy import stats

from genlab.errors import GenlabError
from genlab.stats import gmm_logpdf, gmm_pdf, gmm_responsibilities, gmm_sample

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [-3.0, 5.0]])
COVS = np.array([[[1.0, 0.3], [0.3, 0.5]], [[2.0, -0.4], [-0.4, 1.0]], [[0.3, 0.0], [0.0, 0.3]]])


def _naive_pdf(X):
    return sum(w * stats.multivariate_normal(m, c).pdf(X) for w, m, c in zip(WEIGHTS, MEANS, COVS))


def test_gmm_pdf_matches_a_naive_scipy_sum():
    X = np.random.default_rng(0).normal(scale=3, size=(200, 2))
    np.testing.assert_allclose(gmm_pdf(X, WEIGHTS, MEANS, COVS), _naive_pdf(X), rtol=1e-10)
    np.testing.assert_allclose(gmm_logpdf(X, WEIGHTS, MEANS, COVS), np.log(_naive_pdf(X)), rtol=1e-10)


def test_gmm_logpdf_is_finite_where_the_pdf_underflows():
    X = np.array([[200.0, -300.0], [-250.0, 100.0]])
    assert np.all(_naive_pdf(X) == 0.0)
    logp = gmm_logpdf(X, WEIGHTS, MEANS, COVS)
    ref = np.logaddexp.reduce([np.log(w) + stats.multivariate_normal(m, c).logpdf(X) for w, m, c in zip(WEIGHTS, MEANS, COVS)])
    assert np.all(np.isfinite(logp))
    np.testing.assert_allclose(logp, ref, rtol=1e-10)


def test_responsibilities_sum_to_one_and_match_bayes_rule():
    X = np.random.default_rng(1).normal(scale=3, size=(100, 2))
    resp = gmm_responsibilities(X, WEIGHTS, MEANS, COVS)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-12)
    joint = np.stack([w * stats.multivariate_normal(m, c).pdf(X) for w, m, c in zip(WEIGHTS, MEANS, COVS)], axis=1)
    np.testing.assert_allclose(resp, joint / joint.sum(axis=1, keepdims=True), rtol=1e-8, atol=1e-14)


def test_one_dimensional_mixture_matches_scipy_norm():
    x = np.linspace(-5, 5, 41)
    w, m, v = np.array([0.4, 0.6]), np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    ref = w[0] * stats.norm(m[0], np.sqrt(v[0])).pdf(x) + w[1] * stats.norm(m[1], np.sqrt(v[1])).pdf(x)
    np.testing.assert_allclose(gmm_pdf(x[:, None], w, m[:, None], v[:, None, None]), ref, rtol=1e-10)


def test_gmm_sample_recovers_weights_means_and_covariances():
    X, z = gmm_sample(60_000, WEIGHTS, MEANS, COVS, random_state=0)
    assert X.shape == (60_000, 2) and z.shape == (60_000,)
    np.testing.assert_allclose(np.bincount(z) / z.size, WEIGHTS, atol=0.01)
    for k in range(3):
        np.testing.assert_allclose(X[z == k].mean(axis=0), MEANS[k], atol=0.05)
        np.testing.assert_allclose(np.cov(X[z == k].T), COVS[k], atol=0.06)


def test_gmm_sample_is_reproducible_with_a_seed():
    a = gmm_sample(10, WEIGHTS, MEANS, COVS, random_state=3)[0]
    b = gmm_sample(10, WEIGHTS, MEANS, COVS, random_state=3)[0]
    np.testing.assert_array_equal(a, b)


def test_bad_weights_are_a_user_error():
    with pytest.raises(GenlabError, match="sum to 1"):
        gmm_pdf(np.zeros((1, 2)), [0.5, 0.6, 0.2], MEANS, COVS)
