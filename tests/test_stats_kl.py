import numpy as np
import pytest
from scipy import integrate, stats

from genlab.stats import kl_monte_carlo, kl_mvn, kl_normal, monte_carlo_expectation


def _numeric_kl_1d(p, q):
    integrand = lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x))  # noqa: E731
    return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12, epsrel=1e-10)[0]


@pytest.mark.parametrize("mp,sp,mq,sq", [(0, 1, 1, 1), (0, 1, 0, 2), (2, 0.5, -1, 3), (1, 3, 0, 0.7)])
def test_kl_normal_matches_numeric_integration(mp, sp, mq, sq):
    ref = _numeric_kl_1d(stats.norm(mp, sp), stats.norm(mq, sq))
    assert kl_normal(mp, sp, mq, sq) == pytest.approx(ref, rel=1e-7, abs=1e-10)


def test_kl_of_a_distribution_with_itself_is_zero_and_otherwise_positive():
    assert kl_normal(1.3, 0.4, 1.3, 0.4) == pytest.approx(0.0, abs=1e-15)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert kl_mvn([1, 2], cov, [1, 2], cov) == pytest.approx(0.0, abs=1e-12)
    assert kl_mvn([1, 2], cov, [1, 2.1], cov) > 0


def test_kl_is_not_symmetric():
    assert kl_normal(0, 1, 0, 2) != pytest.approx(kl_normal(0, 2, 0, 1), rel=1e-3)


def test_kl_mvn_reduces_to_kl_normal_for_diagonal_covariances():
    mp, sp, mq, sq = np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([1.5, 0.5])
    expected = kl_normal(mp, sp, mq, sq).sum()
    assert kl_mvn(mp, np.diag(sp**2), mq, np.diag(sq**2)) == pytest.approx(expected, rel=1e-12)


def test_kl_mvn_closed_form_matches_monte_carlo():
    mp, cp = np.array([0.0, 1.0, -1.0]), np.array([[1.0, 0.3, 0.0], [0.3, 2.0, 0.4], [0.0, 0.4, 0.5]])
    mq, cq = np.array([0.5, 0.0, -0.5]), np.array([[2.0, -0.2, 0.1], [-0.2, 1.0, 0.0], [0.1, 0.0, 1.0]])
    p, q = stats.multivariate_normal(mp, cp), stats.multivariate_normal(mq, cq)
    sample = lambda n, rng: rng.multivariate_normal(mp, cp, size=n)  # noqa: E731
    n = 200_000
    mc = kl_monte_carlo(p.logpdf, q.logpdf, sample, n, random_state=0)
    _, stderr = monte_carlo_expectation(lambda x: p.logpdf(x) - q.logpdf(x), sample, n, random_state=0)
    assert abs(mc - kl_mvn(mp, cp, mq, cq)) < 4 * stderr


def test_kl_monte_carlo_of_normals_is_unbiased_within_its_error():
    p, q = stats.norm(1.0, 0.5), stats.norm(0.0, 1.0)
    sample = lambda n, rng: rng.normal(1.0, 0.5, size=n)  # noqa: E731
    est = kl_monte_carlo(p.logpdf, q.logpdf, sample, 100_000, random_state=1)
    assert est == pytest.approx(kl_normal(1.0, 0.5, 0.0, 1.0), abs=0.01)
