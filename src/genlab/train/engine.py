"""The training engine: a state of named models, one loop, the same guarantees for every run.

:func:`genlab.train.fit` trains one model on one loss. Anything with more parts — a GAN, a
consistency model, a distillation — is a :class:`TrainState` and a step function for :func:`train`::

    state = TrainState(models={"model": net}, optimizers={"model": AdamW(net.parameters(), lr=1e-3)},
                       emas={"model": EMA(net, 0.999)})
    train(state, step_fn, (x,), TrainConfig(steps=1000), out_dir="runs/x")

``step_fn(ctx, batch) -> {name: scalar}`` runs one training step; what it returns is logged in
``state.history``. ``ctx.optimize(name, loss)`` does the rest for the model ``name``: zero_grad,
backward, a NaN/inf check of the loss and of the gradient norm, clipping to ``config.grad_clip``,
this step's learning rate (warm-up + cosine, a pure function of the step, applied to each
optimiser's own initial lr), ``optimizer.step()`` and that model's EMA update.

A GAN (non-saturating loss; ``N_CRITIC`` critic updates per generator update, each on its share of a
batch of ``N_CRITIC · m`` real examples)::

    def gan_step(ctx, batch):
        G, D, g = ctx.models["gen"], ctx.models["disc"], ctx.generator
        for real in batch[0].chunk(N_CRITIC):
            fake = G(torch.randn(len(real), Z, generator=g)).detach()
            d_loss = ctx.optimize("disc", F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean())
        g_loss = ctx.optimize("gen", F.softplus(-D(G(torch.randn(len(real), Z, generator=g)))).mean())
        return {"d_loss": d_loss, "g_loss": g_loss}  # D's gradients from g_loss are zeroed by its next optimize

Consistency training — the target f_θ⁻ is the EMA of f_θ, read from the state::

    def consistency_step(ctx, batch):
        (x,) = batch
        f, f_target = ctx.models["model"], ctx.emas["model"].shadow
        n = torch.randint(0, N - 1, (len(x),), generator=ctx.generator)
        z = torch.randn(x.shape, generator=ctx.generator)
        with torch.no_grad():
            target = f_target(x + t[n, None] * z, t[n])
        return {"loss": ctx.optimize("model", ((f(x + t[n + 1, None] * z, t[n + 1]) - target) ** 2).mean())}

Distillation — the frozen teacher is a model without an optimiser (``train`` leaves it in eval mode)::

    state = TrainState(models={"model": student, "teacher": teacher.eval().requires_grad_(False)},
                       optimizers={"model": torch.optim.AdamW(student.parameters(), lr=1e-3)})

    def distill_step(ctx, batch):
        (x,) = batch
        with torch.no_grad():
            target = ctx.models["teacher"](x)
        return {"loss": ctx.optimize("model", ((ctx.models["model"](x) - target) ** 2).mean())}

(``ctx.generator`` is a CPU generator: on a GPU draw on the CPU and move, ``.to(x.device)``.)

Guarantees.

- Determinism: the batch order is a pure function of ``(seed, step)``; the losses draw from
  ``state.generator``; dropout draws from torch's global RNG, which the loop keeps apart from the
  caller's: on entry the caller's state is put aside and the loop's own (seeded with
  ``config.seed``, or the saved one) is installed; on exit the caller's comes back unchanged.
  CUDA (and MPS) RNG states are handled the same way when training on that device.
- Exact resume: a checkpoint holds all models, EMAs, optimiser states, the history and every RNG
  state, so a resumed run is bit-identical to an uninterrupted one on the same device.
- Crash-safe checkpoints (see :mod:`genlab.train.checkpoint`), and a run folder is never
  overwritten or resumed by mistake: ``identity`` must match to resume, an existing run needs
  ``resume=True`` or ``overwrite=True``.
- NaN/inf in a loss, a gradient norm or a logged value raises :class:`TrainingDivergedError`
  naming the last good checkpoint; a checkpoint with non-finite tensors is never written.
- Sampling (``sample_fn``) runs in eval mode under ``no_grad`` with the RNGs put back afterwards,
  so sampling during training does not change the training.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm  # plain text bars: no ipywidgets needed in notebooks

from genlab.device import resolve_device
from genlab.errors import CheckpointError, ConfigError, GenlabError
from genlab.train import checkpoint as ckpt_io
from genlab.train.ema import EMA
from genlab.train.lr import warmup_cosine_lr


class TrainingDivergedError(GenlabError):
    """A loss, a gradient or the weights became NaN or infinite."""


class RunExistsError(GenlabError):
    """The output folder already holds a training run."""


@dataclass
class TrainConfig:
    steps: int = 1000  # optimiser steps in total (a resumed run counts from its checkpoint)
    batch_size: int = 128  # examples per step; capped at the data set size
    lr: float = 1e-3  # peak learning rate after warm-up (AdamW in fit; train() uses each optimiser's lr)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (fit)
    warmup_steps: int = 50  # linear warm-up from 0 to lr
    lr_min_ratio: float = 0.1  # cosine decay ends at lr * lr_min_ratio
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    ema_decay: float | None = None  # e.g. 0.999 keeps an EMA of the weights (fit); None disables it
    seed: int = 0  # batch order, loss randomness and dropout all follow from it
    ckpt_every: int = 0  # write a checkpoint every N steps (0: only at the end); ignored without out_dir
    sample_every: int = 0  # call sample_fn every N steps (0: never)
    log_every: int = 10  # progress-bar refresh interval in steps
    device: str = "auto"  # "auto" → CUDA, then MPS, then CPU

    def __post_init__(self):
        def integer(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {v!r}")

        def number(name: str, low: float, high: float = math.inf, *, strict: bool = False, optional: bool = False) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (v <= low if strict else v < low) or v > high:
                raise ConfigError(f"{name} must be a finite number {'>' if strict else '>='} {low}{f' and <= {high}' if high < math.inf else ''}, got {v!r}")

        integer("steps", 1)
        integer("batch_size", 1)
        integer("warmup_steps", 0)
        integer("seed", 0)
        integer("ckpt_every", 0)
        integer("sample_every", 0)
        integer("log_every", 1)
        number("lr", 0.0, strict=True)
        number("weight_decay", 0.0)
        number("lr_min_ratio", 0.0, 1.0)
        number("grad_clip", 0.0, strict=True, optional=True)
        if self.ema_decay is not None and not (isinstance(self.ema_decay, (int, float)) and 0.0 < self.ema_decay < 1.0):
            raise ConfigError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay!r}")


# Fields that must match for a resume to continue the same run. `steps` (and with it the length of
# the warm-up and of the cosine decay) may change: re-running the same command after an interruption
# continues exactly; asking for more steps continues on the longer schedule.
_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "lr_min_ratio", "grad_clip", "ema_decay", "seed")


@dataclass
class TrainState:
    """Everything a run is: save it and the run can continue bit for bit."""

    models: dict[str, nn.Module]  # by name; a model without an optimiser is frozen (a teacher)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)  # name → optimiser of models[name]
    emas: dict[str, EMA] = field(default_factory=dict)  # name → EMA of models[name]
    step: int = 0  # training steps done (calls of step_fn)
    generator: torch.Generator = field(default_factory=torch.Generator)  # CPU; all random draws of the losses
    history: dict[str, list[float]] = field(default_factory=dict)  # logged scalars, one entry per step logged
    global_rng: dict[str, torch.Tensor] = field(default_factory=dict)  # the loop's torch global RNG (dropout)
    checkpoint: Path | None = None  # the last checkpoint written or resumed from

    def __post_init__(self):
        for name in self.models:
            try:
                ckpt_io.check_model_name(name)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        for what, names in (("optimizers", self.optimizers), ("emas", self.emas)):
            if set(names) - set(self.models):
                raise ConfigError(f"{what} {sorted(set(names) - set(self.models))} name no model in the state (models: {', '.join(self.models)})")


StepFn = Callable[["StepContext", tuple], dict]


class StepContext:
    """What ``step_fn`` gets: the state's parts, ``step`` (0-based) and :meth:`optimize`."""

    def __init__(self, state: TrainState, config: TrainConfig):
        self.state, self.config, self.step = state, config, state.step
        self.models, self.emas, self.generator = state.models, state.emas, state.generator

    def optimize(self, name: str, loss: torch.Tensor) -> float:
        """One step of ``optimizers[name]`` on the scalar ``loss``; returns the loss as a float."""
        opt = self.state.optimizers.get(name)
        if opt is None:
            raise ConfigError(f"no optimiser named {name!r} in the train state (optimisers: {', '.join(self.state.optimizers)})")
        value = loss.item()
        if not math.isfinite(value):
            raise _diverged(self.state, f"the {name!r} loss became {value}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        clip = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, clip)  # the norm before clipping
        if not torch.isfinite(norm):
            raise _diverged(self.state, f"the gradient norm of {name!r} became {norm.item()} (its loss was {value:.4g})")
        c = self.config
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(self.step, lr=group["initial_lr"], total_steps=c.steps, warmup_steps=c.warmup_steps, min_ratio=c.lr_min_ratio)
        opt.step()
        if name in self.emas:
            self.emas[name].update(self.models[name])
        return value


def _diverged(state: TrainState, what: str) -> TrainingDivergedError:
    where = f"the last good checkpoint is {state.checkpoint}" if state.checkpoint else "no checkpoint was written"
    return TrainingDivergedError(f"{what} at step {state.step}; {where}. Lower the learning rate or keep gradient clipping on")


class _BatchOrder:
    """Epoch-wise random permutations, each a pure function of (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[j * self.batch_size : (j + 1) * self.batch_size]


# ----------------------------------------------------------------------------- torch's global RNG


def _get_global_rng(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's global RNG states that training on ``device`` uses: the CPU's, and CUDA's / MPS's."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    if device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def _set_global_rng(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    cuda = [states[k] for k in sorted((k for k in states if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():  # else: another machine
        torch.cuda.set_rng_state_all(cuda)
    if "mps" in states and torch.backends.mps.is_available():
        torch.mps.set_rng_state(states["mps"])


def _seed_global_rng(device: torch.device, seed: int) -> None:
    torch.default_generator.manual_seed(seed)  # not torch.manual_seed: it seeds every device
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    if device.type == "mps":
        torch.mps.manual_seed(seed)


# ----------------------------------------------------------------------------- state ↔ checkpoint


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in [*tensors.items(), *meta["scalars"].items()]:
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    # The hyper-parameters were checked equal to the saved ones; keep this optimiser's (JSON made tuples lists).
    groups = opt.state_dict()["param_groups"]
    for group, saved in zip(groups, meta["param_groups"]):
        group["lr"] = saved["lr"]
    opt.load_state_dict({"state": state, "param_groups": groups})  # moves tensors to the params' device


def _hyper_parameters(opt: torch.optim.Optimizer) -> list[dict]:
    """Each param group's settings, as JSON would give them back (lr is set per step, so left out)."""
    groups = [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in opt.state_dict()["param_groups"]]
    return json.loads(json.dumps(groups))


def _jsonable(value, what: str):
    try:
        return json.loads(json.dumps(value))  # a copy as it will read back: tuples → lists
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what} must be JSON-able (dicts, lists, str, numbers, bool, None): {e}") from None


