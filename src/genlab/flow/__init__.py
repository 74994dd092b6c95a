"""The 2022–2025 frontier beyond the diffusion sampler: flow matching, rectified flow and reflow,
consistency models.

- :mod:`genlab.diffusion.velocity`      u(x, t) = α̇ x̂₀ + σ̇ ε̂: the velocity of any denoiser's path
- :mod:`genlab.diffusion.flow_solvers`  fixed-step ODE solvers in the path's own time: Euler, midpoint,
  RK4 (samplers ``flow-euler``, ``flow-midpoint``, ``flow-rk4``; they live beside the other samplers)
- :mod:`.reflow`       rectified flow's reflow: (noise, sample) couplings from a trained flow
- :mod:`.consistency`  consistency functions, distillation and training, one- and few-step sampling

A flow-matching model *is* a genlab diffusion model whose process is a path with a time
derivative (:class:`~genlab.diffusion.process.RectifiedFlow` for the optimal-transport path,
:class:`~genlab.diffusion.process.ContinuousVP` for the variance-preserving one) and whose network
predicts the velocity (``prediction="velocity"``): the loss, the denoiser adapters, guidance and
every sampler of :mod:`genlab.diffusion` apply unchanged. This package adds what the flow view
brings on top.
"""

from genlab.diffusion.flow_solvers import flow_euler_sample, flow_midpoint_sample, flow_rk4_sample
from genlab.diffusion.velocity import velocity
from genlab.flow.consistency import (
    ConsistencyDistillation,
    ConsistencyFunction,
    ConsistencyTraining,
    consistency_distance,
    consistency_sample,
    consistency_sigmas,
    ict_discretization,
    lognormal_index_probs,
    sampling_sigmas,
    teacher_step,
)
from genlab.flow.reflow import coupled_noise, reflow_pairs

__all__ = [
    "ConsistencyDistillation", "ConsistencyFunction", "ConsistencyTraining", "consistency_distance", "consistency_sample",
    "consistency_sigmas", "coupled_noise", "flow_euler_sample", "flow_midpoint_sample", "flow_rk4_sample", "ict_discretization",
    "lognormal_index_probs", "reflow_pairs", "sampling_sigmas", "teacher_step", "velocity",
]  # fmt: skip
