"""Checkpoints: safetensors for tensors, JSON for everything else. Nothing is pickled.

A run folder keeps its checkpoints as numbered versions::

    run/checkpoints/
      000500/              a version: named by its step (000500.1 when that name is taken)
        config.json        models (class + config dataclass), metadata, identity, step, file sizes
        model.safetensors  weights of the model named "model" (another model: <name>.safetensors)
        ema.safetensors    its EMA weights, same keys (another model: <name>.ema.safetensors)
        state.safetensors  optimiser moments and RNG states, for an exact resume
        state.json         step, logged history, optimiser hyper-parameters, EMA counters
      001000/
      LATEST               one line: the name of the current version, "001000"

Crash safety (power loss or SIGKILL at any moment). A version is written into a temporary folder
``.tmp-…``; every file and the folder are fsync'ed; the folder is renamed to its final name and
``checkpoints/`` fsync'ed; then LATEST is replaced atomically (temp file, fsync, ``os.replace``,
fsync the folder). Only after the pointer has switched are older versions pruned — the previous
one is kept. At every instant LATEST names a complete version (or, before the first one is
committed, there is none or one complete version folder).

:func:`resolve_checkpoint` is the one function that decides which version to read, for loading
and for resuming: the LATEST target if it is complete (config.json parses and every file it
lists exists with the size it lists), else the newest complete version. Temporary folders are
ignored (and removed by the next write). The layout of earlier genlab versions, a single
``run/checkpoint/`` folder, is still read.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
import types
import typing
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from genlab.errors import CheckpointError

FORMAT = "genlab-checkpoint"
VERSION = 2  # 1: the single checkpoint/ folder of earlier genlab versions
CHECKPOINTS = "checkpoints"
LATEST = "LATEST"
LEGACY_DIRS = ("checkpoint", "checkpoint.old")  # version 1 (and its interrupted swap)
_VERSION_NAME = re.compile(r"^(\d+)(?:\.(\d+))?$")  # "000500" or "000500.1"
_TMP_PREFIX = ".tmp-"

# Only these classes can be rebuilt from a checkpoint: a checkpoint names a class, it never
# carries code. name -> (model class, config dataclass), as "module:attribute".
MODEL_CLASSES: dict[str, tuple[str, str]] = {
    "UNet": ("genlab.nn.unet:UNet", "genlab.nn.unet:UNetConfig"),
    "DiT": ("genlab.nn.dit:DiT", "genlab.nn.dit:DiTConfig"),
    "ToyDenoiser": ("genlab.nn.toy_denoiser:ToyDenoiser", "genlab.nn.toy_denoiser:ToyDenoiserConfig"),
    "VAE": ("genlab.nn.vae:VAE", "genlab.nn.vae:VAEConfig"),
    "MLPClassifier": ("genlab.nn.classifier:MLPClassifier", "genlab.nn.mlp:MLPConfig"),
    "ConvClassifier": ("genlab.nn.classifier:ConvClassifier", "genlab.nn.classifier:ConvClassifierConfig"),
    "NoisyClassifier": ("genlab.nn.noisy_classifier:NoisyClassifier", "genlab.nn.noisy_classifier:NoisyClassifierConfig"),
    "DCGANGenerator": ("genlab.nn.gan:DCGANGenerator", "genlab.nn.gan:DCGANConfig"),
    "DCGANDiscriminator": ("genlab.nn.gan:DCGANDiscriminator", "genlab.nn.gan:DCGANConfig"),
    "StyleGenerator": ("genlab.nn.stylegan:StyleGenerator", "genlab.nn.stylegan:StyleGANConfig"),
    "Autoencoder": ("genlab.nn.autoencoder:Autoencoder", "genlab.nn.autoencoder:AutoencoderConfig"),
    "TextEncoder": ("genlab.nn.text_encoder:TextEncoder", "genlab.nn.text_encoder:TextEncoderConfig"),
    "TextConditionedUNet": ("genlab.nn.text_unet:TextConditionedUNet", "genlab.nn.text_unet:TextConditionedUNetConfig"),
}


class NonFiniteError(CheckpointError):
    """A tensor to be saved is NaN or infinite, so the checkpoint was not written."""

    def __init__(self, tensor: str):
        super().__init__(f"refusing to write a checkpoint: {tensor} is not finite")
        self.tensor = tensor  # "key in file"


# ----------------------------------------------------------------------------- models ↔ JSON


def _resolve(spec: str):
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"class": name, "config": {...}}`` for a model built from a config dataclass."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if name not in MODEL_CLASSES or not dataclasses.is_dataclass(config):
        return {"class": name, "config": None}
    return {"class": name, "config": dataclasses.asdict(config)}


def _type_name(tp) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def conform(value, tp):
    """``value`` read from JSON, checked against the annotation ``tp`` and converted to it.

    Handles what config dataclasses use: int, float (an int is accepted), bool, str, None,
    ``X | Y`` / Optional, ``tuple[int, ...]`` and fixed tuples (JSON lists), list, dict, Literal,
    and nested config dataclasses (JSON objects of their fields).
    Raises ``TypeError`` when the value does not fit.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return conform(value, option)
            except TypeError:
                pass
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp in (int, float, str):
        if isinstance(value, bool):  # bool is an int in Python, never in a config
            raise TypeError(value)
        if isinstance(value, tp) or (tp is float and isinstance(value, int)):
            return tp(value)
    elif origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(conform(v, args[0]) for v in value)
        if not args or len(args) == len(value):
            return tuple(conform(v, a) for v, a in zip(value, args)) if args else tuple(value)
    elif origin is list and isinstance(value, list):
        return [conform(v, args[0]) for v in value] if args else value
    elif origin is dict and isinstance(value, dict):
        return value
    elif origin is typing.Literal:
        if value in args:
            return value
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, dict):  # a nested config
        hints, names = typing.get_type_hints(tp), {f.name for f in dataclasses.fields(tp)}
        if set(value) - names:
            raise TypeError(value)
        return tp(**{k: conform(v, hints[k]) for k, v in value.items()})
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise TypeError(value)


