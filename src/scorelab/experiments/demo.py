"""`scorelab demo`: the seed 001 Fig. 3 mixture sampled three ways with its exact score.

(a) plain Langevin from a uniform box: each chain falls into the basin it starts in, so the
    0.2 / 0.8 weights come out near 0.5 / 0.5 (seed 001 §2.2.2, "slow mixing");
(b) annealed Langevin over a geometric σ ladder (seed 002 Algorithm 1) + Tweedie denoising;
(c) Langevin started at the data with early stopping (seed 000, Koehler & Vuong).
Writes metrics.json and a PNG into a fresh run folder and prints a table.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from scorelab._utils import ScorelabError, make_generator
from scorelab.distributions import seed001_fig3, target_score_fn
from scorelab.metrics import mixture_weights, mmd
from scorelab.plots import samples_over_density, save
from scorelab.samplers import annealed_langevin, from_data, gaussian_prior, langevin, uniform_box


@dataclass(frozen=True)
class DemoSettings:
    """Every number the demo uses, written to metrics.json beside the results."""

    n: int = 5000
    seed: int = 0
    box: float = 10.0  # (a) chains start uniform on [−box, box]²
    langevin_step: float = 0.1
    langevin_steps: int = 1000
    sigma_max: float = 10.0  # (b) ≈ the largest distance between the two modes (Song & Ermon 2020)
    sigma_min: float = 0.1
    n_levels: int = 20
    steps_each: int = 200
    annealed_eps: float = 0.005  # ε/σ_L² = 0.5
    data_step: float = 0.05  # (c)
    data_time: float = 5.0  # early-stopping time T (diffusion time, = n_steps·ε/2)


def fresh_run_dir(root: Path, prefix: str) -> Path:
    """A new, empty folder root/prefix-YYYYmmdd-HHMMSS[-k]; never reuses an existing one."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = root / (f"{prefix}-{stamp}" + (f"-{k}" if k else ""))
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ScorelabError(f"could not create a fresh run folder under {root}")


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def run_demo(out_root: str | Path = "runs", settings: DemoSettings | None = None) -> dict:
    """Run the three samplers, write metrics.json + samples.png, return the metrics dict."""
    s = settings or DemoSettings()
    # (N, 2) tensors: every op is tiny, and two threads on two busy cores only fight.
    torch.set_num_threads(1)
    if s.n < 10:
        raise ScorelabError(f"the demo needs at least 10 chains, got n={s.n}")
    target = seed001_fig3()
    score_fn = target_score_fn(target)
    g = make_generator(s.seed)
    reference = target.sample(s.n, generator=g)  # exact samples: the yardstick for MMD
    data = target.sample(s.n, generator=g)  # the "training data" for (c)
    sigmas = torch.logspace(math.log10(s.sigma_max), math.log10(s.sigma_min), s.n_levels)

    runs = {
        "langevin (uniform start)": lambda: langevin(
            score_fn,
            uniform_box(s.n, 2, -s.box, s.box, generator=g),
            step_size=s.langevin_step,
            n_steps=s.langevin_steps,
            generator=g,
        ),
        "annealed langevin": lambda: annealed_langevin(
            score_fn,
            gaussian_prior(s.n, 2, s.sigma_max, generator=g),
            sigmas=sigmas,
            step_size=s.annealed_eps,
            n_steps_each=s.steps_each,
            denoise=True,
            generator=g,
        ),
        "langevin from data (early stop)": lambda: langevin(
            score_fn,
            from_data(data, s.n, generator=g),
            step_size=s.data_step,
            time=s.data_time,
            generator=g,
        ),
    }
    results, samples = {}, {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        res = run()
        seconds = time.perf_counter() - t0
        w = mixture_weights(res.samples, target)
        results[name] = {
            "weights": w.estimated,
            "weight_tv": w.tv,
            "mmd": mmd(res.samples, reference),
            "nfe": res.nfe,
            "seconds": round(seconds, 3),
        }
        samples[name] = res.samples
    floor = mmd(target.sample(s.n, generator=g), reference)
    metrics = {
        "target": "seed001_fig3",
        "true_weights": [
            round(w, 6) for w in target.weights.tolist()
        ],  # float32 → 0.2, not 0.2000000030
        "score": "exact",
        "mmd_noise_floor": floor,
        "settings": s.__dict__,
        "samplers": results,
    }
    run_dir = fresh_run_dir(Path(out_root), "demo")
    _write_json(run_dir / "metrics.json", metrics)
    panels = [("exact samples", reference)] + [
        (f"{name}\nw=({r['weights'][0]:.2f}, {r['weights'][1]:.2f})", samples[name])
        for name, r in results.items()
    ]
    fig = samples_over_density(panels, target.log_prob, xlim=(-10, 10), ylim=(-5, 15))
    save(fig, run_dir / "samples.png")
    metrics["run_dir"] = str(run_dir)
    return metrics


def format_table(metrics: dict) -> str:
    """The printed summary: one row per sampler."""
    true_w = metrics["true_weights"]
    lines = [
        f"target seed001_fig3, true weights ({true_w[0]:.2f}, {true_w[1]:.2f}), exact score; "
        f"MMD² noise floor {metrics['mmd_noise_floor']:.2e}",
        f"{'sampler':34s} {'weights':>14s} {'TV':>6s} {'MMD²':>9s} {'NFE':>6s} {'sec':>6s}",
    ]
    for name, r in metrics["samplers"].items():
        w = f"({r['weights'][0]:.3f}, {r['weights'][1]:.3f})"
        lines.append(
            f"{name:34s} {w:>14s} {r['weight_tv']:6.3f} {r['mmd']:9.2e} {r['nfe']:6d} "
            f"{r['seconds']:6.2f}"
        )
    return "\n".join(lines)
