"""`scorelab demo`: learn the score of the seed 001 Fig. 3 mixture, then sample it three ways.

A noise-conditional score network (NCSN loss, geometric σ ladder, EMA) is trained on samples
of the 0.2 / 0.8 two-Gaussian mixture.  Then each sampler runs twice, with the learned score
and with the exact one, so that sampler error and learning error can be told apart:
(a) plain Langevin from a uniform box: each chain falls into the basin it starts in, so the
    weights come out near 0.5 / 0.5 (seed 001 §2.2.2, "slow mixing");
(b) annealed Langevin over the σ ladder (seed 002 Algorithm 1) + Tweedie denoising;
(c) Langevin started at the data with early stopping (seed 000, Koehler & Vuong).
Writes a run folder with checkpoints, samples, figures, results.json and report.html.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from scorelab._utils import ScorelabError, make_generator
from scorelab.distributions import seed001_fig3, target_score_fn
from scorelab.metrics import fisher_divergence, mixture_weights, mmd
from scorelab.models import ScoreMLP, model_score_fn
from scorelab.objectives import NCSN
from scorelab.plots import samples_over_density, save, score_fields
from scorelab.runs import figures_dir, fresh_run_dir, save_samples, write_json
from scorelab.samplers import annealed_langevin, from_data, gaussian_prior, langevin, uniform_box
from scorelab.schedules import geometric_sigmas
from scorelab.train import fit


@dataclass(frozen=True)
class DemoSettings:
    """Every number the demo uses, written to results.json beside the results."""

    n: int = 5000  # chains per sampler, and training points
    seed: int = 0
    train_steps: int = 2000
    sigma_max: float = 10.0  # ≈ the distance between the modes (Song & Ermon 2020, technique 1)
    sigma_min: float = 0.1
    n_levels: int = 10
    box: float = 10.0  # (a) chains start uniform on [−box, box]²
    langevin_step: float = 0.1
    langevin_steps: int = 1000
    annealed_eps: float = 0.005  # ε/σ_L² = 0.5
    steps_each: int = 200
    data_step: float = 0.05  # (c)
    data_time: float = 5.0  # early-stopping time T (diffusion time, = n_steps·ε/2)


def _samplers(s: DemoSettings, sigmas: torch.Tensor, data: torch.Tensor):
    """name → run(score_fn, generator): the three samplers, one set of settings.

    A single-level sampler gives a noise-conditional network the smallest level σ_L; the
    exact score ignores it (σ_L-noised and clean laws differ by 1% in variance here)."""

    def at_smallest(score_fn):
        return lambda x, _s: score_fn(x, torch.full((x.shape[0],), s.sigma_min))

    return {
        "langevin (uniform start)": lambda sf, g: langevin(
            at_smallest(sf),
            uniform_box(s.n, 2, -s.box, s.box, generator=g),
            step_size=s.langevin_step,
            n_steps=s.langevin_steps,
            generator=g,
        ),
        "annealed langevin": lambda sf, g: annealed_langevin(
            sf,
            gaussian_prior(s.n, 2, s.sigma_max, generator=g),
            sigmas=sigmas,
            step_size=s.annealed_eps,
            n_steps_each=s.steps_each,
            denoise=True,
            generator=g,
        ),
        "langevin from data (early stop)": lambda sf, g: langevin(
            at_smallest(sf),
            from_data(data, s.n, generator=g),
            step_size=s.data_step,
            time=s.data_time,
            generator=g,
        ),
    }


def run_demo(out_root: str | Path = "runs", settings: DemoSettings | None = None) -> dict:
    """Train, sample, measure; write the run folder; return the results dict."""
    s = settings or DemoSettings()
    if s.n < 10:
        raise ScorelabError(f"the demo needs at least 10 chains, got n={s.n}")
    # (N, 2) tensors: every op is tiny, and two threads on two busy cores only fight.
    torch.set_num_threads(1)
    target = seed001_fig3()
    g = make_generator(s.seed)
    data = target.sample(s.n, generator=g)  # the training data, and the starts of (c)
    reference = target.sample(s.n, generator=g)  # fresh exact samples: the yardstick for MMD
    sigmas = geometric_sigmas(s.sigma_max, s.sigma_min, s.n_levels)
    run_dir = fresh_run_dir(out_root, "demo")

    t0 = time.perf_counter()
    torch.manual_seed(s.seed)
    model = ScoreMLP(2, hidden=128, depth=3, conditioning="sigma", scale_by_sigma=True)
    fitted = fit(
        model,
        NCSN(sigmas),
        data,
        steps=s.train_steps,
        batch_size=256,
        lr=1e-3,
        seed=s.seed,
        ema_decay=0.999,
        run_dir=run_dir,
        log_every=100,
    )
    train_seconds = time.perf_counter() - t0
    learned = model_score_fn(fitted.best_model())  # the EMA weights sample better
    scores = {"learned": learned, "exact": target_score_fn(target)}
    fisher = fisher_divergence(
        scores["learned"], target, n=2000, sigma=sigmas[[0, 4, -1]].tolist(), generator=g
    )

    rows, samples = [], {}
    for name, run in _samplers(s, sigmas, data).items():
        for score_name, score_fn in scores.items():
            t1 = time.perf_counter()
            res = run(score_fn, g)
            seconds = time.perf_counter() - t1
            w = mixture_weights(res.samples, target)
            rows.append(
                [
                    name,
                    score_name,
                    round(w.estimated[0], 4),
                    round(w.estimated[1], 4),
                    round(w.tv, 4),
                    mmd(res.samples, reference),
                    res.nfe,
                    round(seconds, 2),
                ]
            )
            samples[(name, score_name)] = res.samples
            slug = "-".join(name.replace("(", "").replace(")", "").split())
            save_samples(
                run_dir / "samples" / f"{slug}-{score_name}.npz",
                res.samples,
                sampler=name,
                score=score_name,
                nfe=res.nfe,
            )
    floor = mmd(target.sample(s.n, generator=g), reference)
    true_w = [round(w, 6) for w in target.weights.tolist()]
    results = {
        "title": "Demo: the seed 001 Fig. 3 mixture, learned score beside exact score",
        "seed_ref": "seed 001 §2.2.2 and Fig. 3; seed 002 Algorithm 1; seed 000",
        "summary": [
            f"True weights {true_w}; trained an NCSN ScoreMLP for {s.train_steps} steps "
            f"({train_seconds:.1f} s) on {s.n} samples.",
            "Plain Langevin keeps the weights of its uniform start (≈ 0.5/0.5); annealed "
            "Langevin and Langevin from the data recover 0.2/0.8, with the learned score as "
            "with the exact one.",
            f"MMD² between two exact samples (noise floor): {floor:.2e}.",
        ],
        "tables": {
            "samplers": {
                "columns": [
                    "sampler",
                    "score",
                    "w₁ (0.2)",
                    "w₂ (0.8)",
                    "weight TV",
                    "MMD²",
                    "NFE",
                    "seconds",
                ],
                "rows": rows,
            },
            "fisher divergence of the learned score": {
                "columns": ["σ", "E‖s_θ − ∇log p_σ‖²"],
                "rows": [
                    [round(float(sig), 4), f]
                    for sig, f in zip(sigmas[[0, 4, -1]].tolist(), fisher, strict=True)
                ],
            },
        },
        "settings": dataclasses.asdict(s),
        "true_weights": true_w,
        "mmd_noise_floor": floor,
        "train_seconds": train_seconds,
    }
    _figures(run_dir, target, reference, samples, scores, sigmas)
    write_json(run_dir / "results.json", results)
    from scorelab.report import build_report

    build_report(run_dir)
    results["run_dir"] = str(run_dir)
    return results


def _figures(run_dir, target, reference, samples, scores, sigmas) -> None:
    figs = figures_dir(run_dir)
    lim = {"xlim": (-10, 10), "ylim": (-5, 15)}
    for score_name in ("exact", "learned"):
        panels = [("exact samples", reference)] + [
            (f"{name}\n({score_name} score)", x)
            for (name, sn), x in samples.items()
            if sn == score_name
        ]
        save(
            samples_over_density(panels, target.log_prob, **lim), figs / f"samples-{score_name}.png"
        )
    panels = []
    for sig in (float(sigmas[0]), float(sigmas[4]), float(sigmas[-1])):
        for score_name, fn in scores.items():
            panels.append(
                (
                    f"{score_name}, σ = {sig:.2g}",
                    lambda x, fn=fn, sig=sig: fn(x, torch.full((x.shape[0],), sig)),
                )
            )
    save(
        score_fields(panels, log_prob_fn=target.log_prob, ncols=2, **lim), figs / "score-fields.png"
    )


def format_table(results: dict) -> str:
    """The printed summary: one row per sampler and score."""
    table = results["tables"]["samplers"]
    lines = [
        results["summary"][0],
        f"{'sampler':33s} {'score':8s} {'weights':>16s} {'TV':>6s} {'MMD²':>9s} "
        f"{'NFE':>5s} {'sec':>5s}",
    ]
    for name, score, w1, w2, tv, m, nfe, sec in table["rows"]:
        lines.append(
            f"{name:33s} {score:8s} {f'({w1:.3f}, {w2:.3f})':>16s} {tv:6.3f} "
            f"{m:9.2e} {nfe:5d} {sec:5.2f}"
        )
    lines.append(results["summary"][2])
    return "\n".join(lines)
