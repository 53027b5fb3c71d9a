"""Seed 002 (EBMs): one energy network trained by contrastive divergence and by score matching.

An EnergyMLP E_θ (p_θ ∝ exp(−E_θ); seed 002's f_θ = −E_θ) is fitted to samples of a 2-D
three-component Gaussian mixture five ways, from the same initial weights: CD with short-run
SGLD negatives started from uniform noise on the box ("CD noise"), CD-k started at the data
batch ("CD-k data"), persistent CD with a replay buffer and 5 % restarts ("PCD buffer",
Du & Mordatch 2019), and the score-matching objectives DSM and SSM on the same
EnergyScore(EnergyMLP) wrapper.  An untrained network is the baseline row.

Judged against the exact target: the learned density normalised on a grid (Z by a Riemann sum,
possible in 2-D only) gives TV, KL(p‖p̂), KL(p̂‖p) and the learned mass in each component's
region.  Two sample sets per model are compared with exact samples by MMD² (V-statistic, one
kernel for all, against the MMD² between two exact sets: the noise floor): exact draws from the
grid-normalised p̂ (the density itself), and long-run MALA on −∇E from uniform noise on the box
(what a user of the EBM gets; its chains rarely cross between modes, so their mixture weights
are basin sizes more than p̂'s weights).  The CD runs record mean E⁺ (data) and E⁻ (negatives)
per window.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scorelab.distributions import GaussianMixture
from scorelab.ebm.cd import contrastive_divergence
from scorelab.ebm.evaluate import GridDensity, ebm_samples, grid_density, grid_sample
from scorelab.experiments import experiment
from scorelab.experiments._common2 import Timer, generator, part_seed, robust_weights, table
from scorelab.metrics import median_heuristic, mmd
from scorelab.models import EnergyMLP, EnergyScore
from scorelab.objectives import DSM, SSM
from scorelab.plots import samples_over_density, save
from scorelab.runs import figures_dir
from scorelab.train import fit

NAME = "ebm-cd"
TITLE = (
    "Continuous EBM on a 2-D mixture: contrastive divergence (noise / data / PCD) vs score "
    "matching (DSM, SSM)"
)
SEED_REF = "seed 002: EBMs, contrastive divergence with SGLD"

# (label, how it is trained); CD inits are those of ebm.cd.CD
METHODS: tuple[tuple[str, str], ...] = (
    ("untrained", "none"),
    ("CD noise", "noise"),
    ("CD-k data", "data"),
    ("PCD buffer", "buffer"),
    ("DSM", "dsm"),
    ("SSM", "ssm"),
)


@dataclass(frozen=True)
class Settings:
    means: tuple[tuple[float, float], ...] = ((-2.0, -1.0), (2.0, -1.0), (0.0, 2.0))
    stds: tuple[float, ...] = (0.5, 0.7, 0.6)
    weights: tuple[float, ...] = (0.2, 0.3, 0.5)
    box: tuple[float, float] = (-4.5, 4.5)
    n_data: int = 20_000
    hidden: int = 128
    depth: int = 3
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    ema_decay: float = 0.99
    k: int = 20  # SGLD steps per negative
    sgld_step: float = 0.01  # library step h (seed 002's ε = h/2)
    alpha: float = 0.1  # energy-magnitude regulariser
    buffer_size: int = 10_000
    restart_prob: float = 0.05
    dsm_sigma: float = 0.1
    log_every: int = 50
    grid_n: int = 200
    n_eval: int = 1000  # MALA chains and exact reference samples
    mala_step: float = 0.05
    mala_steps: int = 400
    n_floor: int = 3  # pairs of exact sample sets for the MMD noise floor


FULL = Settings()
SMALL = replace(
    FULL,
    n_data=2000,
    hidden=32,
    depth=2,
    steps=80,
    k=5,
    sgld_step=0.05,
    batch_size=128,
    lr=1e-2,
    buffer_size=512,
    log_every=10,
    grid_n=50,
    n_eval=200,
    mala_steps=40,
    n_floor=2,
)


def _build(s: Settings, seed: int) -> EnergyScore:
    """The same initial weights for every method; the global RNG is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(part_seed(seed, 1))
        return EnergyScore(EnergyMLP(2, s.hidden, s.depth))


