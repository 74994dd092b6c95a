"""Exact answers for Gaussian-mixture data: the noised density, its score, the Bayes classifier
p_t(y | x_t) and the optimal denoiser E[x₀ | x_t], all in closed form.

If x₀ ~ Σ_k π_k N(μ_k, Σ_k) (component k = class k) and x_t = α x₀ + σ ε, then

    p_t(x | y=k) = N(x; α μ_k, C_k),   C_k = α² Σ_k + σ² I
    p_t(x)       = Σ_k π_k N(x; α μ_k, C_k)
    p_t(k | x)   = π_k N(x; α μ_k, C_k) / p_t(x)
    E[x₀ | x_t, k] = μ_k + α Σ_k C_k⁻¹ (x − α μ_k)              (Gaussian conditioning)
    E[x₀ | x_t]    = Σ_k p_t(k | x) E[x₀ | x_t, k]

and Tweedie's formula ties the denoiser to the score: E[x₀ | x_t] = (x + σ² ∇ log p_t(x)) / α.
For one Gaussian (K = 1) even the probability-flow ODE is solved in closed form (:meth:`ode_flow`):
its velocity is affine in x, so in the eigenbasis of Σ = U diag(λ) Uᵀ each coordinate keeps its
z-score, x_s = α_s μ + U diag(√(c_s/c_t)) Uᵀ (x_t − α_t μ) with c = α² λ + σ².
These are what trained models, guidance and samplers are tested against. Everything is float64
torch (differentiable, so ∇ log p_t(y | x) comes from autograd).

======  =======================  ===========
symbol  meaning                  name
======  =======================  ===========
π_k     class prior              weights
μ_k     component mean (D,)      means
Σ_k     component covariance     covs
======  =======================  ===========
"""

from __future__ import annotations

import math

import torch

from genlab.diffusion.denoisers import batch_times
from genlab.diffusion.process import Process
from genlab.errors import ConfigError

__all__ = ["NoisedGaussianMixture"]


