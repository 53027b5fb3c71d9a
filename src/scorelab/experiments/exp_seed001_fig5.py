"""Seed 001 Fig. 5: E‖s_θ(x, σ)‖₂ against σ for a trained NCSN, and the 1/σ law behind λ(σ) = σ².

Seed 001 evaluates Song & Ermon's MNIST network at inputs uniform on [0, 1]^784 and sees
‖s_θ‖ ∝ 1/σ. Here (2 CPU cores): σ-conditional ScoreMLPs trained with the NCSN loss on
  • "ring": 8 tight Gaussians (std 0.05) on a circle of radius 4 — data concentrated far below
    most of the ladder, as images are; exact noised score available;
  • "digits": scikit-learn's 8×8 digits scaled to [0, 1]^64 (full size, only when scikit-learn
    is installed; it is not a scorelab dependency) with the seed's ladder σ = 1 … 0.01; the
    reference is the exact noised score of the empirical law (the DSM optimum on the data);
  • "fig3": the seed's Fig. 3 mixture, exact score only — unit-variance modes, where the law
    must fail below σ ≈ 1.
Each network comes in two parametrisations: plain (NCSN v1, as in the seed) and output/σ
(NCSNv2, `scale_by_sigma`). E‖s‖ is taken over inputs uniform on the data's bounding box (the
seed's protocol) and over x ~ q_σ = p ∗ N(0, σ²I) (where the network was trained).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scorelab.distributions import GaussianMixture, seed001_fig3, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common2 import (
    generator,
    loglog_slope,
    table,
    train,
)
from scorelab.models import ScoreMLP, model_score_fn
from scorelab.objectives import NCSN
from scorelab.plots import norm_vs_sigma, save
from scorelab.runs import figures_dir
from scorelab.schedules import geometric_sigmas

NAME = "seed001-fig5"
TITLE = "E‖s_θ(x, σ)‖ against σ: the 1/σ law behind λ(σ) = σ²"
SEED_REF = "seed 001 Fig. 5 (§3.2.2)"


@dataclass(frozen=True)
class Settings:
    ring_std: float = 0.05
    ring_radius: float = 4.0
    m: int = 5000  # training points (2-D)
    sigma_max: float = 10.0  # ≈ the largest distance between data points (Song & Ermon 2020)
    sigma_min: float = 0.1
    n_levels: int = 12
    hidden: int = 128
    depth: int = 3
    steps: int = 4000
    lr: float = 1e-3
    ema: float = 0.999
    n_eval: int = 2000
    digits: bool = True
    digits_hidden: int = 256
    digits_steps: int = 6000
    digits_sigmas: tuple[float, float, int] = (1.0, 0.01, 10)  # seed 001's MNIST ladder


FULL = Settings()
SMALL = replace(
    FULL,
    m=2000,
    sigma_min=0.3,
    n_levels=6,
    hidden=64,
    depth=2,
    steps=800,
    lr=3e-3,
    ema=0.99,
    n_eval=500,
    digits=False,
)


def ring(s: Settings) -> GaussianMixture:
    ang = torch.arange(8) * (2 * math.pi / 8)
    means = s.ring_radius * torch.stack([ang.cos(), ang.sin()], dim=1)
    return GaussianMixture(means, stds=s.ring_std)


def empirical_noised_score(data: Tensor, block: int = 512):
    """Exact ∇log q_σ for q_σ = (1/M)Σᵢ N(xᵢ, σ²I): Σᵢ wᵢ(x)(xᵢ − x)/σ², with weights
    w = softmax(−‖x − xᵢ‖²/2σ²) (the DSM optimum on the data set itself)."""
    ref = data.double()

    def score(x: Tensor, sigma: Tensor) -> Tensor:
        out = []
        for i in range(0, x.shape[0], block):
            xb, sb = x[i : i + block].double(), sigma[i : i + block].double()[:, None]
            w = torch.softmax(-torch.cdist(xb, ref).square() / (2 * sb**2), dim=1)
            out.append((w @ ref - xb) / sb**2)
        return torch.cat(out).to(x.dtype)

    return score


def load_digits_01() -> Tensor | None:
    """sklearn's 1797 8×8 digits as (1797, 64) in [0, 1]; None without scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    return torch.as_tensor(load_digits().data / 16.0, dtype=torch.get_default_dtype())


def _finish(fig, title: str) -> None:
    """A title above both panels, and σ·E‖s‖ on a log axis: at uniform inputs it spans decades."""
    fig.suptitle(title, fontsize=9)
    ax = fig.axes[1]
    ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()])
    ys = ys[np.isfinite(ys) & (ys > 0)]
    ax.set_yscale("log")
    if ys.size:  # norm_vs_sigma pins the linear axis at 0, which a log axis cannot show
        ax.set_ylim(ys.min() / 1.5, ys.max() * 1.5)
    fig.tight_layout(rect=(0, 0, 1, 0.95))


def _mean_norms(score_fn, x_of_sigma, sigmas: list[float]) -> list[float]:
    out = []
    for s in sigmas:
        x = x_of_sigma(s)
        out.append(float(score_fn(x, torch.full((x.shape[0],), s)).norm(dim=1).mean()))
    return out


