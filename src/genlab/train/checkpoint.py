"""Checkpoints: safetensors for tensors, JSON for everything else. Nothing is pickled.

A checkpoint is one folder::

    checkpoint/
      config.json        model class + its config dataclass, metadata (e.g. the diffusion setup), step
      model.safetensors  model weights
      ema.safetensors    EMA weights (when training kept an EMA)
      state.safetensors  optimiser moments and RNG states (for an exact resume)
      state.json         step, loss history, optimiser hyper-parameters

It is written into ``checkpoint.tmp/`` and then swapped in with renames, so an
interrupted write never leaves a half-written checkpoint in place of a good one.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from genlab.errors import CheckpointError

FORMAT = "genlab-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoint"

# Only these classes can be rebuilt from a checkpoint: a checkpoint names a class, it never
# carries code. name -> (model class, config dataclass), as "module:attribute".
MODEL_CLASSES: dict[str, tuple[str, str]] = {
    "UNet": ("genlab.nn.unet:UNet", "genlab.nn.unet:UNetConfig"),
    "ToyDenoiser": ("genlab.nn.toy_denoiser:ToyDenoiser", "genlab.nn.toy_denoiser:ToyDenoiserConfig"),
    "VAE": ("genlab.nn.vae:VAE", "genlab.nn.vae:VAEConfig"),
    "MLPClassifier": ("genlab.nn.classifier:MLPClassifier", "genlab.nn.mlp:MLPConfig"),
    "ConvClassifier": ("genlab.nn.classifier:ConvClassifier", "genlab.nn.classifier:ConvClassifierConfig"),
}


def _resolve(spec: str):
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def _tuples(value):
    """JSON turns tuples into lists; config dataclasses use tuples for widths and the like."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"class": name, "config": {...}}`` for a model built from a config dataclass."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if name not in MODEL_CLASSES or not dataclasses.is_dataclass(config):
        return {"class": name, "config": None}
    return {"class": name, "config": dataclasses.asdict(config)}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Rebuild an (untrained) model from :func:`model_spec`'s output."""
    name = spec.get("class")
    if name not in MODEL_CLASSES:
        raise CheckpointError(
            f"checkpoint names model class {name!r}, which genlab cannot rebuild "
            f"(known: {', '.join(MODEL_CLASSES)})"
        )
    cls_spec, cfg_spec = MODEL_CLASSES[name]
    cfg_cls = _resolve(cfg_spec)
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    raw = spec.get("config") or {}
    unknown = set(raw) - fields
    if unknown:
        raise CheckpointError(f"checkpoint config has fields {sorted(unknown)} unknown to {name}: it was written by another genlab version")
    return _resolve(cls_spec)(cfg_cls(**{k: _tuples(v) for k, v in raw.items()}))


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """Accept either a run folder (holding ``checkpoint/``) or the checkpoint folder itself."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / CHECKPOINT_DIR / "config.json").is_file():
        return path / CHECKPOINT_DIR
    old = path / (CHECKPOINT_DIR + ".old")  # a swap interrupted between its two renames
    if (old / "config.json").is_file():
        return old
    raise CheckpointError(f"no checkpoint at {path}: expected {path / CHECKPOINT_DIR / 'config.json'} (train one with `genlab train --out {path}`)")


def _tensors(module_or_dict) -> dict[str, torch.Tensor]:
    sd = module_or_dict.state_dict() if isinstance(module_or_dict, nn.Module) else module_or_dict
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: nn.Module,
    *,
    ema: nn.Module | None = None,
    step: int = 0,
    metadata: dict | None = None,
    state_tensors: dict[str, torch.Tensor] | None = None,
    state: dict | None = None,
) -> Path:
    """Write ``run_dir/checkpoint/`` atomically and return its path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, tmp, old = (run_dir / n for n in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".tmp", CHECKPOINT_DIR + ".old"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_tensors(model), str(tmp / "model.safetensors"))
    if ema is not None:
        save_file(_tensors(ema), str(tmp / "ema.safetensors"))
    if state_tensors is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in state_tensors.items()}, str(tmp / "state.safetensors"))
    if state is not None:
        _write_json(tmp / "state.json", state)
    _write_json(
        tmp / "config.json",
        {"format": FORMAT, "version": VERSION, "step": step, "model": model_spec(model),
         "has_ema": ema is not None, "metadata": metadata or {}},
    )
    # Swap: final → old, tmp → final, drop old. A crash leaves either final or old intact.
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_config(path: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a checkpoint (run folder or checkpoint folder)."""
    ckpt = checkpoint_dir(path)
    try:
        cfg = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint config {ckpt / 'config.json'} is corrupt ({e}); retrain or restore it") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt / 'config.json'} is not a genlab checkpoint config")
    return cfg


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


def load_model(path: str | os.PathLike, *, use_ema: bool = True, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model saved at ``path`` in eval mode, with EMA weights when present.

    Returns ``(model, config)`` where ``config`` is the parsed config.json (``config["metadata"]``
    holds what the training run stored, e.g. the diffusion schedule).
    """
    ckpt = checkpoint_dir(path)
    cfg = read_config(ckpt)
    model = build_model(cfg["model"])
    weights = ckpt / ("ema.safetensors" if use_ema and cfg.get("has_ema") else "model.safetensors")
    load_state_into(model, weights)
    return model.to(device).eval(), cfg
