"""Pictures for the course: image grids and GIFs (Pillow + NumPy), loss curves, Japanese fonts.

- :func:`make_grid`, :func:`save_grid`: a batch (N, C, H, W) in [-1, 1] → one uint8 image / PNG
- :func:`save_gif`: a list of batches → a looping animation
- :func:`plot_losses`: raw and smoothed training curve
- :func:`setup_japanese_font`: Japanese titles and labels in matplotlib
"""

from genlab.viz.animation import save_gif
from genlab.viz.fonts import JAPANESE_FONT, setup_japanese_font
from genlab.viz.grid import make_grid, save_grid, to_uint8
from genlab.viz.plots import ema_smooth, plot_losses

__all__ = ["JAPANESE_FONT", "ema_smooth", "make_grid", "plot_losses", "save_gif", "save_grid",
           "setup_japanese_font", "to_uint8"]
