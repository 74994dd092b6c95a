import numpy as np
import pytest
from scipy import stats

from genlab.errors import GenlabError
from genlab.stats import mvn_logpdf, mvn_mle, mvn_pdf


def _random_spd(rng, d):
    A = rng.normal(size=(d, d))
    return A @ A.T + 0.5 * np.eye(d)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_mvn_pdf_and_logpdf_match_scipy(d):
    rng = np.random.default_rng(d)
    mean, cov = rng.normal(size=d), _random_spd(rng, d)
    X = rng.normal(size=(40, d)) * 3
    ref = stats.multivariate_normal(mean, cov)
    np.testing.assert_allclose(mvn_logpdf(X, mean, cov), ref.logpdf(X), rtol=1e-10)
    np.testing.assert_allclose(mvn_pdf(X, mean, cov), ref.pdf(X), rtol=1e-10)


def test_single_point_gives_a_float():
    val = mvn_logpdf([1.0, 2.0], [0.0, 0.0], np.eye(2))
    assert isinstance(val, float)
    assert val == pytest.approx(stats.multivariate_normal([0, 0], np.eye(2)).logpdf([1, 2]))


def test_mvn_mle_is_sample_mean_and_biased_covariance():
    X = np.random.default_rng(0).multivariate_normal([1, -2, 0.5], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], size=300)
    mean, cov = mvn_mle(X)
    np.testing.assert_allclose(mean, np.mean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(X.T, bias=True), rtol=1e-12)


def test_not_positive_definite_cov_is_a_user_error():
    with pytest.raises(GenlabError, match="positive definite"):
        mvn_logpdf(np.zeros((3, 2)), [0, 0], [[1.0, 2.0], [2.0, 1.0]])


def test_shape_mismatch_is_a_user_error():
    with pytest.raises(GenlabError, match="shape"):
        mvn_logpdf(np.zeros((3, 3)), [0, 0], np.eye(2))
