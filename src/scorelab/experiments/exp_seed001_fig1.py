"""Seed 001 Fig. 1 (§2.2.1): a circle in R², Langevin with a naive score vs annealed Langevin.

Data: the unit circle with Gaussian noise 0.02 (NoisyCircle). (b) a score learned with no noise
conditioning — denoising score matching at one tiny σ = 0.01, the "naively estimated" score —
drives plain Langevin; (c) an NCSN (σ-conditional, eq. 9) drives annealed Langevin. Both are
also run with the exact score, so the failure is told apart: the learned field is only trained
within a few σ of the circle and is arbitrary elsewhere, while the exact one points at the
circle from everywhere. Measured: mean distance to the circle |‖x‖ − r|, the share of samples
within 0.1 of it, TV of the angle histogram (18 bins) to uniform, MMD² to exact samples.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scorelab.distributions import NoisyCircle, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common import (
    angle_tv,
    fit_ncsn,
    fit_unconditional,
    gen,
    pick,
    r3,
    sig3,
    table,
    timed,
)
from scorelab.heuristics import sigma_max_from_data
from scorelab.metrics import mmd
from scorelab.objectives import DSM
from scorelab.plots import samples_over_density, save, score_fields
from scorelab.runs import figures_dir
from scorelab.samplers import annealed_langevin, gaussian_prior, langevin
from scorelab.schedules import geometric_sigmas

NAME = "seed001-fig1"
TITLE = "Circle manifold: Langevin with a naive score vs annealed Langevin with an NCSN"
SEED_REF = "seed 001 Fig. 1 (§2.2.1, §2.3)"
RADIUS, NOISE = 1.0, 0.02
SIGMA_MIN, N_LEVELS, NAIVE_SIGMA = 0.01, 10, 0.01
LIM = (-1.8, 1.8)


def circle_row(x: torch.Tensor, reference: torch.Tensor) -> list:
    """[mean |‖x‖ − r|, share within 0.1 of the circle, angle TV, MMD²]."""
    dist = (torch.linalg.vector_norm(x, dim=1) - RADIUS).abs()
    near = float((dist < 0.1).double().mean())
    return [sig3(float(dist.mean())), r3(near), r3(angle_tv(x)), sig3(mmd(x, reference))]


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str, seed: int) -> dict:
    n = pick(size, 400, 2000)
    train_steps = pick(size, 300, 4000)
    hidden = pick(size, 64, 128)
    t_each, plain_steps = pick(size, 50, 200), pick(size, 500, 2000)
    eps = 0.5 * SIGMA_MIN**2  # annealed: αᵢ = ε σᵢ²/σ_L²; plain Langevin uses ε itself
    target = NoisyCircle(RADIUS, NOISE)
    exact = target_score_fn(target)
    g = gen(seed)
    data = target.sample(pick(size, 2000, 5000), generator=g)
    reference = target.sample(n, generator=g)
    floor = circle_row(target.sample(n, generator=g), reference)
    sigma_max = sigma_max_from_data(data)
    sigmas = geometric_sigmas(sigma_max, SIGMA_MIN, N_LEVELS)
    naive, naive_s = fit_unconditional(
        data, DSM(NAIVE_SIGMA), steps=train_steps, seed=seed, hidden=hidden
    )
    ncsn, ncsn_s = fit_ncsn(data, sigmas, steps=train_steps, seed=seed, hidden=hidden)
    # an isotropic start: angles are uniform from the outset, so angle TV measures the score
    x_plain = gaussian_prior(n, 2, RADIUS, generator=g)
    x_prior = gaussian_prior(n, 2, sigma_max, generator=g)

    def plain(score_fn, stream):
        kw = dict(step_size=eps, n_steps=plain_steps, generator=gen(seed, stream))
        return lambda: langevin(score_fn, x_plain, **kw)

    def annealed(score_fn, stream):
        kw = dict(sigmas=sigmas, step_size=eps, n_steps_each=t_each, generator=gen(seed, stream))
        return lambda: annealed_langevin(score_fn, x_prior, denoise=True, **kw)

    runs = {
        "(b) plain Langevin, naive learned score": plain(naive, 1),
        "(c) annealed Langevin, learned NCSN": annealed(ncsn, 2),
        "plain Langevin, exact score": plain(exact, 3),
        "annealed Langevin, exact score": annealed(exact, 4),
    }
    rows, samples = [], {}
    for label, go in runs.items():
        res, sec = timed(go)
        if res is None:
            rows.append([label, None, None, None, None, None, round(sec, 1)])
            continue
        samples[label] = res.samples
        rows.append([label, *circle_row(res.samples, reference), res.nfe, round(sec, 1)])

    figs = figures_dir(out_dir)
    panels = [("(a) exact samples", reference)] + [
        (f"{label}\nmean |‖x‖ − 1| = {r[1]:.3g}", samples[label])
        for label, r in zip(runs, rows, strict=True)
        if label in samples
    ]
    fig = samples_over_density(panels, target.log_prob, xlim=LIM, ylim=LIM)
    save(fig, figs / "fig1.png")

    def at(f, s):
        return lambda x: f(x, torch.full((x.shape[0],), s))

    mid = float(sigmas[N_LEVELS // 2])
    fields = [
        ("exact score of the data law", target.score),
        (f"naive score (DSM at σ = {NAIVE_SIGMA}, no σ input)", lambda x: naive(x, None)),
        (f"NCSN, σ_L = {SIGMA_MIN}", at(ncsn, SIGMA_MIN)),
        (f"exact noised score, σ = {mid:.3g}", at(exact, mid)),
        (f"NCSN, σ = {mid:.3g}", at(ncsn, mid)),
        (f"NCSN, σ₁ = {sigma_max:.3g}", at(ncsn, sigma_max)),
    ]
    fig = score_fields(fields, xlim=LIM, ylim=LIM, log_prob_fn=target.log_prob, ncols=3)
    save(fig, figs / "fig1_score_fields.png")

    cols = ["sampler", "mean |‖x‖ − r|", "within 0.1", "angle TV", "MMD²", "NFE", "seconds"]
    summary = [
        f"NoisyCircle(r = {RADIUS}, noise = {NOISE}); exact samples: mean |‖x‖ − r| {floor[0]}, "
        f"angle TV {floor[2]} (the n = {n} histogram floor), MMD² {floor[3]}",
        f"naive score: DSM σ = {NAIVE_SIGMA}, {train_steps} steps ({naive_s:.0f} s); NCSN: σ₁ = "
        f"{sigma_max:.2f} → {SIGMA_MIN}, L = {N_LEVELS} ({ncsn_s:.0f} s); plain: ε = {eps:g} × "
        f"{plain_steps} steps from N(0, I); annealed: ε = {eps:g}, T = {t_each}",
        *[f"{r[0]}: dist {r[1]}, within 0.1 {r[2]}, angle TV {r[3]}, MMD² {r[4]}" for r in rows],
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "summary": summary,
        "tables": {"fig1": table(cols, [*rows, ["exact samples (floor)", *floor, 0, 0.0]])},
        "settings": {
            "n_chains": n,
            "sigmas": sigmas.tolist(),
            "step_size": eps,
            "n_steps_each": t_each,
            "plain_steps": plain_steps,
            "train_steps": train_steps,
        },
    }