def _flat(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}: nested settings as one level, to list what differs."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _differences(saved: dict | None, now: dict | None) -> list[str]:
    a, b = _flat(saved or {}), _flat(now or {})
    unset = "(unset)"

    def value(d: dict, k: str):  # a setting added later with the default None reads as unset
        return unset if d.get(k) is None else d[k]

    return [f"{k}: {value(a, k)!r} in the checkpoint, {value(b, k)!r} now" for k in sorted(set(a) | set(b)) if value(a, k) != value(b, k)]


def _save(state: TrainState, out_dir: Path, device, config: TrainConfig, identity, metadata) -> None:
    state.global_rng = _get_global_rng(device)
    tensors = {"rng.generator": state.generator.get_state(), **{f"rng.global.{k}": v for k, v in state.global_rng.items()}}
    optimizers = {}
    for name, opt in state.optimizers.items():
        t, optimizers[name] = _optimizer_state(opt)
        tensors.update({f"optim.{name}.{k}": v for k, v in t.items()})
    train_config = dataclasses.asdict(config)
    json_state = {
        "step": state.step, "history": state.history, "optimizers": optimizers,
        "emas": {name: {"decay": e.decay, "updates": e.num_updates} for name, e in state.emas.items()},
        "train_config": train_config,
    }  # fmt: skip
    try:
        state.checkpoint = ckpt_io.save_checkpoint(
            out_dir, state.models, ema={name: e.shadow for name, e in state.emas.items()}, step=state.step,
            metadata=metadata, identity=identity, state_tensors=tensors, state=json_state,
            extra_config={"train_config": train_config},
        )  # fmt: skip
    except ckpt_io.NonFiniteError as e:
        raise _diverged(state, f"{e.tensor} became non-finite (no checkpoint written)") from None


