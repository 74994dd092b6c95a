"""Consistency models: one network that maps any point of a probability-flow ODE trajectory to
the trajectory's start, so that one call generates (Song et al. 2023, "Consistency Models";
Song & Dhariwal 2023, "Improved Techniques for Training Consistency Models", iCT).

Coordinates are EDM's: x = x_t/α(t) at noise level σ = σ(t)/α(t) (the ``y`` and σ̂ of
:mod:`genlab.diffusion.euler_heun`; for the VE process α = 1 and they are x_t and t). There every
diffusion process is one ODE, dx/dσ = (x − D(x; σ))/σ (Karras et al. 2022, eq. 4), and a point
x_σ of a trajectory is data plus noise, x₀ + σ z. The *consistency function* maps every point of
a trajectory to its end at the smallest noise level σ_min:

    f(x_σ, σ) = x_{σ_min}   for all σ ∈ [σ_min, σ_max],   so f(x, σ_min) = x   (the boundary condition)

:class:`ConsistencyFunction` builds the boundary condition into the network (CM, Appendix C):

    f_θ(x, σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x, c_noise(σ), y)
    c_skip = σ_d² / ((σ − σ_min)² + σ_d²),   c_out = σ_d (σ − σ_min) / √(σ_d² + σ²)
    c_in   = 1 / √(σ² + σ_d²),               c_noise = 1000 · ¼ ln σ

so c_skip(σ_min) = 1 and c_out(σ_min) = 0 exactly, whatever F_θ is.

Training compares f at two neighbouring noise levels σ_n < σ_{n+1} of a Karras grid
(:func:`consistency_sigmas`, ρ = 7) and pulls the noisier one towards the other:

    L = E_n [ λ(σ_n) d( f_θ(x_{n+1}, σ_{n+1}),  f_θ⁻(x̂_n, σ_n) ) ],   x_{n+1} = x₀ + σ_{n+1} z

- distillation (CD, CM Algorithm 2, :class:`ConsistencyDistillation`): x̂_n is one Euler or Heun
  step of a *teacher's* PF-ODE from x_{n+1} down to σ_n (:func:`teacher_step`);
- training (CT, CM Algorithm 3 with iCT's improvements, :class:`ConsistencyTraining`): no
  teacher, x̂_n = x₀ + σ_n z with the same z — an unbiased one-sample estimate of the ODE step.
  iCT: θ⁻ = θ (no EMA target), the pseudo-Huber distance, λ(σ_n) = 1/(σ_{n+1} − σ_n), a
  lognormal choice of n, and a grid that doubles during training (:func:`ict_discretization`).

θ⁻ is the *target* network: stop-grad of θ itself (decay μ = 0) or an EMA of θ,
θ⁻ ← μ θ⁻ + (1 − μ) θ (CM: μ = 0.95 for CD). It is not the EMA that samples: that one is the
engine's (``TrainState.emas``, decay ~0.999).

Sampling (CM Algorithm 1, :func:`consistency_sample`): x = f(σ_max z, σ_max) in one step; for
more, at each τ of a descending list add fresh noise x ← x + √(τ² − σ_min²) z and map back,
x ← f(x, τ).

==========  ===============================================  =======================
symbol      meaning                                          name
==========  ===============================================  =======================
x, σ        state and noise level in EDM coordinates         x, sigma
σ_min       where a trajectory ends, f(x, σ_min) = x          sigma_min (0.002)
σ_max       where sampling starts, x = σ_max z               sigma_max (80)
σ_d         std of the data (0.5 for images in [−1, 1])      sigma_data
F_θ         the raw network (U-Net signature)                net
f_θ, f_θ⁻   consistency function, its target                 ConsistencyFunction
N, σ_n      grid size and its levels, σ_0 = σ_min            consistency_sigmas
μ           decay of the target network θ⁻                   target_decay
λ(σ_n)      loss weight                                      weighting
d(·, ·)     distance: squared L2 or pseudo-Huber             metric
c           pseudo-Huber's scale, 0.00054 √dim (iCT)         huber_c
s₀, s₁      iCT's grid curriculum, N from s₀+1 to s₁+1        s0, s1
τ           noise levels of multistep sampling               sigmas
==========  ===============================================  =======================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.diffusion.denoisers import batch_times
from genlab.diffusion.grids import EDM_SIGMA_MIN, karras_sigmas
from genlab.diffusion.noise import SampleNoise
from genlab.diffusion.process import check_finite
from genlab.errors import ConfigError

__all__ = [
    "METRICS",
    "SOLVERS",
    "ConsistencyDistillation",
    "ConsistencyFunction",
    "ConsistencyTraining",
    "consistency_distance",
    "consistency_sample",
    "consistency_sigmas",
    "ict_discretization",
    "lognormal_index_probs",
    "sampling_sigmas",
    "teacher_step",
    "update_target",
]

METRICS = ("l2", "pseudo_huber")
SOLVERS = ("euler", "heun")
WEIGHTINGS = ("none", "ict")


def _check_range(sigma_min, sigma_max) -> tuple[float, float]:
    lo = check_finite("sigma_min", sigma_min, low=0.0, strict_low=True)
    hi = check_finite("sigma_max", sigma_max)
    if hi <= lo:
        raise ConfigError(f"sigma_max must be larger than sigma_min, got sigma_min={lo:g}, sigma_max={hi:g}")
    return lo, hi


class ConsistencyFunction(nn.Module):
    """f_θ(x, σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x, c_noise(σ), y) (module docstring).

    ``net`` is any genlab network with the U-Net signature ``net(x, t, y=None)`` (UNet,
    ToyDenoiser): it receives c_in x and c_noise = 1000 · ¼ ln σ, as under
    :class:`~genlab.diffusion.denoisers.EDMPrecond`. The wrapper holds no weights of its own, so a
    checkpoint stores ``net`` and the two numbers. ``forward(x, sigma, cond=None)`` with sigma a
    number or (B,); the coefficients are computed in float64, so f(x, σ_min) = x exactly.

    ============  ====================================  ==========
    symbol        value                                 name
    ============  ====================================  ==========
    c_skip        σ_d² / ((σ − σ_min)² + σ_d²)          c_skip
    c_out         σ_d (σ − σ_min) / √(σ_d² + σ²)        c_out
    c_in          1 / √(σ² + σ_d²)                      c_in
    c_noise       1000 · ¼ ln σ                         c_noise
    ============  ====================================  ==========
    """

    def __init__(self, net: nn.Module, sigma_min: float = EDM_SIGMA_MIN, sigma_data: float = 0.5):
        super().__init__()
        self.net = net
        self.sigma_min = check_finite("sigma_min", sigma_min, low=0.0, strict_low=True)
        self.sigma_data = check_finite("sigma_data", sigma_data, low=0.0, strict_low=True)

    def coefficients(self, sigma) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in, c_noise) for σ (a number or any shape), float64 on the CPU."""
        s = torch.as_tensor(sigma).detach().to(device="cpu", dtype=torch.float64)
        s = torch.where((s < self.sigma_min) & (s >= self.sigma_min * (1 - 1e-6)), self.sigma_min, s)  # float32 rounding of σ_min
        if bool((s < self.sigma_min).any()) or not bool(torch.isfinite(s).all()):
            raise ConfigError(f"a consistency function takes noise levels >= sigma_min = {self.sigma_min:g}, got {s.min().item():g}")
        sd2, ds = self.sigma_data**2, s - self.sigma_min
        c_skip = sd2 / (ds**2 + sd2)
        c_out = self.sigma_data * ds / (sd2 + s**2).sqrt()
        c_in = 1 / (s**2 + sd2).sqrt()
        c_noise = 1000.0 * 0.25 * s.log()
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        c_skip, c_out, c_in, c_noise = self.coefficients(batch_times(sigma, x))  # (B,) each
        view = (-1,) + (1,) * (x.ndim - 1)
        c_skip, c_out, c_in = (c.to(device=x.device, dtype=x.dtype).view(view) for c in (c_skip, c_out, c_in))
        out = self.net(c_in * x, c_noise.to(device=x.device, dtype=torch.float32), y=cond)
        return c_skip * x + c_out * out


