"""Figures (matplotlib, Agg backend): samples over the true density, and friends."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def density_grid(log_prob_fn, xlim, ylim, n: int = 200):
    """(X, Y, log p) on an n×n grid for a contour plot."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    xx, yy = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.get_default_dtype())
    with torch.no_grad():
        logp = log_prob_fn(pts).reshape(n, n).numpy()
    return xx, yy, logp


def samples_over_density(
    panels: list[tuple[str, torch.Tensor]],
    log_prob_fn,
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    max_points: int = 2000,
) -> Figure:
    """One panel per (title, samples (N, 2)): samples over the log-density, shaded over 12 nats
    below its maximum so that light modes stay visible."""
    xx, yy, logp = density_grid(log_prob_fn, xlim, ylim)
    shade = np.maximum(logp, logp.max() - 12.0)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels, strict=True):
        ax.contourf(xx, yy, shade, levels=12, cmap="Blues")
        pts = x[:max_points].detach().cpu().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:red", alpha=0.5, linewidths=0)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    """Write a PNG and release the figure's memory."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
