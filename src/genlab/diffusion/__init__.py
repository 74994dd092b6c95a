"""genlab.diffusion: diffusion models from processes to samplers, one idea per module.

- :mod:`.process`           x_t = α(t) x₀ + σ(t) ε: continuous VP, VE (EDM), rectified flow; the posterior
- :mod:`.schedules`         discrete β schedules, zero-terminal-SNR rescaling, :class:`NoiseSchedule`
- :mod:`.forward`           q(x_t|x_{t-1}), q(x_t|x_0), the posterior q(x_{t-1}|x_t, x_0)
- :mod:`.parameterization`  ε ↔ x₀ ↔ v ↔ velocity conversions
- :mod:`.losses`            the objective: process + target + weighting + time sampler
- :mod:`.denoisers`         the one denoiser interface x̂₀ = D(x_t, t) and its adapters (ε/x₀/v nets, EDM)
- :mod:`.guidance`          classifier-free guidance as a denoiser wrapper
- :mod:`.classifier_guidance`  classifier guidance: ∇ log p(y | x_t) as a denoiser wrapper; the noisy classifier's loss
- :mod:`.score`             the score ∇ log p: Tweedie conversions, DSM and sliced SM, annealed Langevin, the reverse-time SDE
- :mod:`.exact`             closed forms for Gaussian-mixture data: noised density, score, p_t(y|x), E[x₀|x_t]
- :mod:`.thresholding`      clipping and dynamic thresholding of x̂₀ as denoiser wrappers
- :mod:`.noise`             per-sample noise: sample i depends on (seed, i) only
- :mod:`.samplers`          timestep grids, DDPM and DDIM over a denoiser, step callbacks
- :mod:`.grids`             σ-grids (Karras ρ, uniform log-SNR, the schedule's own) and σ ↔ t
- :mod:`.euler_heun`        Euler and Heun on the probability-flow ODE (EDM); DDIM is Euler
- :mod:`.dpm_solver`        DPM-Solver++(2M), exponential integration in log-SNR
- :mod:`.unipc`             UniPC, predictor–corrector of any order
- :mod:`.pf_ode`            the PF-ODE handed to scipy's adaptive solvers
- :mod:`.velocity`          the velocity u = α̇ x̂₀ + σ̇ ε̂ of a continuous path (flow matching's field)
- :mod:`.flow_solvers`      Euler, midpoint and RK4 on dx/dt = u(x, t) in the path's own time
- :mod:`.vlb`               the full variational bound in bits/dim, with the discretised decoder
- :mod:`.learned_variance`  learned reverse variances and the hybrid loss (improved DDPM)
- :mod:`.sampling`          the sampler registry; many samples in chunks, one condition per sample

Index convention of discrete schedules (as in diffusers): t = 0..T-1 and ᾱ_t = prod_{s<=t} (1 - β_s);
t = −1 is the data. Network interface: ``net(x_t, t, y=None) -> Tensor``.
"""