def _study(
    name: str,
    data: Tensor,
    sigmas: Tensor,
    exact,
    noised_sample,
    *,
    hidden: int,
    steps: int,
    s: Settings,
    seed: int,
    figs: Path,
) -> tuple[list[list[Any]], dict[str, Any]]:
    """Train plain and output/σ NCSNs, measure E‖s‖ per σ at both input laws; rows + per-σ."""
    dim = data.shape[1]
    sig = [float(v) for v in sigmas]
    g = generator(seed, 10 + dim)
    lo, hi = data.min(0).values, data.max(0).values
    uniform = lo + (hi - lo) * torch.rand(s.n_eval, dim, generator=g)
    state = g.get_state()

    def on_dist(sigma: float) -> Tensor:  # x ~ q_σ, the same draws for every score
        return noised_sample(sigma, s.n_eval, g)

    curves: dict[str, list[float]] = {}
    seconds = {}
    if exact is not None:
        curves["exact, uniform x"] = _mean_norms(exact, lambda _: uniform, sig)
        g.set_state(state)
        curves["exact, x ~ q_σ"] = _mean_norms(exact, on_dist, sig)
    for label, scaled in [("plain", False), ("output/σ", True)]:
        model, sec, _ = train(
            lambda scaled=scaled: ScoreMLP(
                dim, hidden=hidden, depth=s.depth, conditioning="sigma", scale_by_sigma=scaled
            ),
            NCSN(sigmas),
            data,
            steps=steps,
            seed=seed,
            lr=s.lr,
            ema_decay=s.ema,
        )
        fn = model_score_fn(model)
        seconds[label] = sec
        curves[f"NCSN {label}, uniform x"] = _mean_norms(fn, lambda _: uniform, sig)
        g.set_state(state)
        curves[f"NCSN {label}, x ~ q_σ"] = _mean_norms(fn, on_dist, sig)
    fig = norm_vs_sigma(np.array(sig), curves, dim=dim)
    _finish(fig, f"{name} (d = {dim}): E‖s(x, σ)‖ and σ·E‖s‖")
    save(fig, figs / f"seed001_fig5_{name}.png")
    rows = []
    for label, values in curves.items():
        sv = np.asarray(sig) * np.asarray(values)
        rows.append(
            [name, label, loglog_slope(sig, values), float(sv.min()), float(sv.max()), values]
        )
    return rows, {"sigmas": sig, "curves": curves, "train_seconds": seconds}


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run_all(Path(out_dir), s, size, seed)


def _run_all(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    rows: list[list[Any]] = []
    per: dict[str, Any] = {}
    summary: list[str] = []
    sigmas = geometric_sigmas(s.sigma_max, s.sigma_min, s.n_levels)

    target = ring(s)
    data = target.sample(s.m, generator=generator(seed, 0))
    r, per["ring"] = _study(
        "ring",
        data,
        sigmas,
        target_score_fn(target),
        lambda sg, n, g: target.noised(sg).sample(n, generator=g),
        hidden=s.hidden,
        steps=s.steps,
        s=s,
        seed=seed,
        figs=figs,
    )
    rows += r

    # the Fig. 3 mixture with its exact score only: no network can beat the law it follows
    fig3 = seed001_fig3()
    g = generator(seed, 3)
    f3 = fig3.sample(s.m, generator=g)
    lo, hi = f3.min(0).values, f3.max(0).values
    uni = lo + (hi - lo) * torch.rand(s.n_eval, 2, generator=g)
    ex3 = target_score_fn(fig3)
    sig = [float(v) for v in sigmas]
    c3 = {
        "exact, uniform x": _mean_norms(ex3, lambda _: uni, sig),
        "exact, x ~ q_σ": _mean_norms(
            ex3, lambda sg: fig3.noised(sg).sample(s.n_eval, generator=g), sig
        ),
    }
    for label, values in c3.items():
        sv = np.asarray(sig) * np.asarray(values)
        rows.append(
            ["fig3", label, loglog_slope(sig, values), float(sv.min()), float(sv.max()), values]
        )
    per["fig3"] = {"sigmas": sig, "curves": c3}
    fig = norm_vs_sigma(np.array(sig), c3, dim=2)
    _finish(fig, "seed 001 Fig. 3 mixture (unit-variance modes), exact score")
    save(fig, figs / "seed001_fig5_fig3_exact.png")

    digits = load_digits_01() if s.digits else None
    if digits is not None:
        dsig = geometric_sigmas(*s.digits_sigmas)

        def noised_digits(sg: float, n: int, gen: torch.Generator) -> Tensor:
            idx = torch.randint(0, digits.shape[0], (n,), generator=gen)
            return digits[idx] + sg * torch.randn(n, digits.shape[1], generator=gen)

        r, per["digits"] = _study(
            "digits",
            digits,
            dsig,
            empirical_noised_score(digits),
            noised_digits,
            hidden=s.digits_hidden,
            steps=s.digits_steps,
            s=replace(s, n_eval=min(s.n_eval, 1000)),
            seed=seed,
            figs=figs,
        )
        rows += r
    elif s.digits:
        summary.append("digits part skipped: scikit-learn is not installed")

    tab = table(
        ["data", "score, inputs", "log–log slope", "min σ·E‖s‖", "max σ·E‖s‖", "E‖s‖ per σ"],
        rows,
    )
    by = {(r[0], r[1]): r for r in tab["rows"]}
    for name in ("ring", "fig3", "digits"):
        for key in [k for k in by if k[0] == name]:
            r = by[key]
            summary.append(
                f"{name:6s} {r[1]:26s} slope {r[2]:+.2f}, σ·E‖s‖ in [{r[3]:.3g}, {r[4]:.3g}]"
            )
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": {"norm_vs_sigma": tab},
        "curves": per,
        "slopes": {f"{k[0]}: {k[1]}": by[k][2] for k in by},
    }
