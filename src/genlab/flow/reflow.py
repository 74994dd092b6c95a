"""Reflow (Liu et al. 2022, "Flow Straight and Fast"): straighten a trained flow by training on its own couplings.

A flow-matching model trained on independent pairs (x₀ ~ data, ε ~ N(0, I)) learns a field whose
ODE paths curve: the straight lines between independent pairs cross, and the marginal velocity
averages over the crossings. Reflow replaces the independent pairs by the model's own coupling —
each noise z paired with the sample the ODE carries it to, x₀ = ODE(z) — and trains a new flow
(the *2-rectified flow*) on straight lines between those pairs:

    x_t = (1 − t) x₀ + t z,    target u = z − x₀            (loss with ``coupled=True``)

The coupling's lines do not cross (each z has one x₀), so the new field is nearly straight and a
single Euler step, x₀ ≈ z − u(z, 1), already lands close to where the whole ODE would: one-step
generation. Liu et al. start the new model from the old one's weights; so does :func:`train_reflow`.

``z`` for sample i is exactly the starting noise that :func:`genlab.pipeline.generate` draws for
it, (seed, i) — :func:`coupled_noise` recomputes it, so a pair costs one sampling run and no
bookkeeping inside the sampler.

=========  ===========================================  ============
symbol     meaning                                      name
=========  ===========================================  ============
z          the noise a sample started from (t = 1)      noise
x₀         where the trained ODE carried z (t = 0)      samples
(x₀, z)    the coupling 2-rectified flow trains on      pairs
=========  ===========================================  ============
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from genlab.diffusion.noise import SampleNoise
from genlab.errors import ConfigError

__all__ = ["coupled_noise", "reflow_pairs", "train_reflow"]

PAIRS_FILE = "reflow_pairs.safetensors"


def coupled_noise(n: int, shape, seed: int = 0) -> torch.Tensor:
    """The starting noise of samples 0..n-1 for ``seed``, exactly as :func:`genlab.diffusion.sample` draws it
    on a process that starts at N(0, I) (rectified flow, VP): (n, *shape) float32."""
    return SampleNoise(seed, range(n)).randn_like(torch.empty(n, *shape))


def reflow_pairs(model, spec, n: int, *, sampler: str = "flow-rk4", steps: int = 10, seed: int = 0,
                 labels: torch.Tensor | None = None, guidance: float = 1.0, batch_size: int = 64,
                 progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(samples, noise)``: n samples of the trained flow and the noise each one started from.

    ``labels`` (n,) for a class-conditional model (the coupling is then per class, as the model
    samples it). The path must start at N(0, I) exactly (α(t_max)² + σ(t_max)² = 1).
    """
    from genlab.pipeline import generate

    process = spec.make_process()
    a, s = (v.item() for v in process.alpha_sigma(float(process.t_max)))
    if process.discrete or abs(a * a + s * s - 1) > 1e-9:
        raise ConfigError("reflow is for a flow-matching model whose path starts at N(0, I) (train with --flow ot or vp)")
    samples = generate(model, spec, n, sampler=sampler, steps=steps, seed=seed, labels=labels, guidance=guidance,
                       batch_size=batch_size, progress=progress)  # fmt: skip
    return samples, coupled_noise(n, spec.shape, seed)


def train_reflow(teacher, spec, options, *, pairs: int = 4000, pair_sampler: str = "flow-rk4", pair_steps: int = 10,
                 pair_seed: int = 1, guidance: float = 1.0, out_dir: str | Path | None = None, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, teacher_name: str | None = None):  # fmt: skip
    """Train the 2-rectified flow of ``teacher`` (a flow-matching model with ``spec``), starting from its weights.

    The ``pairs`` couplings are drawn once with ``pair_sampler`` in ``pair_steps`` steps (class
    labels cycled 0..K−1 for a conditional model) and, with ``out_dir``, saved there, so an
    interrupted run resumes on the same pairs without sampling them again. ``options`` are the
    :class:`~genlab.pipeline.TrainOptions` of the new run (``coupled`` is set here).
    Returns the :class:`~genlab.train.TrainResult`.
    """
    import dataclasses

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from genlab.pipeline import train_diffusion
    from genlab.train.engine import check_out_dir

    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ConfigError(f"the number of reflow pairs must be a positive int, got {pairs!r}")
    check_out_dir(out_dir, resume, overwrite)  # before minutes of sampling, not after
    recipe = {"teacher": teacher_name, "pairs": pairs, "sampler": pair_sampler, "steps": pair_steps, "seed": pair_seed,
              "guidance": guidance}  # fmt: skip
    file = Path(out_dir) / PAIRS_FILE if out_dir is not None else None
    data = None
    if file is not None and file.is_file() and resume:  # the pairs of the interrupted run, if drawn the same way
        with safe_open(str(file), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("recipe", "null"))
        if meta == recipe:
            saved = load_file(str(file))
            data = tuple(saved[k] for k in ("samples", "labels", "noise") if k in saved)
    if data is None:
        labels = torch.arange(pairs) % spec.num_classes if spec.num_classes else None
        samples, noise = reflow_pairs(teacher, spec, pairs, sampler=pair_sampler, steps=pair_steps, seed=pair_seed,
                                      labels=labels, guidance=guidance, progress=progress)  # fmt: skip
        data = (samples, noise) if labels is None else (samples, labels, noise)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tensors = {"samples": samples.contiguous(), "noise": noise.contiguous()}
            if labels is not None:
                tensors["labels"] = labels
            tmp = file.with_name(file.name + ".tmp")
            save_file(tensors, str(tmp), metadata={"recipe": json.dumps(recipe)})
            os.replace(tmp, file)  # never a half-written pairs file
    options = dataclasses.replace(options, coupled=True)
    state = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    return train_diffusion(spec, data, options, out_dir=out_dir, resume=resume, overwrite=overwrite,
                           progress=progress, initial_state=state, extra_metadata={"reflow": recipe})  # fmt: skip
