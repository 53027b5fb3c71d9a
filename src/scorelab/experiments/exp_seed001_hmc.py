"""Seed 001 §5.1: annealed HMC without the Metropolis test on a learned NCSN score.

Seed 001 reports that replacing Langevin by HMC "did not converge, even after changing the
parameters", and blames the missing Metropolis–Hastings step (log p_data is unknown). Here, on
the Fig. 3 mixture (0.2·N((−5,5), I) + 0.8·N((5,5), I)), with one NCSN (σ-conditional
ScoreMLP, output/σ) and one geometric ladder σ₁ > … > σ_L:

  • annealed Langevin (seed 002 Algorithm 1): αᵢ = ε·σᵢ²/σ_L², T steps per level;
  • annealed HMC without MH: per level, `hmc(lambda x, _: s_θ(x, σᵢ), …)` with no log_prob_fn,
    leapfrog step hᵢ = c·σᵢ, L_f leapfrog steps per transition, T/L_f transitions per level
    (the same score evaluations per level as Langevin);
  • the same with the exact noised score (isolates the missing MH test from the score error);
  • annealed HMC with MH, exact score and exact log q_σᵢ (a reference only a known density
    allows).
One leapfrog step from a fresh momentum is a Langevin step with ε = h², so Langevin's
αᵢ = ε·σᵢ²/σ_L² corresponds to hᵢ = (√ε/σ_L)·σᵢ: c = √ε/σ_L (0.71 for ε/σ_L² = 0.5). The
sweep over c shows where the unadjusted HMC breaks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from scorelab._utils import DivergenceError
from scorelab.distributions import seed001_fig3, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common2 import (
    Timer,
    generator,
    line_plot,
    robust_weights,
    table,
    train,
)
from scorelab.metrics import mmd
from scorelab.models import ScoreMLP, model_score_fn
from scorelab.objectives import NCSN
from scorelab.plots import metric_vs_nfe, samples_over_density, save
from scorelab.runs import figures_dir
from scorelab.samplers import annealed_langevin, gaussian_prior, hmc, tweedie_denoise
from scorelab.schedules import geometric_sigmas

XLIM, YLIM = (-10.0, 10.0), (-5.0, 15.0)


NAME = "seed001-hmc"
TITLE = "Annealed HMC without Metropolis on a learned NCSN score vs annealed Langevin"
SEED_REF = "seed 001 §5.1 (and §1.3.2)"


@dataclass(frozen=True)
class Settings:
    m: int = 5000
    n_chains: int = 2000
    sigma_max: float = 10.0  # ≈ the distance between the modes (Song & Ermon 2020, technique 1)
    sigma_min: float = 0.1
    n_levels: int = 10
    hidden: int = 128
    depth: int = 3
    train_steps: int = 3000
    steps_each: int = 100  # score evaluations per level, Langevin and HMC alike
    eps_over_sigma2: float = 0.5  # Langevin ε/σ_L² (αᵢ = 0.5·σᵢ²)
    n_leapfrog: int = 5
    c_grid: tuple[float, ...] = (0.25, 0.5, 0.71, 1.0, 1.5, 2.0, 3.0)
    nfe_grid: tuple[int, ...] = (10, 30, 100, 300)  # steps per level for the NFE sweep
    nfe_c: tuple[float, ...] = (0.5, 1.0)  # HMC step scales in the NFE sweep


FULL = Settings()
SMALL = replace(
    FULL,
    m=2000,
    n_chains=500,
    n_levels=6,
    hidden=64,
    depth=2,
    train_steps=600,
    steps_each=30,
    c_grid=(0.5, 3.0),
    nfe_grid=(10, 30),
    nfe_c=(1.0,),
)


def annealed_hmc(
    score_fn,
    x0: Tensor,
    sigmas: list[float],
    *,
    c: float,
    n_leapfrog: int,
    steps_each: int,
    generator: torch.Generator,
    log_prob_at=None,
) -> tuple[Tensor, int, float | None]:
    """HMC level by level with the score at σᵢ and leapfrog step c·σᵢ; then a Tweedie step.

    Returns (samples, NFE per chain, mean acceptance over levels or None without MH)."""
    x, nfe, acc = x0, 0, []
    n_trans = max(1, steps_each // n_leapfrog)
    for s in sigmas:
        st = torch.full((x0.shape[0],), s, dtype=x0.dtype)
        res = hmc(
            lambda x, _, st=st: score_fn(x, st),
            x,
            step_size=c * s,
            n_leapfrog=n_leapfrog,
            n_steps=n_trans,
            log_prob_fn=None if log_prob_at is None else log_prob_at(s),
            generator=generator,
        )
        x, nfe = res.samples, nfe + res.nfe
        if res.info["acceptance_rate"] is not None:
            acc.append(res.info["acceptance_rate"])
    x = tweedie_denoise(score_fn, x, sigmas[-1])
    return x, nfe + 1, (sum(acc) / len(acc) if acc else None)


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run_all(Path(out_dir), s, size, seed)


def _run_all(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    target = seed001_fig3()
    exact = target_score_fn(target)
    g = generator(seed, 0)
    data = target.sample(s.m, generator=g)
    ref = target.sample(s.n_chains, generator=g)
    floor = mmd(target.sample(s.n_chains, generator=g), ref)
    sigmas_t = geometric_sigmas(s.sigma_max, s.sigma_min, s.n_levels)
    sigmas = [float(v) for v in sigmas_t]
    model, train_sec, _ = train(
        lambda: ScoreMLP(
            2, hidden=s.hidden, depth=s.depth, conditioning="sigma", scale_by_sigma=True
        ),
        NCSN(sigmas_t),
        data,
        steps=s.train_steps,
        seed=seed,
        lr=1e-3 if size == "full" else 3e-3,
        ema_decay=0.999 if size == "full" else 0.99,
    )
    learned = model_score_fn(model)
    eps = s.eps_over_sigma2 * s.sigma_min**2
    c_langevin = math.sqrt(eps) / s.sigma_min

    def log_prob_at(sig: float):
        return target.noised(sig).log_prob

    def quality(x: Tensor | None) -> list[Any]:
        if x is None:
            return [math.nan, math.nan, math.nan]
        w, tv = robust_weights(x, target)
        return [w[0], tv, mmd(x, ref)]

    def langevin_run(score_fn, steps_each: int, part: int):
        gl = generator(seed, part)
        x0 = gaussian_prior(s.n_chains, 2, s.sigma_max, generator=gl)
        with Timer() as t:
            res = annealed_langevin(
                score_fn,
                x0,
                sigmas=sigmas_t,
                step_size=eps,
                n_steps_each=steps_each,
                denoise=True,
                generator=gl,
            )
        return res.samples, res.nfe, None, t.seconds

    def hmc_run(score_fn, c: float, steps_each: int, part: int, mh: bool):
        gh = generator(seed, part)
        x0 = gaussian_prior(s.n_chains, 2, s.sigma_max, generator=gh)
        with Timer() as t:
            try:
                x, nfe, acc = annealed_hmc(
                    score_fn,
                    x0,
                    sigmas,
                    c=c,
                    n_leapfrog=s.n_leapfrog,
                    steps_each=steps_each,
                    generator=gh,
                    log_prob_at=log_prob_at if mh else None,
                )
            except DivergenceError:
                x, nfe, acc = None, 0, None
        return x, nfe, acc, t.seconds

    # ---- the step-size sweep at equal NFE ---------------------------------------------------
    rows, samples = [], {}
    variants = [
        ("HMC no MH, learned", learned, False),
        ("HMC no MH, exact score", exact, False),
        ("HMC + MH, exact score & log q_σ", exact, True),
    ]
    for label, fn in [("annealed Langevin, learned", learned), ("annealed Langevin, exact", exact)]:
        x, nfe, acc, sec = langevin_run(fn, s.steps_each, 1)
        rows.append([label, round(c_langevin, 3), nfe, *quality(x), acc, "ok", sec])
        samples[label] = x
    curves_tv: dict[str, tuple[list[float], list[float]]] = {}
    for vi, (label, fn, mh) in enumerate(variants):
        tvs = []
        for ci, c in enumerate(s.c_grid):
            x, nfe, acc, sec = hmc_run(fn, c, s.steps_each, 100 + 10 * vi + ci, mh)
            q = quality(x)
            status = "ok" if x is not None else "diverged"
            rows.append([label, c, nfe if x is not None else None, *q, acc, status, sec])
            tvs.append(q[1])
            samples[(label, c)] = x
        curves_tv[label] = (list(s.c_grid), tvs)
    tables = {
        "step_sweep": table(
            [
                "sampler",
                "c = h/σ",
                "NFE",
                "w light (0.2)",
                "weight TV",
                "MMD²",
                "acceptance",
                "status",
                "s",
            ],
            rows,
        )
    }
    by = {(r[0], r[1]): r for r in tables["step_sweep"]["rows"]}
    lang_tv = by[("annealed Langevin, learned", round(c_langevin, 3))][4]
    lang_mmd = by[("annealed Langevin, learned", round(c_langevin, 3))][5]
    diverged = {
        label: [c for c in s.c_grid if samples[(label, c)] is None] for label, _, _ in variants
    }
    gone = "; ".join(f"{k.split(',')[1].strip()}: c ≥ {v[0]:g}" for k, v in diverged.items() if v)
    fig = line_plot(
        curves_tv,
        xlabel="leapfrog step c = hᵢ/σᵢ",
        ylabel="weight TV",
        title=f"annealed HMC, {s.n_leapfrog} leapfrog steps, NFE = Langevin's"
        + (f"\ndiverged (no MH) — {gone}" if gone else ""),
        hline=lang_tv,
        hline_label="annealed Langevin, learned",
    )
    save(fig, figs / "seed001_hmc_tv_vs_step.png")

    def largest_ok(label: str) -> float | None:
        ok = [c for c in s.c_grid if samples[(label, c)] is not None]
        return ok[-1] if ok else None

    panels = [("exact samples", ref), ("annealed Langevin, learned", samples[rows[0][0]])]
    for label, c in [
        ("HMC no MH, learned", s.c_grid[0]),
        ("HMC no MH, learned", largest_ok("HMC no MH, learned")),
        ("HMC no MH, exact score", largest_ok("HMC no MH, exact score")),
        ("HMC + MH, exact score & log q_σ", s.c_grid[-1]),
    ]:
        if c is not None:
            w = robust_weights(samples[(label, c)], target)[0][0]
            panels.append((f"{label}, c={c:g}\nw light = {w:.3f}", samples[(label, c)]))
    save(
        samples_over_density(panels, target.log_prob, xlim=XLIM, ylim=YLIM, max_points=1000),
        figs / "seed001_hmc_samples.png",
    )

    # ---- NFE sweep: steps per level --------------------------------------------------------
    nrows, curves = [], {}
    for label, fn in [("annealed Langevin, learned", learned)]:
        pts = [langevin_run(fn, t, 2) for t in s.nfe_grid]
        curves[label] = ([p[1] for p in pts], [quality(p[0])[1] for p in pts])
        nrows += [
            [label, t, p[1], *quality(p[0]), p[3]] for t, p in zip(s.nfe_grid, pts, strict=True)
        ]
    for c in s.nfe_c:
        for label, fn, mh in variants[::2]:
            pts = [hmc_run(fn, c, t, 300, mh) for t in s.nfe_grid]
            key = f"{label}, c={c:g}"
            curves[key] = ([p[1] for p in pts], [quality(p[0])[1] for p in pts])
            nrows += [
                [key, t, p[1] if p[0] is not None else None, *quality(p[0]), p[3]]
                for t, p in zip(s.nfe_grid, pts, strict=True)
            ]
    tables["nfe_sweep"] = table(
        ["sampler", "steps per level", "NFE", "w light (0.2)", "weight TV", "MMD²", "s"], nrows
    )
    fig = metric_vs_nfe(curves, metric="weight TV")
    save(fig, figs / "seed001_hmc_tv_vs_nfe.png")

    accs = [r[6] for r in tables["step_sweep"]["rows"] if r[0].startswith("HMC + MH")]
    no_mh = [(r[1], r[4]) for r in tables["step_sweep"]["rows"] if r[0] == "HMC no MH, learned"]
    summary = [
        f"Fig. 3 mixture, true light weight 0.2; MMD² noise floor {floor:.2e}; NCSN "
        f"({s.hidden}×{s.depth}, output/σ) trained {s.train_steps} steps ({train_sec:.1f} s); "
        f"ladder {s.sigma_max:g} → {s.sigma_min:g}, L = {s.n_levels}, {s.steps_each} score "
        f"evaluations per level",
        f"annealed Langevin (learned): TV {lang_tv:.3f}, MMD² {lang_mmd:.2e} "
        f"(its step matches c = {c_langevin:.3f})",
        "annealed HMC without MH (learned), weight TV by c: "
        + ", ".join(
            f"c={c:g}: " + (f"{tv:.3f}" if tv is not None else "diverged") for c, tv in no_mh
        ),
        "HMC + MH (exact) acceptance by c: "
        + ", ".join(
            f"c={c:g}: {a:.2f}" if a is not None else f"c={c:g}: n/a"
            for c, a in zip(s.c_grid, accs, strict=True)
        ),
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
        "mh_acceptance": accs,
        "mmd_floor": floor,
    }
