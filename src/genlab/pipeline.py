"""Train and sample a diffusion model on a named data set: the glue the CLI, the demo and the
benchmarks share.

Everything here composes the pieces of the course, nothing is new: a data set from
:mod:`genlab.data`, a network from :mod:`genlab.nn`, a schedule and a loss from
:mod:`genlab.diffusion`, the trainer from :mod:`genlab.train`. What a checkpoint must remember to
be sampled later (schedule, T, prediction target, data shape, classes) is a
:class:`DiffusionSpec`, stored as JSON in the checkpoint's metadata.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from genlab.diffusion import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    ClipX0,
    DiffusionLoss,
    NetworkDenoiser,
    NoisyClassifierLoss,
    classifier_log_prob,
    make_schedule,
    process_from_config,
    sample,
)
from genlab.diffusion.denoisers import CallCounter
from genlab.diffusion.grids import GRIDS
from genlab.diffusion.learned_variance import HybridLoss, LearnedVarianceDenoiser
from genlab.diffusion.sampling import SAMPLERS as SAMPLER_FUNCTIONS
from genlab.diffusion.sampling import default_grid, grid_kind
from genlab.diffusion.parameterization import PREDICTIONS
from genlab.diffusion.process import check_finite
from genlab.errors import CheckpointError, ConfigError, GenlabError
from genlab.nn.toy_denoiser import ToyDenoiser, ToyDenoiserConfig
from genlab.nn.unet import UNet, UNetConfig
from genlab.train import TrainConfig, TrainResult, fit, load_model

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "toy2d")
SAMPLERS = tuple(SAMPLER_FUNCTIONS)  # ddpm, ddim, euler, heun, dpmpp-2m, unipc, ode


@dataclass
class DiffusionSpec:
    """The diffusion setup a model was trained with (saved as ``metadata["diffusion"]``).

    Everything needed to sample the model later is data here: the process itself (for a discrete
    schedule its betas, so a later change of the schedule formulas cannot change a trained model),
    the prediction target, the data shape, the classes, and the data range that x̂₀ is clipped to
    (``None`` for data that must not be clipped, such as 2-D points or autoencoder latents).
    """

    dataset: str = "digits"  # one of DATASETS
    shape: tuple[int, ...] = (1, 8, 8)  # one sample: (C, H, W) for images, (dim,) for toy data
    num_classes: int = 0  # > 0: class-conditional, null label = num_classes
    schedule: str = "linear"  # β schedule name (genlab.diffusion.SCHEDULES), used to build `process`
    T: int = 1000  # diffusion steps, used to build `process`
    prediction: str = "epsilon"  # what the network predicts: "epsilon", "x0", "v" (or "velocity")
    toy: str | None = None  # the toy 2-D distribution, for dataset="toy2d"
    clip: tuple[float, float] | None = (-1.0, 1.0)  # data range for clipping x̂₀; None: no clipping
    process: dict | None = None  # the process as data (Process.config()); None: make_schedule(schedule, T)
    learned_variance: bool = False  # the network also outputs the reverse variance (Nichol & Dhariwal 2021)
    latent: dict | None = None  # latent diffusion: {"scale_factor": s_f, "image_shape": [C, H, W]}; shape is the latent's
    text: dict | None = None  # text-to-image: {"tokenizer": JSON, "captions": caption scheme} (genlab.text_pipeline)

    def __post_init__(self):
        if self.text is not None and self.num_classes:
            raise ConfigError("a model reads either class labels or prompts: drop --conditional with --text")
        if self.process is None:
            self.process = make_schedule(self.schedule, self.T).config()
        if self.learned_variance and (self.dataset == "toy2d" or self.conditional or self.prediction == "velocity"
                                      or self.process.get("kind") != "discrete_vp"):  # fmt: skip
            raise ConfigError("a learned variance is implemented for unconditional U-Net models on a discrete schedule "
                              "(epsilon, x0 or v prediction); drop --learned-variance or --conditional")  # fmt: skip

    @property
    def conditional(self) -> bool:
        """Whether the network takes a condition: class labels or prompt token ids."""
        return bool(self.num_classes) or self.text is not None

    @property
    def null_label(self) -> int | None:
        """The condition meaning "none" (condition dropout, CFG): label K, the empty prompt's id, or None."""
        if self.text is not None:
            from genlab.nn.text_unet import NULL_PROMPT_ID

            return NULL_PROMPT_ID
        return self.num_classes if self.num_classes else None

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one generated sample: the decoded image for a latent model, else ``shape``."""
        return tuple(self.latent["image_shape"]) if self.latent else tuple(self.shape)

    def make_process(self):
        return process_from_config(self.process)

    @classmethod
    def from_json(cls, raw: dict, where: str = "checkpoint") -> DiffusionSpec:
        """Rebuild a spec from JSON, checking every value's type (a one-line CheckpointError if not)."""
        if not isinstance(raw, dict):
            raise CheckpointError(f"{where}: the diffusion metadata is not a JSON object")
        checks = {
            "dataset": lambda v: v in DATASETS,
            "shape": lambda v: isinstance(v, list) and len(v) in (1, 3) and all(isinstance(i, int) and i > 0 for i in v),
            "num_classes": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "schedule": lambda v: isinstance(v, str),
            "T": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            "prediction": lambda v: v in PREDICTIONS,
            "toy": lambda v: v is None or isinstance(v, str),
            "clip": lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(isinstance(c, (int, float)) for c in v) and v[0] < v[1]),
            "process": lambda v: v is None or (isinstance(v, dict) and "kind" in v),
            "learned_variance": lambda v: isinstance(v, bool),
            "latent": lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("scale_factor"), (int, float)) and v["scale_factor"] > 0
                                              and isinstance(v.get("image_shape"), list) and len(v["image_shape"]) == 3),
            "text": lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("tokenizer"), str) and isinstance(v.get("captions"), dict)),
        }
        for key, ok in checks.items():
            if key in raw and not ok(raw[key]):
                raise CheckpointError(f"{where}: diffusion setting {key}={raw[key]!r} is not valid; the checkpoint was edited or written by another program")
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in checks}
        try:
            return cls(**values)
        except GenlabError as e:
            raise CheckpointError(f"{where}: {e}") from None


