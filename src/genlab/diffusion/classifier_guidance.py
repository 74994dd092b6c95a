"""Classifier guidance (Dhariwal & Nichol 2021): steer any denoiser with ∇ₓ log p_φ(y | x_t).

Bayes' rule for the noised data, p_t(x | y) ∝ p_t(x) p_t(y | x), gives the conditional score as
the unconditional one plus the classifier's gradient; a scale s sharpens the classifier:

    ∇ₓ log p_t(x) + s ∇ₓ log p_φ(y | x_t)        (s = 1: exactly ∇ₓ log p_t(x | y))

With ε̂ = −σ ∇ log p_t (Tweedie), that is the paper's rule (Algorithm 2, in DDIM form)

    ε̃ = ε̂ − s σ(t) ∇ₓ log p_φ(y | x_t)

and, since x̂₀ = (x_t − σ ε̂)/α, in the denoiser's own coordinates

    x̃₀ = x̂₀ + s σ(t)²/α(t) · ∇ₓ log p_φ(y | x_t)

======  ======================================  ================
symbol  meaning                                 name
======  ======================================  ================
s       guidance scale (0: none)                scale
p_φ     noise-aware classifier p(y | x_t, t)    log_prob
σ, α    the process at t                        process.alpha_sigma
======  ======================================  ================

:class:`ClassifierGuidance` is a denoiser wrapper like classifier-free guidance, so it works with
every sampler and stacks with CFG: ``ClassifierGuidance(ClassifierFreeGuidance(d, w, null), lp, s)``
gives ∇ log p + (w − 1 + s)·∇ log p(y | x) … when both parts are exact (a test checks it).
The condition ``cond`` (int64 labels) is passed to the inner denoiser too; an unconditional
network ignores it, and ``denoiser_cond=null`` passes the null label instead, which guides a
classifier-free-guidance network's unconditional mode (that mode IS an unconditional model). Samplers run under ``torch.no_grad``; the gradient is taken inside
``torch.enable_grad``.

:class:`NoisyClassifierLoss` trains p_φ on x_t of the same process (cross-entropy at a uniformly
drawn t), and :func:`accuracy_by_time` reports how well it does at each noise level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from genlab.diffusion.denoisers import batch_times
from genlab.diffusion.guidance import null_like
from genlab.diffusion.losses import UniformTime
from genlab.diffusion.process import Process, check_finite
from genlab.errors import ConfigError

__all__ = ["ClassifierGuidance", "NoisyClassifierLoss", "accuracy_by_time", "classifier_log_prob"]

LogProb = Callable[[torch.Tensor, object, torch.Tensor], torch.Tensor]  # (x_t, t, y) -> log p(y | x_t), (B,)


def classifier_log_prob(classifier: torch.nn.Module, process: Process) -> LogProb:
    """log p_φ(y | x_t) from a network ``classifier(x_t, net_time) -> logits``, at process times t."""

    def log_prob(x: torch.Tensor, t, y: torch.Tensor) -> torch.Tensor:
        t_net = process.net_time(batch_times(t, x)).to(x.device)
        logits = classifier(x, t_net)
        return logits.log_softmax(dim=-1).gather(1, y.view(-1, 1).to(logits.device)).squeeze(1)

    return log_prob


class ClassifierGuidance:
    """``denoiser`` steered towards class ``cond`` by s · ∇ₓ log p(y | x_t) (see the module doc).

    ``log_prob(x_t, t, y)`` returns log p(y | x_t) per sample, differentiably in x_t — a trained
    noise-aware classifier through :func:`classifier_log_prob`, or an exact one in tests.
    """

    def __init__(self, denoiser, log_prob: LogProb, scale: float, denoiser_cond=None):
        self.denoiser, self.process, self.log_prob = denoiser, denoiser.process, log_prob
        self.scale = check_finite("classifier guidance scale", scale)
        self.denoiser_cond = denoiser_cond  # None: the inner denoiser gets cond; else this label (e.g. the null label)

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        inner = cond if self.denoiser_cond is None or cond is None else null_like(cond, self.denoiser_cond)
        x0 = self.denoiser(x, t, inner)
        if self.scale == 0.0:
            return x0
        if cond is None or not isinstance(cond, torch.Tensor) or cond.dtype != torch.long:
            raise ConfigError("classifier guidance needs the class of each sample (int64 labels): pass labels (--class)")
        tb = batch_times(t, x)
        a, s = self.process.alpha_sigma(tb)
        if bool((a == 0).any()):
            raise ConfigError("classifier guidance is undefined where alpha = 0 (zero terminal SNR); start the grid at a smaller t")
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_prob(xg, t, cond).sum(), xg)
        coef = (self.scale * s**2 / a).to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return x0 + coef * grad


@dataclass
class NoisyClassifierLoss:
    """``loss_fn(model, batch, generator)`` for :func:`genlab.train.fit`: cross-entropy on x_t.

    batch = (x₀, y). Draws, in this order: t ~ ``time_sampler`` (B,), then ε ~ N(0, I); the
    classifier sees x_t = α(t) x₀ + σ(t) ε and the network time of t.
    """

    process: Process
    time_sampler: Callable = field(default_factory=UniformTime)

    def __call__(self, model, batch: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        if len(batch) < 2:
            raise ConfigError("a noise-aware classifier trains on (images, labels); got images only")
        x0, y = batch[0], batch[1]
        t = self.time_sampler(self.process, x0.shape[0], generator)
        eps = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
        a, s = (v.to(device=x0.device, dtype=x0.dtype).view(-1, *([1] * (x0.ndim - 1))) for v in self.process.alpha_sigma(t))
        logits = model(a * x0 + s * eps, self.process.net_time(t).to(x0.device))
        return F.cross_entropy(logits, y.to(logits.device))

    def config(self) -> dict:
        return {"objective": "noisy_classifier_cross_entropy", "process": self.process.kind,
                "time_sampler": type(self.time_sampler).__name__}  # fmt: skip


@torch.no_grad()
def accuracy_by_time(
    classifier: torch.nn.Module, process: Process, x0: torch.Tensor, y: torch.Tensor, times: Sequence[float],
    *, seed: int = 0, batch_size: int = 256,
) -> list[float]:
    """The classifier's accuracy on x_t = α(t) x₀ + σ(t) ε for each t in ``times`` (fixed noise per seed)."""
    if len(x0) != len(y) or len(x0) == 0:
        raise ConfigError(f"accuracy_by_time needs as many labels as images (got {len(x0)} images, {len(y)} labels)")
    classifier.eval()
    device = next(classifier.parameters()).device
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    out = []
    for t in times:
        a, s = (v.item() for v in process.alpha_sigma(torch.tensor(float(t), dtype=torch.float64)))
        t_net = process.net_time(torch.tensor([float(t)], dtype=torch.float64))
        correct = 0
        for i in range(0, len(x0), batch_size):
            xt = (a * x0[i : i + batch_size] + s * eps[i : i + batch_size]).to(device)
            logits = classifier(xt, t_net.expand(len(xt)).to(device))
            correct += int((logits.argmax(-1).cpu() == y[i : i + batch_size]).sum())
        out.append(correct / len(x0))
    return out