def _restore(state: TrainState, folder: Path, config: TrainConfig, identity) -> None:
    """Load ``folder`` into ``state`` after checking it is the same run."""
    cfg = ckpt_io.read_config(folder)
    if cfg.get("version", 1) < 2:
        raise CheckpointError(f"cannot resume from {folder}: it was written by an older genlab; load it with load_model, or train into a new folder")
    try:
        saved = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot resume from {folder}: state.json is missing or corrupt ({e})") from None
    problem = _other_run(state, cfg, saved, config, identity)
    if problem:
        raise CheckpointError(f"cannot resume from {folder}: {problem}")

    entries = cfg["models"]
    for name, model in state.models.items():
        ckpt_io.load_state_into(model, folder / entries[name]["weights"])
    for name, ema in state.emas.items():
        ckpt_io.load_state_into(ema.shadow, folder / entries[name]["ema"])
        ema.num_updates = saved["emas"][name]["updates"]
    tensors = ckpt_io.load_tensors(folder / "state.safetensors")
    for name, opt in state.optimizers.items():
        prefix = f"optim.{name}."
        _load_optimizer_state(opt, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, saved["optimizers"][name])
    state.generator.set_state(tensors["rng.generator"])
    state.global_rng = {k[len("rng.global."):]: v for k, v in tensors.items() if k.startswith("rng.global.")}
    state.step, state.history, state.checkpoint = int(saved["step"]), saved["history"], folder


