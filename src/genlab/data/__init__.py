"""Data sets for the course.

- images: :func:`load_digits` (8×8, ships with scikit-learn), :func:`load_mnist`,
  :func:`load_fashion_mnist` (28×28, downloaded once, verified, cached under :func:`data_root`),
  :func:`load_cifar10` (32×32 RGB, from the binary distribution; names in ``CIFAR10_CLASSES``),
  and :func:`load_image_dataset` to pick one by name (``IMAGE_DATASETS``)
- the IDX file format: :func:`read_idx`, :func:`write_idx`
- captions from labels and measured attributes (thickness, slant, size; Japanese and English):
  :class:`CaptionScheme`, :func:`measure_attributes`
- synthetic 2-D point clouds: :func:`toy2d` (names in ``TOY2D``)
- real tabular data: :func:`load_old_faithful`, :func:`load_galton_families`, :func:`load_davis`

All images are float32 ``(N, C, H, W)`` in [-1, 1]; labels are int64.
"""

from genlab.data.captions import CaptionScheme, measure_attributes
from genlab.data.cifar import CIFAR10_CLASSES, load_cifar10
from genlab.data.digits import load_digits
from genlab.data.download import data_root
from genlab.data.idx import read_idx, write_idx
from genlab.data.mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist
from genlab.data.registry import IMAGE_DATASETS, load_image_dataset
from genlab.data.tabular import load_davis, load_galton_families, load_old_faithful
from genlab.data.toy2d import TOY2D, toy2d, toy2d_modes

__all__ = [
    "CaptionScheme", "measure_attributes",
    "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "IMAGE_DATASETS", "TOY2D",
    "data_root", "load_cifar10", "load_digits", "load_fashion_mnist", "load_image_dataset", "load_mnist",
    "read_idx", "toy2d", "toy2d_modes", "write_idx",
    "load_old_faithful", "load_galton_families", "load_davis",
]
