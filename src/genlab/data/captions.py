"""Captions for digit images, from their labels and attributes measured on each image (Japanese and
English): the text half of a text-to-image model that trains on a CPU.

Three attributes are measured on the ink (pixels above the threshold, images in [−1, 1]):

- **thickness** w = A / (P / 2): ink area A over half its boundary length P (pixel edges between ink
  and background). A stroke of width w and length L has A = wL and P = 2(L + w), so the measure is
  wL/(L + w) → w for long strokes.
- **slant** s = Cov(x, y) / Var(y) of the ink's pixel coordinates (y pointing up): the horizontal
  shift per row, the shear that MNIST's deskewing removes; s > 0 leans right.
- **size** √(h·w): the geometric mean of the height and width of the ink's bounding box, in pixels.
  (Not the height alone: MNIST normalises every digit into a 20-pixel box, so most heights are 20
  and the tertile words of the height would leave the middle word empty.)

:class:`CaptionScheme` turns each attribute into three words by the tertiles of the training set
(so each word covers about a third of the images) and writes captions such as ``"太い 右に傾いた 7"``
or ``"thick right-slanted 7"``; :meth:`CaptionScheme.parse` reads a caption back, so generated
images can be judged against the prompt that made them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.errors import ConfigError

__all__ = ["ATTRIBUTES", "CaptionScheme", "measure_attributes"]

ATTRIBUTES = ("thickness", "slant", "size")
WORDS = {  # per attribute: (low, middle, high) in Japanese and English
    "thickness": (("細い", "普通の太さの", "太い"), ("thin", "regular", "thick")),
    "slant": (("左に傾いた", "まっすぐな", "右に傾いた"), ("left-slanted", "upright", "right-slanted")),
    "size": (("小さい", "中くらいの", "大きい"), ("small", "medium", "large")),
}


def measure_attributes(images: torch.Tensor, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Thickness, slant and size (module docstring) of each image (N, 1, H, W) → {name: (N,) float64}.
    An image without ink gets NaN."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ConfigError(f"attributes are measured on grey images (N, 1, H, W), got {tuple(images.shape)}")
    ink = (images[:, 0] > threshold).cpu().numpy()  # (N, H, W) bool
    n, h, w = ink.shape
    area = ink.sum((1, 2)).astype(np.float64)
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    edges = (padded[:, 1:, :] != padded[:, :-1, :]).sum((1, 2)) + (padded[:, :, 1:] != padded[:, :, :-1]).sum((1, 2))
    ys, xs = np.meshgrid(-np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")  # y up
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (ink * xs).sum((1, 2)) / area
        my = (ink * ys).sum((1, 2)) / area
        cov = (ink * (xs - mx[:, None, None]) * (ys - my[:, None, None])).sum((1, 2)) / area
        var_y = (ink * (ys - my[:, None, None]) ** 2).sum((1, 2)) / area
        slant = cov / var_y
        thickness = area / (edges / 2)
    rows, cols = ink.any(2), ink.any(1)
    height = h - rows[:, ::-1].argmax(1) - rows.argmax(1)
    width = w - cols[:, ::-1].argmax(1) - cols.argmax(1)
    size = np.where(area > 0, np.sqrt(height * width.astype(np.float64)), np.nan)
    return {"thickness": np.where(area > 0, thickness, np.nan), "slant": np.where(area > 0, slant, np.nan), "size": size}


@dataclass
class CaptionScheme:
    """Word bins for each attribute (the tertiles of a training set) and the class names."""

    class_names: tuple[str, ...] = tuple(str(d) for d in range(10))
    cuts: dict[str, tuple[float, float]] = field(default_factory=dict)  # attribute → (low/middle, middle/high) edges

    @classmethod
    def fit(cls, images: torch.Tensor, class_names: tuple[str, ...] | None = None) -> CaptionScheme:
        """Tertile edges of each attribute on ``images``."""
        values = measure_attributes(images)
        cuts = {a: tuple(float(q) for q in np.nanquantile(values[a], [1 / 3, 2 / 3])) for a in ATTRIBUTES}
        return cls(class_names=tuple(class_names) if class_names else cls().class_names, cuts=cuts)

    def bins(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """Each image's word index (0 low, 1 middle, 2 high) per attribute → {name: (N,) int}."""
        values = measure_attributes(images)
        return {a: np.digitize(np.nan_to_num(values[a], nan=self.cuts[a][0]), self.cuts[a]) for a in ATTRIBUTES}

    def caption(self, label: int, bins: dict[str, int], lang: str = "ja", attributes: tuple[str, ...] = ATTRIBUTES) -> str:
        """e.g. ``"太い 右に傾いた 7"`` / ``"thick right-slanted 7"`` (attributes in the order given)."""
        if lang not in ("ja", "en"):
            raise ConfigError(f"captions are written in 'ja' or 'en', not {lang!r}")
        words = [WORDS[a][0 if lang == "ja" else 1][int(bins[a])] for a in attributes]
        return " ".join([*words, self.class_names[int(label)]])

    def captions(self, images: torch.Tensor, labels: torch.Tensor, lang: str = "ja", attributes: tuple[str, ...] = ATTRIBUTES) -> list[str]:
        b = self.bins(images)
        return [self.caption(int(y), {a: b[a][i] for a in ATTRIBUTES}, lang, attributes) for i, y in enumerate(labels.tolist())]

    def random_captions(self, images: torch.Tensor, labels: torch.Tensor, langs: tuple[str, ...] = ("ja", "en"),
                        keep_prob: float = 0.5, seed: int = 0) -> list[str]:  # fmt: skip
        """One caption per image naming its class and a random subset of its attributes (each kept
        with probability ``keep_prob``) in a random language of ``langs``, drawn once from ``seed``:
        so a model trained on them also understands prompts that name only some attributes
        ("太い 7"), and the empty subset ("7") too."""
        if not langs or any(lang not in ("ja", "en") for lang in langs):
            raise ConfigError(f"captions are written in 'ja' and/or 'en', not {langs!r}")
        rng = np.random.default_rng(seed)
        b = self.bins(images)
        keep = rng.random((len(labels), len(ATTRIBUTES))) < keep_prob
        lang = rng.integers(len(langs), size=len(labels))
        return [self.caption(int(y), {a: b[a][i] for a in ATTRIBUTES}, langs[lang[i]], tuple(a for a, k in zip(ATTRIBUTES, keep[i]) if k))
                for i, y in enumerate(labels.tolist())]  # fmt: skip

    def vocabulary(self) -> list[str]:
        """Every word a caption can hold, in both languages."""
        return [w for ja, en in WORDS.values() for w in (*ja, *en)] + list(self.class_names)

    def to_dict(self) -> dict:
        return {"class_names": list(self.class_names), "cuts": {a: list(c) for a, c in self.cuts.items()}}

    @classmethod
    def from_dict(cls, raw: dict) -> CaptionScheme:
        try:
            cuts = {a: (float(raw["cuts"][a][0]), float(raw["cuts"][a][1])) for a in ATTRIBUTES}
            return cls(class_names=tuple(str(c) for c in raw["class_names"]), cuts=cuts)
        except (KeyError, TypeError, ValueError, IndexError):
            raise ConfigError(f"caption scheme {raw!r} is not valid: it needs class_names and two cuts for each of {', '.join(ATTRIBUTES)}") from None

    def parse(self, caption: str) -> tuple[int | None, dict[str, int]]:
        """(class or None, {attribute: word index}) named in ``caption`` (either language); words not
        in the vocabulary are ignored, so a prompt may name any subset."""
        found: dict[str, int] = {}
        label = None
        for token in caption.split():
            for a, (ja, en) in WORDS.items():
                if token in ja:
                    found[a] = ja.index(token)
                elif token in en:
                    found[a] = en.index(token)
            if token in self.class_names:
                label = self.class_names.index(token)
        return label, found
