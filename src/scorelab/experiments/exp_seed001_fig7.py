"""Seed 001 Figs. 7 and 8 (§3.3): step sizes εᵢ ∝ σᵢ² against constant steps, exact score.

Annealed Langevin on the Fig. 3 mixture with αᵢ = ε σᵢ²/σ_L² (scorelab's annealed_langevin)
against the same ladder, the same T per level and the same start run with one constant step c at
every level (`langevin(..., sigma=σᵢ)` level by level). A small c cannot move the chains at the
top levels, where the law is σ₁ wide; a large c is too coarse at the bottom ones (the stationary
variance of a step c on N(m, v) is v/(1 − c/4v)) or diverges (c > 4v). Fig. 8: a few paths.
"""

from __future__ import annotations

from pathlib import Path

from scorelab.distributions import seed001_fig3, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common import (
    gen,
    mixture_row,
    mmd_floor,
    pick,
    r3,
    sig3,
    table,
    timed,
)
from scorelab.heuristics import sigma_max_from_data
from scorelab.plots import samples_over_density, save, trajectories
from scorelab.runs import figures_dir
from scorelab.samplers import annealed_langevin, gaussian_prior, langevin
from scorelab.schedules import geometric_sigmas

NAME = "seed001-fig7"
TITLE = "Annealed Langevin: steps εᵢ ∝ σᵢ² vs constant steps"
SEED_REF = "seed 001 Figs. 7, 8 (§3.3)"
XLIM, YLIM = (-10.0, 10.0), (-5.0, 15.0)
SIGMA_MIN, N_LEVELS = 0.01, 10
# "converged": weights within 0.05 in TV (≥ 2.5 binomial s.e. at 2000 chains) and MMD² within
# 5 s.d. of what exact samples score against the same reference (the noise floor)
TV_OK, FLOOR_SDS = 0.05, 5.0


def heavy_mode_variance(x, target) -> float:
    """Per-coordinate variance of the samples assigned to the heavy mode (true value 1)."""
    heavy = x[target.responsibilities(x).argmax(1) == 1]
    return r3(float(heavy.var(0).mean())) if heavy.shape[0] > 1 else None


def constant_steps(score_fn, x, sigmas, c: float, t_each: int, g):
    """The ladder run with one step c at every level: T Langevin steps at each fixed σᵢ."""
    nfe = 0
    for s in sigmas.tolist():
        res = langevin(score_fn, x, step_size=c, n_steps=t_each, sigma=s, generator=g)
        x, nfe = res.samples, nfe + res.nfe
    return type(res)(samples=x, nfe=nfe, info={"step_size": c})


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str, seed: int) -> dict:
    n = pick(size, 400, 2000)
    t_each = pick(size, 200, 1000)
    eps = 0.5 * SIGMA_MIN**2
    target = seed001_fig3()
    score = target_score_fn(target)
    g = gen(seed)
    data = target.sample(pick(size, 2000, 5000), generator=g)
    reference = target.sample(n, generator=g)
    floor, floor_sd = mmd_floor(target, reference, n, g)
    mmd_ok = floor + FLOOR_SDS * floor_sd
    sigma_max = sigma_max_from_data(data)
    sigmas = geometric_sigmas(sigma_max, SIGMA_MIN, N_LEVELS)
    alphas = [eps * s**2 / SIGMA_MIN**2 for s in sigmas.tolist()]
    x0 = gaussian_prior(n, 2, sigma_max, generator=g)
    runs = {
        f"αᵢ = ε σᵢ²/σ_L² ({alphas[0]:.3g} → {eps:g})": lambda: annealed_langevin(
            score, x0, sigmas=sigmas, step_size=eps, n_steps_each=t_each, generator=gen(seed, 1)
        )
    }
    for k, c in enumerate((eps, 0.05, 1.0, 3.0, 5.0)):
        runs[f"constant c = {c:g}"] = lambda c=c, k=k: constant_steps(
            score, x0, sigmas, c, t_each, gen(seed, 2 + k)
        )
    rows, panels = [], [("exact samples", reference)]
    for label, go in runs.items():
        res, sec = timed(go)
        if res is None:  # diverged or escaped (|x| > 1e6)
            rows.append([label, None, None, None, None, None, "diverged", None, round(sec, 1)])
            continue
        m = mixture_row(res.samples, target, reference)
        ok = m[2] < TV_OK and m[3] < mmd_ok
        var = heavy_mode_variance(res.samples, target)
        rows.append([label, *m, var, "yes" if ok else "no", res.nfe, round(sec, 1)])
        panels.append((f"{label}\nw = ({m[0]:.2f}, {m[1]:.2f}), MMD² {m[3]:.2g}", res.samples))
    # Fig. 8: a few paths through the levels, about six recorded states per level
    path = annealed_langevin(
        score,
        gaussian_prior(3, 2, sigma_max, generator=g),
        sigmas=sigmas,
        step_size=eps,
        n_steps_each=t_each,
        generator=gen(seed, 9),
        record_every=max(1, t_each // 6),
    )
    figs = figures_dir(out_dir)
    save(samples_over_density(panels, target.log_prob, xlim=XLIM, ylim=YLIM), figs / "fig7.png")
    fig8 = trajectories(
        path.trajectory,
        target.log_prob,
        xlim=(-40.0, 40.0),
        ylim=(-35.0, 45.0),
        n_chains=3,
        title=f"3 annealed paths, {N_LEVELS} levels × {t_each} steps, 6 states per level",
    )
    save(fig8, figs / "fig8_paths.png")
    summary = [
        f"ladder σ₁ = {sigma_max:.2f} → σ_L = {SIGMA_MIN}, L = {N_LEVELS}, T = {t_each}, {n} "
        f"chains from N(0, σ₁²I); MMD² noise floor {sig3(floor)} ± {sig3(floor_sd)}",
        *[
            f"{r[0]}: w = ({r[1]}, {r[2]}), TV {r[3]}, MMD² {r[4]}, heavy-mode variance {r[5]}, "
            f"converged {r[6]}"
            for r in rows
        ],
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "summary": summary,
        "tables": {
            "fig7": table(
                [
                    "step sizes",
                    "w light",
                    "w heavy",
                    "TV",
                    "MMD²",
                    "heavy-mode variance",
                    "converged",
                    "NFE",
                    "seconds",
                ],
                rows,
            )
        },
        "settings": {
            "n_chains": n,
            "sigmas": sigmas.tolist(),
            "alphas": alphas,
            "n_steps_each": t_each,
            "converged_if": f"TV < {TV_OK} and MMD² < floor + {FLOOR_SDS} s.d. = {mmd_ok:.3g}",
        },
    }