# ----------------------------------------------------------------------------- grids and schedules


def consistency_sigmas(n: int, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The N ascending levels σ_0 = σ_min < … < σ_{N−1} = σ_max of Karras' ρ-grid (Karras et al.
    2022, eq. 5), counted upwards from the data as in CM: σ_i = (σ_min^{1/ρ} + i/(N−1) (σ_max^{1/ρ} −
    σ_min^{1/ρ}))^ρ. Float64 (N,), N >= 2; the end points are σ_min and σ_max exactly."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"a consistency grid needs at least 2 noise levels, got {n!r}")
    lo, hi = _check_range(sigma_min, sigma_max)
    s = karras_sigmas(n, lo, hi, rho).flip(0)
    s[0], s[-1] = lo, hi  # not a rounding error away: f(x, σ_0) must be the identity
    return s


def ict_discretization(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's grid size N(k) = min(s₀ · 2^⌊k/K'⌋, s₁) + 1, K' = ⌊K / (log₂⌊s₁/s₀⌋ + 1)⌋ (iCT §3.4).

    The grid doubles log₂(s₁/s₀) times during the K = ``total_steps`` steps: coarse grids early
    (large gaps: a strong, biased signal), fine ones late (small gaps: the continuous-time limit).
    """
    for name, v, low in (("step", step, 0), ("total_steps", total_steps, 1), ("s0", s0, 1), ("s1", s1, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {v!r}")
    if s1 < s0:
        raise ConfigError(f"the curriculum must grow: s1 >= s0, got s0={s0}, s1={s1}")
    k_prime = max(1, total_steps // (int(math.log2(s1 // s0)) + 1))
    return min(s0 * 2 ** (step // k_prime), s1) + 1


def lognormal_index_probs(sigmas: torch.Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> torch.Tensor:
    """p(n) ∝ Φ((ln σ_{n+1} − P_mean)/P_std) − Φ((ln σ_n − P_mean)/P_std), n = 0..N−2 (iCT §3.5):
    the mass of a lognormal σ on each gap of the (ascending) grid. Float64 (N−1,), sums to 1."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    cdf = 0.5 * (1 + torch.erf((s.log() - p_mean) / (p_std * math.sqrt(2))))
    p = cdf[1:] - cdf[:-1]
    return p / p.sum()


