"""A tiny text encoder for a CPU-sized text-to-image model: a word-level tokenizer built with the
``tokenizers`` library and a small transformer over its tokens.

Stable Diffusion conditions its U-Net on CLIP's text encoder: a transformer whose per-token hidden
states (77 × 768) the U-Net reads through cross-attention. Here the prompts are short captions
with a vocabulary of a few dozen words (:mod:`genlab.data.captions`), so a word-level tokenizer and
a transformer of two layers and width 64 suffice, trained together with the U-Net.

Tokens: ``[PAD]`` (id 0, masked out of attention), ``[UNK]`` (words not seen when the tokenizer was
built), ``[CLS]`` (prepended to every prompt, so that the empty prompt — classifier-free
guidance's unconditional input — is one real token rather than nothing).

======  ===================================  ============
symbol  meaning                              name
======  ===================================  ============
L       tokens per prompt (padded)           max_length
d       width of the hidden states           width
h       hidden states (N, L, d)              hidden
m       padding mask (N, L), True = padding  padding_mask
======  ===================================  ============
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from torch import nn

from genlab.errors import ConfigError

__all__ = ["PromptTokenizer", "TextEncoder", "TextEncoderConfig"]

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
PAD_ID, UNK_ID, CLS_ID = 0, 1, 2  # the special tokens' ids in every PromptTokenizer vocabulary


class PromptTokenizer:
    """Word-level tokenizer (whitespace split) over a fixed vocabulary, built from example prompts."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, int(max_length)

    @classmethod
    def build(cls, prompts, max_length: int = 8) -> PromptTokenizer:
        """A vocabulary of every word in ``prompts`` (plus the three special tokens, ids 0, 1, 2)."""
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.train_from_iterator(list(prompts), trainers.WordLevelTrainer(special_tokens=[PAD, UNK, CLS]))
        assert [tok.token_to_id(t) for t in (PAD, UNK, CLS)] == [PAD_ID, UNK_ID, CLS_ID]
        return cls(tok, max_length)

    @classmethod
    def from_json(cls, text: str) -> PromptTokenizer:
        """Rebuild from :meth:`to_json` (what a checkpoint stores)."""
        from tokenizers import Tokenizer

        raw = json.loads(text)
        return cls(Tokenizer.from_str(raw["tokenizer"]), raw["max_length"])

    def to_json(self) -> str:
        return json.dumps({"tokenizer": self.tokenizer.to_str(), "max_length": self.max_length}, ensure_ascii=False)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (N, L) int64, padding mask (N, L) bool): [CLS] + the words, cut or padded to L."""
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        for i, enc in enumerate(self.tokenizer.encode_batch(list(prompts))):
            row = [CLS_ID, *enc.ids][: self.max_length]
            ids[i, : len(row)] = torch.tensor(row)
        return ids, ids == PAD_ID

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids back to words (special tokens dropped)."""
        return [self.tokenizer.decode([int(i) for i in row], skip_special_tokens=True) for row in ids]


@dataclass
class TextEncoderConfig:
    vocab_size: int = 64
    max_length: int = 8  # L
    width: int = 64  # d
    layers: int = 2
    heads: int = 4

    def __post_init__(self):
        if min(self.vocab_size, self.max_length, self.width, self.layers, self.heads) < 1 or self.width % self.heads:
            raise ConfigError(f"TextEncoderConfig: sizes must be positive and width ({self.width}) divisible by heads ({self.heads})")


class TextEncoder(nn.Module):
    """ids (N, L), padding mask (N, L) → hidden states (N, L, d): token + position embeddings, a
    pre-norm transformer encoder that ignores padded positions, a final LayerNorm."""

    def __init__(self, config: TextEncoderConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else TextEncoderConfig()
        self.tokens = nn.Embedding(c.vocab_size, c.width)
        self.positions = nn.Parameter(torch.randn(c.max_length, c.width) * 0.02)
        layer = nn.TransformerEncoderLayer(c.width, c.heads, 4 * c.width, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)

    def forward(self, ids: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if ids.shape[1] > self.config.max_length:
            raise ConfigError(f"prompts of {ids.shape[1]} tokens exceed the encoder's {self.config.max_length}")
        h = self.tokens(ids) + self.positions[: ids.shape[1]]
        return self.norm(self.transformer(h, src_key_padding_mask=padding_mask))
