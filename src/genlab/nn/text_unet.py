"""A U-Net that reads a prompt: the text encoder and the cross-attention U-Net as one denoiser network,
trained together (Stable Diffusion's conditioning, on a CPU-sized model).

``forward(x_t, t, y)`` takes the prompt as token ids y (B, L) from
:class:`~genlab.nn.text_encoder.PromptTokenizer`; the encoder's hidden states h = E(y) (B, L, d) are
the context that every cross-attention block of the U-Net attends to (padded tokens masked out):

    ε_θ(x_t, t, y) = UNet(x_t, t, context = E(y))

so the diffusion loss, the samplers and classifier-free guidance treat the ids like any condition.

**The null condition.** Classifier-free guidance needs an unconditional input, and condition dropout
in training replaces a prompt by it. Here it is the empty prompt, ``[CLS]`` alone. As token ids it
is written as a row of ``[PAD]`` (id 0, so the loss and the guidance wrapper can use the plain int
null label 0): :meth:`TextConditionedUNet.forward` reads an all-padding row as ``[CLS]`` alone, so
the null label and ``tokenizer("")`` give the same prediction (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.text_encoder import CLS_ID, PAD_ID, TextEncoder, TextEncoderConfig
from genlab.nn.unet import CrossAttention, UNet, UNetConfig

__all__ = ["NULL_PROMPT_ID", "TextConditionedUNet", "TextConditionedUNetConfig"]

NULL_PROMPT_ID = PAD_ID  # a row of [PAD] is the null condition (the empty prompt)


@dataclass
class TextConditionedUNetConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)  # its context_dim is set to the encoder's width
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)

    def __post_init__(self) -> None:
        if self.unet.context_dim not in (0, self.text.width):
            raise ConfigError(f"the U-Net's context_dim ({self.unet.context_dim}) must equal the text encoder's width ({self.text.width})")
        if self.unet.num_classes:
            raise ConfigError("a text-conditioned U-Net takes its condition from the prompt: build it with num_classes=0")
        self.unet.context_dim = self.text.width


class TextConditionedUNet(nn.Module):
    """ε_θ(x_t, t, ids): the U-Net conditioned on the text encoder's hidden states of the prompt ids."""

    def __init__(self, config: TextConditionedUNetConfig | None = None):
        super().__init__()
        self.config = config if config is not None else TextConditionedUNetConfig()
        self.text_encoder = TextEncoder(self.config.text)
        self.unet = UNet(self.config.unet)

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states (B, L, d), padding mask (B, L)) of prompt ids (B, L); an all-[PAD] row is the empty prompt."""
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise ConfigError(f"a text-conditioned U-Net takes prompt token ids (B, L) int64, got {tuple(ids.shape)} {ids.dtype}")
        null = (ids == NULL_PROMPT_ID).all(1)
        if bool(null.any()):
            ids = ids.clone()
            ids[null, 0] = CLS_ID
        mask = ids == NULL_PROMPT_ID
        return self.text_encoder(ids, mask), mask

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:  # no prompt: the unconditional model
            y = torch.zeros(x.shape[0], self.config.text.max_length, dtype=torch.long, device=x.device)
        context, mask = self.encode(y)
        return self.unet(x, t, context=context, context_mask=mask)

    @torch.no_grad()
    def cross_attention_maps(self, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> dict[int, torch.Tensor]:
        """Where each token is read: {feature-map side s: (B, L, s, s)}, the attention probabilities
        of every cross-attention block at that resolution, averaged over heads and blocks. Over the
        L tokens they sum to 1 at each position (padding gets 0)."""
        blocks = [m for m in self.unet.modules() if isinstance(m, CrossAttention)]
        for m in blocks:
            m.keep_attention = True
        try:
            self(x, t, ids)
            by_side: dict[int, list[torch.Tensor]] = {}
            for m in blocks:
                a = m.attention.mean(1)  # (B, HW, L)
                side = int(round(a.shape[1] ** 0.5))
                by_side.setdefault(side, []).append(a.transpose(1, 2).reshape(a.shape[0], a.shape[2], side, side))
        finally:
            for m in blocks:
                m.keep_attention, m.attention = False, None
        return {s: torch.stack(maps).mean(0) for s, maps in sorted(by_side.items(), reverse=True)}
