"""Seed 000 (Koehler & Vuong, arXiv 2310.01762): vanilla score + Langevin from the data with
early stopping samples a multimodal mixture with the right weights; from a prior it does not.

Target: `seed000_logconcave(K=3, d)` — sech-tilted, strongly log-concave components (scales 1,
√2, 1; weights 1/6, 1/3, 1/2) on the coordinate axes at distance `separation`. The score is a
vanilla ScoreMLP (no noise conditioning) trained by exact ISM (d = 2) or SSM-VR (dimension
sweep). Sampling: Langevin x ← x + (ε/2)s + √ε z for a diffusion time T = n·ε/2, from the
empirical distribution of the M training points or from a Gaussian prior N(0, separation²I).

Parts: (a) number of samples M; (b) stopping time T, learned and exact score; (c) memorisation
(nearest-training-point distance); (d) learned vs exact score; (e) separation sweep with the
overlap graph; (f) dimensions 2 … 50.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from scorelab._utils import DivergenceError
from scorelab.analysis import overlap_graph
from scorelab.distributions import seed000_logconcave, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common2 import (
    generator,
    line_plot,
    nn_distance,
    relative_fisher,
    robust_weights,
    table,
    train_early_stopped,
)
from scorelab.metrics import mixture_weights, mmd
from scorelab.models import ScoreMLP, model_score_fn
from scorelab.objectives import ISM, SSM
from scorelab.plots import metric_vs_nfe, samples_over_density, save, score_fields
from scorelab.runs import figures_dir
from scorelab.samplers import from_data, gaussian_prior, langevin

NAME = "seed000"
TITLE = "Langevin from the data with early stopping on a learned vanilla score"
SEED_REF = "seed 000 (Koehler & Vuong 2023), Theorems 1–2"


@dataclass(frozen=True)
class Settings:
    n_components: int = 3
    dim: int = 2
    separation: float = 5.0
    tilt: float = 1.0
    m: int = 2000  # training samples of the main model
    n_chains: int = 1000
    n_ref: int = 2000  # exact samples: the MMD yardstick
    hidden: int = 128
    depth: int = 3
    train_steps: int = 2000
    lr: float = 1e-3
    check_every: int = 100  # held-out check for early stopping
    step_size: float = 0.1  # Langevin ε; diffusion time per step ε/2
    t_main: float = 3.0  # the early-stopping time of parts (a), (e), (f)
    t_long: float = 100.0  # a "long" run for (e)
    t_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    # (c) memorisation needs times below one ε/2 of the main grid: a finer step there
    fine_step: float = 0.001
    t_fine: tuple[float, ...] = (0.0005, 0.002, 0.01, 0.05, 0.2)
    m_grid: tuple[int, ...] = (100, 300, 1000, 2000, 5000)
    sep_grid: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    dim_grid: tuple[int, ...] = (2, 5, 10, 20, 50)
    overlap_threshold: float = 0.01
    n_mc: int = 20_000
    n_fisher: int = 5000


FULL = Settings()
SMALL = replace(
    FULL,
    m=1000,
    n_chains=1000,
    n_ref=1000,
    hidden=64,
    depth=2,
    train_steps=300,
    t_grid=(0.3, 3.0, 30.0),
    t_fine=(0.002, 0.05),
    m_grid=(100, 1000),
    sep_grid=(2.0, 5.0),
    dim_grid=(5,),
    n_mc=2000,
    n_fisher=1000,
)


def _target(s: Settings, separation: float | None = None, dim: int | None = None):
    return seed000_logconcave(
        s.n_components,
        dim or s.dim,
        separation=s.separation if separation is None else separation,
        tilt=s.tilt,
    )


def _fit_score(s: Settings, data: Tensor, objective: Any, seed: int):
    """Vanilla ScoreMLP by ISM / SSM-VR, early-stopped on 20% of the data held out."""
    model, info = train_early_stopped(
        lambda: ScoreMLP(data.shape[1], hidden=s.hidden, depth=s.depth),
        objective,
        data,
        steps=s.train_steps,
        seed=seed,
        lr=s.lr,
        check_every=s.check_every,
    )
    return model_score_fn(model), info


def _run(score_fn, x0: Tensor, s: Settings, t: float, g: torch.Generator) -> Tensor | None:
    """Langevin for diffusion time t; None if the chains diverge (a learned score far from the
    data can push them out)."""
    try:
        return langevin(score_fn, x0, step_size=s.step_size, time=t, generator=g).samples
    except DivergenceError:
        return None


def _quality(x: Tensor | None, target, ref: Tensor) -> tuple[list[float], float, float]:
    """(weights, weight TV, MMD²); escaped chains count as missing mass (robust_weights)."""
    if x is None:
        return [math.nan] * target.n_components, math.nan, math.nan
    w, tv = robust_weights(x, target)
    return w, tv, mmd(x, ref)


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run_all(Path(out_dir), s, size, seed)


def _run_all(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    tables: dict[str, Any] = {}
    summary: list[str] = []
    target = _target(s)
    exact = target_score_fn(target)
    true_w = [round(float(w), 4) for w in target.weights]

    # ---- the main model: M = s.m points, exact ISM ------------------------------------------
    g = generator(seed, 0)
    data = target.sample(s.m, generator=g)
    ref = target.sample(s.n_ref, generator=g)
    fresh = target.sample(s.n_chains, generator=g)
    learned, info_main = _fit_score(s, data, ISM(), seed)
    mmd_floor = mmd(fresh, ref)
    data_tv = mixture_weights(data, target).tv

    # ---- (d) learned vs exact score ---------------------------------------------------------
    gd = generator(seed, 4)
    fd_p = relative_fisher(learned, target, n=s.n_fisher, generator=gd)
    lim = s.separation + 4.0
    box = (torch.rand(s.n_fisher, s.dim, generator=gd) * 2 - 1) * lim
    fd_box = relative_fisher(learned, target, x=box, generator=gd)
    tables["d_score_error"] = table(
        ["where", "relative Fisher divergence E‖s−∇log p‖²/E‖∇log p‖²"],
        [["x ~ p (where the data is)", fd_p], [f"x uniform on [±{lim:g}]^{s.dim}", fd_box]],
    )
    # the box where the data lies (2-D, modes at +e₁, +e₂, −e₁). Below the modes the network
    # extrapolates to ‖s‖ ≈ 30 and would set the scale of every arrow, so the learned panel caps
    # its arrows at the exact field's largest norm on the grid (said in its title); the error
    # panel is uncapped.
    xlim, ylim = (-s.separation - 3.5, s.separation + 3.5), (-3.5, s.separation + 3.5)
    gx = torch.stack(
        torch.meshgrid(torch.linspace(*xlim, 21), torch.linspace(*ylim, 21), indexing="xy"), -1
    ).reshape(-1, 2)
    cap = float(exact(gx, None).norm(dim=1).max())

    def capped(x: Tensor) -> Tensor:
        v = learned(x)
        n = v.norm(dim=1, keepdim=True)
        return v * torch.clamp(cap / n.clamp_min(1e-12), max=1.0)

    fig = score_fields(
        [
            ("exact ∇log p", lambda x: exact(x, None)),
            (f"learned s_θ (ISM), arrows capped at {cap:.3g}", capped),
            ("error s_θ − ∇log p (uncapped)", lambda x: learned(x) - exact(x, None)),
        ],
        xlim=xlim,
        ylim=ylim,
        log_prob_fn=target.log_prob,
    )
    save(fig, figs / "seed000_score_fields.png")

    # ---- (b) + (c) stopping time ------------------------------------------------------------
    gb = generator(seed, 2)
    starts = {
        "data": from_data(data, s.n_chains, generator=gb),
        "prior": gaussian_prior(s.n_chains, s.dim, s.separation, generator=gb),
    }
    fresh_nn = nn_distance(fresh, data)
    rows, curves, panels = [], {}, {}
    for score_name, fn in [("learned", learned), ("exact", exact)]:
        for start_name, x0 in starts.items():
            x, prev, tvs, nfes = x0, 0.0, [], []
            for t in s.t_grid:
                x = _run(fn, x, s, t - prev, gb) if x is not None else None
                prev = t
                w, tv, m2 = _quality(x, target, ref)
                ratio = nn_distance(x, data) / fresh_nn if x is not None else math.nan
                nfe = round(2 * t / s.step_size)
                rows.append([score_name, start_name, t, nfe, w, tv, m2, ratio])
                tvs.append(tv)
                nfes.append(nfe)
                if score_name == "learned" and x is not None:
                    panels[(start_name, t)] = x
            curves[f"{score_name} score, {start_name} start"] = (nfes, tvs)
    tables["b_stopping_time"] = table(
        ["score", "start", "T", "NFE", "weights", "weight TV", "MMD²", "NN-dist / fresh"], rows
    )
    fig = metric_vs_nfe(curves, metric="weight TV")
    fig.axes[0].set_title(
        f"T = NFE·ε/2, ε = {s.step_size:g}; M = {s.m}, true weights {true_w}", fontsize=8
    )
    fig.tight_layout()
    save(fig, figs / "seed000_tv_vs_time.png")

    # (c) memorisation at short times: at T → 0 the output IS the training set
    rows = []
    x, prev = starts["data"], 0.0
    fine = replace(s, step_size=s.fine_step)
    for t in s.t_fine:
        x = _run(learned, x, fine, t - prev, gb) if x is not None else None
        prev = t
        w, tv, m2 = _quality(x, target, ref)
        ratio = nn_distance(x, data) / fresh_nn if x is not None else math.nan
        rows.append([t, round(2 * t / s.fine_step), ratio, tv, m2])
    tables["c_memorisation"] = table(
        ["T", f"NFE (ε={s.fine_step:g})", "NN-dist / fresh", "weight TV", "MMD²"], rows
    )
    memo = tables["c_memorisation"]["rows"]

    t_show = [s.t_main, s.t_grid[-1]]
    sample_panels = [("exact samples", ref)] + [
        (f"learned, {st} start, T={t:g}", panels[(st, t)])
        for st in ("data", "prior")
        for t in t_show
        if (st, t) in panels
    ]
    fig = samples_over_density(
        sample_panels, target.log_prob, xlim=(-lim, lim), ylim=(-lim, lim), max_points=1000
    )
    save(fig, figs / "seed000_samples.png")

    # ---- (a) number of samples M (also (c) at T = t_main) -----------------------------------
    ga = generator(seed, 1)
    rows, tv_data, tv_prior = [], [], []
    for m in s.m_grid:
        d_m = data if m == s.m else target.sample(m, generator=ga)
        fn, info = (learned, info_main) if m == s.m else _fit_score(s, d_m, ISM(), seed + m)
        fd = relative_fisher(fn, target, n=s.n_fisher, generator=generator(seed, 40))
        xd = _run(fn, from_data(d_m, s.n_chains, generator=ga), s, s.t_main, ga)
        xp = _run(
            fn, gaussian_prior(s.n_chains, s.dim, s.separation, generator=ga), s, s.t_main, ga
        )
        _, tvd, md = _quality(xd, target, ref)
        _, tvp, mp = _quality(xp, target, ref)
        ratio = nn_distance(xd, d_m) / nn_distance(fresh, d_m) if xd is not None else math.nan
        emp = mixture_weights(d_m, target).tv
        rows.append([m, emp, info["best_step"], fd, tvd, md, tvp, mp, ratio])
        tv_data.append(tvd)
        tv_prior.append(tvp)
    tables["a_samples_M"] = table(
        [
            "M",
            "TV of the M points' own weights",
            "early-stopped at step",
            "rel. Fisher",
            "TV data start",
            "MMD² data start",
            "TV prior start",
            "MMD² prior start",
            "NN-dist / fresh (data start)",
        ],
        rows,
    )
    fig = line_plot(
        {"data start": (s.m_grid, tv_data), "prior start": (s.m_grid, tv_prior)},
        xlabel="M (training samples)",
        ylabel="weight TV",
        title=f"learned vanilla score, T = {s.t_main:g}",
        logx=True,
    )
    save(fig, figs / "seed000_tv_vs_M.png")

    # ---- (e) separation ---------------------------------------------------------------------
    ge = generator(seed, 5)
    rows = []
    for sep in s.sep_grid:
        t_sep = _target(s, separation=sep)
        d_sep = data if sep == s.separation else t_sep.sample(s.m, generator=ge)
        ref_sep = ref if sep == s.separation else t_sep.sample(s.n_ref, generator=ge)
        assign_floor = mixture_weights(ref_sep, t_sep).tv
        og = overlap_graph(t_sep, s.overlap_threshold, n_mc=s.n_mc, generator=ge)
        k = s.n_components
        delta = max(float(og.overlaps[i, j]) for i in range(k) for j in range(i + 1, k))
        fn, info = (
            (learned, info_main) if sep == s.separation else _fit_score(s, d_sep, ISM(), seed + 17)
        )
        fd = relative_fisher(fn, t_sep, n=s.n_fisher, generator=generator(seed, 50))
        x_short = _run(fn, from_data(d_sep, s.n_chains, generator=ge), s, s.t_main, ge)
        x_long = _run(fn, x_short, s, s.t_long - s.t_main, ge) if x_short is not None else None
        x_prior = _run(fn, gaussian_prior(s.n_chains, s.dim, sep, generator=ge), s, s.t_main, ge)
        rows.append(
            [
                sep,
                delta,
                assign_floor,
                len(og.components),
                info["best_step"],
                fd,
                _quality(x_short, t_sep, ref_sep)[1],
                _quality(x_long, t_sep, ref_sep)[1],
                _quality(x_prior, t_sep, ref_sep)[1],
                _quality(x_short, t_sep, ref_sep)[2],
            ]
        )
    tables["e_separation"] = table(
        [
            "separation",
            "max overlap δ",
            "TV of exact samples (assignment floor)",
            f"graph components (δ ≥ {s.overlap_threshold:g})",
            "early-stopped at step",
            "rel. Fisher",
            f"TV data start T={s.t_main:g}",
            f"TV data start T={s.t_long:g}",
            f"TV prior start T={s.t_main:g}",
            f"MMD² data start T={s.t_main:g}",
        ],
        rows,
    )

    # ---- (f) dimension (SSM-VR: its cost does not grow with d) ------------------------------
    gf = generator(seed, 6)
    rows = []
    for dim in s.dim_grid:
        t_d = _target(s, dim=dim)
        d_d = t_d.sample(s.m, generator=gf)
        ref_d = t_d.sample(s.n_ref, generator=gf)
        fn, info = _fit_score(s, d_d, SSM(variance_reduced=True), seed + 100 + dim)
        fd = relative_fisher(fn, t_d, n=s.n_fisher, generator=generator(seed, 60))
        xd = _run(fn, from_data(d_d, s.n_chains, generator=gf), s, s.t_main, gf)
        xp = _run(fn, gaussian_prior(s.n_chains, dim, s.separation, generator=gf), s, s.t_main, gf)
        _, tvd, md = _quality(xd, t_d, ref_d)
        _, tvp, mp = _quality(xp, t_d, ref_d)
        rows.append([dim, info["best_step"], fd, tvd, md, tvp, mp, info["seconds"]])
    tables["f_dimension"] = table(
        [
            "d",
            "early-stopped at step",
            "rel. Fisher (SSM-VR)",
            "TV data start",
            "MMD² data start",
            "TV prior start",
            "MMD² prior start",
            "train s",
        ],
        rows,
    )

    # ---- summary ------------------------------------------------------------------------------
    b = {(r[0], r[1], r[2]): r for r in tables["b_stopping_time"]["rows"]}
    t0, t1 = s.t_main, s.t_grid[-1]
    summary += [
        f"target seed000_logconcave(K={s.n_components}, d={s.dim}, separation={s.separation:g}, "
        f"tilt={s.tilt:g}), true weights {true_w}; M={s.m} training points (their own weight "
        f"TV {data_tv:.3f}); ScoreMLP({s.hidden}×{s.depth}) by ISM, early-stopped on a held-out "
        f"20% at step {info_main['best_step']} of ≤ {s.train_steps} ({info_main['seconds']:.1f} "
        f"s); MMD² noise floor (exact vs exact) {mmd_floor:.1e}",
        f"learned score: relative Fisher divergence {fd_p:.3f} under p, {fd_box:.3f} on the "
        f"box [±{lim:g}]² (the gaps between modes are never seen in training)",
        f"T={t0:g}: weight TV data start {b[('learned', 'data', t0)][5]:.3f}, prior start "
        f"{b[('learned', 'prior', t0)][5]:.3f}",
        f"memorisation: mean distance to the nearest training point ÷ that of fresh exact "
        f"samples = {memo[0][2]:.2f} at T={memo[0][0]:g}, {memo[-1][2]:.2f} at T={memo[-1][0]:g} "
        f"(MMD² cannot see copying: {memo[0][4]:.1e} at T={memo[0][0]:g})",
        f"T={t1:g}: data start drifts to {b[('learned', 'data', t1)][4]} (TV "
        f"{b[('learned', 'data', t1)][5]:.3f}), prior start {b[('learned', 'prior', t1)][4]} "
        f"(TV {b[('learned', 'prior', t1)][5]:.3f}); exact score from data stays at TV "
        f"{b[('exact', 'data', t1)][5]:.3f}",
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
        # for the tests: the learned-score TVs at the main stopping time
        "tv_data_start": b[("learned", "data", t0)][5],
        "tv_prior_start": b[("learned", "prior", t0)][5],
    }