from genlab.diffusion.classifier_guidance import ClassifierGuidance, NoisyClassifierLoss, accuracy_by_time, classifier_log_prob
from genlab.diffusion.denoisers import CallCounter, Conditioned, EDMPrecond, NetworkDenoiser
from genlab.diffusion.dpm_solver import dpmpp_2m_sample
from genlab.diffusion.euler_heun import euler_sample, heun_sample
from genlab.diffusion.exact import NoisedGaussianMixture
from genlab.diffusion.flow_solvers import flow_euler_sample, flow_midpoint_sample, flow_rk4_sample
from genlab.diffusion.forward import q_posterior, q_sample, q_step
from genlab.diffusion.grids import GRIDS, karras_sigmas, log_snr_sigmas, make_grid, noise_level_range, sigma_grid
from genlab.diffusion.guidance import ClassifierFreeGuidance, cfg_combine
from genlab.diffusion.learned_variance import HybridLoss, LearnedVarianceDenoiser
from genlab.diffusion.losses import (
    WEIGHTINGS,
    DiffusionLoss,
    LogitNormalTime,
    LogNormalSigma,
    UniformTime,
    diffusion_loss,
    make_diffusion_loss,
    min_snr_weight,
)
from genlab.diffusion.noise import SampleNoise, randn_like
from genlab.diffusion.parameterization import PREDICTIONS, convert, predict_x0_eps, target_from_x0_eps
from genlab.diffusion.pf_ode import ode_sample
from genlab.diffusion.process import (
    ContinuousVP,
    Process,
    RectifiedFlow,
    VEProcess,
    posterior_coefficients,
    process_from_config,
)
from genlab.diffusion.samplers import (
    SPACINGS,
    StepInfo,
    Trajectory,
    ddim_coefficients,
    ddim_sample,
    ddpm_coefficients,
    ddpm_sample,
    learned_std,
    sampling_grid,
    timesteps_grid,
)
from genlab.diffusion.sampling import SAMPLERS, default_grid, grid_kind, sample
from genlab.diffusion.score import (
    annealed_langevin_sample,
    denoiser_score,
    denoising_score_matching_loss,
    eps_from_score,
    ncsn_sigmas,
    noise_level_score,
    reverse_sde_sample,
    score_from_eps,
    score_from_x0,
    sde_coefficients,
    sliced_score_matching_loss,
    x0_from_score,
)
from genlab.diffusion.schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_betas,
    extract,
    linear_betas,
    make_schedule,
    quadratic_betas,
    rescale_zero_terminal_snr,
    sigmoid_betas,
    snr,
)
from genlab.diffusion.thresholding import ClipX0, DynamicThreshold
from genlab.diffusion.unipc import unipc_sample
from genlab.diffusion.velocity import velocity
from genlab.diffusion.vlb import VariationalBound, discretized_gaussian_log_likelihood, normal_kl, quantize, variational_bound

__all__ = [
    "GRIDS", "PREDICTIONS", "SAMPLERS", "SCHEDULES", "SPACINGS", "WEIGHTINGS",
    "CallCounter", "ClassifierFreeGuidance", "HybridLoss", "LearnedVarianceDenoiser", "VariationalBound", "ClassifierGuidance", "ClipX0", "Conditioned", "ContinuousVP", "DiffusionLoss", "DynamicThreshold",
    "EDMPrecond", "LogNormalSigma", "LogitNormalTime", "NetworkDenoiser", "NoiseSchedule", "NoisedGaussianMixture",
    "NoisyClassifierLoss", "Process",
    "RectifiedFlow", "SampleNoise", "StepInfo", "Trajectory", "UniformTime", "VEProcess",
    "accuracy_by_time", "cfg_combine", "classifier_log_prob", "convert", "cosine_betas", "ddim_coefficients", "ddim_sample", "ddpm_coefficients",
    "ddpm_sample", "default_grid", "diffusion_loss", "discretized_gaussian_log_likelihood", "dpmpp_2m_sample", "euler_sample", "extract", "flow_euler_sample", "flow_midpoint_sample", "flow_rk4_sample", "grid_kind", "heun_sample",
    "karras_sigmas", "learned_std", "linear_betas", "log_snr_sigmas", "make_diffusion_loss", "make_grid", "make_schedule",
    "min_snr_weight", "noise_level_range", "normal_kl", "ode_sample", "posterior_coefficients", "predict_x0_eps", "process_from_config", "q_posterior",
    "q_sample", "q_step", "quadratic_betas", "randn_like", "rescale_zero_terminal_snr", "sample",
    "sampling_grid", "sigma_grid", "sigmoid_betas", "snr", "target_from_x0_eps", "timesteps_grid", "unipc_sample", "variational_bound", "velocity",
    "annealed_langevin_sample", "denoiser_score", "denoising_score_matching_loss", "eps_from_score", "ncsn_sigmas",
    "noise_level_score", "reverse_sde_sample", "score_from_eps", "score_from_x0", "sde_coefficients",
    "sliced_score_matching_loss", "x0_from_score",
]  # fmt: skip