def sampling_sigmas(steps: int, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = 80.0, rho: float = 7.0) -> list[float]:
    """Default noise levels of ``steps``-step sampling: σ_max, then the next points of a Karras grid
    of ``steps + 1`` levels ending at σ_min (which is left out: f is the identity there).
    1 → [80]; 2 → [80, 2.5] for the defaults. Pass your own list to :func:`consistency_sample`
    to tune them (CM and iCT chose theirs by a search on FID)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"sampling steps must be a positive int, got {steps!r}")
    lo, hi = _check_range(sigma_min, sigma_max)
    return karras_sigmas(steps + 1, lo, hi, rho)[:-1].tolist()


# ----------------------------------------------------------------------------- the pieces of a step


def teacher_step(denoiser, x: torch.Tensor, sigma_from, sigma_to, cond=None, solver: str = "heun") -> torch.Tensor:
    """One Euler or Heun step of the teacher's PF-ODE from ``sigma_from`` to ``sigma_to`` (each a
    number or (B,), per sample), in EDM coordinates x = x_t/α (Karras et al. 2022, Algorithm 1):

        d = (x − D(x; σ)) / σ,   x' = x + (σ' − σ) d                          (Euler)
        x' = x + (σ' − σ) (d + d') / 2,  d' the slope at the Euler point       (Heun; σ' > 0)

    ``denoiser`` is any genlab denoiser (:mod:`genlab.diffusion.denoisers`) of any process: it is
    asked at x_t = α(t) x and t = ``process.time_of(σ)``, so a discrete-VP teacher is asked at
    fractional timesteps, as genlab's Euler and Heun samplers do on a σ-grid.
    """
    if solver not in SOLVERS:
        raise ConfigError(f"unknown ODE solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    process = denoiser.process
    view = (-1,) + (1,) * (x.ndim - 1)

    def slope(x_s: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:  # dx/dσ = (x − D)/σ at σ (B,)
        t = process.time_of(sigma)
        alpha = process.alpha_sigma(t)[0].to(device=x.device, dtype=x.dtype).view(view)
        x0 = denoiser(alpha * x_s, t, cond)
        return (x_s - x0) / sigma.to(device=x.device, dtype=x.dtype).view(view)

    s0, s1 = batch_times(sigma_from, x), batch_times(sigma_to, x)  # (B,) float64
    if bool((s0 <= 0).any()):
        raise ConfigError("a teacher step starts at a positive noise level")
    h = (s1 - s0).to(device=x.device, dtype=x.dtype).view(view)
    d0 = slope(x, s0)
    x1 = x + h * d0
    if solver == "heun":
        if bool((s1 <= 0).any()):
            raise ConfigError("Heun's correction needs a positive noise level at the end of the step; use solver='euler'")
        x1 = x + h * 0.5 * (d0 + slope(x1, s1))
    return x1


def consistency_distance(a: torch.Tensor, b: torch.Tensor, metric: str = "l2", huber_c: float | None = None) -> torch.Tensor:
    """d(a, b) per sample, (B,): ``"l2"`` the mean squared difference over a sample's D entries
    (‖a − b‖²/D); ``"pseudo_huber"`` √(‖a − b‖² + c²) − c with c = 0.00054 √D by default (iCT
    §3.3): quadratic for small differences, linear for large ones, so outliers pull less."""
    if metric not in METRICS:
        raise ConfigError(f"unknown consistency metric {metric!r}; choose one of {', '.join(METRICS)}")
    sq = (a - b).flatten(1).pow(2).sum(1)  # ‖a − b‖² (B,)
    dim = a[0].numel()
    if metric == "l2":
        return sq / dim
    c = 0.00054 * math.sqrt(dim) if huber_c is None else check_finite("huber_c", huber_c, low=0.0, strict_low=True)
    return (sq + c**2).sqrt() - c


@torch.no_grad()
def update_target(target: nn.Module, model: nn.Module, decay: float) -> None:
    """θ⁻ ← μ θ⁻ + (1 − μ) θ (a constant μ, as in CM; buffers are copied)."""
    t_params, m_params = list(target.parameters()), list(model.parameters())
    torch._foreach_lerp_(t_params, m_params, 1.0 - decay)
    for tb, mb in zip(target.buffers(), model.buffers()):
        tb.copy_(mb)


def _check_decay(decay) -> float:
    d = check_finite("target_decay", decay, low=0.0)
    if d >= 1.0:
        raise ConfigError(f"target_decay must be in [0, 1), got {d}")
    return d


def _drop_labels(cond, p: float, null_label, generator: torch.Generator):
    """Labels with a share p replaced by the null label (so the model also learns "no class")."""
    if cond is None or p == 0.0:
        return cond
    drop = torch.rand(cond.shape[0], generator=generator) < p
    return torch.where(drop.to(cond.device), torch.full_like(cond, null_label), cond)


@dataclass
class _Step:
    """The parts every consistency step shares (a step function for :func:`genlab.train.engine.train`)."""

    sigma_min: float = EDM_SIGMA_MIN
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    metric: str = "pseudo_huber"
    huber_c: float | None = None  # None: 0.00054 √dim
    target_decay: float = 0.0  # μ; 0: θ⁻ = stop-grad θ, > 0: the frozen model "target" holds the EMA
    conditional: bool = False  # batches are (x, labels)
    cond_drop_prob: float = 0.0  # share of labels replaced by null_label
    null_label: int | None = None

    def __post_init__(self):
        self.sigma_min, self.sigma_max = _check_range(self.sigma_min, self.sigma_max)
        self.sigma_data = check_finite("sigma_data", self.sigma_data, low=0.0, strict_low=True)
        self.rho = check_finite("rho", self.rho, low=0.0, strict_low=True)
        if self.metric not in METRICS:
            raise ConfigError(f"unknown consistency metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        self.target_decay = _check_decay(self.target_decay)
        self.cond_drop_prob = check_finite("cond_drop_prob", self.cond_drop_prob, low=0.0, high=1.0)
        if self.conditional and self.cond_drop_prob > 0 and self.null_label is None:
            raise ConfigError("condition dropout needs the null label of the network (its number of classes)")

    def config(self) -> dict:
        """The step's settings as JSON (a run's identity); the teacher is the caller's to record."""
        return {"kind": type(self).__name__, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "teacher"}}

    def functions(self, ctx) -> tuple[ConsistencyFunction, ConsistencyFunction]:
        """(f_θ, f_θ⁻) around the state's ``model`` and, for μ > 0, its frozen ``target``."""
        net = ctx.models["model"]
        if self.target_decay > 0 and "target" not in ctx.models:
            raise ConfigError("target_decay > 0 needs a frozen copy of the model named 'target' in the train state")
        target = ctx.models["target"] if self.target_decay > 0 else net
        return (ConsistencyFunction(net, self.sigma_min, self.sigma_data), ConsistencyFunction(target, self.sigma_min, self.sigma_data))

    def split(self, ctx, batch):
        x0 = batch[0]
        cond = batch[1] if self.conditional else None
        return x0, _drop_labels(cond, self.cond_drop_prob, self.null_label, ctx.generator)

    def finish(self, ctx, loss: torch.Tensor) -> dict:
        value = ctx.optimize("model", loss)
        if self.target_decay > 0:
            update_target(ctx.models["target"], ctx.models["model"], self.target_decay)
        return {"loss": value}


