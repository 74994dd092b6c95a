import numpy as np
import pytest
from scipy import stats

from genlab.errors import GenlabError
from genlab.stats import normal_logpdf, normal_mle, normal_pdf


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (3.5, 0.2), (-10.0, 7.0)])
def test_normal_pdf_and_logpdf_match_scipy(mean, std):
    x = np.linspace(mean - 6 * std, mean + 6 * std, 101)
    np.testing.assert_allclose(normal_pdf(x, mean, std), stats.norm(mean, std).pdf(x), rtol=1e-12)
    np.testing.assert_allclose(normal_logpdf(x, mean, std), stats.norm(mean, std).logpdf(x), rtol=1e-12)


def test_normal_logpdf_broadcasts_and_stays_finite_in_the_tails():
    x = np.array([[0.0], [50.0]])
    means = np.array([0.0, 1.0, 2.0])
    out = normal_logpdf(x, means, 0.5)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, stats.norm(means, 0.5).logpdf(x), rtol=1e-12)
    assert np.all(np.isfinite(out))  # the pdf underflows at x=50, the log-pdf must not


def test_normal_mle_is_mean_and_biased_std():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=500)
    mean, std = normal_mle(x)
    assert mean == pytest.approx(np.mean(x), rel=1e-12)
    assert std == pytest.approx(np.std(x, ddof=0), rel=1e-12)
    assert std != pytest.approx(np.std(x, ddof=1), rel=1e-6)  # 1/N, not 1/(N-1)


def test_normal_mle_maximises_the_likelihood():
    x = np.random.default_rng(1).normal(size=50)
    mean, std = normal_mle(x)
    best = normal_logpdf(x, mean, std).sum()
    for dm, ds in [(0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)]:
        assert normal_logpdf(x, mean + dm, std + ds).sum() < best


def test_non_positive_std_is_a_user_error():
    with pytest.raises(GenlabError, match="std"):
        normal_pdf(0.0, 0.0, -1.0)
