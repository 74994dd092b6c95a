"""Image classifiers p(y | x), their training through :func:`genlab.train.fit`, and accuracy.

- :class:`MLPClassifier` (from :mod:`genlab.nn.mlp`) flattens the image.
- :class:`ConvClassifier` keeps the 2-D structure: three 3×3 convolutions (two of them with
  stride 2, so H×W → ⌈H/4⌉×⌈W/4⌉), then two linear layers. It works at any image size
  (8×8 digits, 16×16, 28×28 MNIST); ``image_size`` fixes the size of the first linear layer.

Training minimises the cross-entropy  −(1/B) Σ_i log softmax(f(x_i))_{y_i}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.device import module_device
from genlab.errors import ConfigError
from genlab.nn.mlp import MLPClassifier, MLPConfig

__all__ = [
    "MLPClassifier",
    "MLPConfig",
    "ConvClassifier",
    "ConvClassifierConfig",
    "cross_entropy_loss",
    "train_classifier",
    "accuracy",
    "predict",
]


@dataclass
class ConvClassifierConfig:
    in_channels: int = 1    # C: 1 for grey-scale digits
    image_size: int = 28    # H = W of the input images
    num_classes: int = 10   # number of logits
    width: int = 32         # channels of the first convolution; the next two have 2·width
    hidden: int = 128       # width of the penultimate (feature) layer

    def __post_init__(self) -> None:
        if min(self.in_channels, self.image_size, self.num_classes, self.width, self.hidden) < 1:
            raise ConfigError("ConvClassifierConfig: all sizes must be positive integers")


class ConvClassifier(nn.Module):
    """Images (N, C, S, S) → logits (N, num_classes), with S = ``config.image_size``."""

    def __init__(self, config: ConvClassifierConfig | None = None):
        super().__init__()
        self.config = config if config is not None else ConvClassifierConfig()
        c = self.config
        w = c.width
        self.conv = nn.Sequential(
            nn.Conv2d(c.in_channels, w, 3, padding=1), nn.ReLU(),          # (N, w, S, S)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),         # (N, 2w, ⌈S/2⌉, ⌈S/2⌉)
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),     # (N, 2w, ⌈S/4⌉, ⌈S/4⌉)
        )
        s = math.ceil(math.ceil(c.image_size / 2) / 2)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * s * s, c.hidden), nn.ReLU())
        self.head = nn.Linear(c.hidden, c.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, hidden): a learned embedding of the image."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels or x.shape[-2:] != (c.image_size, c.image_size):
            raise ConfigError(
                f"ConvClassifier expects images (N, {c.in_channels}, {c.image_size}, {c.image_size}), "
                f"got {tuple(x.shape)}: match ConvClassifierConfig(in_channels, image_size) to the data"
            )
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cross_entropy_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], generator=None) -> torch.Tensor:
    """``loss_fn`` for :func:`genlab.train.fit`: batch = (images, labels) → mean cross-entropy."""
    x, y = batch[0], batch[1]
    device = module_device(model)
    return F.cross_entropy(model(x.to(device)), y.to(device))


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    weight_decay: float = 0.0,
    device: str = "auto",
) -> nn.Module:
    """Train ``model`` on (images, labels) with Adam and cross-entropy via :func:`genlab.train.fit`.

    For the per-step losses (learning curves), call ``fit(model, cross_entropy_loss, (images, labels),
    TrainConfig(...))`` yourself and read ``result.losses``.
    """
    from genlab.train import TrainConfig, fit

    if len(images) != len(labels):
        raise ConfigError(f"train_classifier: {len(images)} images but {len(labels)} labels")
    config = TrainConfig(
        steps=steps,
        batch_size=min(batch_size, len(images)),
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=min(50, steps // 10),
        seed=seed,
        device=device,
    )
    result = fit(model, cross_entropy_loss, (images, labels.long()), config, progress=progress)
    return result.model


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class (argmax of the logits) for each image, as int64 on the CPU."""
    was_training = model.training
    model.eval()
    device = module_device(model)
    out = [model(images[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of images whose predicted class equals the label (in [0, 1])."""
    if len(images) == 0:
        raise ConfigError("accuracy: no images given")
    return (predict(model, images, batch_size) == labels.cpu().long()).float().mean().item()
