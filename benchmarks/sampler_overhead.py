"""Sampler overhead: wall time of each sampler ÷ wall time of its score evaluations alone.

A sampler step should be a handful of batched tensor ops around one score evaluation
(DESIGN.md, performance habits).  For each sampler we time (a) the sampler and (b) a bare loop
that makes the same number of score calls on the same batch, interleaved, `--repeats` times,
and report medians and the ratio (a)/(b): the median over repeats of the ratio within a repeat,
by the wall clock and by this thread's CPU clock (which does not count the time other jobs on
a shared machine keep us off the CPU).  Two score functions: a small MLP (what a learned score
costs) and the exact Gaussian-mixture score.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampler_overhead.py   # markdown to stdout
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampler_overhead.py --quick   # ~10 s
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import time

import torch
from _machine import cpu_name  # noqa: E402  (benchmarks/ is the script dir)
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


def run(n_chains: int, n_steps: int, repeats: int) -> list[tuple]:
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
            t = {k: [] for k in ("sw", "sc", "sf", "bw", "bc", "bf")}
            for r in range(repeats):  # interleaved, alternating order: the same noise hits both
                for which in ("s", "b") if r % 2 == 0 else ("b", "s"):
                    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                    t0, c0 = time.perf_counter(), time.thread_time()
                    (sample if which == "s" else bare)()
                    t[which + "w"].append(time.perf_counter() - t0)
                    t[which + "c"].append(time.thread_time() - c0)
                    t[which + "f"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            ratio_w = statistics.median(a / b for a, b in zip(t["sw"], t["bw"], strict=True))
            ratio_c = statistics.median(a / b for a, b in zip(t["sc"], t["bc"], strict=True))
            med = [statistics.median(t[k]) for k in ("sw", "bw")]
            faults = [statistics.median(t[k]) / n_steps for k in ("sf", "bf")]
            rows.append((name, score_name, *med, ratio_w, ratio_c, *faults))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=31)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="300 chains × 100 calls, 3 repeats")
    a = p.parse_args()
    if a.quick:
        a.chains, a.steps, a.repeats = 300, 100, 3
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    rows = run(a.chains, a.steps, a.repeats)
    load1 = os.getloadavg()
    print(
        f"{a.chains} chains × {a.steps} score calls, {a.repeats} interleaved repeats, "
        f"{a.threads} thread(s); {datetime.date.today()}, {cpu_name()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}; load average "
        f"{load0[0]:.2f} at the start, {load1[0]:.2f} at the end"
    )
    print()
    print(
        "| sampler | score | sampler s | score calls alone s | overhead ratio | "
        "overhead ratio (CPU clock) | page faults per call: sampler / alone |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, score_name, ts, tb, rw, rc, fs, fb in rows:
        print(
            f"| {name} | {score_name} | {ts:.3f} | {tb:.3f} | {rw:.3f} | {rc:.3f} | "
            f"{fs:.1f} / {fb:.1f} |"
        )


if __name__ == "__main__":
    main()
