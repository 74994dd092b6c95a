"""genlab.stats — classical probabilistic models in NumPy/SciPy (scikit-learn conventions).

- ``normal``    N(μ, σ²): pdf, logpdf, MLE
- ``mvn``       N(μ, Σ): pdf, logpdf (Cholesky), MLE
- ``gmm``       Gaussian mixture density, responsibilities, sampling
- ``em``        ``GaussianMixture`` fitted by EM (E-step / M-step as small pure functions)
- ``kl``        KL divergence: closed forms and Monte Carlo
- ``sampling``  Monte Carlo, rejection and importance sampling, Metropolis–Hastings, Langevin MCMC, ESS
"""

from genlab.stats.em import ConvergenceWarning, GaussianMixture, e_step, kmeans_plusplus, m_step
from genlab.stats.gmm import gmm_logpdf, gmm_pdf, gmm_responsibilities, gmm_sample
from genlab.stats.kl import kl_monte_carlo, kl_mvn, kl_normal
from genlab.stats.mvn import mvn_logpdf, mvn_mle, mvn_pdf
from genlab.stats.normal import normal_logpdf, normal_mle, normal_pdf
from genlab.stats.sampling import (
    autocorrelation,
    effective_sample_size,
    importance_sampling,
    langevin_mcmc,
    metropolis_hastings,
    monte_carlo_expectation,
    rejection_sample,
)

__all__ = [
    "normal_pdf", "normal_logpdf", "normal_mle",
    "mvn_pdf", "mvn_logpdf", "mvn_mle",
    "gmm_logpdf", "gmm_pdf", "gmm_responsibilities", "gmm_sample",
    "GaussianMixture", "ConvergenceWarning", "e_step", "m_step", "kmeans_plusplus",
    "kl_normal", "kl_mvn", "kl_monte_carlo",
    "monte_carlo_expectation", "metropolis_hastings", "importance_sampling",
    "rejection_sample", "langevin_mcmc", "autocorrelation", "effective_sample_size",
]
