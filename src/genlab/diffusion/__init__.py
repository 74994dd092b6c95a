"""genlab.diffusion: DDPM/DDIM from schedules to samplers, one idea per module.

- :mod:`.schedules`         β schedules, zero-terminal-SNR rescaling, :class:`NoiseSchedule`
- :mod:`.forward`           q(x_t|x_{t-1}), q(x_t|x_0), the posterior q(x_{t-1}|x_t, x_0)
- :mod:`.parameterization`  ε ↔ x₀ ↔ v conversions
- :mod:`.losses`            L_simple with condition dropout and Min-SNR-γ weighting
- :mod:`.guidance`          class conditioning and classifier-free guidance
- :mod:`.samplers`          timestep grids, DDPM and DDIM samplers

Index convention (as in diffusers): t = 0..T-1 and ᾱ_t = prod_{s<=t} (1 - β_s).
Model interface: ``model(x_t, t, y=None) -> Tensor`` with t int64 (B,), y int64 (B,) or None.
"""

from genlab.diffusion.forward import q_posterior, q_sample, q_step
from genlab.diffusion.guidance import cfg_combine, guided_model_output
from genlab.diffusion.losses import diffusion_loss, make_diffusion_loss, min_snr_weight
from genlab.diffusion.parameterization import (
    PREDICTIONS,
    convert,
    eps_to_v,
    eps_to_x0,
    predict_x0_eps,
    v_to_eps,
    v_to_x0,
    x0_eps_to_v,
    x0_to_eps,
    x0_to_v,
)
from genlab.diffusion.samplers import (
    SPACINGS,
    Trajectory,
    ddim_coefficients,
    ddim_sample,
    ddim_step,
    ddpm_coefficients,
    ddpm_sample,
    ddpm_step,
    timesteps_grid,
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

__all__ = [
    "PREDICTIONS",
    "SCHEDULES",
    "SPACINGS",
    "NoiseSchedule",
    "Trajectory",
    "cfg_combine",
    "convert",
    "cosine_betas",
    "ddim_coefficients",
    "ddim_sample",
    "ddim_step",
    "ddpm_coefficients",
    "ddpm_sample",
    "ddpm_step",
    "diffusion_loss",
    "eps_to_v",
    "eps_to_x0",
    "extract",
    "guided_model_output",
    "linear_betas",
    "make_diffusion_loss",
    "make_schedule",
    "min_snr_weight",
    "predict_x0_eps",
    "q_posterior",
    "q_sample",
    "q_step",
    "quadratic_betas",
    "rescale_zero_terminal_snr",
    "sigmoid_betas",
    "snr",
    "timesteps_grid",
    "v_to_eps",
    "v_to_x0",
    "x0_eps_to_v",
    "x0_to_eps",
    "x0_to_v",
]