class NoisedGaussianMixture:
    """A Gaussian mixture in D dimensions pushed through ``process``; one class per component.

    As a denoiser, ``mixture(x, t, cond=None)`` returns E[x₀ | x_t] (cond = None or the null label)
    or E[x₀ | x_t, y] (cond = int64 labels (B,)); it has a ``process`` like every denoiser.
    ``null_label`` (= K) means "no condition", as for a classifier-free-guidance network.
    """

    def __init__(self, weights, means, covs, process: Process):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = torch.as_tensor(covs, dtype=torch.float64)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ConfigError(f"mixture parameters disagree: weights {tuple(self.weights.shape)}, means {(k, d)}, covs {tuple(self.covs.shape)}")
        if bool((self.weights < 0).any()) or abs(float(self.weights.sum()) - 1.0) > 1e-9:
            raise ConfigError("mixture weights must be non-negative and sum to 1")
        self.process, self.num_classes, self.dim = process, k, d
        self.null_label = k

    def _coefs(self, t, x: torch.Tensor):
        a, s = self.process.alpha_sigma(batch_times(t, x))  # (B,) float64
        return a.to(x.device), s.to(x.device)

    def _cov_t(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """C_k for each sample: (B, K, D, D)."""
        eye = torch.eye(self.dim, dtype=torch.float64, device=a.device)
        return a.view(-1, 1, 1, 1) ** 2 * self.covs + s.view(-1, 1, 1, 1) ** 2 * eye

    def component_log_prob(self, x: torch.Tensor, t) -> torch.Tensor:
        """log N(x; α μ_k, C_k) for every component: (B, K)."""
        x = x.to(torch.float64)
        a, s = self._coefs(t, x)
        cov = self._cov_t(a, s)
        diff = x[:, None, :] - a.view(-1, 1, 1) * self.means  # (B, K, D)
        chol = torch.linalg.cholesky(cov)
        z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
        log_det = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return -0.5 * (z.pow(2).sum(-1) + log_det + self.dim * math.log(2 * math.pi))

    def log_prob(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p_t(x) (y None) or log p_t(x | y): (B,)."""
        comp = self.component_log_prob(x, t)
        if y is None:
            return torch.logsumexp(comp + self.weights.log(), dim=1)
        return comp.gather(1, y.view(-1, 1).long()).squeeze(1)

    def class_log_prob(self, x: torch.Tensor, t, y: torch.Tensor) -> torch.Tensor:
        """The Bayes classifier log p_t(y | x): (B,). Usable as ClassifierGuidance's ``log_prob``."""
        joint = self.component_log_prob(x, t) + self.weights.log()
        return (joint - torch.logsumexp(joint, dim=1, keepdim=True)).gather(1, y.view(-1, 1).long()).squeeze(1)

    def score(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        """∇ₓ log p_t(x) or ∇ₓ log p_t(x | y), by autograd: (B, D) float64."""
        with torch.enable_grad():
            xg = x.detach().to(torch.float64).requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_prob(xg, t, y).sum(), xg)
        return g

    def posterior_mean(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x₀ | x_t] or E[x₀ | x_t, y] by Gaussian conditioning (not through the score): (B, D)."""
        x64 = x.to(torch.float64)
        a, s = self._coefs(t, x64)
        cov = self._cov_t(a, s)  # (B, K, D, D)
        diff = x64[:, None, :] - a.view(-1, 1, 1) * self.means
        gain = a.view(-1, 1, 1, 1) * self.covs @ torch.linalg.inv(cov)  # α Σ_k C_k⁻¹
        means = self.means + (gain @ diff.unsqueeze(-1)).squeeze(-1)  # (B, K, D)
        if y is None:
            joint = self.component_log_prob(x64, t) + self.weights.log()
            resp = torch.softmax(joint, dim=1)  # p_t(k | x)
            return (resp.unsqueeze(-1) * means).sum(1)
        return means.gather(1, y.view(-1, 1, 1).long().expand(-1, 1, self.dim)).squeeze(1)

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        y = None
        if cond is not None:
            cond = torch.as_tensor(cond).long()
            if bool((cond == self.null_label).all()):
                y = None
            elif bool((cond == self.null_label).any()):
                uncond, condl = self.posterior_mean(x, t), self.posterior_mean(x, t, cond.clamp(max=self.num_classes - 1))
                return torch.where((cond == self.null_label).view(-1, 1), uncond, condl).to(x.dtype)
            else:
                y = cond
        return self.posterior_mean(x, t, y).to(x.dtype)

    def ode_flow(self, x: torch.Tensor, t_from, t_to) -> torch.Tensor:
        """The exact solution of the PF-ODE from time ``t_from`` to ``t_to`` (one component only): (B, D) float64."""
        if self.num_classes != 1:
            raise ConfigError("the PF-ODE has a closed-form solution for a single Gaussian only (K = 1)")
        x = x.to(torch.float64)
        lam, u = torch.linalg.eigh(self.covs[0])
        (a0, s0), (a1, s1) = (tuple(v.item() for v in self.process.alpha_sigma(torch.tensor(float(t)))) for t in (t_from, t_to))
        ratio = ((a1**2 * lam + s1**2) / (a0**2 * lam + s0**2)).sqrt()  # (D,)
        z = (x - a0 * self.means[0]) @ u  # coordinates in the eigenbasis
        return a1 * self.means[0] + (z * ratio) @ u.T

    def sample(self, n: int, y: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of x₀ (from component y, or from the mixture): (n, D) float64."""
        k = (torch.full((n,), y, dtype=torch.long) if y is not None
             else torch.multinomial(self.weights, n, replacement=True, generator=generator))  # fmt: skip
        z = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        chol = torch.linalg.cholesky(self.covs)[k]  # (n, D, D)
        return self.means[k] + (chol @ z.unsqueeze(-1)).squeeze(-1)
