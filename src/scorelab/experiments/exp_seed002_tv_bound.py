"""Seed 002 (lecture, last slides): the TV bound of Chen et al. 2023 against measured TV.

The exponential-integrator reverse OU SDE (`reverse_sde(..., method="exponential")` on
`OUSDE(T, eps=0)`, h = T/N, start x ~ γ = N(0, 1)) samples a 1-D two-component Gaussian mixture
q.  The theorem says TV(p_T, q) ≲ √KL(q‖γ)·e^{−T} + (L√(dh) + L·m₂·h)√T + ε√T; we evaluate its
terms with C = 1 (`scorelab.analysis.reverse_sde_tv_bound`, with L, KL from the analysis
helpers and m₂ from the mixture's moments) and measure TV(p_T, q) as the histogram TV of the
chains to q's exact density (`metrics.histogram_tv_to_density`).  The Monte Carlo noise floor is
the same histogram TV for exact samples of the same size.

Sweeps: h at fixed T (exact score), T at small h (exact score), and ε at small h and large T
with the score corrupted by a constant shift, s + ε: in 1-D E|s − ∇log q_t|² = ε² exactly at
every t, so assumption A3 holds with equality.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scorelab.analysis import kl_to_standard_normal, reverse_sde_tv_bound, score_lipschitz_1d
from scorelab.distributions import GaussianMixture
from scorelab.experiments import experiment
from scorelab.experiments._common2 import generator, line_plot, loglog_slope, table
from scorelab.metrics import histogram_tv_to_density
from scorelab.plots import save
from scorelab.runs import figures_dir
from scorelab.samplers import reverse_sde
from scorelab.sde import OUSDE, exact_score_fn

NAME = "seed002-tv-bound"
TITLE = "TV bound of the exponential-integrator reverse SDE (Chen et al. 2023) vs measured TV"
SEED_REF = "seed 002 (lecture: OU forward process, exponential integrator, TV theorem)"


@dataclass(frozen=True)
class Settings:
    means: tuple[float, float] = (-1.5, 1.5)
    stds: tuple[float, float] = (0.7, 1.0)
    weights: tuple[float, float] = (0.3, 0.7)
    n_chains: int = 200_000
    bins: int = 55
    hist_range: tuple[float, float] = (-5.0, 6.0)
    n_floor: int = 3  # exact draws for the noise floor (mean ± s.d.)
    T_fixed: float = 6.0
    hs: tuple[float, ...] = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
    Ts: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
    h_small: float = 0.02
    epss: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    lip_grid: tuple[int, int] = (2001, 201)  # (n_x, n_t) of score_lipschitz_1d
    # other mixtures whose bound constants we tabulate (no sampling): (means, stds, weights)
    others: tuple[tuple[tuple[float, float], ...], ...] = (
        ((-2.0, 2.0), (0.5, 1.0), (0.3, 0.7)),
        ((-2.0, 2.0), (1.0, 1.0), (0.3, 0.7)),
    )


FULL = Settings()
SMALL = replace(
    FULL,
    n_chains=20_000,
    bins=40,
    n_floor=2,
    T_fixed=3.0,
    hs=(0.3, 0.2, 0.1),
    Ts=(0.5, 1.0, 3.0),
    h_small=0.1,
    epss=(0.1, 0.3, 1.0),
    lip_grid=(401, 41),
    others=(),
)


def mixture(means, stds, weights) -> GaussianMixture:
    return GaussianMixture([[m] for m in means], stds=list(stds), weights=list(weights))


def root_second_moment(means, stds, weights) -> float:
    """m₂ = √E x² = √Σₖ wₖ(μₖ² + σₖ²)."""
    return math.sqrt(sum(w * (m * m + s * s) for m, s, w in zip(means, stds, weights, strict=True)))


def tv_prior_gap(target: GaussianMixture, T: float) -> float:
    """TV(q_T, γ) by a fine grid: the most the init error can cost an exact-score sampler."""
    a, s = math.exp(-T), math.sqrt(-math.expm1(-2.0 * T))
    x = torch.linspace(-12.0, 12.0, 24_001, dtype=torch.float64)[:, None]
    q_t = target.noised(s, scale=a).log_prob(x).double().exp()
    phi = torch.exp(-0.5 * x[:, 0] ** 2) / math.sqrt(2 * math.pi)
    return float(0.5 * (q_t - phi).abs().sum() * (x[1, 0] - x[0, 0]))


def shifted(score_fn, eps: float):
    """s + ε·u with u = 1: E_{q_t}|s − ∇log q_t|² = ε² exactly, at every t."""

    def fn(x: Tensor, t: Tensor | None) -> Tensor:
        return score_fn(x, t) + eps

    return fn


def sample_tv(
    target: GaussianMixture,
    s: Settings,
    *,
    T: float,
    n_steps: int,
    eps: float,
    part: int,
    seed: int,
) -> float:
    """Histogram TV to q of n_chains exponential-integrator chains with (shifted) exact score."""
    sde = OUSDE(T=T, eps=0.0)
    g = generator(seed, part)
    score = exact_score_fn(sde, target)
    if eps:
        score = shifted(score, eps)
    x0 = sde.prior_sample((s.n_chains, 1), generator=g)
    out = reverse_sde(score, x0, sde=sde, n_steps=n_steps, method="exponential", generator=g)
    return histogram_tv_to_density(out.samples, target.log_prob, s.bins, s.hist_range)


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run_all(Path(out_dir), s, size, seed)


def _constants(means, stds, weights, s: Settings, T: float) -> dict[str, float]:
    target = mixture(means, stds, weights)
    n_x, n_t = s.lip_grid
    lip = score_lipschitz_1d(target, OUSDE(T=T, eps=0.0), x_range=(-10.0, 10.0), n_x=n_x, n_t=n_t)
    return {
        "L_raw": lip,
        "L": max(lip, 1.0),
        "m2": root_second_moment(means, stds, weights),
        "kl": kl_to_standard_normal(target),
    }


def _bound(c: dict[str, float], h: float, T: float, eps: float = 0.0):
    return reverse_sde_tv_bound(
        kl=c["kl"], lipschitz=c["L"], dim=1, m2=c["m2"], h=h, T=T, eps_score=eps
    )


def _run_all(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    tables: dict[str, Any] = {}
    target = mixture(s.means, s.stds, s.weights)
    T_max = max(max(s.Ts), s.T_fixed)
    c = _constants(s.means, s.stds, s.weights, s, T_max)

    # ---- noise floor: exact samples of the same size ------------------------------------------
    floors = [
        histogram_tv_to_density(
            target.sample(s.n_chains, generator=generator(seed, 400 + j)),
            target.log_prob,
            s.bins,
            s.hist_range,
        )
        for j in range(s.n_floor)
    ]
    floor, floor_sd = float(np.mean(floors)), float(np.std(floors, ddof=1))
    tables["setup"] = table(
        ["target", "L (sup |∂ₓ s_t|)", "m₂", "KL(q‖γ)", "1/L", "chains", "bins", "noise floor",
         "floor s.d."],
        [[f"{s.weights[0]}·N({s.means[0]}, {s.stds[0]}²) + {s.weights[1]}·N({s.means[1]}, "
          f"{s.stds[1]}²)", c["L_raw"], c["m2"], c["kl"], 1.0 / c["L"], s.n_chains, s.bins,
          floor, floor_sd]],
    )  # fmt: skip

    # ---- h sweep at T_fixed, exact score ------------------------------------------------------
    T = s.T_fixed
    h_rows, hs, tv_h, tot_h, disc_h = [], [], [], [], []
    for i, h_req in enumerate(s.hs):
        n = max(1, round(T / h_req))
        h = T / n
        tv = sample_tv(target, s, T=T, n_steps=n, eps=0.0, part=100 + i, seed=seed)
        b = _bound(c, h, T)
        h_rows.append([h, n, b.step_condition_holds, tv, floor, b.initialisation,
                       b.discretisation, b.total, b.total / tv])  # fmt: skip
        hs.append(h)
        tv_h.append(tv)
        tot_h.append(b.total)
        disc_h.append(b.discretisation)
    tables["h_sweep"] = table(
        ["h", "N", "h ≤ 1/L", "measured TV", "noise floor", "bound: init", "bound: discretisation",
         "bound total (C=1)", "bound / measured"],
        h_rows,
    )  # fmt: skip
    fit_h = [i for i, h in enumerate(hs) if h <= 1.0 / c["L"] and tv_h[i] > 3 * floor]
    slope_h = _slope([hs[i] for i in fit_h], [tv_h[i] for i in fit_h])
    slope_h_bound = _slope([hs[i] for i in fit_h], [disc_h[i] for i in fit_h])
    i_ref = min((i for i, h in enumerate(hs) if h <= 1.0 / c["L"]), default=len(hs) - 1)
    ref_h = [tv_h[i_ref] * h / hs[i_ref] for h in hs]
    save(
        line_plot(
            {
                "measured TV (exact score)": (hs, tv_h),
                "reference ∝ h (through the largest h ≤ 1/L)": (hs, ref_h),
                "bound total (C = 1)": (hs, tot_h),
                "bound: discretisation term": (hs, disc_h),
            },
            xlabel="step h",
            ylabel="TV(p_T, q)",
            title=f"T = {T:g}, exact score, {s.n_chains} chains (TV ≤ 1 always; "
            f"init term {b.initialisation:.2g})",
            logx=True,
            logy=True,
            hline=floor,
            hline_label="noise floor (exact samples)",
        ),
        figs / "seed002-tv-bound_h.png",
    )

    # ---- T sweep at h_small, exact score -----------------------------------------------------
    t_rows, Ts, tv_T, gap_T, init_T, tot_T = [], [], [], [], [], []
    for i, T_i in enumerate(s.Ts):
        n = max(1, round(T_i / s.h_small))
        h = T_i / n
        tv = sample_tv(target, s, T=T_i, n_steps=n, eps=0.0, part=200 + i, seed=seed)
        gap = tv_prior_gap(target, T_i)
        b = _bound(c, h, T_i)
        t_rows.append([T_i, n, h, tv, gap, b.initialisation, b.discretisation, b.total])
        Ts.append(T_i)
        tv_T.append(tv)
        gap_T.append(gap)
        init_T.append(b.initialisation)
        tot_T.append(b.total)
    tables["T_sweep"] = table(
        ["T", "N", "h", "measured TV", "TV(q_T, γ) (quadrature)", "bound: init √KL·e^{−T}",
         "bound: discretisation", "bound total (C=1)"],
        t_rows,
    )  # fmt: skip
    plateau = max(floor, tv_T[-1])
    fit_T = [i for i, v in enumerate(tv_T) if v > 3 * plateau]
    rate_T = _decay_rate([Ts[i] for i in fit_T], [tv_T[i] for i in fit_T])
    rate_gap = _decay_rate([Ts[i] for i in fit_T], [gap_T[i] for i in fit_T])
    save(
        line_plot(
            {
                "measured TV (exact score)": (Ts, tv_T),
                "TV(q_T, γ) (quadrature)": (Ts, gap_T),
                "bound: init term √KL·e^{−T}": (Ts, init_T),
                "bound total (C = 1)": (Ts, tot_T),
            },
            xlabel="horizon T",
            ylabel="TV",
            title=f"h ≈ {s.h_small:g}, exact score (log y: e^(−T) is a straight line)",
            logy=True,
            hline=floor,
            hline_label="noise floor (exact samples)",
        ),
        figs / "seed002-tv-bound_T.png",
    )

    # ---- ε sweep at h_small, T_fixed, shifted score -------------------------------------------
    n = max(1, round(T / s.h_small))
    h = T / n
    tv0 = sample_tv(target, s, T=T, n_steps=n, eps=0.0, part=300, seed=seed)
    e_rows, es, tv_e, score_e, tot_e = [], [], [], [], []
    for i, eps in enumerate(s.epss):
        tv = sample_tv(target, s, T=T, n_steps=n, eps=eps, part=301 + i, seed=seed)
        b = _bound(c, h, T, eps)
        e_rows.append([eps, tv, tv0, tv - tv0, b.score_error, b.total])
        es.append(eps)
        tv_e.append(tv)
        score_e.append(b.score_error)
        tot_e.append(b.total)
    tables["eps_sweep"] = table(
        ["ε", "measured TV", "measured TV at ε = 0", "excess over ε = 0", "bound: score term ε√T",
         "bound total (C=1)"],
        e_rows,
    )  # fmt: skip
    slope_e = _slope(es, tv_e)
    excess = [(e, v - tv0) for e, v in zip(es, tv_e, strict=True) if v - tv0 > 3 * floor]
    slope_excess = _slope([e for e, _ in excess], [v for _, v in excess])
    save(
        line_plot(
            {
                "measured TV (score + ε)": (es, tv_e),
                "bound: score term ε√T": (es, score_e),
                "bound total (C = 1)": (es, tot_e),
            },
            xlabel="score error ε (constant shift)",
            ylabel="TV(p_T, q)",
            title=f"T = {T:g}, h = {h:.3g}; measured TV at ε = 0: {tv0:.3g}",
            logx=True,
            logy=True,
            hline=floor,
            hline_label="noise floor (exact samples)",
        ),
        figs / "seed002-tv-bound_eps.png",
    )

    # ---- the bound's constants for other mixtures (no sampling) -------------------------------
    o_rows = []
    for means, stds, weights in ((s.means, s.stds, s.weights), *s.others):
        co = c if means == s.means and stds == s.stds else _constants(means, stds, weights, s, T)
        b = _bound(co, s.h_small, T)
        o_rows.append([str(means), str(stds), str(weights), co["L_raw"], co["m2"], co["kl"],
                       b.total])  # fmt: skip
    tables["bound_by_target"] = table(
        [
            "means",
            "stds",
            "weights",
            "L",
            "m₂",
            "KL(q‖γ)",
            f"bound total at h={s.h_small:g}, T={T:g}",
        ],
        o_rows,
    )

    slopes = {
        "tv_vs_h": slope_h,
        "bound_discretisation_vs_h": slope_h_bound,
        "tv_decay_rate_in_T": rate_T,
        "prior_gap_decay_rate_in_T": rate_gap,
        "tv_vs_eps": slope_e,
        "tv_excess_vs_eps": slope_excess,
    }
    tables["slopes"] = table(
        ["quantity", "measured", "the bound's rate", "fitted on"],
        [
            ["log TV vs log h (exact score)", slope_h, slope_h_bound,
             f"h ≤ 1/L with TV > 3×floor: {len(fit_h)} points"],
            ["decay rate r in TV ∝ e^{−rT}", rate_T, 1.0,
             f"TV > 3×max(floor, TV(T_max)): {len(fit_T)} points"],
            ["  … of TV(q_T, γ) on those T", rate_gap, 1.0, ""],
            ["log TV vs log ε (shifted score)", slope_e, 1.0, f"all {len(es)} ε"],
            ["log (TV − TV(ε=0)) vs log ε", slope_excess, 1.0,
             f"excess > 3×floor: {len(excess)} points"],
        ],
    )  # fmt: skip

    i_fine = int(np.argmin(hs))
    summary = [
        f"target {tables['setup']['rows'][0][0]}: L = {c['L_raw']:.3g}, m₂ = {c['m2']:.3g}, "
        f"KL(q‖γ) = {c['kl']:.3g}; noise floor (exact samples, {s.n_chains}) "
        f"{floor:.3g} ± {floor_sd:.2g}",
        f"TV vs h (T={T:g}): slope {_f(slope_h)} (bound's discretisation term: "
        f"{_f(slope_h_bound)}, √h asymptotically); at h={hs[i_fine]:.3g} measured "
        f"{tv_h[i_fine]:.3g} vs bound {tot_h[i_fine]:.3g} (×{tot_h[i_fine] / tv_h[i_fine]:.3g})",
        f"TV vs T (h≈{s.h_small:g}): TV ∝ e^{{−rT}} with r = {_f(rate_T)} (TV(q_T, γ): "
        f"{_f(rate_gap)}; bound: 1) down to {tv_T[-1]:.3g} at T={Ts[-1]:g}, where the "
        f"bound's √T-growing discretisation term is {t_rows[-1][6]:.3g}",
        f"TV vs ε (T={T:g}, h={h:.3g}): slope {_f(slope_e)}, excess over ε=0: slope "
        f"{_f(slope_excess)} (bound: 1); ε={es[0]:g}: {tv_e[0]:.3g} vs {tv0:.3g} at ε=0",
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
        "constants": c,
        "noise_floor": [floor, floor_sd],
        "slopes": slopes,
    }


def _slope(x: list[float], y: list[float]) -> float | None:
    return loglog_slope(x, y) if len(x) >= 2 else None


def _decay_rate(x: list[float], y: list[float]) -> float | None:
    """r in y ∝ e^{−r·x} (least squares on log y), None with fewer than two points."""
    if len(x) < 2:
        return None
    return -float(np.polyfit(np.asarray(x, float), np.log(np.asarray(y, float)), 1)[0])


def _f(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)