def _other_run(state: TrainState, cfg: dict, saved: dict, config: TrainConfig, identity) -> str | None:
    """Why the checkpoint (config.json ``cfg``, state.json ``saved``) is not this run, or None."""
    diffs = _differences(cfg.get("identity"), identity)
    if diffs:
        return f"it is another run ({'; '.join(diffs)}); use the same settings or a new output folder"
    names = {"models": (set(cfg["models"]), set(state.models)), "optimisers": (set(saved["optimizers"]), set(state.optimizers)),
             "EMAs": (set(saved["emas"]), set(state.emas))}  # fmt: skip
    for what, (was, now) in names.items():
        if was != now:
            return f"it has {what} {sorted(was)}, this run {sorted(now)}; use a new output folder"
    for name, model in state.models.items():
        was = {k: cfg["models"][name].get(k) for k in ("class", "config")}
        if was["class"] in ckpt_io.MODEL_CLASSES and was["config"] is not None:
            was = _jsonable(ckpt_io.saved_model_spec(was), "model config")  # fields added since: at their defaults
        if was != _jsonable(ckpt_io.model_spec(model), "model config"):
            return f"it holds a different {name!r} ({was['class']} {was['config']}); use the same model options or a new output folder"
    was, now = saved.get("train_config", {}), dataclasses.asdict(config)
    diffs = [f"{k}={was.get(k)!r} (now {now[k]!r})" for k in _RESUME_KEYS if was.get(k) != now[k]]
    for name, opt in state.optimizers.items():
        old = [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in saved["optimizers"][name]["param_groups"]]
        for i, (a, b) in enumerate(zip(old, _hyper_parameters(opt))):
            diffs += [f"optimiser {name!r} group {i} {k}={a.get(k)!r} (now {b.get(k)!r})" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if len(old) != len(opt.param_groups):
            diffs.append(f"optimiser {name!r} with {len(old)} param groups (now {len(opt.param_groups)})")
    for name, ema in state.emas.items():
        if saved["emas"][name]["decay"] != ema.decay:
            diffs.append(f"EMA decay of {name!r}={saved['emas'][name]['decay']!r} (now {ema.decay!r})")
    if diffs:
        return f"it was trained with {', '.join(diffs)}; pass the same options or use a new output folder"
    return None


def check_out_dir(out_dir: str | Path | None, resume: bool, overwrite: bool) -> bool:
    """Raise the error :func:`train` would raise for this folder and these flags; True if it holds a run.

    For callers that do expensive work before training (drawing reflow pairs, encoding a data
    set) and should fail first, not after it. Changes nothing on disk.
    """
    if out_dir is None:
        if resume:
            raise ConfigError("resume needs the output folder of the run to continue (out_dir)")
        return False
    if resume and overwrite:
        raise ConfigError("resume continues the run in out_dir and overwrite replaces it: choose one")
    exists = ckpt_io.has_checkpoint(out_dir)
    if resume and not exists:
        raise CheckpointError(f"nothing to resume in {out_dir}: it holds no checkpoint; train without --resume (resume=False) first")
    if exists and not resume and not overwrite:
        raise RunExistsError(f"{out_dir} already holds a training run: continue it with --resume (resume=True) or replace it with --overwrite (overwrite=True)")
    return exists


def _prepare_out_dir(out_dir: Path | None, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run (after the checks on the folder)."""
    exists = check_out_dir(out_dir, resume, overwrite)
    if resume:
        return ckpt_io.resolve_checkpoint(out_dir)
    if exists:  # overwrite
        ckpt_io.remove_checkpoints(out_dir)  # the old run is gone from here on, before the new one's first checkpoint
    return None


# ----------------------------------------------------------------------------- the loop


def train(
    state: TrainState,
    step_fn: StepFn,
    data: Sequence[torch.Tensor],
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    identity: dict | None = None,
    metadata: dict | None = None,
    sample_fn: Callable[[TrainState], None] | None = None,
    progress: bool = True,
) -> TrainState:
    """Run ``step_fn`` from ``state.step`` up to ``config.steps`` and return the (updated) ``state``.

    ``data`` is a tuple of tensors sharing their first dimension; each step gets a batch tuple of
    the same structure. A fresh state (step 0) is seeded from ``config.seed``. With ``out_dir``
    a checkpoint is written every ``config.ckpt_every`` steps and at the end; ``resume=True``
    continues from its latest checkpoint (``identity``, the models and the key options must
    match), ``overwrite=True`` replaces a run already there (its checkpoints are deleted at the
    start). ``identity`` and ``metadata`` (JSON-able) are stored in the checkpoint as given.
    ``sample_fn(state)`` runs every ``config.sample_every`` steps (models in eval mode, no_grad).
    """
    data = tuple(data)
    if not data or any(len(t) != len(data[0]) for t in data):
        raise ConfigError("data must be a non-empty tuple of tensors with the same first dimension")
    n = len(data[0])
    device = resolve_device(config.device)
    data = tuple(t.to(device) for t in data)
    for name, model in state.models.items():
        model.to(device)
        if name in state.optimizers:
            model.train()  # a model without an optimiser (a frozen teacher) keeps its mode
    for ema in state.emas.values():
        ema.to(device)
    for opt in state.optimizers.values():
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])  # the schedule scales this one
    identity = _jsonable(identity, "identity")
    metadata = _jsonable(metadata or {}, "metadata")
    out_dir = Path(out_dir) if out_dir is not None else None
    resume_from = _prepare_out_dir(out_dir, resume, overwrite)
    order = _BatchOrder(n, min(config.batch_size, n), config.seed)

    caller_rng = _get_global_rng(device)
    bar, installed = None, False
    try:
        if resume_from is not None:
            _restore(state, resume_from, config, identity)
        elif state.step == 0:  # a fresh run
            state.generator.manual_seed(config.seed)
            state.global_rng = {}
        if state.global_rng:  # resumed, or an in-memory state continued
            _set_global_rng(state.global_rng)
        else:
            _seed_global_rng(device, config.seed)
        installed = True
        saved_step = state.step if resume_from is not None else None
        bar = tqdm(total=config.steps, initial=state.step, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
        smooth: dict[str, float] = {}
        while state.step < config.steps:
            batch = tuple(t[order.indices(state.step).to(device)] for t in data)
            logged = step_fn(StepContext(state, config), batch)
            for key, value in logged.items():
                value = float(value.item() if torch.is_tensor(value) else value)
                if not math.isfinite(value):
                    raise _diverged(state, f"the logged {key!r} became {value}")
                state.history.setdefault(key, []).append(value)
                smooth[key] = value if key not in smooth else 0.95 * smooth[key] + 0.05 * value
            state.step += 1
            done = state.step
            if done % config.log_every == 0 or done == config.steps:
                lr = next(iter(state.optimizers.values())).param_groups[0]["lr"] if state.optimizers else 0.0
                bar.set_postfix({**{k: f"{v:.4f}" for k, v in smooth.items()}, "lr": f"{lr:.2e}"}, refresh=False)
                bar.update(done - bar.n)
            if out_dir is not None and config.ckpt_every and done % config.ckpt_every == 0 and done != config.steps:
                _save(state, out_dir, device, config, identity, metadata)
                saved_step = done
            if sample_fn is not None and config.sample_every and done % config.sample_every == 0:
                _sample(sample_fn, state, device)
        if out_dir is not None and saved_step != state.step:
            _save(state, out_dir, device, config, identity, metadata)
    finally:
        if bar is not None:
            bar.close()
        if installed:
            state.global_rng = _get_global_rng(device)  # so that an in-memory state can continue exactly
        _set_global_rng(caller_rng)
    return state


def _sample(sample_fn: Callable[[TrainState], None], state: TrainState, device) -> None:
    """Call ``sample_fn(state)`` in eval mode; the RNGs and the modes are put back afterwards."""
    rng, gen, modes = _get_global_rng(device), state.generator.get_state(), {n: m.training for n, m in state.models.items()}
    try:
        for model in state.models.values():
            model.eval()
        with torch.no_grad():
            sample_fn(state)
    finally:
        for name, model in state.models.items():
            model.train(modes[name])
        _set_global_rng(rng)
        state.generator.set_state(gen)