def build_model(spec: dict[str, Any], *, source: str | os.PathLike = "checkpoint config") -> nn.Module:
    """Rebuild an (untrained) model from :func:`model_spec`'s output, type-checking every field."""
    cls_spec, config = _read_config(spec, source)
    return _resolve(cls_spec)(config)


def saved_model_spec(spec: dict[str, Any], *, source: str | os.PathLike = "checkpoint config") -> dict[str, Any]:
    """:func:`model_spec` of the model a checkpoint entry describes, fields it predates at their
    defaults (so that adding a config field with a default keeps old runs resumable)."""
    _, config = _read_config(spec, source)
    return {"class": spec.get("class"), "config": dataclasses.asdict(config)}


def _read_config(spec: dict[str, Any], source) -> tuple[str, Any]:
    name = spec.get("class")
    if name not in MODEL_CLASSES:
        raise CheckpointError(
            f"checkpoint names model class {name!r}, which genlab cannot rebuild "
            f"(known: {', '.join(MODEL_CLASSES)})"
        )
    cls_spec, cfg_spec = MODEL_CLASSES[name]
    cfg_cls = _resolve(cfg_spec)
    hints = typing.get_type_hints(cfg_cls)
    raw = spec.get("config") or {}
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: the config of {name} is {raw!r}, expected an object of fields; fix it or retrain")
    unknown = set(raw) - {f.name for f in dataclasses.fields(cfg_cls)}
    if unknown:
        raise CheckpointError(f"{source}: {name} has fields {sorted(unknown)} unknown to this genlab: it was written by another genlab version")
    kwargs = {}
    for key, value in raw.items():
        try:
            kwargs[key] = conform(value, hints[key])
        except TypeError:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise CheckpointError(
                f"{source}: {name}.{key} is {shown} ({type(value).__name__}), expected {_type_name(hints[key])}; "
                "fix the value or retrain"
            ) from None
    return cls_spec, cfg_cls(**kwargs)


