"""genlab.viz: exact grids, PNG/GIF files, the loss plot, and Japanese glyphs in figures."""

import io
import subprocess
import sys
import textwrap
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from genlab.errors import GenlabError  # noqa: E402
from genlab.viz import make_grid, plot_losses, save_gif, save_grid, setup_japanese_font, to_uint8  # noqa: E402

P = 128  # the padding gray


def test_value_mapping_minus_one_to_one():
    x = np.array([-1.0, -2.0, 0.0, 1.0, 5.0, -0.5, np.nan])
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 128, 255, 255, 64, 0])
    assert to_uint8(torch.tensor([1.0], requires_grad=True)).tolist() == [255]


def test_grid_exact_for_two_tiny_gray_images():
    a = np.array([[-1.0, 1.0], [1.0, -1.0]])  # → [[0, 255], [255, 0]]
    b = np.zeros((2, 2))  # → 128
    out = make_grid(np.stack([a, b])[:, None], nrow=2, padding=1, pad_value=7)
    expected = np.array(
        [
            [7, 7, 7, 7, 7, 7, 7],
            [7, 0, 255, 7, 128, 128, 7],
            [7, 255, 0, 7, 128, 128, 7],
            [7, 7, 7, 7, 7, 7, 7],
        ],
        dtype=np.uint8,
    )
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    # One image per row stacks them vertically: (2·(2+1)+1, 1·(2+1)+1).
    assert make_grid(np.stack([a, b])[:, None], nrow=1).shape == (7, 4)


def test_grid_shape_default_nrow_and_partial_last_row():
    x = torch.full((5, 1, 3, 4), -1.0)
    out = make_grid(x, padding=2)  # nrow = ceil(sqrt(5)) = 3 → 2 rows
    assert out.shape == (2 * (3 + 2) + 2, 3 * (4 + 2) + 2)
    assert (out[2:5, 2:6] == 0).all()  # first image
    assert (out[7:10, 14:18] == P).all()  # the empty 6th slot stays padding
    assert make_grid(x, padding=0).shape == (6, 12)


def test_grid_rgb_keeps_channels_in_order():
    x = -torch.ones(1, 3, 2, 2)
    x[0, 0] = 1.0  # red
    out = make_grid(x, padding=0)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 2, 4, 4), (0, 1, 4, 4)])
def test_grid_rejects_bad_shapes(shape):
    with pytest.raises(GenlabError, match="C = 1 or 3"):
        make_grid(np.zeros(shape))


def test_save_grid_png_is_nearest_neighbour_upscaled(tmp_path):
    x = torch.tensor([[[[-1.0, 1.0]]]])  # one 1×2 image
    path = save_grid(x, tmp_path / "sub" / "g.png", scale=3)
    img = np.asarray(Image.open(path))
    assert img.shape == (3 * 3, 4 * 3)  # (1+2)·3, (2+2)·3
    np.testing.assert_array_equal(img, make_grid(x).repeat(3, 0).repeat(3, 1))


def test_save_gif_frames_loop_and_hold_last(tmp_path):
    frames = [torch.full((4, 1, 5, 5), v) for v in np.linspace(-1, 1, 6)]
    path = save_gif(frames, tmp_path / "a.gif", nrow=2, scale=2, duration_ms=50)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.info["loop"] == 0
        assert gif.size == ((2 * 6 + 1) * 2, (2 * 6 + 1) * 2)
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
            # The frame's centre pixel of image 0 is the batch value mapped to gray.
            assert abs(int(np.asarray(gif.convert("L"))[5, 5]) - int(to_uint8(frames[i][0, 0, 0, 0]))) <= 1
    assert durations[:-1] == [50] * 5 and durations[-1] >= 1000


def test_save_gif_needs_frames(tmp_path):
    with pytest.raises(GenlabError, match="at least one frame"):
        save_gif([], tmp_path / "x.gif")


def test_plot_losses_smoothing_matches_pandas_and_log_scale():
    rng = np.random.default_rng(0)
    losses = np.exp(-np.linspace(0, 5, 300)) * (1 + 0.3 * rng.random(300))  # spans > 10×
    fig, ax = plt.subplots()
    assert plot_losses(losses, ax=ax, smooth=0.9, title="t") is ax
    raw, smoothed = ax.get_lines()
    np.testing.assert_allclose(raw.get_ydata(), losses)
    # Bias-corrected EMA == pandas' ewm(adjust=True) weighted mean.
    ref = pd.Series(losses).ewm(alpha=0.1, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(smoothed.get_ydata(), ref, rtol=1e-12)
    assert ax.get_yscale() == "log" and ax.get_title() == "t"
    plt.close(fig)


def test_plot_losses_linear_when_not_positive_or_narrow():
    ax = plot_losses([0.5, -0.1, 0.2])
    assert ax.get_yscale() == "linear"
    ax2 = plot_losses(torch.tensor([1.0, 0.9, 0.8]), smooth=None)
    assert ax2.get_yscale() == "linear" and len(ax2.get_lines()) == 1
    with pytest.raises(GenlabError, match="smooth"):
        plot_losses([1.0], smooth=1.0)
    plt.close("all")


JAPANESE = "正規分布の確率密度"


def render_glyph_warnings() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label="平均 $\\mu$")
        ax.set_title(JAPANESE)
        ax.set_xlabel("確率変数 $x$")
        ax.set_ylabel("密度")
        ax.legend()
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    return [str(w.message) for w in caught if "Glyph" in str(w.message) or "missing from font" in str(w.message)]


def test_japanese_font_renders_without_missing_glyphs():
    with matplotlib.rc_context():
        assert setup_japanese_font() == "IPAexGothic"
        assert setup_japanese_font() == "IPAexGothic"  # idempotent
        assert render_glyph_warnings() == []
        plt.rcdefaults()  # a reset drops the font; calling again restores it
        setup_japanese_font()
        assert matplotlib.rcParams["font.family"][0] == "IPAexGothic"
        assert render_glyph_warnings() == []


def test_without_setup_glyphs_are_missing():
    """Control: in a clean process (DejaVu Sans), the same figure does warn — the check is real."""
    code = textwrap.dedent(
        """
        import io, warnings, matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        assert matplotlib.rcParams["font.family"] == ["sans-serif"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig, ax = plt.subplots()
            ax.set_title("%s")
            fig.savefig(io.BytesIO(), format="png")
        print(sum("Glyph" in str(w.message) for w in caught))
        """
        % JAPANESE
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= len(set(JAPANESE)) - 1
