"""Small plotting helpers used by the notebooks."""

from __future__ import annotations

import numpy as np

from genlab.errors import GenlabError


def ema_smooth(values, smooth: float) -> np.ndarray:
    """Bias-corrected exponential moving average (as TensorBoard shows it).

    s_t = smooth · s_{t-1} + (1 − smooth) · x_t with s_0 = 0, reported as s_t / (1 − smooth^t),
    i.e. a weighted mean of x_1..x_t with weights smooth^(t−i).
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    s = 0.0
    for t, v in enumerate(x, start=1):
        s = smooth * s + (1.0 - smooth) * v
        out[t - 1] = s / (1.0 - smooth**t)
    return out


def plot_losses(losses, ax=None, smooth: float | None = 0.98, title: str | None = None,
                xlabel: str = "step", ylabel: str = "loss"):
    """Plot a training curve: the raw losses (light) and their smoothed curve (:func:`ema_smooth`).

    The y axis is logarithmic when every loss is positive and they span more than a factor of 10.
    ``smooth=None`` or ``0`` plots the raw curve only. Pass Japanese ``xlabel`` / ``ylabel`` /
    ``title`` after :func:`genlab.viz.setup_japanese_font`. Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if hasattr(losses, "detach"):
        losses = losses.detach().cpu().numpy()
    y = np.asarray(losses, dtype=np.float64).ravel()
    if y.size == 0:
        raise GenlabError("plot_losses needs at least one loss value")
    if smooth is not None and not 0.0 <= smooth < 1.0:
        raise GenlabError(f"smooth must be in [0, 1), got {smooth}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, y.size + 1)
    if smooth:
        ax.plot(steps, y, color="C0", alpha=0.3, linewidth=0.8, label="raw")
        ax.plot(steps, ema_smooth(y, smooth), color="C0", linewidth=1.8, label=f"EMA ({smooth})")
        ax.legend()
    else:
        ax.plot(steps, y, color="C0", linewidth=1.2)
    finite = y[np.isfinite(y)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return ax
