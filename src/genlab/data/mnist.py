"""MNIST and Fashion-MNIST: 28×28 gray images in IDX files, downloaded once and cached.

Where files are looked for (first hit wins), with ``root`` = ``$GENLAB_DATA`` or ``~/.cache/genlab``:

1. ``root/<dataset>/<file>`` — where downloads go (``<dataset>`` is ``mnist`` or ``fashion_mnist``);
2. ``root/<file>``           — MNIST only, so that ``GENLAB_DATA=/some/folder/with/the/gz/files`` works.
   Both data sets use the same file names, so a file there is never taken for Fashion-MNIST (whose
   files go in ``root/fashion_mnist/``), nor for MNIST when it is Fashion-MNIST's published file.

Downloads are verified by MD5 against the published files. Files placed by hand may have been
recompressed, so they are checked by structure instead: IDX magic numbers, 28×28 uint8 images,
one label in 0..9 per image, and the split's official image count (60 000 train, 10 000 test;
``check_counts=False`` accepts a consistent subset, e.g. a tiny file for tests).
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.data import download as _download
from genlab.data.idx import read_idx
from genlab.errors import DatasetNotFoundError, GenlabError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class IdxImageDataset:
    """Where an MNIST-like data set lives on the web and what its files look like."""

    name: str  # human-readable name, used in messages
    folder: str  # sub-folder of the cache root
    mirrors: tuple[str, ...]  # base URLs, tried in order
    files: dict[str, tuple[tuple[str, str], tuple[str, str]]]  # split → ((images, md5), (labels, md5))
    counts: dict[str, int]  # split → official number of images
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10
    root_level: bool = False  # also look for the files directly in root (one data set only: the names clash)


MNIST = IdxImageDataset(
    name="MNIST",
    folder="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    files={
        "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                  ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
        "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
    },
    counts={"train": 60_000, "test": 10_000},
    root_level=True,
)

FASHION_MNIST = IdxImageDataset(
    name="Fashion-MNIST",
    folder="fashion_mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files={
        "train": (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                  ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe")),
        "test": (("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
    },
    counts={"train": 60_000, "test": 10_000},
)

#: Fashion-MNIST label i ↔ FASHION_MNIST_CLASSES[i].
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def _published_md5s(filename: str, other_than: IdxImageDataset) -> set[str]:
    return {md5 for d in (MNIST, FASHION_MNIST) if d is not other_than
            for pair in d.files.values() for name, md5 in pair if name == filename}


def find_file(root: Path, dataset: IdxImageDataset, filename: str) -> Path | None:
    """The first existing candidate: ``root/<dataset>/<file>``, then (MNIST only) ``root/<file>``
    unless that file is another data set's published one."""
    own = root / dataset.folder / filename
    if own.is_file():
        return own
    loose = root / filename
    if dataset.root_level and loose.is_file() and _download.md5sum(loose) not in _published_md5s(filename, dataset):
        return loose
    return None


def _missing_message(dataset: IdxImageDataset, root: Path, missing: list[str], reason: str) -> str:
    where = f"{root / dataset.folder} or directly in {root}" if dataset.root_level else f"{root / dataset.folder}"
    return (
        f"{dataset.name} files {', '.join(missing)} not found ({reason}); "
        f"download them from {dataset.mirrors[0]} and place them in {where} "
        f"(the folder is $GENLAB_DATA, default ~/.cache/genlab)"
    )


def ensure_files(dataset: IdxImageDataset, split: str, root: Path, download: bool = True) -> tuple[Path, Path]:
    """Paths of the split's (images, labels) files, downloading missing ones when allowed."""
    if split not in dataset.files:
        raise GenlabError(f"unknown {dataset.name} split {split!r}; use one of: {', '.join(SPLITS)}")
    wanted = dataset.files[split]
    found = {name: find_file(root, dataset, name) for name, _ in wanted}
    missing = [name for name, path in found.items() if path is None]
    if missing and not download:
        raise DatasetNotFoundError(_missing_message(dataset, root, missing, "download=False"))
    md5s = dict(wanted)
    for name in list(missing):
        dest = root / dataset.folder / name
        errors = []
        for base in dataset.mirrors:
            try:
                found[name] = _download.download_file(base + name, dest, md5s[name])
                break
            except (OSError, urllib.error.URLError, DatasetNotFoundError) as exc:
                errors.append(f"{base}: {getattr(exc, 'reason', exc)}")
        if found[name] is None:  # all mirrors failed: stop here, don't wait on the rest
            still = [n for n in missing if found[n] is None]
            raise DatasetNotFoundError(
                _missing_message(dataset, root, still, "download failed: " + "; ".join(errors))
            )
    images_name, labels_name = (name for name, _ in wanted)
    return found[images_name], found[labels_name]


def read_split(dataset: IdxImageDataset, split: str, images_path: Path, labels_path: Path,
               check_counts: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a split's IDX files → uint8 images (N, 28, 28), uint8 labels (N,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    fix = "replace the file with the original from " + dataset.mirrors[0]
    h, w = dataset.image_shape
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (h, w):
        raise DatasetNotFoundError(
            f"{images_path} holds {images.dtype} {images.shape}, not {dataset.name} images "
            f"(N, {h}, {w}) uint8; {fix}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetNotFoundError(
            f"{labels_path} holds {labels.dtype} {labels.shape}, not {dataset.name} labels (N,) uint8; {fix}"
        )
    if len(labels) != len(images):
        raise DatasetNotFoundError(
            f"{images_path.name} has {len(images)} images but {labels_path.name} has "
            f"{len(labels)} labels; {fix}"
        )
    if labels.size and labels.max() >= dataset.num_classes:
        raise DatasetNotFoundError(
            f"{labels_path} has label {labels.max()} outside 0..{dataset.num_classes - 1}; {fix}"
        )
    expected = dataset.counts[split]
    if check_counts and len(images) != expected:
        raise DatasetNotFoundError(
            f"{images_path} has {len(images)} images, but the {dataset.name} {split} split has "
            f"{expected}; {fix} (or pass check_counts=False to use a subset)"
        )
    return images, labels


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, H, W) pixels 0..255 → float32 (N, 1, H, W) in [-1, 1]; labels → int64 (N,)."""
    x = torch.from_numpy(images).to(torch.float32).div_(127.5).sub_(1.0).unsqueeze(1)  # (N, 1, H, W)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_idx_dataset(dataset: IdxImageDataset, split: str = "train", root: str | os.PathLike | None = None,
                     download: bool = True, check_counts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of an MNIST-like data set (see the module docstring for where files go)."""
    root = Path(root).expanduser() if root is not None else _download.data_root()
    images_path, labels_path = ensure_files(dataset, split, root, download=download)
    return to_tensors(*read_split(dataset, split, images_path, labels_path, check_counts=check_counts))


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
               check_counts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST handwritten digits: images float32 (N, 1, 28, 28) in [-1, 1], labels int64 (N,).

    ``split`` is ``"train"`` (60 000) or ``"test"`` (10 000). Files are looked up under ``root``
    (default :func:`~genlab.data.data_root`) and downloaded there on first use.
    """
    return load_idx_dataset(MNIST, split, root, download, check_counts)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
                       check_counts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST clothing images, same format as :func:`load_mnist`.

    Label names: ``FASHION_MNIST_CLASSES[label]``.
    """
    return load_idx_dataset(FASHION_MNIST, split, root, download, check_counts)
