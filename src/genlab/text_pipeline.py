"""Text-to-image on a CPU: captions measured on the images, a tokenizer, and a U-Net that reads them —
the glue the CLI shares with notebooks and benchmarks (Stable Diffusion's conditioning, small).

1. :func:`text_setup` fits the caption scheme (:class:`~genlab.data.captions.CaptionScheme`: the
   tertiles of thickness, slant and size on the training images) and builds the tokenizer over
   every word a caption can hold, in Japanese and English. Both are data in the checkpoint
   (``DiffusionSpec.text``), so a model is sampled and judged later with exactly its own words.
2. :func:`caption_ids` captions each training image once — its class and a random subset of its
   attributes, in a random language — and tokenises the captions: the condition the diffusion
   loss reads, with condition dropout to the empty prompt (classifier-free guidance).
3. :func:`prompt_ids` turns the prompts of ``genlab sample --prompt "太い 7"`` into ids, refusing
   words the model never saw; :func:`judge_prompts` measures, on generated images, how often the
   class (by the data set's feature-network classifier) and each named attribute (by the same
   measurement that wrote the captions) is what the prompt asked for.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.data.captions import ATTRIBUTES, CaptionScheme
from genlab.errors import ConfigError
from genlab.nn.text_encoder import PromptTokenizer

__all__ = ["caption_ids", "judge_prompts", "prompt_ids", "text_scheme", "text_setup", "text_tokenizer"]

MAX_PROMPT_TOKENS = 8  # [CLS] + up to three attribute words + the class (+ room to spare)


def text_setup(images: torch.Tensor, class_names: tuple[str, ...] | None = None, max_length: int = MAX_PROMPT_TOKENS) -> dict:
    """The ``text`` entry of a :class:`~genlab.pipeline.DiffusionSpec`: the caption scheme fitted on
    ``images`` and the tokenizer of its vocabulary (JSON-ready)."""
    scheme = CaptionScheme.fit(images, class_names)
    tokenizer = PromptTokenizer.build(scheme.vocabulary(), max_length=max_length)
    return {"tokenizer": tokenizer.to_json(), "captions": scheme.to_dict()}


def text_scheme(text: dict) -> CaptionScheme:
    return CaptionScheme.from_dict(text["captions"])


def text_tokenizer(text: dict) -> PromptTokenizer:
    return PromptTokenizer.from_json(text["tokenizer"])


def caption_ids(text: dict, images: torch.Tensor, labels: torch.Tensor, *, langs: tuple[str, ...] = ("ja", "en"),
                keep_prob: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, list[str]]:  # fmt: skip
    """(ids (N, L) int64, captions) for training: one random caption per image
    (:meth:`CaptionScheme.random_captions`), tokenised."""
    captions = text_scheme(text).random_captions(images, labels, langs, keep_prob, seed)
    return text_tokenizer(text)(captions)[0], captions


def prompt_ids(text: dict, prompts: str | list[str], n: int) -> torch.Tensor:
    """Token ids (n, L) for ``n`` samples: one prompt for all, or one per sample. Unknown words and
    prompts too long for the encoder are refused (a model cannot follow a word it never saw)."""
    prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
    if len(prompts) != n:
        raise ConfigError(f"give one prompt, or one per sample: {n} samples, {len(prompts)} prompts")
    tokenizer, known = text_tokenizer(text), set(text_scheme(text).vocabulary())
    for p in prompts:
        unknown = [w for w in p.split() if w not in known]
        if unknown:
            raise ConfigError(f"the prompt {p!r} has words this model never saw: {', '.join(unknown)}; "
                              f"it knows: {' '.join(text_scheme(text).vocabulary())}")  # fmt: skip
        if len(p.split()) + 1 > tokenizer.max_length:
            raise ConfigError(f"the prompt {p!r} is longer than the text encoder's {tokenizer.max_length - 1} words")
    return tokenizer(prompts)[0]


def judge_prompts(images: torch.Tensor, prompts: list[str], text: dict, class_logits: torch.Tensor | None = None) -> dict[str, dict]:
    """How often generated ``images`` show what their ``prompts`` named:
    ``{"class": {...}, "thickness": {...}, ...}``, each ``{"accuracy": share, "n": images judged}``
    over the images whose prompt names it (``n = 0``: none did; accuracy NaN). Attributes are judged
    by the measurement that wrote the training captions (chance: 1/3), the class by the argmax of
    ``class_logits`` (N, K) from a classifier of the data set (omitted: the class is not judged)."""
    if len(images) != len(prompts):
        raise ConfigError(f"one prompt per image: {len(images)} images, {len(prompts)} prompts")
    scheme = text_scheme(text)
    bins = scheme.bins(images)
    parsed = [scheme.parse(p) for p in prompts]
    out: dict[str, dict] = {}
    if class_logits is not None:
        asked = [(i, y) for i, (y, _) in enumerate(parsed) if y is not None]
        got = class_logits.argmax(1).cpu().numpy() if asked else np.zeros(0)
        hits = [got[i] == y for i, y in asked]
        out["class"] = {"accuracy": float(np.mean(hits)) if hits else float("nan"), "n": len(hits)}
    for a in ATTRIBUTES:
        hits = [bins[a][i] == attrs[a] for i, (_, attrs) in enumerate(parsed) if a in attrs]
        out[a] = {"accuracy": float(np.mean(hits)) if hits else float("nan"), "n": len(hits)}
    return out
