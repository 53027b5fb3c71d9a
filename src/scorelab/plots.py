"""Figures (matplotlib, Agg backend): samples over the true density, and friends.

Every function takes torch tensors or numpy arrays and returns a matplotlib Figure; `save`
writes it (atomically) and closes it. Nothing here calls plt.show.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from scorelab._utils import ScorelabError  # noqa: E402


def density_grid(log_prob_fn, xlim, ylim, n: int = 200):
    """(X, Y, log p) on an n×n grid for a contour plot."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    xx, yy = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.get_default_dtype())
    with torch.no_grad():
        logp = log_prob_fn(pts).reshape(n, n).detach().cpu().double().numpy()
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
        ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    """Write a PNG (format from the suffix) atomically and release the figure's memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden temp name: a report built meanwhile never globs a half-written figures/*.png.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, dpi=110, format=path.suffix[1:].lower() or "png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _np(x) -> np.ndarray:
    """A tensor, array or sequence as a float64 numpy array (None entries → NaN)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    if isinstance(x, (list, tuple)):
        x = [math.nan if v is None else v for v in x]
    return np.asarray(x, dtype=np.float64)


def _shade(ax, log_prob_fn, xlim, ylim) -> None:
    """log p under a panel, clipped 12 nats below its max (as in samples_over_density)."""
    xx, yy, logp = density_grid(log_prob_fn, xlim, ylim)
    ax.contourf(xx, yy, np.maximum(logp, logp.max() - 12.0), levels=12, cmap="Blues")


def _grid_axes(n_panels: int, ncols: int | None, size: float = 3.6):
    """n_panels axes laid out on ncols columns; spare cells removed so len(fig.axes) == n_panels."""
    if n_panels < 1:
        raise ScorelabError("a figure needs at least one panel")
    ncols = max(1, min(ncols or n_panels, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        fig.delaxes(ax)
    return fig, flat[:n_panels]


def score_fields(
    panels: Sequence[tuple[str, Callable]],
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int = 21,
    log_prob_fn=None,
    ncols: int | None = None,
) -> Figure:
    """One quiver plot per (title, field) on an n×n grid (seed 001 Figs. 2, 4, 10).

    field maps an (M, 2) tensor to (M, 2) scores. Scores near a peaked mode are huge, so arrows
    are normalised per panel (the longest spans 1.5 grid cells) and the title gives max ‖s‖.
    """
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    xx, yy = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.get_default_dtype())
    cell = min((xlim[1] - xlim[0]) / max(n - 1, 1), (ylim[1] - ylim[0]) / max(n - 1, 1))
    fig, axes = _grid_axes(len(panels), ncols)
    for ax, (title, field) in zip(axes, panels, strict=True):
        v = _np(field(pts)).reshape(n * n, 2)
        norms = np.linalg.norm(v, axis=1)
        finite = np.isfinite(norms)
        vmax = float(norms[finite].max()) if finite.any() else math.nan
        u = v * (1.5 * cell / vmax) if vmax > 0 else np.zeros_like(v)
        u[~finite] = np.nan  # quiver leaves non-finite arrows out
        if log_prob_fn is not None:
            _shade(ax, log_prob_fn, xlim, ylim)
        ax.quiver(
            xx.ravel(),
            yy.ravel(),
            u[:, 0],
            u[:, 1],
            angles="xy",
            scale_units="xy",
            scale=1.0,
            width=0.004,
            color="tab:red",
        )
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_title(f"{title}\nmax ‖s‖ = {vmax:.3g}", fontsize=9)
        ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def trajectories(
    traj,
    log_prob_fn=None,
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n_chains: int = 8,
    title: str = "",
) -> Figure:
    """The first n_chains paths of a (S, N, 2) trajectory: lines, start ○, end ×, over log p."""
    t = _np(traj)
    if t.ndim != 3 or t.shape[2] != 2:
        raise ScorelabError(f"traj must have shape (S, N, 2), got {t.shape}")
    k = min(n_chains, t.shape[1])
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    if log_prob_fn is not None:
        _shade(ax, log_prob_fn, xlim, ylim)
    colours = plt.get_cmap("tab10")
    for i in range(k):
        ax.plot(t[:, i, 0], t[:, i, 1], lw=0.8, alpha=0.85, color=colours(i % 10))
    ax.scatter(
        t[0, :k, 0],
        t[0, :k, 1],
        marker="o",
        s=22,
        facecolors="none",
        edgecolors="k",
        linewidths=0.9,
        label="start",
        zorder=3,
    )
    ax.scatter(
        t[-1, :k, 0], t[-1, :k, 1], marker="x", s=26, c="k", linewidths=1.1, label="end", zorder=3
    )
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_title(title or f"{k} chains, {t.shape[0]} recorded states", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def _gaussian_norm_mean(dim: int) -> float:
    """E‖z‖ for z ~ N(0, I_dim): σ·E‖s(x, σ)‖ once the noise dominates (σ ≫ data scale)."""
    return math.sqrt(2.0) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))


