"""Seed 002 (lecture, "Example: image denoising"): the binary MRF's MAP by ICM and by annealing.

Data: held-out scikit-learn digits (`load_digits("test")`), binarised y = [v/16 > 0.5] (raw value
≥ 9 of 16), at 8×8 and upscaled 4× by nearest neighbour to 32×32.  Each pixel is flipped
independently with probability p (`flip_pixels`), then `denoise_binary` looks for the MAP of
p(y | x) ∝ exp(−E(y; x)) with η = ½ log((1−p)/p) (exact for this noise) and (β, h) chosen on a
corrupted subset of the training split by a small grid: the pair maximising annealing's pixel
accuracy is used by both solvers, so their energies are of one objective; ICM's accuracy with
its own best pair is reported beside it.  The test images never choose a parameter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from scorelab.ebm.mrf import (
    DenoiseResult,
    denoise_binary,
    eta_from_flip_rate,
    flip_pixels,
    mrf_energy,
    pixel_accuracy,
)
from scorelab.experiments import experiment
from scorelab.experiments._common2 import generator, table
from scorelab.images import load_digits
from scorelab.plots import image_grid, save
from scorelab.runs import figures_dir

NAME = "seed002-mrf"
TITLE = "Binary denoising MRF: MAP by ICM and by simulated annealing on binarised digits"
SEED_REF = "seed 002 (lecture: energy-based models, image denoising MRF)"
THRESHOLD = 0.5  # y = 1 where v/16 > 0.5


@dataclass(frozen=True)
class Settings:
    ps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    scales: tuple[int, ...] = (1, 4)  # 8×8 and 32×32
    n_test: int | None = None  # None: every held-out digit
    n_tune: int = 100  # training digits the (β, h) grid is scored on
    betas: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0)
    hs: tuple[float, ...] = (-0.5, -0.3, -0.1, 0.0, 0.1)
    icm_sweeps: int = 100
    anneal_sweeps: int = 200
    schedule: tuple[float, float] = (3.0, 0.05)
    fig_p: float = 0.2
    n_show: int = 6


FULL = Settings()
SMALL = replace(
    FULL,
    ps=(0.1, 0.3),
    n_test=16,
    n_tune=12,
    betas=(0.2, 0.5, 1.0),
    hs=(-0.1, 0.0),
    anneal_sweeps=40,
    fig_p=0.1,
    n_show=4,
)


def binarised(split: str, n: int | None, scale: int) -> Tensor:
    """(N, 8s, 8s) int64 digits thresholded at v/16 > 0.5, upscaled s× by nearest neighbour."""
    y = (load_digits(split).images[:n, 0] > THRESHOLD).long()
    return y.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


def _solve(x: Tensor, method: str, s: Settings, beta: float, eta: float, h: float, g):
    sweeps = s.icm_sweeps if method == "icm" else s.anneal_sweeps
    return denoise_binary(
        x, method=method, beta=beta, eta=eta, h=h, sweeps=sweeps, schedule=s.schedule, generator=g
    )


def tune(y: Tensor, p: float, s: Settings, seed: int, part: int) -> dict[str, tuple[float, float]]:
    """Per solver, the (β, h) of the grid with the best mean pixel accuracy on training digits."""
    x = flip_pixels(y, p, generator=generator(seed, part))
    eta = eta_from_flip_rate(p)
    best: dict[str, tuple[float, float, float]] = {}
    for method in ("icm", "anneal"):
        for beta in s.betas:
            for h in s.hs:
                res = _solve(x, method, s, beta, eta, h, generator(seed, part + 1))
                acc = float(pixel_accuracy(res.images, y).mean())
                if method not in best or acc > best[method][0]:
                    best[method] = (acc, beta, h)
    return {m: (b, h) for m, (_, b, h) in best.items()}


def _mean_se(v: Tensor) -> tuple[float, float]:
    v = v.double()
    return float(v.mean()), float(v.std() / math.sqrt(len(v))) if len(v) > 1 else math.nan


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    figs = figures_dir(out_dir)
    rows, own_rows, curves, shown = [], [], {}, {}
    for k, scale in enumerate(s.scales):
        label = f"{8 * scale}×{8 * scale}"
        y = binarised("test", s.n_test, scale)
        y_tune = binarised("train", s.n_tune, scale)
        for i, p in enumerate(s.ps):
            part = 1000 * k + 10 * i
            params = tune(y_tune, p, s, seed, part)
            eta = eta_from_flip_rate(p)
            x = flip_pixels(y, p, generator=generator(seed, part + 2))
            beta, h = params["anneal"]
            icm = _solve(x, "icm", s, beta, eta, h, None)
            ann = _solve(x, "anneal", s, beta, eta, h, generator(seed, part + 3))
            own = _solve(x, "icm", s, params["icm"][0], eta, params["icm"][1], None)
            acc = {
                "corrupted": pixel_accuracy(x, y),
                "icm": pixel_accuracy(icm.images, y),
                "anneal": pixel_accuracy(ann.images, y),
                "icm_own": pixel_accuracy(own.images, y),
            }
            stats = {m: _mean_se(a) for m, a in acc.items()}
            # below the solvers' energies only where the MAP is not the true image
            e_true = mrf_energy(y, x, beta=beta, eta=eta, h=h)
            rows.append(
                [label, p, eta, beta, h, len(y),
                 *stats["corrupted"], *stats["icm"], *stats["anneal"],
                 float(e_true.mean()), float(icm.energies[-1].mean()),
                 float(ann.energies[-1].mean()),
                 float((ann.energies[-1] < icm.energies[-1] - 1e-9).double().mean()),
                 float((ann.energies[-1] > icm.energies[-1] + 1e-9).double().mean()),
                 float((ann.energies[-1] < e_true - 1e-9).double().mean()),
                 float(icm.sweeps.double().mean()), int(icm.sweeps.max()),
                 float(ann.sweeps.double().mean()), icm.info["seconds"], ann.info["seconds"]]
            )  # fmt: skip
            own_rows.append([label, p, *params["icm"], *stats["icm_own"], *stats["icm"]])
            for m, (mean, se) in stats.items():
                curves.setdefault(label, {}).setdefault(m, []).append((p, mean, se))
            if math.isclose(p, s.fig_p):
                shown[label] = (y, x, icm, ann)
    tables = {
        "accuracy": table(
            ["size", "p", "η", "β", "h", "images", "corrupted", "s.e. corrupted", "ICM",
             "s.e. ICM", "annealing", "s.e. annealing", "E(true y)", "E(ICM)", "E(annealing)",
             "frac. E(anneal) < E(ICM)", "frac. E(anneal) > E(ICM)",
             "frac. E(anneal) < E(true y)", "ICM sweeps (mean)",
             "ICM sweeps (max)", "annealing sweeps incl. polish (mean)", "ICM seconds",
             "annealing seconds"],
            rows,
        ),
        "icm_own_parameters": table(
            ["size", "p", "β (ICM's best)", "h (ICM's best)", "ICM accuracy", "s.e.",
             "ICM accuracy at annealing's (β, h)", "s.e. "],
            own_rows,
        ),
    }  # fmt: skip
    if shown:
        save(_examples_figure(shown, s), figs / f"{NAME}_examples.png")
        save(_energy_figure(shown, s), figs / f"{NAME}_energy.png")
    save(_accuracy_figure(curves), figs / f"{NAME}_accuracy.png")
    summary = []
    for label, c in curves.items():
        parts = [
            f"p={p:g}: {c['corrupted'][j][1]:.3f} → ICM {c['icm'][j][1]:.3f}, "
            f"anneal {c['anneal'][j][1]:.3f}"
            for j, p in enumerate(s.ps)
        ]
        summary.append(f"{label} pixel accuracy (held-out digits): " + "; ".join(parts))
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
    }


def _examples_figure(shown: dict[str, tuple[Tensor, Tensor, DenoiseResult, DenoiseResult]], s):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, len(shown), figsize=(4.0 * len(shown), 4.6), squeeze=False)
    for c, (label, (y, x, icm, ann)) in enumerate(shown.items()):
        k = s.n_show
        for r, (name, img) in enumerate(
            [("true", y), (f"corrupted, p={s.fig_p:g}", x), ("ICM", icm.images),
             ("annealing", ann.images)]
        ):  # fmt: skip
            acc = float(pixel_accuracy(img[:k], y[:k]).mean())
            title = f"{label}: {name}" + ("" if r == 0 else f" (acc. {acc:.3f})")
            image_grid(img[:k, None].float(), nrow=k, title=title, ax=axes[r, c])
    fig.tight_layout()
    return fig


def _gap(e: Tensor, e_true: Tensor) -> np.ndarray:
    return (e - e_true).mean(dim=-1).numpy()


def _energy_figure(shown: dict[str, tuple[Tensor, Tensor, DenoiseResult, DenoiseResult]], s):
    """Mean over images of E − E(true y) per sweep: ICM, annealing's chain, its returned state."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(4.4 * len(shown), 3.4), squeeze=False)
    for ax, (label, (y, x, icm, ann)) in zip(axes[0], shown.items(), strict=True):
        info = ann.info
        e_true = mrf_energy(y, x, beta=info["beta"], eta=info["eta"], h=info["h"])
        n_ann = info["anneal_sweeps"]
        ax.plot(np.arange(len(icm.energies)), _gap(icm.energies, e_true), "o-", ms=3, label="ICM")
        ax.axhline(float(_gap(icm.energies[-1], e_true)), color="C0", ls=":", lw=1)
        ax.plot(
            np.arange(1, n_ann + 1),
            _gap(info["chain_energies"], e_true),
            color="C2",
            alpha=0.5,
            lw=1,
            label="annealing chain",
        )
        ax.plot(np.arange(len(ann.energies)), _gap(ann.energies, e_true), color="C2",
                label="annealing, best so far (+ ICM polish)")  # fmt: skip
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=10.0)
        ax.set_title(f"{label}, p={s.fig_p:g}, β={info['beta']:g}, h={info['h']:g}", fontsize=9)
        ax.set_xlabel("sweep")
        ax.set_ylabel("mean E(y; x) − E(true y; x)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def _accuracy_figure(curves: dict[str, dict[str, list[tuple[float, float, float]]]]):
    import matplotlib.pyplot as plt

    names = {
        "corrupted": "corrupted (≈ 1 − p)",
        "icm": "ICM",
        "anneal": "annealing",
        "icm_own": "ICM, its own (β, h)",
    }
    fig, axes = plt.subplots(1, len(curves), figsize=(4.4 * len(curves), 3.5), squeeze=False)
    for ax, (label, c) in zip(axes[0], curves.items(), strict=True):
        for m, pts in c.items():
            a = np.asarray(pts, float)
            ax.errorbar(a[:, 0], a[:, 1], yerr=a[:, 2], marker="o", ms=3, capsize=2,
                        label=names[m], ls="--" if m == "icm_own" else "-")  # fmt: skip
        ax.set_title(f"{label} digits (mean ± s.e. over held-out images)", fontsize=9)
        ax.set_xlabel("flip rate p")
        ax.set_ylabel("pixel accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