def default_unet_config(image_size: int, in_channels: int = 1, num_classes: int = 0, **overrides) -> UNetConfig:
    """The course's default U-Net for a given image size (about 0.9 M parameters at 28×28).

    8×8 digits: two levels (8 → 4); 16/28/32: three levels with attention at the lowest one.
    CIFAR-10 (3×32×32) uses the same three levels with ``in_channels=3`` (32 → 16 → 8, attention at 8).
    """
    if image_size <= 8:
        base = dict(base_channels=32, channel_mults=(1, 2), attention_resolutions=(image_size // 2,), num_res_blocks=1)
    else:
        base = dict(base_channels=32, channel_mults=(1, 2, 2), attention_resolutions=(image_size // 4,), num_res_blocks=1)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return UNetConfig(image_size=image_size, in_channels=in_channels, num_classes=num_classes, **base)


def load_training_data(dataset: str, *, split: str = "train", toy: str = "moons", n_toy: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(images, labels)`` for image data sets, ``(points,)`` for toy2d."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown data set {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if dataset == "toy2d":
        from genlab.data import toy2d

        return (torch.from_numpy(toy2d(toy, n_toy, seed=seed)),)
    from genlab.data import load_image_dataset

    if dataset == "digits":
        from genlab.data import load_digits

        return load_digits(None if split == "all" else split)
    return load_image_dataset(dataset, split=split)


FLOW_PATHS = ("ot", "vp")  # flow matching: the optimal-transport (straight) path, the variance-preserving (cosine) path
NETWORKS = ("unet", "dit")


def flow_process(path: str):
    """The process of a flow-matching path: ``"ot"`` → rectified flow (x_t = (1 − t) x₀ + t ε),
    ``"vp"`` → the cosine VP path (α = cos(πt/2), σ = sin(πt/2)); both are trained with velocity prediction."""
    from genlab.diffusion import ContinuousVP, RectifiedFlow

    if path not in FLOW_PATHS:
        raise ConfigError(f"unknown flow-matching path {path!r}; choose one of: {', '.join(FLOW_PATHS)}")
    return RectifiedFlow() if path == "ot" else ContinuousVP(schedule="cosine")


def build_model(spec: DiffusionSpec, network: str = "unet", dit: dict | None = None, **unet_overrides) -> nn.Module:
    """The network for ``spec``: the course U-Net (``unet_overrides`` change its config) or a
    Diffusion Transformer (``network="dit"``, ``dit`` overrides :class:`~genlab.nn.dit.DiTConfig`)."""
    if network not in NETWORKS:
        raise ConfigError(f"unknown network {network!r}; choose one of: {', '.join(NETWORKS)}")
    if network == "dit":
        from genlab.nn.dit import DiT, DiTConfig

        if spec.dataset == "toy2d" or spec.text is not None or spec.learned_variance:
            raise ConfigError("the Diffusion Transformer is for images, with or without class labels (no --text, --learned-variance, toy2d)")
        c, h, _ = spec.shape
        dit = dict(dit or {})
        fixed = sorted(set(dit) & {"image_size", "in_channels", "num_classes"})
        if fixed:
            raise ConfigError(f"DiT settings {', '.join(fixed)} follow from the data; drop them from the overrides")
        dit.setdefault("patch_size", 2 if h <= 16 else 4)  # 8×8 digits: 16 tokens of 2×2; 28×28: 49 of 4×4
        return DiT(DiTConfig(image_size=h, in_channels=c, num_classes=spec.num_classes, **dit))
    if spec.dataset == "toy2d":
        return ToyDenoiser(ToyDenoiserConfig(dim=spec.shape[0], num_classes=spec.num_classes))
    c, h, w = spec.shape
    if spec.learned_variance:
        unet_overrides = {**unet_overrides, "out_channels": 2 * c}  # prediction and variance
    if spec.text is not None:
        from genlab.nn.text_encoder import TextEncoderConfig
        from genlab.nn.text_unet import TextConditionedUNet, TextConditionedUNetConfig
        from genlab.text_pipeline import text_tokenizer

        tokenizer = text_tokenizer(spec.text)
        text = TextEncoderConfig(vocab_size=tokenizer.vocab_size, max_length=tokenizer.max_length)
        return TextConditionedUNet(TextConditionedUNetConfig(unet=default_unet_config(h, c, 0, **unet_overrides), text=text))
    return UNet(default_unet_config(h, c, spec.num_classes, **unet_overrides))


@dataclass
class TrainOptions:
    steps: int = 2000  # optimiser steps
    batch_size: int = 128
    lr: float = 2e-3
    ema_decay: float = 0.995  # short CPU runs: a fast EMA
    seed: int = 0
    cond_drop_prob: float = 0.1  # classifier-free guidance: share of labels replaced by the null label
    min_snr_gamma: float | None = None  # Min-SNR-γ loss weighting (None: plain L_simple)
    ckpt_every: int = 500
    sample_every: int = 0
    unet: dict = field(default_factory=dict)  # UNetConfig overrides (base_channels, channel_mults, …)
    network: str = "unet"  # "unet" or "dit" (a Diffusion Transformer)
    dit: dict = field(default_factory=dict)  # DiTConfig overrides (patch_size, hidden_size, depth, …)
    coupled: bool = False  # batches end with the noise paired with each image (reflow: genlab.flow.reflow)


def make_loss(spec: DiffusionSpec, options: TrainOptions) -> DiffusionLoss | HybridLoss:
    """The training objective for ``spec``: L_simple, or Min-SNR-γ when the options ask for it, or
    the hybrid loss L_simple + λ L_vlb for a model with a learned variance."""
    if spec.learned_variance:
        if options.min_snr_gamma is not None:
            raise ConfigError("a learned variance trains with the hybrid loss (L_simple + λ L_vlb); drop --min-snr-gamma")
        return HybridLoss(spec.make_process(), prediction=spec.prediction)
    conditional = spec.conditional
    return DiffusionLoss(
        spec.make_process(), prediction=spec.prediction,
        weighting="min_snr" if options.min_snr_gamma is not None else "none",
        min_snr_gamma=options.min_snr_gamma if options.min_snr_gamma is not None else 5.0,
        conditional=conditional, cond_drop_prob=options.cond_drop_prob if conditional else 0.0,
        null_label=spec.null_label, coupled=options.coupled,
    )  # fmt: skip


def train_config(options: TrainOptions) -> TrainConfig:
    """The trainer's settings for ``options``: AdamW, a short warm-up (10 % of the steps, at most 100),
    cosine decay, EMA."""
    return TrainConfig(
        steps=options.steps, batch_size=options.batch_size, lr=options.lr, ema_decay=options.ema_decay,
        seed=options.seed, ckpt_every=options.ckpt_every, sample_every=options.sample_every,
        warmup_steps=min(100, options.steps // 10),
    )  # fmt: skip


def train_diffusion(
    spec: DiffusionSpec,
    data: tuple[torch.Tensor, ...],
    options: TrainOptions,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    sample_fn: Callable[[nn.Module, int], None] | None = None,
    progress: bool = True,
    frozen: dict[str, nn.Module] | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict | None = None,
) -> TrainResult:
    """Build the network for ``spec`` and train it on ``data`` with its loss.

    ``frozen`` models (a latent model's autoencoder) are saved in the checkpoints, untrained.
    ``initial_state``: weights to start from instead of a fresh initialisation (reflow starts from
    the flow it straightens); ``extra_metadata`` is stored with the run (and is part of its identity).
    The run's identity — the diffusion setup and the objective — goes to the trainer, which refuses
    to resume a checkpoint written with another one. The caller's global RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)  # the network's initial weights
        model = build_model(spec, options.network, options.dit, **options.unet)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    loss_fn = make_loss(spec, options)
    config = train_config(options)
    spec_json = json.loads(json.dumps(dataclasses.asdict(spec)))
    identity = {"diffusion": spec_json, "loss": loss_fn.config(), "unet": json.loads(json.dumps(options.unet))}
    if options.network != "unet":  # only where it differs, so runs written before the option still resume
        identity["network"] = {"name": options.network, "dit": json.loads(json.dumps(options.dit))}
    metadata = {"diffusion": spec_json, "train_options": dataclasses.asdict(options), "loss": loss_fn.config()}
    if extra_metadata:
        identity.update(extra_metadata)
        metadata.update(extra_metadata)
    return fit(
        model, loss_fn, data, config, out_dir=out_dir, resume=resume, overwrite=overwrite, identity=identity,
        sample_fn=sample_fn, metadata=metadata, progress=progress, frozen=frozen,
    )  # fmt: skip


def load_diffusion(path: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu") -> tuple[nn.Module, DiffusionSpec]:
    """The model (EMA weights by default, eval mode) and its :class:`DiffusionSpec`."""
    model, cfg = load_model(path, use_ema=use_ema, device=device)
    raw = cfg.get("metadata", {}).get("diffusion")
    if not raw:
        raise CheckpointError(f"checkpoint at {path} holds a {type(model).__name__}, not a diffusion model (no diffusion metadata)")
    spec = DiffusionSpec.from_json(raw, where=f"checkpoint at {path}")
    if spec.latent:
        from genlab.latent_pipeline import AUTOENCODER_KEY, LatentDiffusionModel

        autoencoder, _ = load_model(path, use_ema=False, device=device, name=AUTOENCODER_KEY)
        model = LatentDiffusionModel(model, autoencoder, spec.latent["scale_factor"]).eval()
    return model, spec


def make_denoiser(model: nn.Module, spec: DiffusionSpec, guidance: float = 1.0, process=None,
                  classifier: nn.Module | None = None, classifier_scale: float = 1.0):  # fmt: skip
    """The wrapper stack for sampling: network adapter → classifier-free guidance → classifier
    guidance (when a noise-aware ``classifier`` is given) → clipping to the data range."""
    process = process if process is not None else spec.make_process()
    adapter = LearnedVarianceDenoiser if spec.learned_variance else NetworkDenoiser
    denoiser = adapter(model, process, spec.prediction)
    if guidance != 1.0:
        denoiser = ClassifierFreeGuidance(denoiser, guidance, spec.null_label)
    if classifier is not None:
        denoiser = ClassifierGuidance(denoiser, classifier_log_prob(classifier, process), classifier_scale)
    return ClipX0(denoiser, *spec.clip) if spec.clip is not None else denoiser


# --- noise-aware classifiers for classifier guidance ------------------------------------------

CLASSIFIER_KEY = "noisy_classifier"  # metadata["noisy_classifier"] of a classifier checkpoint


def train_noisy_classifier(
    spec: DiffusionSpec, data: tuple[torch.Tensor, torch.Tensor], *, steps: int = 1500, batch_size: int = 128,
    lr: float = 2e-3, seed: int = 0, out_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
    progress: bool = True, **config_overrides,
) -> TrainResult:
    """Train p_φ(y | x_t, t) on x_t of ``spec``'s process (Dhariwal & Nichol 2021), for guiding that model.

    The checkpoint's metadata names the data set, shape, classes and the process (its betas), so a
    classifier is only ever combined with a diffusion model of the same process (:func:`check_classifier`).
    """
    from genlab.nn.noisy_classifier import NoisyClassifier, NoisyClassifierConfig

    if len(spec.shape) != 3:
        raise ConfigError(f"a noise-aware classifier is for images; {spec.dataset} holds points of shape {spec.shape}")
    c, h, _ = spec.shape
    num_classes = int(data[1].max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NoisyClassifier(NoisyClassifierConfig(image_size=h, in_channels=c, num_classes=num_classes, **config_overrides))
    loss_fn = NoisyClassifierLoss(spec.make_process())
    info = {"dataset": spec.dataset, "shape": list(spec.shape), "num_classes": num_classes, "process": spec.process}
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup_steps=min(100, steps // 10), ema_decay=None)
    return fit(model, loss_fn, data, config, out_dir=out_dir, resume=resume, overwrite=overwrite,
               identity={CLASSIFIER_KEY: info}, metadata={CLASSIFIER_KEY: info}, progress=progress)  # fmt: skip


def load_noisy_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A noise-aware classifier (eval mode) and its metadata (data set, shape, classes, process)."""
    model, cfg = load_model(path, use_ema=False, device=device)
    info = cfg.get("metadata", {}).get(CLASSIFIER_KEY)
    if not isinstance(info, dict):
        raise CheckpointError(f"checkpoint at {path} holds a {type(model).__name__}, not a noise-aware classifier "
                              "(train one with `genlab train-classifier --ckpt RUN`)")  # fmt: skip
    return model, info


def check_classifier(info: dict, spec: DiffusionSpec, where: str = "the classifier") -> None:
    """Refuse a classifier trained for another data set, image shape or noise process."""
    if info.get("dataset") != spec.dataset or list(info.get("shape", [])) != list(spec.shape):
        raise ConfigError(f"{where} was trained on {info.get('dataset')} {tuple(info.get('shape', []))}, "
                          f"but the model generates {spec.dataset} {tuple(spec.shape)}: train a classifier for this model")  # fmt: skip
    if info.get("process") != spec.process:
        raise ConfigError(f"{where} was trained on another noise process than the model's "
                          f"({info.get('process', {}).get('kind')} vs {spec.process.get('kind')}, or other betas): "
                          "train it with `genlab train-classifier --ckpt` on this model")  # fmt: skip


def generate(
    model: nn.Module,
    spec: DiffusionSpec,
    n: int,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    labels: torch.Tensor | int | None = None,
    prompts: str | list[str] | None = None,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    return_trajectory: bool = False,
    progress: bool = False,
    classifier: nn.Module | None = None,
    classifier_scale: float = 1.0,
    grid: str | None = None,
    stats: dict | None = None,
):
    """Draw ``n`` samples with ``sampler`` ∈ SAMPLERS in ``steps`` steps.

    DDIM and DDPM (ancestral) run on a ``trailing`` grid of ``steps`` timesteps (DDPM with
    ``steps = T`` is the original T-step sampler); Euler, Heun, DPM-Solver++(2M) and UniPC on
    Karras' σ-grid unless ``grid`` ∈ {karras, log_snr, timesteps} says otherwise (see
    :func:`genlab.diffusion.sampling.default_grid`); ``ode`` solves the PF-ODE adaptively and
    ignores ``steps``. ``eta`` is DDIM's. If ``stats`` is a dict, ``stats["grid"]`` receives the grid
    kind used (:func:`~genlab.diffusion.sampling.grid_kind`) and ``stats["nfe"]`` the
    denoiser calls per sample (the mean over chunks for the adaptive ``ode``).

    ``labels``: int64 (n,) or one int, for class-conditional models (or any model guided by a
    ``classifier``); ``guidance`` w is the classifier-free guidance scale (1 = no guidance);
    ``classifier`` a noise-aware classifier of the model's process (see :func:`check_classifier`),
    ``classifier_scale`` s its guidance scale. ``prompts``: one prompt, or one per sample, for a
    text-to-image model (``spec.text``; none: the empty prompt, the model's unconditional mode).
    Images are returned in the data range ``spec.clip`` (a flow solver's last step can leave it).
    Sample i depends on (seed, i) only: it is the same
    whatever ``n`` and ``batch_size`` (the chunk size), on any device.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if grid is not None and grid not in GRIDS:
        raise ConfigError(f"unknown grid {grid!r}; choose one of: {', '.join(GRIDS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"the number of samples must be a positive int, got {n!r}")
    process = spec.make_process()
    max_steps = process.t_max + 1 if process.discrete else None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or (max_steps and steps > max_steps):
        raise ConfigError(f"sampling steps must be an int in 1..{max_steps or 'any'} (the model's T), got {steps!r}")
    guidance = check_finite("guidance", guidance)
    eta = check_finite("eta", eta, low=0.0, high=1.0)
    if eta != 0 and sampler != "ddim":
        raise ConfigError(f"eta is DDIM's noise level; the {sampler} sampler does not take it (drop --eta, or use --sampler ddim)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
    if spec.latent and (return_trajectory or not hasattr(model, "decode")):
        raise ConfigError("a latent diffusion model samples through its autoencoder: load it with load_diffusion "
                          "(its trajectory lives in latent space and is not returned)")  # fmt: skip
    if prompts is not None and spec.text is None:
        raise ConfigError("a prompt was given but this model was not trained on text; train with --text to generate from prompts")
    if spec.text is not None:
        if labels is not None or classifier is not None:
            raise ConfigError("this model reads prompts, not class labels: name the class in the prompt (e.g. --prompt \"太い 7\")")
        if guidance != 1.0 and prompts is None:
            raise ConfigError("guidance needs a prompt to move towards: pass prompts (--prompt)")
        from genlab.text_pipeline import prompt_ids

        cond = prompt_ids(spec.text, "" if prompts is None else prompts, n)
    if guidance != 1.0 and not spec.conditional:
        raise ConfigError("guidance needs a class-conditional model; this one was trained without --conditional (drop --guidance)")
    classifier_scale = check_finite("classifier scale", classifier_scale)
    num_classes = classifier.config.num_classes if classifier is not None else spec.num_classes
    if classifier is not None and labels is None:
        raise ConfigError("classifier guidance needs the classes to generate: pass labels (--class)")
    if labels is not None and not num_classes:
        raise ConfigError("a class was given but this model is unconditional; train with --conditional to choose classes, "
                          "or guide it with a noise-aware classifier (--classifier)")  # fmt: skip
    if guidance != 1.0 and labels is None and spec.text is None:
        raise ConfigError("guidance needs the classes to generate: pass labels (--class)")
    if isinstance(labels, int):
        labels = torch.full((n,), labels, dtype=torch.long)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (n,):
            raise ConfigError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if bool((labels < 0).any()) or bool((labels >= num_classes).any()):
            raise ConfigError(f"class {int(labels.min() if (labels < 0).any() else labels.max())} is out of range: this model knows classes 0..{num_classes - 1}")
        if classifier is not None and spec.num_classes and classifier.config.num_classes != spec.num_classes:
            raise ConfigError(f"the classifier knows {classifier.config.num_classes} classes, the model {spec.num_classes}")
    from genlab.device import module_device

    kwargs = {"eta": eta} if sampler == "ddim" else {}
    if sampler == "ddpm" and spec.learned_variance:
        kwargs["variance"] = "learned"  # the network's own variance at every step
    denoiser = CallCounter(make_denoiser(model, spec, guidance, process, classifier, classifier_scale))
    out = sample(
        SAMPLER_FUNCTIONS[sampler], denoiser, n, spec.shape, default_grid(process, sampler, steps, grid),
        seed=seed, cond=cond if spec.text is not None else labels, batch_size=batch_size, device=module_device(model),
        trajectory=return_trajectory, progress=progress, **kwargs,
    )  # fmt: skip
    if stats is not None:
        stats["nfe"] = denoiser.calls / -(-n // batch_size)  # calls per chunk = per sample
        stats["grid"] = grid_kind(process, sampler, grid)
    if spec.latent:  # latent diffusion: decode the sampled latents
        return model.decode(out)
    if spec.clip is not None:  # an ODE solver's last step is not x̂₀ itself (DDIM's is): keep samples in the data range
        out = (out[0].clamp(*spec.clip), out[1]) if return_trajectory else out.clamp(*spec.clip)
    return out


SAMPLE_FILES = (".npy", ".npz", ".pt", ".safetensors")


def load_samples_file(path: str | Path) -> torch.Tensor:
    """Images from a file (.npy, .npz, .pt or .safetensors) as a float32 tensor; nothing is unpickled.

    .npz and .safetensors: the array named ``samples`` (or ``images``), or the only one; .pt is read
    with ``torch.load(weights_only=True)`` and must hold a tensor (or a dict with ``samples``).
    Shape and range are checked by :func:`genlab.metrics.evaluate`.
    """
    import numpy as np

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAMPLE_FILES:
        raise ConfigError(f"cannot read samples from {path}: use one of {', '.join(SAMPLE_FILES)}")
    if not path.is_file():
        raise ConfigError(f"no samples file at {path}")

    def pick(named: dict, what: str):
        for key in ("samples", "images"):
            if key in named:
                return named[key]
        if len(named) == 1:
            return next(iter(named.values()))
        raise ConfigError(f"{path} holds {what} {sorted(named)}: name the samples 'samples' (or keep only one)")

    try:
        if suffix == ".npy":
            value = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                value = pick({k: z[k] for k in z.files}, "arrays")
        elif suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
            value = pick(value, "entries") if isinstance(value, dict) else value
        else:
            from safetensors.torch import load_file

            value = pick(load_file(str(path)), "tensors")
    except GenlabError:
        raise
    except Exception as e:  # a corrupt or foreign file: one line, no traceback
        raise ConfigError(f"cannot read samples from {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise ConfigError(f"{path} does not hold an array of images (found {type(value).__name__})")
    return torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value).float()


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def save_samples(samples: torch.Tensor, spec: DiffusionSpec, path: str | Path, nrow: int | None = None) -> Path:
    """Images → a PNG or JPEG grid; 2-D points → a scatter plot (PNG or JPEG), by the file suffix."""
    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot write {path}: the output must end in .png, .jpg or .jpeg")
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder; give a file name such as {path / 'samples.png'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(spec.shape) == 3:
        from genlab.viz import save_grid

        return save_grid(samples, path, nrow=nrow, scale=4 if spec.image_shape[-1] >= 16 else 6, format=fmt)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pts = samples.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6)
    ax.set_aspect("equal")
    ax.set_title(f"{len(pts)} samples ({spec.toy})")
    fig.savefig(path, dpi=120, bbox_inches="tight", format=fmt.lower())
    plt.close(fig)
    return path
