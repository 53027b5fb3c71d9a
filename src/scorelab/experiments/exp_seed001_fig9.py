"""Seed 001 Fig. 9 (§4.1): a fixed σ ladder breaks as two Gaussians move apart; σ₁ = diameter holds.

0.2·N((−d/2, 0), I) + 0.8·N((d/2, 0), I) for growing d, annealed Langevin with the exact noised
score over (a) the seed's fixed ladder σ₁ = 1 → σ_L = 0.01 and (b) Song & Ermon 2020's σ₁ = the
largest pairwise distance of the data (technique 1), same σ_L, L, ε and T. Both start from their
own prior N(0, σ₁²I), the NCSN convention. With σ₁ = 1 the noised modes never overlap once
d ≫ 1, so each chain stays on the side it started on: the weights follow the start, not the law.
"""

from __future__ import annotations

from pathlib import Path

from scorelab.distributions import GaussianMixture, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common import gen, mixture_row, pick, table, timed
from scorelab.heuristics import sigma_max_from_data
from scorelab.plots import samples_over_density, save
from scorelab.runs import figures_dir
from scorelab.samplers import annealed_langevin, gaussian_prior
from scorelab.schedules import geometric_sigmas

NAME = "seed001-fig9"
TITLE = "Fixed σ₁ = 1 ladder vs σ₁ = data diameter as two Gaussians move apart"
SEED_REF = "seed 001 Fig. 9 (§4.1.1–4.1.2)"
SIGMA_MIN, N_LEVELS = 0.01, 10


def two_gaussians(d: float) -> GaussianMixture:
    return GaussianMixture([[-d / 2, 0.0], [d / 2, 0.0]], 1.0, [0.2, 0.8])


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str, seed: int) -> dict:
    n = pick(size, 400, 2000)
    t_each = pick(size, 100, 1000)
    eps = 0.5 * SIGMA_MIN**2  # αᵢ = ε σᵢ²/σ_L²: ε/σ_L² = 0.5, stable at every level
    distances = pick(size, (10.0, 80.0), (10.0, 20.0, 40.0, 80.0))
    n_data = pick(size, 2000, 5000)  # the points whose diameter sets σ₁
    figs = figures_dir(out_dir)
    rows = []
    for k, d in enumerate(distances):
        target = two_gaussians(d)
        score = target_score_fn(target)
        g = gen(seed, k)
        data = target.sample(n_data, generator=g)
        reference = target.sample(n, generator=g)
        ladders = {
            "fixed σ₁ = 1": 1.0,
            "σ₁ = max pairwise distance": sigma_max_from_data(data),
        }
        panels = [(f"exact samples, d = {d:g}", reference)]
        for j, (label, s1) in enumerate(ladders.items()):
            sigmas = geometric_sigmas(s1, SIGMA_MIN, N_LEVELS)
            x0 = gaussian_prior(n, 2, s1, generator=g)
            kw = dict(
                sigmas=sigmas,
                step_size=eps,
                n_steps_each=t_each,
                generator=gen(seed, 10 * k + j + 1),
            )
            res, sec = timed(lambda s=score, x0=x0, kw=kw: annealed_langevin(s, x0, **kw))
            row = mixture_row(res.samples, target, reference)
            rows.append([d, label, round(s1, 2), *row, round(sec, 1)])
            panels.append((f"{label} ({s1:.3g})\nw = ({row[0]:.2f}, {row[1]:.2f})", res.samples))
        lim = (-d / 2 - 5, d / 2 + 5)
        fig = samples_over_density(panels, target.log_prob, xlim=lim, ylim=lim)
        save(fig, figs / f"fig9_d{int(d)}.png")

    summary = [
        f"0.2/0.8 mixture of unit Gaussians at distance d; L = {N_LEVELS}, σ_L = {SIGMA_MIN}, "
        f"ε = {eps:g}, T = {t_each}, {n} chains, exact noised score",
        *[f"d = {r[0]:g}, {r[1]} (σ₁ = {r[2]}): w = ({r[3]}, {r[4]}), TV {r[5]}" for r in rows],
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "summary": summary,
        "tables": {
            "fig9": table(
                ["d", "ladder", "σ₁", "w light", "w heavy", "TV", "MMD²", "seconds"], rows
            )
        },
        "settings": {"n_chains": n, "n_steps_each": t_each, "step_size": eps, "n_levels": N_LEVELS},
    }
