"""genlab.data.captions: attributes against closed forms on drawn strokes, tertile bins, captions
that parse back to what they say."""

import itertools

import numpy as np
import pytest
import torch

from genlab.data.captions import ATTRIBUTES, WORDS, CaptionScheme, measure_attributes
from genlab.errors import ConfigError


def canvas(n=1, size=28):
    return -torch.ones(n, 1, size, size)


@pytest.mark.parametrize("width, length", [(1, 10), (3, 12), (5, 20)])
def test_thickness_and_size_of_an_upright_bar(width, length):
    x = canvas()
    x[0, 0, 4 : 4 + length, 10 : 10 + width] = 1.0
    a = measure_attributes(x)
    assert a["thickness"][0] == pytest.approx(width * length / (length + width))  # A / (P/2), P = 2(L + w)
    assert a["size"][0] == pytest.approx(np.sqrt(length * width)) and a["slant"][0] == pytest.approx(0.0)  # √(h·w) of the box


@pytest.mark.parametrize("direction", [1, -1])
def test_slant_of_a_sheared_bar_is_its_shear(direction):
    # rows r = 0..L-1 from the top (y = −r); the bar moves one column per row: x = c + k ± (L − 1 − r)
    x, length = canvas(size=40), 16
    for r in range(length):
        shift = direction * (length - 1 - r)
        x[0, 0, 6 + r, 20 + shift - 1 : 20 + shift + 2] = 1.0  # width 3
    assert measure_attributes(x)["slant"][0] == pytest.approx(direction)  # Cov(x, y)/Var(y) = ±1 exactly


def test_empty_images_get_nan_and_shapes_are_checked():
    a = measure_attributes(canvas(2))
    assert all(np.isnan(a[k]).all() for k in ATTRIBUTES)
    with pytest.raises(ConfigError, match="grey images"):
        measure_attributes(torch.zeros(2, 3, 8, 8))


def test_size_is_not_tied_on_real_digits():
    """MNIST-like digits share one height; the size words must still each name a real share of them."""
    from genlab.data import load_digits

    x = torch.nn.functional.interpolate(load_digits("train")[0], size=(28, 28), mode="bilinear", align_corners=False)
    shares = np.bincount(CaptionScheme.fit(x).bins(x)["size"], minlength=3) / len(x)
    assert shares.min() > 0.15, shares


def test_tertiles_split_real_digits_in_thirds():
    from genlab.data import load_digits

    x = torch.nn.functional.interpolate(load_digits("train")[0], size=(28, 28), mode="bilinear", align_corners=False)
    scheme = CaptionScheme.fit(x)
    bins = scheme.bins(x)
    for a in ("thickness", "slant"):  # continuous measures: thirds up to ties
        counts = np.bincount(bins[a], minlength=3)
        assert np.all(np.abs(counts - len(x) / 3) < 0.05 * len(x)), (a, counts)
    values = measure_attributes(x)
    lo, hi = scheme.cuts["slant"]
    assert np.array_equal(bins["slant"], (values["slant"] >= lo).astype(int) + (values["slant"] >= hi).astype(int))


def test_captions_parse_back_in_both_languages():
    scheme = CaptionScheme(cuts={a: (0.0, 1.0) for a in ATTRIBUTES})
    for label, combo in itertools.product(range(10), itertools.product(range(3), repeat=3)):
        bins = dict(zip(ATTRIBUTES, combo))
        for lang in ("ja", "en"):
            text = scheme.caption(label, bins, lang)
            assert scheme.parse(text) == (label, bins), text
    assert scheme.caption(7, {"thickness": 2, "slant": 2, "size": 0}, "ja") == "太い 右に傾いた 小さい 7"
    assert scheme.caption(7, {"thickness": 0}, "en", attributes=("thickness",)) == "thin 7"
    assert scheme.parse("太い 7") == (7, {"thickness": 2})  # a prompt may name any subset
    assert len({w for a in WORDS.values() for lang in a for w in lang}) == 18  # no word means two things
    with pytest.raises(ConfigError, match="'ja' or 'en'"):
        scheme.caption(1, bins, "fr")
