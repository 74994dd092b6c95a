"""EM for a full-covariance Gaussian mixture: genlab.stats.GaussianMixture vs scikit-learn.

Both start from the same explicit (π, μ, Σ), use the same tol, reg_covar and max_iter, and run the
same EM iterations, so the comparison is the cost per iteration. Each timing is the best of 3 fits.
The table goes to stdout; the numbers (with date and machine) to benchmarks/results/em_vs_sklearn.json.

    python benchmarks/em_vs_sklearn.py [--threads N]

``--threads`` limits the BLAS thread pool of both libraries (threadpoolctl); the default leaves it alone.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, save  # noqa: E402

from genlab.data.tabular import load_old_faithful
from genlab.stats import GaussianMixture, gmm_sample

REPEATS = 3


def machine() -> dict:
    blas = [{"api": i.get("internal_api"), "threads": i.get("num_threads")} for i in threadpool_info()]
    return {**machine_info(), "sklearn": sklearn.__version__, "blas_threadpools": blas}


def old_faithful():
    X = load_old_faithful().to_numpy()
    return (X - X.mean(axis=0)) / X.std(axis=0)  # standardised


def synthetic(n=100_000, k=5, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.uniform(-8, 8, size=(k, 2))
    covs = np.array([np.diag(rng.uniform(0.3, 2.0, 2)) for _ in range(k)])
    return gmm_sample(n, weights, means, covs, random_state=seed)[0]


def start(X, k, seed=1):
    """The shared initial (π, μ, Σ): equal weights, k random data points, the data covariance."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), size=k, replace=False)]
    covs = np.repeat(np.cov(X.T, bias=True)[None], k, axis=0)
    return np.full(k, 1.0 / k), means, covs


def best_of(fit, X):
    times, model = [], None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        model = fit(X)
        times.append(time.perf_counter() - t0)
    return min(times), model


def run_case(name, X, k, tol, max_iter, reg_covar=1e-6):
    w0, m0, c0 = start(X, k)
    ours = lambda X: GaussianMixture(k, tol=tol, max_iter=max_iter, reg_covar=reg_covar,  # noqa: E731
                                     weights_init=w0, means_init=m0, covariances_init=c0).fit(X)
    theirs = lambda X: SkGaussianMixture(k, covariance_type="full", tol=tol, max_iter=max_iter,  # noqa: E731
                                         reg_covar=reg_covar, weights_init=w0, means_init=m0,
                                         precisions_init=np.linalg.inv(c0), random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ours, m_ours = best_of(ours, X)
        t_theirs, m_theirs = best_of(theirs, X)
    return {
        "case": name, "n": int(X.shape[0]), "d": int(X.shape[1]), "k": k, "tol": tol, "max_iter": max_iter,
        "genlab_s": t_ours, "sklearn_s": t_theirs, "ratio_genlab_over_sklearn": t_ours / t_theirs,
        "genlab_n_iter": int(m_ours.n_iter_), "sklearn_n_iter": int(m_theirs.n_iter_),
        "genlab_mean_loglik": m_ours.score(X), "sklearn_mean_loglik": m_theirs.score(X),
        "abs_loglik_diff": abs(m_ours.score(X) - m_theirs.score(X)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads for both libraries (default: leave alone)")
    args = parser.parse_args()
    with threadpool_limits(limits=args.threads):
        info = machine()
        rows = [
            run_case("Old Faithful (standardised)", old_faithful(), k=2, tol=1e-6, max_iter=500),
            run_case("synthetic 100000 x 2", synthetic(), k=5, tol=1e-6, max_iter=200),
        ]
    print(f"date: {info['date']}")
    print(f"machine: {info['machine']}")
    print(f"numpy {info['numpy']}, scikit-learn {info['sklearn']}, torch {info['torch']} "
          f"(torch threads {info['torch_threads']}), BLAS threads {[b['threads'] for b in info['blas_threadpools']]}")
    print(f"timings: best of {REPEATS} fits; same start, tol, reg_covar and max_iter for both\n")
    head = f"{'case':30s} {'K':>2s} {'iters':>11s} {'genlab [s]':>11s} {'sklearn [s]':>12s} {'ratio':>6s} {'genlab loglik':>14s} {'sklearn loglik':>15s} {'|diff|':>8s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:30s} {r['k']:2d} {r['genlab_n_iter']:5d}/{r['sklearn_n_iter']:<5d} {r['genlab_s']:11.4f} "
              f"{r['sklearn_s']:12.4f} {r['ratio_genlab_over_sklearn']:6.2f} {r['genlab_mean_loglik']:14.8f} "
              f"{r['sklearn_mean_loglik']:15.8f} {r['abs_loglik_diff']:8.1e}")
    save("em_vs_sklearn", {**info, "threads_limit": args.threads, "repeats": REPEATS, "results": rows})


if __name__ == "__main__":
    main()