# ----------------------------------------------------------------------------- writing


def _fsync(path: Path) -> None:
    """Flush a file or a folder to disk (a folder's entries are data too: the renames in it)."""
    if path.is_dir() and os.name == "nt":  # Windows cannot open folders; NTFS journals renames
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, obj) -> None:
    _write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, str(path))
    _fsync(path)


def _cpu_tensors(module_or_dict) -> dict[str, torch.Tensor]:
    sd = module_or_dict.state_dict() if isinstance(module_or_dict, nn.Module) else module_or_dict
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}  # clone: tied weights share storage


def weight_files(name: str) -> tuple[str, str]:
    """(weights, EMA weights) file names of the model called ``name`` in a checkpoint."""
    if name == "model":
        return "model.safetensors", "ema.safetensors"
    return f"{name}.safetensors", f"{name}.ema.safetensors"


def check_model_name(name: str) -> None:
    if not (isinstance(name, str) and name.isidentifier()) or name in ("ema", "state", "config"):
        raise ValueError(f"model name {name!r} cannot name checkpoint files: use an identifier other than ema, state, config")


def _version_key(name: str) -> tuple[int, int] | None:
    m = _VERSION_NAME.match(name)
    return (int(m[1]), int(m[2] or 0)) if m else None


def _versions(ckpts: Path) -> list[Path]:
    """Version folders in ``ckpts``, oldest first (temporary folders excluded)."""
    if not ckpts.is_dir():
        return []
    found = [p for p in ckpts.iterdir() if p.is_dir() and _version_key(p.name)]
    return sorted(found, key=lambda p: _version_key(p.name))


def _read_pointer(ckpts: Path) -> str | None:
    try:
        name = (ckpts / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if _version_key(name) else None


def _new_version_name(ckpts: Path, step: int) -> str:
    """``000500``, or ``000500.k`` after the highest k already there (never an existing name)."""
    base = f"{step:06d}"
    taken = [_version_key(p.name)[1] for p in _versions(ckpts) if _version_key(p.name)[0] == step]
    return base if not taken else f"{base}.{max(taken) + 1}"


def _nonfinite(files: dict[str, dict[str, torch.Tensor]]) -> str | None:
    for file, tensors in files.items():
        for key, t in tensors.items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                return f"{key} in {file}"
    return None


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: nn.Module | dict[str, nn.Module],
    *,
    ema: nn.Module | dict[str, nn.Module] | None = None,
    step: int = 0,
    metadata: dict | None = None,
    identity: dict | None = None,
    state_tensors: dict[str, torch.Tensor] | None = None,
    state: dict | None = None,
    extra_config: dict | None = None,
) -> Path:
    """Write a new version into ``run_dir/checkpoints/``, make it LATEST, and return its folder.

    ``model`` is one model (saved under the name "model") or ``{name: model}``; ``ema`` likewise,
    ``{name: averaged copy}`` for the models that have one. ``metadata`` and ``identity``
    (JSON-able) are stored as given in config.json; ``state_tensors`` / ``state`` become
    state.safetensors / state.json. A tensor that is NaN or infinite raises
    :class:`NonFiniteError` and nothing is written: a checkpoint is always a good one.
    """
    models = model if isinstance(model, dict) else {"model": model}
    emas = ema if isinstance(ema, dict) else ({} if ema is None else {"model": ema})
    for name in models:
        check_model_name(name)
    if set(emas) - set(models):
        raise ValueError(f"EMA for models {sorted(set(emas) - set(models))} that are not saved")

    files: dict[str, dict[str, torch.Tensor]] = {}
    entries = {}
    for name, m in models.items():
        weights, ema_file = weight_files(name)
        files[weights] = _cpu_tensors(m)
        if name in emas:
            files[ema_file] = _cpu_tensors(emas[name])
        entries[name] = {**model_spec(m), "weights": weights, "ema": ema_file if name in emas else None}
    if state_tensors is not None:
        files["state.safetensors"] = _cpu_tensors(state_tensors)
    bad = _nonfinite(files)
    if bad:
        raise NonFiniteError(bad)

    ckpts = Path(run_dir) / CHECKPOINTS
    if not ckpts.is_dir():
        ckpts.mkdir(parents=True)
        _fsync(ckpts.parent)
    name = _new_version_name(ckpts, step)
    tmp = ckpts / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for file, tensors in files.items():
        _write_tensors(tmp / file, tensors)
    if state is not None:
        _write_json(tmp / "state.json", state)
    primary = "model" if "model" in models else next(iter(models))
    config = {
        "format": FORMAT, "version": VERSION, "step": step,
        "model": model_spec(models[primary]), "has_ema": primary in emas,  # the model load_model() gives
        "models": entries, "metadata": metadata or {}, "identity": identity, **(extra_config or {}),
        "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())},  # what "complete" means
    }  # fmt: skip
    _write_json(tmp / "config.json", config)  # last: a folder without it is never a checkpoint
    _fsync(tmp)

    final = ckpts / name
    os.rename(tmp, final)
    _fsync(ckpts)
    previous = _read_pointer(ckpts)
    pointer_tmp = ckpts / f"{_TMP_PREFIX}{LATEST}-{os.getpid()}"
    _write_text(pointer_tmp, name + "\n")
    os.replace(pointer_tmp, ckpts / LATEST)
    _fsync(ckpts)
    _prune(ckpts, keep={name, previous})
    return final


