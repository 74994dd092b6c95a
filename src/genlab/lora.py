"""LoRA (Hu et al. 2021) on genlab's networks, through Hugging Face peft — the tool practitioners use
to customise Stable Diffusion, applied to a model small enough to fine-tune on a CPU.

A frozen weight W (out × in; for a k×k convolution, out × in·k²) gets a trainable low-rank update

    W' = W + (α / r) · B A,      A ∈ ℝ^{r × in},  B ∈ ℝ^{out × r},  B = 0 at the start,

so fine-tuning starts exactly at the pretrained model and trains r · (in + out) numbers per layer
instead of in · out. For a convolution peft makes A a k×k convolution to r channels and B a 1×1
convolution back (the same product, reshaped). **Merging** adds (α/r) B A into W (no extra cost at
sampling); **unmerging** subtracts it again, so one base model can carry several adapters.

Targets (``kinds``): ``"attention"`` — the self- and cross-attention projections (what most Stable
Diffusion LoRAs adapt); ``"conv"`` — the 3×3 convolutions of the residual blocks. The adapter alone is
saved as safetensors with a JSON sidecar (rank, α, targets), a few kB next to the base checkpoint.

======  ============================  =========
symbol  meaning                       name
======  ============================  =========
r       rank of the update            rank
α       scaling numerator             alpha
B A     the low-rank update           lora_B, lora_A
======  ============================  =========
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from genlab.errors import CheckpointError, ConfigError

__all__ = ["LORA_KINDS", "add_lora", "load_lora", "lora_disabled", "lora_layers", "lora_targets", "merge_lora", "save_lora",
           "trainable_parameters", "unmerge_lora"]

LORA_KINDS = {
    "attention": ("qkv", "proj", "q", "kv"),  # SelfAttention.qkv/proj, CrossAttention.q/kv/proj
    "conv": ("conv1", "conv2"),  # ResBlock's 3×3 convolutions
}


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError("LoRA uses the peft library, which is not installed: pip install peft") from None
    return peft


def lora_targets(model: nn.Module, kinds: tuple[str, ...] = ("attention", "conv")) -> list[str]:
    """Names of the nn.Linear / nn.Conv2d modules of ``model`` that ``kinds`` adapt."""
    unknown = set(kinds) - set(LORA_KINDS)
    if unknown or not kinds:
        raise ConfigError(f"unknown LoRA targets {sorted(unknown) or kinds}; choose from: {', '.join(LORA_KINDS)}")
    leaves = {leaf for k in kinds for leaf in LORA_KINDS[k]}
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and n.rsplit(".", 1)[-1] in leaves]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no layers for LoRA targets {', '.join(kinds)}")
    return names


def add_lora(model: nn.Module, rank: int = 4, alpha: float | None = None, kinds: tuple[str, ...] = ("attention", "conv"),
             seed: int = 0) -> nn.Module:  # fmt: skip
    """Inject LoRA adapters (peft) into ``model`` in place and freeze everything else; returns the
    model. ``alpha`` defaults to ``rank`` (scale α/r = 1). A is initialised from ``seed`` (Kaiming
    uniform, peft's default), B at zero, so the model's output is unchanged until it trains."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"the LoRA rank must be a positive int, got {rank!r}")
    if lora_layers(model):
        raise ConfigError("this model already carries LoRA adapters; merge them (merge_lora) or start from the base model")
    peft = _peft()
    targets = lora_targets(model, kinds)
    config = peft.LoraConfig(r=rank, lora_alpha=float(rank if alpha is None else alpha), target_modules=targets, lora_dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft.inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    model._genlab_lora = {"rank": rank, "alpha": float(rank if alpha is None else alpha), "kinds": list(kinds), "targets": targets}
    return model


def lora_layers(model: nn.Module) -> list[nn.Module]:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora(model: nn.Module) -> None:
    """W ← W + (α/r) B A in every adapted layer (sampling then costs what the base model costs)."""
    for m in lora_layers(model):
        if not m.merged:
            m.merge()


def unmerge_lora(model: nn.Module) -> None:
    """W ← W − (α/r) B A: back to the base weights, the adapter kept separately."""
    for m in lora_layers(model):
        if m.merged:
            m.unmerge()


@contextmanager
def lora_disabled(model: nn.Module):
    """Inside ``with lora_disabled(model):`` the model is its base model exactly (adapters unmerged
    and switched off); on leaving, the adapters are back (unmerged)."""
    layers = lora_layers(model)
    unmerge_lora(model)
    for m in layers:
        m.enable_adapters(False)
    try:
        yield model
    finally:
        for m in layers:
            m.enable_adapters(True)


def _info(model: nn.Module) -> dict:
    info = getattr(model, "_genlab_lora", None)
    if info is None or not lora_layers(model):
        raise ConfigError("this model carries no LoRA adapters (add them with genlab.lora.add_lora)")
    return info


def save_lora(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """The adapter weights alone → ``path`` (.safetensors) and ``path`` with .json (rank, α, targets,
    ``metadata`` such as the base checkpoint). Both are written to temporary files and renamed, so a
    crash leaves either the old pair or the new one."""
    from safetensors.torch import save_file

    info = _info(model)
    peft = _peft()
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"LoRA weights are saved as .safetensors, not {path.name}")
    if any(m.merged for m in lora_layers(model)):
        raise ConfigError("the adapters are merged into the weights: unmerge_lora(model) before saving them")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in peft.get_peft_model_state_dict(model).items()}
    sidecar = path.with_suffix(".json")
    tmp_w, tmp_j = path.with_name(path.name + ".tmp"), sidecar.with_name(sidecar.name + ".tmp")
    save_file(tensors, str(tmp_w))
    tmp_j.write_text(json.dumps({**info, "metadata": metadata or {}}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp_j, sidecar)
    os.replace(tmp_w, path)
    return path


def load_lora(model: nn.Module, path: str | os.PathLike) -> dict:
    """Add the adapter saved at ``path`` to a base ``model`` (in place); returns its JSON sidecar."""
    from safetensors.torch import load_file

    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise CheckpointError(f"no LoRA adapter at {path} (need {path.name} and {sidecar.name})")
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        rank, alpha, kinds = int(info["rank"]), float(info["alpha"]), tuple(info["kinds"])
        tensors = load_file(str(path))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"the LoRA adapter at {path} cannot be read ({type(e).__name__}: {e}); save it again") from None
    add_lora(model, rank, alpha, kinds)
    if info.get("targets") != model._genlab_lora["targets"]:
        raise CheckpointError(f"the LoRA adapter at {path} was made for another network (its layers differ from this model's)")
    result = _peft().set_peft_model_state_dict(model, tensors)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise CheckpointError(f"the LoRA adapter at {path} does not fit this model: {missing[:3]}")
    return info
