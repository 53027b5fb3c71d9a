"""Training-step overhead: `scorelab.train.fit` against a bare PyTorch loop doing the same math.

The bare loop is the floor a training library can reach: the same model (a copy of the same
initial weights), the same data, the same batches, the same NCSN loss ½‖σᵢ s_θ(x + σᵢz, σᵢ) + z‖²
written inline, the same Adam (lr, betas, eps) and, where on, the same EMA. It draws its random
numbers from a generator seeded like fit's, in fit's order (batch indices, the batch transform,
noise-level indices, z), so with the same seed both see the same batches and noise and must
produce the same loss trajectory. The script checks that on a longer untimed run (max |Δ loss|,
max |Δ θ| at the end): equal work, not just equal step counts. fit's extras are what is
measured: argument and data checks, the finiteness checks (loss and gradients) that let it skip
or stop on a divergence, the EMA update, the progress-bar hook, the per-step bookkeeping.

Cases: NCSN (the 8×8 digits U-Net, 21 σ levels, batch 128, lr 2e-3, with the digits
experiment's dequantising batch transform) and a toy ScoreMLP(2, 128, depth 3, σ-conditional)
on 2-D data, where fixed per-step costs matter most; each with EMA off and on (decay 0.999).

Timing: every repeat runs, for each case, fit and the bare loop for the same number of steps
from the same initial weights, back to back, alternating which goes first; the table gives the
median seconds per step over repeats (fit's set-up included: the whole call ÷ steps), the ratio
of the medians and the median of the per-repeat ratios. Runs are short and repeats many, so the
load of a shared machine, which drifts over seconds, hits both sides of a pair alike. Times are
process CPU time (it does not advance while the process waits for a core; the headline) and
wall time. Target: ours/bare ≤ 1.05.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_step.py            # ~3 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_step.py --quick    # ~20 s
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from scorelab import images
from scorelab.distributions import seed001_fig3
from scorelab.heuristics import suggest_schedule
from scorelab.models import NCSN, ScoreMLP
from scorelab.objectives import NCSN as NCSNLoss
from scorelab.train import fit

med = statistics.median


@dataclasses.dataclass
class Case:
    name: str
    model: nn.Module  # initial weights; every run trains a fresh copy
    sigmas: tuple[float, ...]
    data: Tensor
    transform: Callable[[Tensor, torch.Generator], Tensor] | None
    steps: int
    ema: float | None
    batch: int
    lr: float


class Bare:
    """The hand-written floor: the same draws, loss, Adam and EMA as fit, nothing else."""

    def __init__(self, case: Case, model: nn.Module, seed: int) -> None:
        self.case, self.model = case, model
        self.params = list(model.parameters())
        # foreach=True: on CPU torch's default is the per-tensor loop; the multi-tensor form is
        # the fastest Adam with the same rounding (fused=True rounds differently)
        self.opt = torch.optim.Adam(self.params, lr=case.lr, foreach=True)
        self.g = torch.Generator().manual_seed(seed)
        self.ema = None
        if case.ema is not None:
            self.ema = copy.deepcopy(model).requires_grad_(False)
            self.ema_p, self.ema_b = list(self.ema.parameters()), list(self.ema.buffers())
            self.buffers = list(model.buffers())
        self.levels = torch.tensor(case.sigmas, dtype=case.data.dtype)
        self.shape = (case.batch,) + (1,) * (case.data.ndim - 1)
        self.losses: list[float] = []
        model.train()

    def step(self) -> None:
        c, g, model = self.case, self.g, self.model
        x = c.data[torch.randint(0, c.data.shape[0], (c.batch,), generator=g)]
        if c.transform is not None:
            x = c.transform(x, g)
        sig = self.levels[torch.randint(0, len(c.sigmas), (c.batch,), generator=g)]
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        sb = sig.reshape(self.shape)
        loss = (0.5 * (sb * model(x + sb * z, sig) + z).pow(2).flatten(1).sum(1)).mean()
        self.losses.append(loss.item())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            d = c.ema
            torch._foreach_mul_(self.ema_p, d)
            torch._foreach_add_(self.ema_p, self.params, alpha=1 - d)
            if self.ema_b:
                torch._foreach_copy_(self.ema_b, self.buffers)


def bare_loop(case: Case, model: nn.Module, seed: int) -> tuple[list[float], nn.Module]:
    bare = Bare(case, model, seed)
    for _ in range(case.steps):
        bare.step()
    model.eval()
    return bare.losses, (bare.ema if bare.ema is not None else model)


def ours(case: Case, model: nn.Module, seed: int) -> tuple[list[float], nn.Module]:
    res = fit(
        model,
        NCSNLoss(case.sigmas),
        case.data,
        steps=case.steps,
        batch_size=case.batch,
        lr=case.lr,
        ema_decay=case.ema,
        seed=seed,
        batch_transform=case.transform,
    )
    return res.losses, res.best_model()


def make_cases(args: argparse.Namespace) -> list[Case]:
    torch.manual_seed(0)
    tr = images.load_digits("train")
    levels = int(tr.levels)
    x_digits = tr.images.flatten(1)  # (1438, 64) in [0, 1], what the digits experiment trains on
    sig_digits = tuple(suggest_schedule(x_digits, n_steps_each=20, sigma_min=0.01).sigmas.tolist())
    ncsn = NCSN(1, 8, 16, sig_digits)
    x_toy = seed001_fig3().sample(10_000, generator=torch.Generator().manual_seed(0))
    sig_toy = tuple(torch.logspace(1, -2, 10).tolist())  # σ 10 → 0.01, geometric, L = 10
    mlp = ScoreMLP(2, hidden=128, depth=3, conditioning="sigma")
    cases = []
    for ema in (None, 0.999):
        cases.append(
            Case(
                "NCSN digits 8×8",
                ncsn,
                sig_digits,
                x_digits,
                lambda b, g: images.dequantize_scaled(b, levels, g),
                args.ncsn_steps,
                ema,
                128,
                2e-3,
            )
        )
    for ema in (None, 0.999):
        cases.append(
            Case("ScoreMLP 2-D toy", mlp, sig_toy, x_toy, None, args.toy_steps, ema, 128, 1e-3)
        )
    return cases


def max_param_diff(a: nn.Module, b: nn.Module) -> float:
    return max(
        (p - q).abs().max().item()
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def run(args: argparse.Namespace) -> list[dict]:
    cases = make_cases(args)
    toy = [c.name.startswith("ScoreMLP") for c in cases]
    sides = {"ours": ours, "bare": bare_loop}
    rows = [dict(case=c) for c in cases]
    for row, case, is_toy in zip(rows, cases, toy, strict=True):
        # warm-up (first-call costs) and the equal-work check, on a longer untimed run
        long = dataclasses.replace(case, steps=args.check_steps[is_toy])
        (la, ma), (lb, mb) = (fn(long, copy.deepcopy(case.model), 0) for fn in sides.values())
        row["check"] = (long.steps, max(abs(u - v) for u, v in zip(la, lb, strict=True)))
        row["check"] += (max_param_diff(ma, mb),)

    # whole runs: per (case, side), wall and CPU seconds per step of each repeat
    wall = {(i, s): [] for i in range(len(cases)) for s in sides}
    cpu = {(i, s): [] for i in range(len(cases)) for s in sides}
    for r in range(args.repeats):
        for i, case in enumerate(cases):
            order = list(sides) if (r + i) % 2 == 0 else list(sides)[::-1]
            for s in order:
                model = copy.deepcopy(case.model)
                t0, c0 = time.perf_counter(), time.process_time()
                sides[s](case, model, r + 1)
                wall[i, s].append((time.perf_counter() - t0) / case.steps)
                cpu[i, s].append((time.process_time() - c0) / case.steps)
        print(f"whole runs: repeat {r + 1}/{args.repeats}, load {os.getloadavg()}", file=sys.stderr)
    for i, row in enumerate(rows):
        for clock, t in (("wall", wall), ("cpu", cpu)):
            a, b = t[i, "ours"], t[i, "bare"]
            paired = med([u / v for u, v in zip(a, b, strict=True)])
            row[clock] = (med(a), med(b), med(a) / med(b), paired)

    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ncsn-steps", type=int, default=5, help="steps per timed NCSN run")
    p.add_argument("--toy-steps", type=int, default=50, help="steps per timed toy run")
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument(
        "--check-steps",
        type=int,
        nargs=2,
        default=[50, 1000],
        metavar=("NCSN", "TOY"),
        help="steps of the untimed equal-work check (also the warm-up)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="5 repeats, shorter check (~20 s; noisy)")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.check_steps = 5, [10, 200]
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    print(f"load at start {load0}", file=sys.stderr)
    t0 = time.perf_counter()
    rows = run(args)
    load1 = os.getloadavg()
    print(f"load at end {load1}", file=sys.stderr)
    machine = platform.processor() or platform.machine()
    print(
        f"fit() vs a bare loop, NCSN loss, batch 128, float32, Adam; median of {args.repeats} "
        f"interleaved repeats ({args.ncsn_steps} NCSN / {args.toy_steps} toy steps per run); "
        f"{args.threads} thread(s); torch {torch.__version__}, Python "
        f"{platform.python_version()}, {machine}, {os.cpu_count()} cores; "
        f"{datetime.date.today().isoformat()}; load average {load0[0]:.2f} → {load1[0]:.2f}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print()
    print(
        "| model | EMA | ours ms/step | bare ms/step | **ours/bare** (CPU) | paired median (CPU) "
        "| ours/bare (wall) | fit adds µs/step (CPU) | equal work: steps, max abs Δ loss, "
        "max abs Δ weights |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["case"]
        ema = "off" if c.ema is None else f"{c.ema:g}"
        a, b, ratio, paired = r["cpu"]
        steps, dl, dw = r["check"]
        print(
            f"| {c.name} | {ema} | {a * 1e3:.3f} | {b * 1e3:.3f} | **{ratio:.3f}** | "
            f"{paired:.3f} | {r['wall'][2]:.3f} | {(a - b) * 1e6:+.0f} | "
            f"{steps}, {dl:.1e}, {dw:.1e} |"
        )
    worst = max(r["cpu"][2] for r in rows)
    same = all(r["check"][1] == 0 and r["check"][2] == 0 for r in rows)
    print()
    print(
        f"worst ours/bare (CPU) {worst:.3f} (target ≤ 1.05: "
        f"{'met' if worst <= 1.05 else 'MISSED'}); loss trajectories and final weights "
        f"{'bit-identical' if same else 'DIFFER'}"
    )


if __name__ == "__main__":
    main()
