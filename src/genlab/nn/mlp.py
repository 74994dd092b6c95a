"""Multilayer perceptrons: a builder for a stack of linear layers, and an MLP classifier.

A classifier maps an input x (an image or a feature vector) to logits, one per class:

    logits = W_L φ(… φ(W_1 x + b_1) …) + b_L,      p(y | x) = softmax(logits)_y

where φ is the activation. Images (N, C, H, W) are flattened to (N, C·H·W) first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from genlab.errors import ConfigError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear → φ (→ Dropout) for each hidden width, then a final Linear with no activation.

    ``hidden=()`` gives a single linear (affine) map ``in_features → out_features``.
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), activation_layer(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


@dataclass
class MLPConfig:
    in_features: int = 784              # C·H·W of the (flattened) input; 784 = 1·28·28 for MNIST
    hidden: tuple[int, ...] = (256, 256)  # width of each hidden layer
    num_classes: int = 10               # number of logits
    activation: str = "relu"            # one of ACTIVATIONS
    dropout: float = 0.0                # dropout probability after each hidden activation

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)  # JSON gives lists back
        if self.in_features < 1 or self.num_classes < 1 or any(h < 1 for h in self.hidden):
            raise ConfigError("MLPConfig: in_features, num_classes and hidden widths must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"MLPConfig: dropout must be in [0, 1), got {self.dropout}")
        activation_layer(self.activation)  # validates the name


class MLPClassifier(nn.Module):
    """x (N, in_features) or images (N, C, H, W) → logits (N, num_classes)."""

    def __init__(self, config: MLPConfig | None = None):
        super().__init__()
        self.config = config if config is not None else MLPConfig()
        c = self.config
        self.net = make_mlp(c.in_features, c.hidden, c.num_classes, c.activation, c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (N, C, H, W) → (N, C·H·W); (N, D) stays (N, D)
        if x.shape[1] != self.config.in_features:
            raise ConfigError(
                f"MLPClassifier expects {self.config.in_features} input features, got {x.shape[1]}: "
                "set MLPConfig(in_features=...) to C·H·W of your data"
            )
        return self.net(x)
