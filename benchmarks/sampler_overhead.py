"""Sampler overhead: wall time of each sampler ÷ wall time of its score evaluations alone.

A sampler step should be a handful of batched tensor ops around one score evaluation
(DESIGN.md, performance habits).  For each sampler we time (a) the sampler and (b) a bare loop
that makes the same number of score calls on the same batch, interleaved, `--repeats` times,
and report medians and the ratio (a)/(b).  Two score functions: a small MLP (what a learned
score costs) and the exact Gaussian-mixture score.

    .venv/bin/python benchmarks/sampler_overhead.py            # writes a markdown table to stdout
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from scorelab.distributions import seed001_fig3, target_log_prob_fn, target_score_fn
from scorelab.samplers import annealed_langevin, hmc, langevin, mala


class MLPScore(nn.Module):
    """2 → 128 → 128 → 2 with SiLU: a typical toy score network (untrained; cost is what counts)."""

    def __init__(self, dim: int = 2, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, dim),
        )

    def forward(self, x, sigma=None):
        # scaled down so that Langevin with the benchmark's step sizes stays finite
        return 0.1 * self.net(x) - x


def bare_loop(score_fn, x, n_calls, sigma=None, log_prob_fn=None):
    """The model work alone: n_calls score calls (and log-density calls for MH kernels)."""
    s = None if sigma is None else torch.full((x.shape[0],), sigma)
    for _ in range(n_calls):
        score_fn(x, s)
        if log_prob_fn is not None:
            log_prob_fn(x)


def lp_as_score(lp):
    return lambda x, s: lp(x)


def cases_for(sf, lp, x0, n_steps, g, with_mh: bool) -> dict:
    """sampler name → (run the sampler, run its model work alone)."""
    cases = {
        "langevin": (
            lambda: langevin(sf, x0, step_size=0.01, n_steps=n_steps, generator=g),
            lambda: bare_loop(sf, x0, n_steps),
        ),
        "annealed_langevin": (
            lambda: annealed_langevin(
                sf,
                x0,
                sigmas=torch.logspace(0, -1, 10),
                step_size=1e-4,
                n_steps_each=n_steps // 10,
                generator=g,
            ),
            lambda: bare_loop(sf, x0, n_steps, sigma=0.5),
        ),
        "hmc (no MH)": (
            lambda: hmc(sf, x0, step_size=0.05, n_leapfrog=5, n_steps=n_steps // 5, generator=g),
            lambda: bare_loop(sf, x0, n_steps + 1),
        ),
    }
    if with_mh:
        cases["mala"] = (
            lambda: mala(sf, x0, log_prob_fn=lp, step_size=0.01, n_steps=n_steps, generator=g),
            lambda: bare_loop(sf, x0, n_steps + 1, log_prob_fn=lp),
        )
        cases["hmc"] = (
            lambda: hmc(
                sf,
                x0,
                log_prob_fn=lp,
                step_size=0.05,
                n_leapfrog=5,
                n_steps=n_steps // 5,
                generator=g,
            ),
            lambda: (
                bare_loop(sf, x0, n_steps + 1),
                bare_loop(lp_as_score(lp), x0, n_steps // 5 + 1),
            ),
        )
    return cases


def run(n_chains: int, n_steps: int, repeats: int) -> list[tuple[str, str, float, float]]:
    target = seed001_fig3()
    mlp = MLPScore()
    mlp.requires_grad_(False)
    scores = {"mlp 2-128-128-2": lambda x, s: mlp(x), "exact mixture": target_score_fn(target)}
    lp = target_log_prob_fn(target)
    g = torch.Generator().manual_seed(0)
    x0 = target.sample(n_chains, generator=g)
    rows = []
    for score_name, sf in scores.items():
        cases = cases_for(sf, lp, x0, n_steps, g, with_mh=score_name == "exact mixture")
        for name, (sample, bare) in cases.items():
            t_s, t_b = [], []
            for _ in range(repeats):  # interleaved: the same machine noise hits both
                t0 = time.perf_counter()
                sample()
                t_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                bare()
                t_b.append(time.perf_counter() - t0)
            rows.append((name, score_name, statistics.median(t_s), statistics.median(t_b)))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = run(a.chains, a.steps, a.repeats)
    machine = platform.processor() or platform.machine()
    print(
        f"{a.chains} chains × {a.steps} score calls, median of {a.repeats} interleaved runs, "
        f"{a.threads} thread(s); torch {torch.__version__}, {machine}"
    )
    print()
    print("| sampler | score | sampler s | score calls alone s | overhead ratio |")
    print("|---|---|---|---|---|")
    for name, score_name, ts, tb in rows:
        print(f"| {name} | {score_name} | {ts:.3f} | {tb:.3f} | {ts / tb:.2f} |")


if __name__ == "__main__":
    main()