def norm_vs_sigma(
    sigmas, curves: dict, *, times_sigma: bool = True, dim: int | None = None
) -> Figure:
    """E‖s(x, σ)‖ against σ (log–log) and, with times_sigma, σ·E‖s‖ against σ (seed 001 Fig. 5).

    The NCSN weighting λ(σ) = σ² rests on σ‖s‖ being about constant; with `dim`, a dashed line
    marks E‖z‖ for z ~ N(0, I_dim), the value it tends to when the noise dominates.
    """
    sig = _np(sigmas)
    fig, axes = plt.subplots(
        1, 2 if times_sigma else 1, figsize=(8.4 if times_sigma else 4.4, 3.6), squeeze=False
    )
    ax0 = axes[0][0]
    for label, values in curves.items():
        ax0.loglog(sig, _np(values), marker="o", ms=3, label=str(label))
    ax0.set_xlabel("σ")
    ax0.set_ylabel("E‖s(x, σ)‖")
    if times_sigma:
        ax1 = axes[0][1]
        for label, values in curves.items():
            ax1.semilogx(sig, sig * _np(values), marker="o", ms=3, label=str(label))
        if dim is not None:
            ax1.axhline(_gaussian_norm_mean(dim), ls="--", c="gray", lw=1, label=f"E‖z‖, d={dim}")
        ax1.set_xlabel("σ")
        ax1.set_ylabel("σ · E‖s(x, σ)‖")
        ax1.set_ylim(bottom=0)
    for ax in axes[0]:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def _plain_log_labels(axis) -> None:
    """Label a log axis as 200, 1000, … and, over at most 2 decades, also at 2· and 5·10ᵏ."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi / lo <= 100:
        mantissa = lambda v: round(v / 10 ** math.floor(math.log10(v) + 1e-9))  # noqa: E731
        axis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if mantissa(v) in (2, 5) else "")
        )
    else:
        axis.set_minor_formatter(NullFormatter())


def metric_vs_nfe(
    curves: dict, *, metric: str = "MMD²", logx: bool = True, logy: bool = False
) -> Figure:
    """A sample-quality metric against score evaluations per chain, one line per sampler."""
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for label, (nfe, values) in curves.items():
        ax.plot(_np(nfe), _np(values), marker="o", ms=3, label=str(label))
    if logx:
        ax.set_xscale("log")
        _plain_log_labels(ax.xaxis)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("NFE (score evaluations per chain)")
    ax.set_ylabel(metric)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def moving_average(values, window: int) -> np.ndarray:
    """Trailing mean over the last `window` finite values (NaN-aware; same length as values)."""
    v = _np(values)
    ok = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - max(int(window), 1), 0)
    cnt = ccnt[idx] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (csum[idx] - csum[lo]) / np.maximum(cnt, 1), np.nan)


def loss_curve(steps, losses, *, smooth: int = 50) -> Figure:
    """Training loss: raw values (light) and a trailing moving average over `smooth` points."""
    s, v = _np(steps), _np(losses)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(s, v, lw=0.8, alpha=0.35, color="tab:blue", label="loss")
    ax.plot(
        s,
        moving_average(v, smooth),
        lw=1.6,
        color="tab:blue",
        label=f"moving average ({min(smooth, len(v))})",
    )
    finite = v[np.isfinite(v)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")  # positive losses (DSM) spanning decades
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def histogram_1d(
    panels: Sequence[tuple[str, object]], *, bins: int = 60, density_fn=None
) -> Figure:
    """One normalised histogram per (title, values); density_fn maps an (M,) grid to p(x) (M,)."""
    fig, axes = _grid_axes(len(panels), None, size=3.4)
    for ax, (title, values) in zip(axes, panels, strict=True):
        x = _np(values).ravel()
        x = x[np.isfinite(x)]
        ax.hist(x, bins=bins, density=True, color="tab:red", alpha=0.55)
        if density_fn is not None and x.size:
            lo, hi = ax.get_xlim()
            grid = torch.linspace(lo, hi, 400, dtype=torch.get_default_dtype())
            ax.plot(grid.numpy(), _np(density_fn(grid)), c="k", lw=1.2)
        ax.set_title(title, fontsize=9)
        ax.tick_params(which="both", labelsize=7)
    fig.tight_layout()
    return fig


def image_grid(
    images,
    nrow: int | None = None,
    *,
    title: str = "",
    ax=None,
    padding: int = 1,
    pad_value: float = 0.5,
    size: float = 4.0,
) -> Figure:
    """Images (N, C, H, W) in [0, 1] tiled nrow per row (`images.tile_images`), drawn unsmoothed.

    Grayscale uses the gray colour map on a fixed [0, 1] scale (0 black). With `ax`, draws there
    and returns its figure; otherwise a new size×size-inch figure. Pixel-exact PNGs:
    `images.save_png_grid`.
    """
    from scorelab.images import tile_images

    grid = tile_images(images, nrow, padding=padding, pad_value=pad_value)
    if ax is None:
        fig, ax = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1]))
    else:
        fig = ax.figure
    if grid.shape[2] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig
