"""FID for natural RGB images (CIFAR-10) with Inception-v3, through torchmetrics + torch-fidelity.

torchmetrics' ``FrechetInceptionDistance(feature=2048)`` builds torch-fidelity's
``FeatureExtractorInceptionV3``, which loads the converted TensorFlow FID weights
``weights-inception-2015-12-05-6726825d.pth`` either from ``feature_extractor_weights_path`` or,
when that is None, with ``torch.hub.load_state_dict_from_url`` — i.e. from
``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``, default
``~/.cache/torch/hub/checkpoints``), downloading it there if missing. genlab never lets it
download: it looks for the file in ``data_root()/inception/`` and in that hub folder, and passes
the path explicitly; when neither has it, one :class:`DatasetNotFoundError` says where to put it.

Images are mapped from [-1, 1] to uint8 0..255 (grey images are repeated to 3 channels); the
extractor resizes them to 299×299 itself. Figures are the standard FID (comparable to papers
only at N = 50 000 against the training set).
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.errors import ConfigError, DatasetNotFoundError

__all__ = ["INCEPTION_WEIGHTS", "INCEPTION_URL", "inception_weights_dirs", "find_inception_weights", "inception_fid"]

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS


def inception_weights_dirs() -> list[Path]:
    """Folders searched for the weights: ``data_root()/inception``, then torch hub's ``checkpoints``."""
    from genlab.data import data_root

    return [data_root() / "inception", Path(torch.hub.get_dir()) / "checkpoints"]


def find_inception_weights(weights_path: str | Path | None = None) -> Path:
    """The weights file, or DatasetNotFoundError naming the file and the folder to put it in."""
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if p.is_file():
            return p
        raise DatasetNotFoundError(f"Inception-v3 weights {p} not found; download {INCEPTION_URL} to that path")
    dirs = inception_weights_dirs()
    for d in dirs:
        if (d / INCEPTION_WEIGHTS).is_file():
            return d / INCEPTION_WEIGHTS
    raise DatasetNotFoundError(
        f"Inception-v3 weights {INCEPTION_WEIGHTS} not found (it cannot be downloaded here); download it from "
        f"{INCEPTION_URL} and put it in {dirs[0]} (or {dirs[1]}, torch-fidelity's cache)"
    )


def _to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)   # (N, C, H, W) 0..255
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def inception_fid(samples: torch.Tensor, reference: torch.Tensor, weights_path: str | Path | None = None,
                  batch_size: int = 100, device: str | torch.device = "cpu") -> float:
    """Standard FID (Inception-v3 pool features, D = 2048) between two image sets (N, C, H, W) in [-1, 1]."""
    path = find_inception_weights(weights_path)
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
    except ImportError:
        raise ConfigError("Inception FID needs torchmetrics: pip install torchmetrics torch-fidelity") from None
    if not _TORCH_FIDELITY_AVAILABLE:
        raise ConfigError("Inception FID needs torch-fidelity (pip install torch-fidelity; it needs a working torchvision)")
    for what, x in (("samples", samples), ("reference", reference)):
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(f"inception_fid: {what} must be images (N, 1 or 3, H, W), got {tuple(x.shape)}")
    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path)).to(device)
    for real, x in ((True, reference), (False, samples)):
        for i in range(0, len(x), batch_size):
            fid.update(_to_uint8_rgb(x[i : i + batch_size]).to(device), real=real)
    return float(fid.compute())