def _prune(ckpts: Path, keep: set) -> None:
    """Remove versions not in ``keep`` and leftovers of interrupted writes; never anything else."""
    for p in ckpts.iterdir():
        if p.name.startswith(_TMP_PREFIX) or (p.is_dir() and _version_key(p.name) and p.name not in keep):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a run: a version, a LATEST pointer or an old-layout checkpoint."""
    run_dir = Path(run_dir)
    ckpts = run_dir / CHECKPOINTS
    return (ckpts / LATEST).exists() or bool(_versions(ckpts)) or any((run_dir / d).is_dir() for d in LEGACY_DIRS)


def remove_checkpoints(run_dir: str | os.PathLike) -> None:
    """Delete every checkpoint of the run in ``run_dir`` (both layouts); other files stay."""
    run_dir = Path(run_dir)
    for d in (CHECKPOINTS, *LEGACY_DIRS):
        shutil.rmtree(run_dir / d, ignore_errors=True)


# ----------------------------------------------------------------------------- finding and reading


def _parse_config(folder: Path) -> dict:
    """config.json of ``folder``, parsed (raises OSError/ValueError when unreadable)."""
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ValueError("config.json is not a genlab checkpoint config")
    return cfg


def _listed_files(cfg: dict) -> dict[str, int | None]:
    """{file name: size} a checkpoint must hold (version 1 listed no sizes)."""
    if cfg.get("version", 1) < 2:
        return {"model.safetensors": None, **({"ema.safetensors": None} if cfg.get("has_ema") else {})}
    files = cfg.get("files")
    if not isinstance(files, dict):
        raise ValueError("config.json lists no files")
    return files


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when it is."""
    try:
        cfg = _parse_config(folder)
        files = _listed_files(cfg)
    except FileNotFoundError:
        return "config.json is missing"
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        return f"config.json is unreadable ({str(e).splitlines()[0]})"
    for file, size in files.items():
        path = folder / file
        if Path(file).name != file:
            return f"config.json lists a file outside the folder ({file!r})"
        if not path.is_file():
            return f"{file} is missing"
        if size is not None and path.stat().st_size != size:
            return f"{file} has {path.stat().st_size} bytes, config.json says {size}"
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder to read for ``path``: a run folder, its ``checkpoints/``, or a version.

    A run folder gives its LATEST version when complete, else the newest complete version (with a
    warning when one was skipped), else a checkpoint in the old layout (``run/checkpoint/``).
    """
    path = Path(path)
    if (path / "config.json").exists():  # a version folder itself (or an old-layout checkpoint/)
        problem = checkpoint_problem(path)
        if problem:
            raise CheckpointError(f"checkpoint {path} is corrupt: {problem}; retrain or restore it")
        return path
    ckpts = path if path.name == CHECKPOINTS else path / CHECKPOINTS
    candidates = []
    pointer = _read_pointer(ckpts)
    if pointer:
        candidates.append(ckpts / pointer)
    candidates += [v for v in reversed(_versions(ckpts)) if v.name != pointer]  # newest first
    candidates += [path / d for d in LEGACY_DIRS]
    skipped: list[tuple[Path, str]] = []
    for folder in candidates:
        if not folder.is_dir():
            if folder.name == pointer:
                skipped.append((folder, f"{LATEST} names it but it does not exist"))
            continue
        problem = checkpoint_problem(folder)
        if problem is None:
            if skipped:
                warnings.warn(f"checkpoint {skipped[0][0]} is incomplete ({skipped[0][1]}); using {folder}", stacklevel=2)
            return folder
        skipped.append((folder, problem))
    if skipped and skipped[0][0].is_dir():
        raise CheckpointError(f"checkpoint {skipped[0][0]} is corrupt: {skipped[0][1]}; retrain or restore it")
    raise CheckpointError(f"no checkpoint at {path}: expected {ckpts / LATEST} (train one with `genlab train --out {path}`)")


def read_config(path: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of the checkpoint :func:`resolve_checkpoint` picks for ``path``."""
    ckpt = resolve_checkpoint(path)
    try:
        return _parse_config(ckpt)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"checkpoint config {ckpt / 'config.json'} is corrupt ({str(e).splitlines()[0]}); retrain or restore it") from None


