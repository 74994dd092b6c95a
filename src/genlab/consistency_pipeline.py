"""Train and sample consistency models on a named data set: the glue the CLI and the benchmarks
share (the diffusion counterpart is :mod:`genlab.pipeline`, the GAN one :mod:`genlab.gan_pipeline`).

Two ways to train a consistency function f_θ (:mod:`genlab.flow.consistency`):

- :func:`train_consistency_distillation` (CD) from a genlab diffusion model, the *teacher*, whose
  probability-flow ODE f_θ learns to jump along: one Heun step of the teacher per training example;
- :func:`train_consistency` (CT, with iCT's recipe) from the data alone.

Both run on :func:`genlab.train.engine.train`, so they resume bit for bit, write crash-safe
checkpoints and refuse to continue another run. The train state holds

==========  ===========================================================  ==================
model       what                                                         optimiser / EMA
==========  ===========================================================  ==================
``model``   the raw network F_θ (a U-Net, or the toy MLP for toy2d)      Adam; EMA (sampling)
``target``  θ⁻ = EMA of θ with decay μ, only when μ > 0 (CD: 0.95)       frozen
``teacher`` CD: the teacher's network (saved, so a run is self-contained) frozen
==========  ===========================================================  ==================

and :class:`ConsistencySpec` (``metadata["consistency"]``) what sampling needs later: the data
set, shape and classes, σ_min, σ_max, σ_data, and for CD the teacher's identity (its diffusion
setup, a digest of its weights, where it was loaded from). :func:`load_consistency` gives back
f_θ with the EMA weights, :func:`generate_consistency` one- or few-step samples.

σ range. CT uses EDM's [0.002, 80]. CD uses the part of that range the teacher knows:
[max(0.002, σ̂_min), min(80, σ̂_max)] of its process (a discrete linear schedule, T = 1000:
[0.010, 80]); above 80 the data is invisible under the noise (σ_data/80 < 1 %), so a larger
σ_max, or the ∞ of a zero-terminal-SNR teacher, would only spend grid points where nothing changes.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from genlab.diffusion.grids import EDM_SIGMA_MIN, noise_level_range
from genlab.diffusion.process import check_finite
from genlab.errors import CheckpointError, ConfigError, GenlabError
from genlab.flow.consistency import (
    METRICS,
    SOLVERS,
    ConsistencyDistillation,
    ConsistencyFunction,
    ConsistencyTraining,
    consistency_sample,
    sampling_sigmas,
)
from genlab.train import load_model
from genlab.train.checkpoint import read_config, resolve_checkpoint
from genlab.train.ema import EMA
from genlab.train.engine import TrainConfig, TrainState, train

CONSISTENCY_KEY = "consistency"  # metadata["consistency"] of a consistency checkpoint
EDM_SIGMA_MAX = 80.0  # Karras et al.'s σ_max: CT's, and the cap of a teacher's range for CD


@dataclass
class ConsistencySpec:
    """What a consistency checkpoint generates and how (``metadata["consistency"]``)."""

    dataset: str = "digits"  # one of genlab.pipeline.DATASETS
    shape: tuple[int, ...] = (1, 8, 8)  # one sample: (C, H, W) for images, (dim,) for toy data
    num_classes: int = 0  # > 0: class-conditional, null label = num_classes
    toy: str | None = None  # the toy 2-D distribution, for dataset="toy2d"
    sigma_min: float = EDM_SIGMA_MIN  # where trajectories end: f(x, σ_min) = x
    sigma_max: float = EDM_SIGMA_MAX  # where sampling starts: x = σ_max z
    sigma_data: float = 0.5  # the data's std in c_skip, c_out, c_in
    clip: tuple[float, float] | None = (-1.0, 1.0)  # data range samples are clamped to; None: no clamping
    teacher: dict | None = None  # CD: {"diffusion", "digest", "checkpoint", "step"} of the teacher; None: CT

    def __post_init__(self):
        from genlab.pipeline import DATASETS

        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown data set {self.dataset!r}; choose one of: {', '.join(DATASETS)}")
        self.shape = tuple(self.shape)
        if len(self.shape) not in (1, 3) or not all(isinstance(i, int) and i > 0 for i in self.shape):
            raise ConfigError(f"a sample's shape must be (dim,) or (C, H, W) of positive ints, got {self.shape}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ConfigError(f"num_classes must be an int >= 0, got {self.num_classes!r}")
        self.sigma_min = check_finite("sigma_min", self.sigma_min, low=0.0, strict_low=True)
        self.sigma_max = check_finite("sigma_max", self.sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise ConfigError(f"sigma_max must be larger than sigma_min, got sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}")
        self.sigma_data = check_finite("sigma_data", self.sigma_data, low=0.0, strict_low=True)
        if self.clip is not None:
            self.clip = tuple(float(c) for c in self.clip)
            if len(self.clip) != 2 or not self.clip[0] < self.clip[1]:
                raise ConfigError(f"clip must be (low, high) with low < high, or None; got {self.clip}")

    @property
    def method(self) -> str:
        """``"cd"`` (distilled from a teacher) or ``"ct"`` (trained from data alone)."""
        return "cd" if self.teacher is not None else "ct"

    @property
    def null_label(self) -> int | None:
        return self.num_classes if self.num_classes else None

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one generated sample (as :class:`~genlab.pipeline.DiffusionSpec`'s, so that
        :func:`genlab.pipeline.save_samples` takes this spec too)."""
        return tuple(self.shape)

    @classmethod
    def from_json(cls, raw, where: str = "checkpoint") -> ConsistencySpec:
        if not isinstance(raw, dict):
            raise CheckpointError(f"{where}: the consistency metadata is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names})
        except (GenlabError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: consistency settings are not valid ({e}); the checkpoint was edited or written by another program") from None


@dataclass
class ConsistencyOptions:
    steps: int = 2000  # optimiser steps
    batch_size: int = 128
    lr: float = 1e-3  # Adam's peak learning rate (warm-up, then cosine decay to 10 %)
    ema_decay: float = 0.999  # the EMA that samples (not the target θ⁻)
    target_decay: float | None = None  # μ of the target θ⁻; None: 0.95 for CD (CM), 0 for CT (iCT: θ⁻ = θ)
    metric: str = "pseudo_huber"  # "pseudo_huber" (iCT) or "l2"
    num_sigmas: int = 18  # CD: N, the teacher's grid (CM, CIFAR-10: 18)
    solver: str = "heun"  # CD: the teacher's ODE step, "heun" or "euler"
    guidance: float = 1.0  # CD: classifier-free guidance of a conditional teacher, baked into the student
    s0: int = 10  # CT: iCT's curriculum starts with s0 + 1 levels …
    s1: int = 1280  # … and doubles up to s1 + 1
    index_sampling: str = "lognormal"  # CT: how n is drawn, "lognormal" (iCT) or "uniform"
    cond_drop_prob: float = 0.1  # conditional models: share of labels replaced by the null label
    grad_clip: float | None = None  # max gradient norm; None: no clipping (as in CM/iCT)
    seed: int = 0
    ckpt_every: int = 500
    sample_every: int = 0
    unet: dict = field(default_factory=dict)  # UNetConfig overrides (base_channels, channel_mults, …)

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ConfigError(f"unknown consistency metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        if self.solver not in SOLVERS:
            raise ConfigError(f"unknown ODE solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if isinstance(self.num_sigmas, bool) or not isinstance(self.num_sigmas, int) or self.num_sigmas < 2:
            raise ConfigError(f"num_sigmas (the distillation grid N) must be an int >= 2, got {self.num_sigmas!r}")
        if not (isinstance(self.ema_decay, (int, float)) and 0.0 < self.ema_decay < 1.0):
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay!r}")


def build_network(spec: ConsistencySpec, **unet_overrides) -> nn.Module:
    """The raw network F_θ for ``spec``: the toy MLP for points, the course's default U-Net for images."""
    if len(spec.shape) == 1:
        if unet_overrides:
            raise ConfigError("U-Net options configure image models; a toy data set uses an MLP")
        from genlab.nn.toy_denoiser import ToyDenoiser, ToyDenoiserConfig

        return ToyDenoiser(ToyDenoiserConfig(dim=spec.shape[0], num_classes=spec.num_classes))
    from genlab.nn.unet import UNet
    from genlab.pipeline import default_unet_config

    c, h, _ = spec.shape
    return UNet(default_unet_config(h, c, spec.num_classes, **unet_overrides))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes): a teacher's identity."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_data(data, spec: ConsistencySpec, what: str) -> tuple[torch.Tensor, ...]:
    data = tuple(data)
    if not data or not isinstance(data[0], torch.Tensor):
        raise ConfigError("data must be a tuple (samples,) or (samples, labels) of tensors, or the name of a data set")
    if tuple(data[0].shape[1:]) != tuple(spec.shape):
        raise ConfigError(f"the data has samples of shape {tuple(data[0].shape[1:])}, but {what} {spec.dataset} {tuple(spec.shape)}: "
                          "train on the same data set")  # fmt: skip
    if spec.num_classes:
        if len(data) < 2:
            raise ConfigError(f"{what} class-conditional ({spec.num_classes} classes): pass (samples, labels)")
        labels = data[1].long()
        if bool((labels < 0).any()) or bool((labels >= spec.num_classes).any()):
            raise ConfigError(f"labels must lie in 0..{spec.num_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
        return data[0], labels
    return (data[0],)


def _load_data(data, dataset: str, toy: str | None, seed: int):
    if isinstance(data, str):
        if data != dataset:
            raise ConfigError(f"the data set {data!r} is not the one the model is for ({dataset}): use --dataset {dataset} or another teacher")
        data = None
    if data is None:
        from genlab.pipeline import load_training_data

        return load_training_data(dataset, toy=toy or "moons", seed=seed)
    return data


def _train_config(options: ConsistencyOptions) -> TrainConfig:
    return TrainConfig(
        steps=options.steps, batch_size=options.batch_size, lr=options.lr, ema_decay=options.ema_decay,
        warmup_steps=min(100, options.steps // 10), grad_clip=options.grad_clip, seed=options.seed,
        ckpt_every=options.ckpt_every, sample_every=options.sample_every,
    )  # fmt: skip


def _run(spec, step, data, options, frozen, out_dir, resume, overwrite, sample_fn, progress, identity_extra, net) -> TrainState:
    """Build F_θ (unless given) and θ⁻, the state, and train ``step`` with the engine."""
    if net is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)  # the network's initial weights
            net = build_network(spec, **options.unet)
    elif options.unet:
        raise ConfigError("options.unet configures the default U-Net; with your own network (net=) leave it empty")
    models = {"model": net, **frozen}
    if step.target_decay > 0:
        models["target"] = copy.deepcopy(net).eval().requires_grad_(False)
    state = TrainState(models=models, optimizers={"model": torch.optim.Adam(net.parameters(), lr=options.lr)},
                       emas={"model": EMA(net, options.ema_decay)})  # fmt: skip
    spec_json = json.loads(json.dumps(dataclasses.asdict(spec)))
    # The grid curriculum follows the run's planned length, like the learning rate: --steps may grow on resume.
    step_id = {k: v for k, v in step.config().items() if k != "total_steps"}
    identity = {CONSISTENCY_KEY: {k: v for k, v in spec_json.items() if k != "teacher"}, "step": step_id,
                "unet": json.loads(json.dumps(options.unet)), **identity_extra}  # fmt: skip
    metadata = {CONSISTENCY_KEY: spec_json, "step": step.config(), "train_options": dataclasses.asdict(options)}
    hook = None
    if sample_fn is not None:
        hook = lambda st: sample_fn(ConsistencyFunction(st.emas["model"].shadow, spec.sigma_min, spec.sigma_data), st.step)  # noqa: E731
    return train(state, step, data, _train_config(options), out_dir=out_dir, resume=resume, overwrite=overwrite,
                 identity=identity, metadata=metadata, sample_fn=hook, progress=progress)  # fmt: skip


def train_consistency_distillation(
    teacher: str | Path | tuple[nn.Module, object],
    data: tuple[torch.Tensor, ...] | str | None,
    options: ConsistencyOptions,
    *,
    sigma_data: float = 0.5,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    sample_fn: Callable[[ConsistencyFunction, int], None] | None = None,
    progress: bool = True,
    net: nn.Module | None = None,
) -> TrainState:
    """Distil a consistency model from ``teacher``: a diffusion checkpoint (run folder) or a pair
    ``(model, DiffusionSpec)`` as :func:`genlab.pipeline.load_diffusion` returns it.

    ``data``: ``(samples,)`` / ``(samples, labels)`` of the teacher's data set, or its name, or None
    (load it). The teacher's denoiser is genlab's usual stack (:func:`genlab.pipeline.make_denoiser`:
    clipping of x̂₀ for images, classifier-free guidance ``options.guidance`` for a conditional
    teacher). ``sample_fn(f_ema, step)`` runs every ``options.sample_every`` steps. ``net``: your
    own F_θ with the U-Net signature, trained in place (default: :func:`build_network`; to reload it, its class must
    be one genlab's checkpoints can rebuild). The caller's global RNG and teacher are left untouched
    (the state holds a frozen copy of the teacher).
    """
    from genlab.pipeline import DiffusionSpec, load_diffusion, make_denoiser

    path, step_saved = None, None
    if isinstance(teacher, (str, Path)):
        path = Path(teacher)
        model, tspec = load_diffusion(path, use_ema=True)
        step_saved = read_config(resolve_checkpoint(path)).get("step")
    elif isinstance(teacher, tuple) and len(teacher) == 2 and isinstance(teacher[0], nn.Module) and isinstance(teacher[1], DiffusionSpec):
        model, tspec = teacher
    else:
        raise ConfigError("the teacher must be a diffusion checkpoint folder or a (model, DiffusionSpec) pair from load_diffusion")
    if tspec.latent or tspec.text is not None:
        raise ConfigError("consistency distillation takes a pixel-space teacher with class labels or none; "
                          "latent and text-to-image teachers are not supported")  # fmt: skip
    process = tspec.make_process()
    lo, hi = noise_level_range(process)
    spec = ConsistencySpec(
        dataset=tspec.dataset, shape=tuple(tspec.shape), num_classes=tspec.num_classes, toy=tspec.toy,
        sigma_min=max(EDM_SIGMA_MIN, lo), sigma_max=min(EDM_SIGMA_MAX, hi), sigma_data=sigma_data, clip=tspec.clip,
        teacher={"diffusion": json.loads(json.dumps(dataclasses.asdict(tspec))), "digest": weights_digest(model),
                 "checkpoint": str(path) if path is not None else None, "step": step_saved},
    )  # fmt: skip
    guidance = check_finite("guidance", options.guidance)
    if guidance != 1.0 and not tspec.num_classes:
        raise ConfigError("guidance needs a class-conditional teacher; this one was trained without --conditional")
    data = _check_data(_load_data(data, spec.dataset, spec.toy, options.seed), spec, "the teacher generates")
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    step = ConsistencyDistillation(
        teacher=make_denoiser(frozen, tspec, guidance, process), sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
        sigma_data=spec.sigma_data, metric=options.metric, target_decay=0.95 if options.target_decay is None else options.target_decay,
        conditional=bool(spec.num_classes), cond_drop_prob=options.cond_drop_prob if spec.num_classes else 0.0,
        null_label=spec.null_label, num_sigmas=options.num_sigmas, solver=options.solver,
    )  # fmt: skip
    teacher_id = {"teacher": {"diffusion": spec.teacher["diffusion"], "digest": spec.teacher["digest"], "guidance": guidance}}
    return _run(spec, step, data, options, {"teacher": frozen}, out_dir, resume, overwrite, sample_fn, progress, teacher_id, net)


def train_consistency(
    spec: ConsistencySpec,
    data: tuple[torch.Tensor, ...] | str | None,
    options: ConsistencyOptions,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    sample_fn: Callable[[ConsistencyFunction, int], None] | None = None,
    progress: bool = True,
    net: nn.Module | None = None,
) -> TrainState:
    """Consistency training (CT, iCT's recipe) of ``spec`` on ``data`` (tensors, the data set's name, or None to load it).

    The grid grows from ``options.s0`` + 1 to ``options.s1`` + 1 levels over ``options.steps``
    (so, like the learning rate, it follows the planned length of the run). ``net`` as for
    :func:`train_consistency_distillation`.
    """
    if spec.teacher is not None:
        raise ConfigError("this spec names a teacher: distil with train_consistency_distillation, or set teacher=None for CT")
    data = _check_data(_load_data(data, spec.dataset, spec.toy, options.seed), spec, "the model is for")
    step = ConsistencyTraining(
        sigma_min=spec.sigma_min, sigma_max=spec.sigma_max, sigma_data=spec.sigma_data, metric=options.metric,
        target_decay=0.0 if options.target_decay is None else options.target_decay, conditional=bool(spec.num_classes),
        cond_drop_prob=options.cond_drop_prob if spec.num_classes else 0.0, null_label=spec.null_label,
        total_steps=options.steps, s0=options.s0, s1=options.s1, index_sampling=options.index_sampling,
    )  # fmt: skip
    return _run(spec, step, data, options, {}, out_dir, resume, overwrite, sample_fn, progress, {}, net)


def is_consistency_checkpoint(path: str | Path) -> bool:
    """Whether the run or checkpoint folder at ``path`` holds a consistency model."""
    return CONSISTENCY_KEY in read_config(resolve_checkpoint(path)).get("metadata", {})


def load_consistency(path: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu") -> tuple[ConsistencyFunction, ConsistencySpec]:
    """f_θ (EMA weights by default, eval mode) and the :class:`ConsistencySpec` of a consistency checkpoint."""
    cfg = read_config(resolve_checkpoint(path))
    raw = cfg.get("metadata", {}).get(CONSISTENCY_KEY)
    if raw is None:
        raise CheckpointError(f"checkpoint at {path} holds no consistency model (no consistency metadata); "
                              "train one with train_consistency or train_consistency_distillation")  # fmt: skip
    spec = ConsistencySpec.from_json(raw, where=f"checkpoint at {path}")
    net, _ = load_model(path, use_ema=use_ema, device=device, name="model")
    return ConsistencyFunction(net, spec.sigma_min, spec.sigma_data).eval(), spec


def generate_consistency(
    model: ConsistencyFunction,
    spec: ConsistencySpec,
    n: int,
    *,
    steps: int | Sequence[float] = 1,
    labels: torch.Tensor | int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """``n`` samples (n, *shape), clamped to ``spec.clip``, in ``steps`` network calls.

    ``steps``: an int (1 = one-step generation; k: the levels of :func:`~genlab.flow.consistency.sampling_sigmas`)
    or the descending noise levels τ themselves, starting at or below σ_max. ``labels``: one int or
    (n,) int64 for a class-conditional model (none: its unconditional mode, the null label).
    Sample i depends on (seed, i) only.
    """
    if not isinstance(model, ConsistencyFunction):
        raise ConfigError("generate_consistency takes the ConsistencyFunction that load_consistency returns")
    if isinstance(steps, (list, tuple, torch.Tensor)):
        taus = [float(s) for s in (steps.tolist() if isinstance(steps, torch.Tensor) else steps)]
        if not taus or any(not math.isfinite(t) or t > spec.sigma_max for t in taus):
            raise ConfigError(f"sampling noise levels must be finite and at most sigma_max = {spec.sigma_max:g}, got {taus}")
    else:
        taus = sampling_sigmas(steps, spec.sigma_min, spec.sigma_max)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"the number of samples must be a positive int, got {n!r}")
    if labels is not None:
        if not spec.num_classes:
            raise ConfigError("a class was given but this model is unconditional; train it on a --conditional teacher (or labels) to choose classes")
        labels = torch.full((n,), labels, dtype=torch.long) if isinstance(labels, int) else torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (n,):
            raise ConfigError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if bool((labels < 0).any()) or bool((labels >= spec.num_classes).any()):
            bad = int(labels.min() if (labels < 0).any() else labels.max())
            raise ConfigError(f"class {bad} is out of range: this model knows classes 0..{spec.num_classes - 1}")
    from genlab.device import module_device

    out = consistency_sample(model, n, spec.shape, taus, seed=seed, cond=labels, batch_size=batch_size,
                             device=module_device(model), progress=progress)  # fmt: skip
    return out.clamp(*spec.clip) if spec.clip is not None else out
