"""Objective cost: seconds per training step (forward + backward + Adam) of ISM, SSM, SSM-VR, DSM.

Seed 002's claim: the exact Hyvärinen trace needs O(D) backward passes (a D×D Jacobian per
sample), while sliced and denoising score matching need O(1), so the ISM/DSM ratio should grow
roughly linearly in D. A fixed ScoreMLP(D, hidden=256, depth=3), batch 128, one torch thread.
Each cell is the median over `--repeats` interleaved measurements (every repeat visits every
(D, objective) pair once, so slow drifts of a shared machine hit all cells alike); one
measurement is the mean time of consecutive steps, at least `--steps` of them and at least
`--min-time` seconds. ISM is skipped from the first D at which one warm-up step exceeds
`--ism-cap` seconds, and the table says so.

    .venv/bin/python benchmarks/objectives.py            # writes a markdown table to stdout
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import statistics
import sys
import time

import torch

from scorelab.models import ScoreMLP
from scorelab.objectives import DSM, ISM, SSM

OBJECTIVES = {
    "ism": ISM(),
    "ssm": SSM(),
    "ssm_vr": SSM(variance_reduced=True),
    "dsm": DSM(0.1),
}


def make_step(name: str, dim: int, args: argparse.Namespace, seed: int):
    """A closure doing one optimisation step of objective `name` at dimension `dim`."""
    torch.manual_seed(seed)
    model = ScoreMLP(dim, hidden=args.hidden, depth=args.depth)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(args.batch, dim, generator=g)
    objective = OBJECTIVES[name]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        objective(model, x, generator=g).mean().backward()
        opt.step()

    return step


def timed(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def run(args: argparse.Namespace) -> tuple[dict, set]:
    steps, n_steps, capped = {}, {}, set()
    for dim in args.dims:
        for name in OBJECTIVES:
            if name == "ism" and capped:
                capped.add(dim)
                continue
            steps[dim, name] = make_step(name, dim, args, seed=dim)
            timed(steps[dim, name], 1)  # warm-up: allocator, first-call overheads
            warm = timed(steps[dim, name], 1)
            print(f"warm-up D={dim} {name}: {warm:.4f} s", file=sys.stderr)
            if name == "ism" and warm > args.ism_cap:
                capped.add(dim)
                del steps[dim, name]
                continue
            # enough steps that one measurement lasts >= --min-time (timer noise)
            n_steps[dim, name] = max(args.steps, math.ceil(args.min_time / warm))
    times: dict = {key: [] for key in steps}
    for r in range(args.repeats):  # interleaved
        for key, step in steps.items():
            times[key].append(timed(step, n_steps[key]))
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr)
    return {key: statistics.median(v) for key, v in times.items()}, capped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 8, 32, 128, 512])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="least steps per measurement")
    p.add_argument("--min-time", type=float, default=0.5, help="least seconds per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ism-cap", type=float, default=60.0, help="skip ISM above this s/step")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    med, capped = run(args)
    machine = platform.processor() or platform.machine()
    print(
        f"ScoreMLP(D, hidden={args.hidden}, depth={args.depth}), batch {args.batch}, "
        f"float32, Adam; median of {args.repeats} interleaved repeats, each the mean of "
        f">= {args.steps} steps and >= {args.min_time:g} s; "
        f"{args.threads} thread(s); torch {torch.__version__}, Python "
        f"{platform.python_version()}, {machine}; {datetime.date.today().isoformat()}"
    )
    print()
    print("| D | ism s | ssm s | ssm_vr s | dsm s | ism/dsm ratio |")
    print("|---|---|---|---|---|---|")
    for dim in args.dims:
        cells = [
            f"{med[dim, n]:.4f}" if (dim, n) in med else f"> {args.ism_cap:g} (capped)"
            for n in OBJECTIVES
        ]
        ratio = f"{med[dim, 'ism'] / med[dim, 'dsm']:.1f}" if (dim, "ism") in med else "—"
        print(f"| {dim} | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
