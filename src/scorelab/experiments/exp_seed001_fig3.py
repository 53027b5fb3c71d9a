"""Seed 001 Figs. 3 and 4: plain vs annealed Langevin on the 0.2 / 0.8 mixture, exact and learned.

Plain Langevin from a uniform box keeps every chain in the basin it starts in, so the weights
come out ≈ 0.5 / 0.5 (§2.2.2, "slow mixing"); annealed Langevin over a geometric σ ladder
recovers 0.2 / 0.8 (§2.3.3). Both run with the exact score and with an NCSN learned by the
σ²-weighted denoising loss (eq. 9), so the sampler's failure is told apart from the network's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scorelab.distributions import seed001_fig3, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common import (
    fit_ncsn,
    gen,
    mixture_row,
    mmd_floor,
    pick,
    sig3,
    table,
    timed,
)
from scorelab.heuristics import sigma_max_from_data
from scorelab.metrics import fisher_divergence
from scorelab.plots import samples_over_density, save, score_fields
from scorelab.runs import figures_dir
from scorelab.samplers import annealed_langevin, gaussian_prior, langevin, uniform_box
from scorelab.schedules import geometric_sigmas

NAME = "seed001-fig3"
TITLE = "Plain vs annealed Langevin on the 0.2/0.8 mixture, exact and learned NCSN score"
SEED_REF = "seed 001 Figs. 3, 4 (§2.2.2, §2.3.3)"
XLIM, YLIM = (-10.0, 10.0), (-5.0, 15.0)


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str, seed: int) -> dict:
    n = pick(size, 1000, 2000)
    train_steps = pick(size, 300, 6000)
    hidden = pick(size, 64, 128)
    # T = 1000 is what seed 001 §4.2.1 says its 2D Gaussian runs used; T/10 shows the bias of
    # too few steps (chains freeze in their basin before the levels where the modes separate)
    sigma_min, n_levels, t_each = 0.01, 10, pick(size, 200, 1000)
    eps = 0.5 * sigma_min**2  # α_L = ε, α_i = ε σᵢ²/σ_L²: ε/σ_L² = 0.5 at every level
    plain_step, plain_steps = 0.1, pick(size, 300, 1000)

    target = seed001_fig3()
    exact = target_score_fn(target)
    g = gen(seed)
    data = target.sample(5000, generator=g)
    reference = target.sample(n, generator=g)
    floor, floor_sd = mmd_floor(target, reference, n, g)
    sigma_max = sigma_max_from_data(data)
    sigmas = geometric_sigmas(sigma_max, sigma_min, n_levels)
    learned, train_seconds = fit_ncsn(data, sigmas, steps=train_steps, seed=seed, hidden=hidden)

    box0 = uniform_box(n, 2, -10.0, 10.0, generator=g) + torch.tensor([0.0, 5.0])
    prior0 = gaussian_prior(n, 2, sigma_max, generator=g)

    def plain(score_fn, sigma, g):
        kw = dict(step_size=plain_step, n_steps=plain_steps, sigma=sigma, generator=g)
        return lambda: langevin(score_fn, box0, **kw)

    def annealed(score_fn, t, g):
        kw = dict(sigmas=sigmas, step_size=eps, n_steps_each=t, denoise=True, generator=g)
        return lambda: annealed_langevin(score_fn, prior0, **kw)

    # plain Langevin: the clean exact score; the network at its smallest level σ_L
    runs = {
        "plain Langevin, exact score": plain(exact, None, gen(seed, 1)),
        "annealed Langevin, exact score": annealed(exact, t_each, gen(seed, 2)),
        f"annealed Langevin, exact score, T = {t_each // 10}": annealed(
            exact, t_each // 10, gen(seed, 5)
        ),
        "plain Langevin, learned NCSN (σ_L)": plain(learned, sigma_min, gen(seed, 3)),
        "annealed Langevin, learned NCSN": annealed(learned, t_each, gen(seed, 4)),
    }
    rows, samples = [], {}
    for label, go in runs.items():
        res, seconds = timed(go)
        if res is None:  # diverged or escaped: report, do not plot
            rows.append([label, None, None, None, None, None, round(seconds, 2)])
            continue
        samples[label] = res.samples
        row = mixture_row(res.samples, target, reference)
        rows.append([label, *row, res.nfe, round(seconds, 2)])
    # the network's error per level: where it is large, the weights it hands on are off
    fisher = fisher_divergence(learned, target, n=n, sigma=sigmas.tolist(), generator=g)
    err_rows = [
        [sig3(s), sig3(f), sig3(s * s * f)] for s, f in zip(sigmas.tolist(), fisher, strict=True)
    ]

    figs = figures_dir(out_dir)
    panels = [("(a) exact samples", reference)] + [
        (f"{label}\nw = ({r[1]:.2f}, {r[2]:.2f})", samples[label])
        for label, r in zip(runs, rows, strict=True)
        if "T =" not in label and label in samples
    ]
    save(samples_over_density(panels, target.log_prob, xlim=XLIM, ylim=YLIM), figs / "fig3.png")
    # σ₁, the level where the two modes separate (≈ 1.4 here), σ_L
    levels = [float(sigmas[0]), float(sigmas[n_levels // 3]), float(sigmas[-1])]
    fields = [
        (f"{who} score, σ = {s:.3g}", lambda x, f=f, s=s: f(x, torch.full((x.shape[0],), s)))
        for who, f in (("exact", exact), ("learned", learned))
        for s in levels
    ]
    save(
        score_fields(fields, xlim=XLIM, ylim=YLIM, log_prob_fn=target.log_prob, ncols=3),
        figs / "fig4_score_fields.png",
    )

    by = {r[0]: r for r in rows}
    summary = [
        f"true weights (0.2, 0.8); MMD² noise floor (exact vs exact, n={n}) {sig3(floor)} ± "
        f"{sig3(floor_sd)}",
        f"ladder σ₁ = {sigma_max:.2f} (max pairwise distance) → σ_L = {sigma_min}, L = "
        f"{n_levels}, T = {t_each}, ε = {eps:g}; NCSN trained {train_steps} steps "
        f"({train_seconds:.1f} s)",
    ] + [f"{label}: w = ({r[1]}, {r[2]}), TV {r[3]}, MMD² {r[4]}" for label, r in by.items()]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "summary": summary,
        "tables": {
            "fig3": table(
                ["sampler", "w light", "w heavy", "TV", "MMD²", "NFE", "seconds"],
                [*rows, ["exact samples (noise floor)", 0.2, 0.8, 0.0, sig3(floor), 0, 0.0]],
            ),
            "learned_score_error": table(
                ["σ", "Fisher divergence", "σ² · Fisher divergence"], err_rows
            ),
        },
        "settings": {
            "n_chains": n,
            "sigmas": [float(s) for s in sigmas],
            "annealed_step_size": eps,
            "n_steps_each": t_each,
            "plain_step_size": plain_step,
            "plain_steps": plain_steps,
            "plain_start": "uniform on [-10, 10] x [-5, 15]",
            "train_steps": train_steps,
            "hidden": hidden,
        },
    }