def _train(
    kind: str, s: Settings, data: Tensor, seed: int, part: int
) -> tuple[nn.Module, dict[str, Any]]:
    """(trained model, info): CD variants go through contrastive_divergence, SM through fit."""
    model = _build(s, seed)
    info: dict[str, Any] = {"seconds": 0.0}
    if kind == "none":
        return model.eval(), info
    common = dict(
        batch_size=s.batch_size, lr=s.lr, ema_decay=s.ema_decay, seed=part_seed(seed, part)
    )
    with Timer() as t:
        if kind in ("noise", "data", "buffer"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                rec = contrastive_divergence(
                    model,
                    data,
                    steps=s.steps,
                    k=s.k,
                    step_size=s.sgld_step,
                    init=kind,
                    alpha=s.alpha,
                    noise="uniform",
                    box=s.box,
                    buffer_size=s.buffer_size,
                    restart_prob=s.restart_prob,
                    log_every=s.log_every,
                    **common,
                )
            trained = rec.model
            info.update(
                curve={"steps": rec.steps, "e_pos": rec.e_pos, "e_neg": rec.e_neg},
                diverging=rec.diverging,
                warnings=[str(w.message) for w in caught],
            )
        else:
            obj = DSM(s.dsm_sigma) if kind == "dsm" else SSM()
            trained = fit(model, obj, data, steps=s.steps, **common).best_model()
    info["seconds"] = t.seconds
    return trained, info


def _evaluate(
    model: nn.Module,
    target: GaussianMixture,
    s: Settings,
    ref: Tensor,
    bandwidths: list[float],
    seed: int,
    part: int,
) -> tuple[GridDensity, Tensor, dict[str, Any]]:
    gd = grid_density(model, target, xlim=s.box, ylim=s.box, n=s.grid_n)
    lo, hi = s.box
    g = generator(seed, part)
    exact_draws = grid_sample(gd, s.n_eval, generator=g).to(ref.dtype)
    x0 = lo + (hi - lo) * torch.rand(s.n_eval, 2, generator=g)
    out = ebm_samples(model, x0, step_size=s.mala_step, n_steps=s.mala_steps, generator=g)
    x = out.samples
    finite = torch.isfinite(x).all(1)
    w_est, w_tv = robust_weights(x, target)
    true_w = torch.tensor(gd.true_weights, dtype=torch.float64)
    grid_w_tv = 0.5 * float((torch.tensor(gd.mode_weights) - true_w).abs().sum())
    ev = {
        **gd.as_dict(),
        "grid_weight_tv": grid_w_tv,
        "sample_weights": w_est,
        "sample_weight_tv": w_tv,
        "mmd2_grid": mmd(exact_draws, ref, bandwidths, unbiased=False),
        "mmd2": mmd(x[finite], ref, bandwidths, unbiased=False) if bool(finite.any()) else math.nan,
        "acceptance": float(out.info.get("acceptance_rate", math.nan)),
        "escaped": 1.0 - float(finite.double().mean()),
    }
    return gd, x, ev


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run_all(Path(out_dir), s, size, seed)


def _run_all(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    target = GaussianMixture([list(m) for m in s.means], stds=list(s.stds), weights=list(s.weights))
    data = target.sample(s.n_data, generator=generator(seed, 2))
    ref = target.sample(s.n_eval, generator=generator(seed, 3))
    # one kernel for every comparison: the median heuristic on exact samples
    h0 = median_heuristic(ref, target.sample(s.n_eval, generator=generator(seed, 4)))
    bw = [0.5 * h0, h0, 2.0 * h0]
    floors = [
        mmd(
            target.sample(s.n_eval, generator=generator(seed, 10 + 2 * j)),
            target.sample(s.n_eval, generator=generator(seed, 11 + 2 * j)),
            bw,
            unbiased=False,  # V-statistic: ≥ 0, so the floor is a level, not a sign
        )
        for j in range(s.n_floor)
    ]
    floor, floor_sd = float(np.mean(floors)), float(np.std(floors, ddof=1))

    results: dict[str, dict[str, Any]] = {}
    grids: dict[str, GridDensity] = {}
    samples: dict[str, Tensor] = {}
    for i, (label, kind) in enumerate(METHODS):
        model, info = _train(kind, s, data, seed, part=100 + i)
        gd, x, ev = _evaluate(model, target, s, ref, bw, seed, part=200 + i)
        grids[label], samples[label] = gd, x
        results[label] = {"kind": kind, **info, **ev}

    rows = []
    for label, r in results.items():
        curve = r.get("curve")
        rows.append(
            [
                label,
                r["seconds"],
                r["tv"],
                r["kl"],
                r["kl_reverse"],
                str([round(w, 3) for w in r["mode_weights"]]),
                r["grid_weight_tv"],
                str([round(w, 3) for w in r["sample_weights"]]),
                r["sample_weight_tv"],
                r["mmd2_grid"],
                r["mmd2"],
                r["acceptance"],
                curve["e_pos"][-1] if curve else None,
                curve["e_neg"][-1] if curve else None,
            ]
        )
    tables = {
        "setup": table(
            [
                "target",
                "box",
                "data",
                "network",
                "steps",
                "CD: k, h, α",
                "PCD buffer, restart",
                "DSM σ",
                "MMD² floor",
                "floor s.d.",
            ],
            [
                [
                    _target_text(s),
                    str(s.box),
                    s.n_data,
                    f"EnergyMLP {s.hidden}×{s.depth}",
                    s.steps,
                    f"{s.k}, {s.sgld_step:g}, {s.alpha:g}",
                    f"{s.buffer_size}, {s.restart_prob:g}",
                    s.dsm_sigma,
                    floor,
                    floor_sd,
                ]
            ],
        ),  # fmt: skip
        "methods": table(
            [
                "method",
                "train s",
                "grid TV",
                "KL(p‖p̂)",
                "KL(p̂‖p)",
                "grid mode mass",
                "grid weight TV",
                "MALA sample weights",
                "sample weight TV",
                "MMD² (p̂ grid draws)",
                "MMD² (MALA)",
                "MALA acceptance",
                "final E⁺",
                "final E⁻",
            ],
            rows,
        ),  # fmt: skip
    }

    _plot_densities(grids, s, figs / "ebm-cd_densities.png")
    _plot_energies(results, figs / "ebm-cd_energies.png")
    panels = [("exact samples", ref)] + [
        (f"{label} (MALA)", x) for label, x in samples.items() if label != "untrained"
    ]
    save(
        samples_over_density(panels, target.log_prob, xlim=s.box, ylim=s.box, max_points=1000),
        figs / "ebm-cd_samples.png",
    )

    best = min((r["tv"], label) for label, r in results.items())[1]
    summary = [
        f"target {_target_text(s)}; {s.n_data} data, EnergyMLP {s.hidden}×{s.depth}, "
        f"{s.steps} steps per method; MMD² noise floor {floor:.2g} ± {floor_sd:.1g}",
        *(
            f"{label}: grid TV {r['tv']:.3f}, KL(p‖p̂) {r['kl']:.3f}, grid mode mass "
            f"{[round(w, 2) for w in r['mode_weights']]}, MMD² p̂ {r['mmd2_grid']:.2g}, "
            f"MALA {r['mmd2']:.2g}, MALA "
            f"sample weights {[round(w, 2) for w in r['sample_weights']]} ({r['seconds']:.0f} s)"
            for label, r in results.items()
        ),
        f"lowest grid TV: {best}; true weights {list(s.weights)}",
    ]
    for label, r in results.items():
        for msg in r.get("warnings", []):
            summary.append(f"{label} warned: {msg}")
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
        "noise_floor": [floor, floor_sd],
        "methods": {label: _jsonable(r) for label, r in results.items()},
    }


def _target_text(s: Settings) -> str:
    return " + ".join(
        f"{w:g}·N({m}, {sd:g}²I)" for m, sd, w in zip(s.means, s.stds, s.weights, strict=True)
    )


def _jsonable(r: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf → None so that results.json is strict JSON."""

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(u) for k, u in v.items()}
        if isinstance(v, list):
            return [fix(u) for u in v]
        return v

    return fix(r)


def _plot_densities(grids: dict[str, GridDensity], s: Settings, path: Path) -> None:
    """The true density and each learned one, each normalised on the box, on one colour scale."""
    import matplotlib.pyplot as plt

    first = next(iter(grids.values()))
    panels = [("target p (exact)", first.log_q)] + [
        (f"{label}: TV {gd.tv:.2f}", gd.log_p) for label, gd in grids.items()
    ]
    vmax = float(first.log_q.exp().max())
    ncols = 4
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.0 * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[len(panels) :]:
        fig.delaxes(ax)
    extent = (*s.box, *s.box)
    for ax, (title, logp) in zip(flat, panels, strict=False):
        ax.imshow(
            logp.exp().numpy(), origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=vmax
        )
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(
        "densities normalised on the grid (one colour scale, clipped at max p)", fontsize=9
    )
    fig.tight_layout()
    save(fig, path)


def _plot_energies(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Window means of E⁺ (data) and E⁻ (negatives) during each CD run."""
    import matplotlib.pyplot as plt

    cd = [(label, r["curve"]) for label, r in results.items() if "curve" in r]
    fig, axes = plt.subplots(1, len(cd), figsize=(3.8 * len(cd), 3.2), squeeze=False)
    for ax, (label, c) in zip(axes[0], cd, strict=True):
        ax.plot(c["steps"], c["e_pos"], label="E⁺ (data)")
        ax.plot(c["steps"], c["e_neg"], label="E⁻ (negatives)")
        ax.axhline(0.0, c="gray", lw=0.8, ls="--")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("mean energy", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save(fig, path)