@dataclass
class ConsistencyDistillation(_Step):
    """One CD step (CM Algorithm 2): n ~ U{0..N−2}, x_{n+1} = x₀ + σ_{n+1} z, x̂_n = one ``solver``
    step of ``teacher`` to σ_n, loss d(f_θ(x_{n+1}, σ_{n+1}), f_θ⁻(x̂_n, σ_n)) with λ = 1.

    ``teacher`` is a genlab denoiser (guidance, clipping and all) and is not saved by the step;
    the caller keeps its network in the train state as a frozen model so that it moves to the
    training device and is checkpointed with the run.
    """

    teacher: Callable | None = None
    num_sigmas: int = 18  # N (CM, CIFAR-10: 18 with Heun)
    solver: str = "heun"

    def __post_init__(self):
        super().__post_init__()
        if self.teacher is None or not hasattr(self.teacher, "process"):
            raise ConfigError("consistency distillation needs a teacher: a genlab denoiser with a process")
        if self.solver not in SOLVERS:
            raise ConfigError(f"unknown ODE solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        self.sigmas = consistency_sigmas(self.num_sigmas, self.sigma_min, self.sigma_max, self.rho)

    def __call__(self, ctx, batch) -> dict:
        f, f_target = self.functions(ctx)
        x0, cond = self.split(ctx, batch)
        g, view = ctx.generator, (-1,) + (1,) * (x0.ndim - 1)
        n = torch.randint(0, len(self.sigmas) - 1, (x0.shape[0],), generator=g)
        z = torch.randn(x0.shape, generator=g).to(x0.device)
        s_now, s_next = self.sigmas[n], self.sigmas[n + 1]  # (B,) float64
        x_next = x0 + s_next.to(device=x0.device, dtype=x0.dtype).view(view) * z
        with torch.no_grad():
            x_hat = teacher_step(self.teacher, x_next, s_next, s_now, cond, self.solver)
            target = f_target(x_hat, s_now, cond)
        loss = consistency_distance(f(x_next, s_next, cond), target, self.metric, self.huber_c).mean()
        return self.finish(ctx, loss)


@dataclass
class ConsistencyTraining(_Step):
    """One CT step (CM Algorithm 3 with iCT's choices): x_n = x₀ + σ_n z and x_{n+1} = x₀ + σ_{n+1} z
    with the same z; loss λ(σ_n) d(f_θ(x_{n+1}, σ_{n+1}), stop-grad f_θ⁻(x_n, σ_n)).

    The grid has N(k) = :func:`ict_discretization` levels at step k of ``total_steps``;
    ``index_sampling`` picks n ``"lognormal"`` (:func:`lognormal_index_probs`) or ``"uniform"``;
    ``weighting`` λ is ``"ict"`` (1/(σ_{n+1} − σ_n)) or ``"none"``.
    """

    total_steps: int = 1000
    s0: int = 10
    s1: int = 1280
    index_sampling: str = "lognormal"
    p_mean: float = -1.1
    p_std: float = 2.0
    weighting: str = "ict"

    def __post_init__(self):
        super().__post_init__()
        ict_discretization(0, self.total_steps, self.s0, self.s1)  # checks the curriculum
        if self.index_sampling not in ("lognormal", "uniform"):
            raise ConfigError(f"unknown index sampling {self.index_sampling!r}; choose 'lognormal' or 'uniform'")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown consistency weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        self.p_std = check_finite("p_std", self.p_std, low=0.0, strict_low=True)
        self.p_mean = check_finite("p_mean", self.p_mean)
        self._grid: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def grid(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(σ_0..σ_{N−1}, p(n)) at training step ``step`` (cached while N stays the same)."""
        n = ict_discretization(step, self.total_steps, self.s0, self.s1)
        if self._grid is None or self._grid[0] != n:
            sigmas = consistency_sigmas(n, self.sigma_min, self.sigma_max, self.rho)
            probs = lognormal_index_probs(sigmas, self.p_mean, self.p_std) if self.index_sampling == "lognormal" else torch.full((n - 1,), 1.0 / (n - 1), dtype=torch.float64)
            self._grid = (n, sigmas, probs)
        return self._grid[1], self._grid[2]

    def __call__(self, ctx, batch) -> dict:
        f, f_target = self.functions(ctx)
        x0, cond = self.split(ctx, batch)
        sigmas, probs = self.grid(ctx.step)
        g, view = ctx.generator, (-1,) + (1,) * (x0.ndim - 1)
        n = torch.multinomial(probs, x0.shape[0], replacement=True, generator=g)
        z = torch.randn(x0.shape, generator=g).to(x0.device)
        s_now, s_next = sigmas[n], sigmas[n + 1]  # (B,) float64
        as_x = lambda s: s.to(device=x0.device, dtype=x0.dtype).view(view)  # noqa: E731
        with torch.no_grad():
            target = f_target(x0 + as_x(s_now) * z, s_now, cond)
        dist = consistency_distance(f(x0 + as_x(s_next) * z, s_next, cond), target, self.metric, self.huber_c)
        weight = (1 / (s_next - s_now)) if self.weighting == "ict" else torch.ones_like(s_now)
        return self.finish(ctx, (weight.to(device=dist.device, dtype=dist.dtype) * dist).mean())


# ----------------------------------------------------------------------------- sampling


@torch.no_grad()
def consistency_sample(
    f: Callable[..., torch.Tensor],
    n: int,
    shape: Sequence[int],
    sigmas: Sequence[float] | torch.Tensor,
    *,
    seed: int = 0,
    cond: torch.Tensor | None = None,
    sigma_min: float | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """``n`` samples of shape ``shape`` by multistep consistency sampling (CM Algorithm 1).

    ``f(x, sigma (B,), cond)`` is a consistency function (e.g. :class:`ConsistencyFunction`);
    ``sigmas`` the descending noise levels τ₀ > τ₁ > … > σ_min: x = f(τ₀ z, τ₀), then for each
    later τ, x = f(x + √(τ² − σ_min²) z, τ). One level is one-step generation (τ₀ = σ_max);
    :func:`sampling_sigmas` gives defaults. ``sigma_min`` defaults to ``f.sigma_min``. Sample i's
    noise comes from its own stream (seed, i) (:class:`~genlab.diffusion.noise.SampleNoise`), so it
    does not depend on ``n``, ``batch_size`` or its place in a chunk. Returns (n, *shape) on the CPU.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of samples must be a positive int, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive int, got {batch_size!r}")
    if sigma_min is None:
        sigma_min = getattr(f, "sigma_min", None)
        if sigma_min is None:
            raise ConfigError("pass sigma_min: the consistency function does not say where its trajectories end")
    sigma_min = check_finite("sigma_min", sigma_min, low=0.0, strict_low=True)
    taus = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1).tolist()
    if not taus:
        raise ConfigError("consistency sampling needs at least one noise level (one step)")
    if any(not math.isfinite(t) or t <= sigma_min for t in taus) or any(a <= b for a, b in zip(taus, taus[1:])):
        raise ConfigError(f"sampling noise levels must be finite, strictly descending and above sigma_min = {sigma_min:g}, got {taus}")
    if cond is not None and len(cond) != n:
        raise ConfigError(f"cond must hold one condition per sample: {n} asked for, {len(cond)} given")
    device = torch.device(device)
    outs = []
    chunks = range(0, n, batch_size)
    for start in tqdm(chunks, desc="consistency sampling", unit="batch", disable=not progress or len(chunks) < 2):
        idx = range(start, min(n, start + batch_size))
        noise = SampleNoise(seed, idx)
        c = None if cond is None else cond[start : idx.stop].to(device)
        x = taus[0] * noise.randn_like(torch.empty(len(idx), *shape, device=device))
        x = f(x, torch.full((len(idx),), taus[0], dtype=torch.float64), c)
        for tau in taus[1:]:
            x = x + math.sqrt(tau**2 - sigma_min**2) * noise.randn_like(x)
            x = f(x, torch.full((len(idx),), tau, dtype=torch.float64), c)
        outs.append(x.cpu())
    return torch.cat(outs)
