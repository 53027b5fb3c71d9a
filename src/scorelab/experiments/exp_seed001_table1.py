"""Seed 001 Table 1 / Fig. 10: the peaked component's weight over the step ε and steps per level T.

Target: 0.2·N((−5,−5), 3²I) + 0.8·N((5,5), 0.5²I) (seed001_fig10), sampled by annealed Langevin
with the exact noised score (αᵢ = ε σᵢ²/σ_L², eq. 11). The seed gives no σ ladder, so two are run:

- A: σ₁ = max pairwise distance of 5000 samples, σ_L = 0.01 (the seed's toy convention), L = 10;
- B: the same with σ_L = 0.1. On A the seed's two largest ε diverge: at levels σᵢ ≫ 0.5 the
  noised law is ≈ N(·, σᵢ²I), and the step is stable only while αᵢ/σᵢ² = ε/σ_L² < 4.
  B keeps ε/σ_L² ≤ 1 for all four ε, so the grid can be read as the seed printed it.

Song & Ermon 2020's rule (technique 4, `heuristics.step_size`) gives one ε per T; it is listed
with the variance ratio Var_T/σᵢ² it predicts, and on ladder B run for the smaller T.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from scorelab.distributions import seed001_fig10, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common import fit_ncsn, gen, pick, r3, sig3, table, timed
from scorelab.heuristics import sigma_max_from_data, step_size, variance_ratio
from scorelab.metrics import mixture_weights
from scorelab.plots import samples_over_density, save, score_fields
from scorelab.runs import figures_dir
from scorelab.samplers import annealed_langevin, gaussian_prior
from scorelab.schedules import geometric_sigmas

NAME = "seed001-table1"
TITLE = "Weight of the peaked Gaussian over ε × T (annealed Langevin, exact score)"
SEED_REF = "seed 001 Table 1, Fig. 10 (§4.2)"
EPS = (1e-2, 1e-3, 3e-4, 1e-4)
SEED_TABLE = {  # seed 001 Table 1: ε → weight at T = 1000, 10 000, 30 000 (true weight 0.8)
    1e-2: (0.07, 0.46, 0.78),
    1e-3: (0.47, 0.86, 0.94),
    3e-4: (0.46, 0.83, 0.93),
    1e-4: (0.36, 0.6, 0.77),
}
XLIM = YLIM = (-15.0, 10.0)
N_LEVELS = 10


def _peaked(res, target) -> float | None:
    return None if res is None else r3(mixture_weights(res.samples, target).estimated[1])


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str, seed: int) -> dict:
    n = pick(size, 200, 800)  # binomial s.e. of a 0.8 weight: 0.028 / 0.014
    ts = pick(size, (30, 300), (1000, 10_000, 30_000))
    rule_ts = ts[: pick(size, 1, 2)]  # the Song–Ermon ε is run for these T (not 30 000: time)
    n_learned, t_learned, train_steps = pick(size, (100, 30, 100), (500, 1000, 4000))
    target = seed001_fig10()
    exact = target_score_fn(target)
    g = gen(seed)
    data = target.sample(5000, generator=g)
    sigma_max = sigma_max_from_data(data)
    ladders = {s_l: geometric_sigmas(sigma_max, s_l, N_LEVELS) for s_l in (0.01, 0.1)}
    x0 = gaussian_prior(n, 2, sigma_max, generator=g)

    def anneal(score_fn, sigmas, eps, t, x, stream):
        kw = dict(sigmas=sigmas, step_size=eps, n_steps_each=t, generator=gen(seed, stream))
        return timed(lambda: annealed_langevin(score_fn, x, **kw))

    cells, grids, rule_rows, kept = [], {}, [], {}
    for s_l, sigmas in ladders.items():
        gamma = math.exp(math.log(sigma_max / s_l) / (N_LEVELS - 1))
        grid = []
        for i, eps in enumerate(EPS):
            ours = []
            for j, t in enumerate(ts):
                res, sec = anneal(exact, sigmas, eps, t, x0, 10 * i + j + 1)
                ours.append(_peaked(res, target))
                vr = variance_ratio(eps / 2, t, gamma, s_l) if eps / 2 < s_l**2 else None
                cells.append([s_l, eps, t, r3(eps / s_l**2), ours[-1], sig3(vr), round(sec, 1)])
                kept[(s_l, eps, t)] = res
            grid.append([eps, *["diverged" if w is None else w for w in ours]])
        grids[s_l] = grid
        for t in ts:  # technique 4: ε from T and γ (scorelab's convention, = 2ε of S&E)
            eps_rule = step_size(t, gamma, s_l)
            vr = variance_ratio(eps_rule / 2, t, gamma, s_l)
            w = None
            if s_l == 0.1 and t in rule_ts:
                w = _peaked(anneal(exact, sigmas, eps_rule, t, x0, 100 + t)[0], target)
            rule_rows.append([s_l, t, sig3(gamma), sig3(eps_rule), sig3(vr), w])

    # the same pipeline with a learned NCSN (ladder B, smallest T only)
    sig_b = ladders[0.1]
    learned, train_seconds = fit_ncsn(
        data, sig_b, steps=train_steps, seed=seed, hidden=pick(size, 32, 128)
    )
    x0_l = x0[:n_learned]
    learned_rows = []
    for i, eps in enumerate(EPS):
        res, sec = anneal(learned, sig_b, eps, t_learned, x0_l, 200 + i)
        ex = kept.get((0.1, eps, t_learned))
        ex_w = _peaked(ex, target) if ex is not None else None
        learned_rows.append([eps, t_learned, _peaked(res, target), ex_w, round(sec, 1)])

    figs = figures_dir(out_dir)
    panels = [("exact samples (w = 0.8)", target.sample(n, generator=g))]
    for s_l, eps, t in [(0.1, 1e-3, ts[0]), (0.1, 1e-3, ts[-1]), (0.01, 1e-4, ts[-1])]:
        res = kept[(s_l, eps, t)]
        if res is not None:
            w = _peaked(res, target)
            panels.append((f"σ_L = {s_l}, ε = {eps:g}, T = {t}\npeaked w = {w}", res.samples))
    save(samples_over_density(panels, target.log_prob, xlim=XLIM, ylim=YLIM), figs / "samples.png")
    levels = [float(sig_b[0]), float(sig_b[N_LEVELS // 2]), float(sig_b[-1])]

    def at(f, s):
        return lambda x: f(x, torch.full((x.shape[0],), s))

    fields = [("true score (σ = 0)", target.score)]
    fields += [(f"exact noised score, σ = {s:.3g}", at(exact, s)) for s in levels[1:]]
    fields += [(f"learned NCSN, σ = {s:.3g}", at(learned, s)) for s in levels]
    save(
        score_fields(fields, xlim=XLIM, ylim=YLIM, log_prob_fn=target.log_prob, ncols=3),
        figs / "fig10_scores.png",
    )

    seed_cols = [f"seed T={t}" for t in (1000, 10_000, 30_000)]
    grid_cols = ["ε", *[f"T={t}" for t in ts], *seed_cols]

    def with_seed(grid):
        return [[*row, *SEED_TABLE[row[0]]] for row in grid]

    summary = [
        f"σ₁ = {sigma_max:.2f} (max pairwise distance of 5000 samples), L = {N_LEVELS}, "
        f"{n} chains from N(0, σ₁²I); true peaked weight 0.8",
        *[
            f"σ_L = {s_l}: " + "; ".join(f"ε={r[0]:g}: {r[1:]}" for r in grid)
            for s_l, grid in grids.items()
        ],
        f"learned NCSN ({train_steps} steps, {train_seconds:.0f} s), σ_L = 0.1, T = {t_learned}: "
        + "; ".join(f"ε={r[0]:g}: {r[2]} (exact {r[3]})" for r in learned_rows),
        "Song–Ermon ε per T (σ_L = 0.1): "
        + "; ".join(f"T={r[1]}: ε={r[3]}, w={r[5]}" for r in rule_rows if r[0] == 0.1),
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "summary": summary,
        "tables": {
            "table1_sigmaL_0.1": table(grid_cols, with_seed(grids[0.1])),
            "table1_sigmaL_0.01": table(grid_cols, with_seed(grids[0.01])),
            "cells": table(
                ["σ_L", "ε", "T", "ε/σ_L²", "peaked w", "predicted Var_T/σ²", "seconds"], cells
            ),
            "song_ermon_rule": table(
                ["σ_L", "T", "γ", "ε (rule)", "Var_T/σ² at rule ε", "peaked w"], rule_rows
            ),
            "learned": table(
                ["ε", "T", "peaked w (learned NCSN)", "peaked w (exact)", "seconds"],
                learned_rows,
            ),
        },
        "settings": {
            "n_chains": n,
            "sigma_max": sigma_max,
            "ladders": {str(k): [float(s) for s in v] for k, v in ladders.items()},
            "T": list(ts),
            "learned": {"chains": n_learned, "T": t_learned, "train_steps": train_steps},
        },
    }