def model_entries(cfg: dict) -> dict[str, dict]:
    """{name: {"class", "config", "weights", "ema"}} of a parsed config.json (any version)."""
    if cfg.get("version", 1) < 2:
        return {"model": {**cfg.get("model", {}), "weights": "model.safetensors", "ema": "ema.safetensors" if cfg.get("has_ema") else None}}
    return cfg["models"]


def load_tensors(file: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load one safetensors file, turning any failure into a one-line :class:`CheckpointError`."""
    if not file.is_file():
        raise CheckpointError(f"checkpoint file {file} is missing; retrain or restore the checkpoint folder")
    try:
        return load_file(str(file), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint file {file} is corrupt ({str(e).splitlines()[0]}); retrain or restore it") from None


def load_state_into(module: nn.Module, file: Path) -> None:
    """Load weights from ``file`` into ``module``; a shape or key mismatch is a clear error."""
    tensors = load_tensors(file)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "state dict mismatch"
        raise CheckpointError(f"weights in {file} do not fit the model described by its config.json ({first})") from None


def load_model(
    path: str | os.PathLike, *, use_ema: bool = True, device: str | torch.device = "cpu", name: str | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild a model saved at ``path`` in eval mode, with its EMA weights when it has them.

    ``path`` is a run folder or a version folder (see :func:`resolve_checkpoint`). ``name`` picks
    one of several models (default: "model", else the first). Returns ``(model, config)`` where
    ``config`` is the parsed config.json (``config["metadata"]`` holds what the run stored).
    """
    ckpt = resolve_checkpoint(path)
    cfg = read_config(ckpt)
    entries = model_entries(cfg)
    if name is None:
        name = "model" if "model" in entries else next(iter(entries))
    if name not in entries:
        raise CheckpointError(f"checkpoint {ckpt} has no model named {name!r} (it holds {', '.join(entries)})")
    entry = entries[name]
    model = build_model(entry, source=ckpt / "config.json")
    file = entry["ema"] if use_ema and entry.get("ema") else entry["weights"]
    load_state_into(model, ckpt / Path(file).name)
    return model.to(device).eval(), cfg
