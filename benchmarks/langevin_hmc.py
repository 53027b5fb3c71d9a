"""Langevin, MALA and HMC side by side with TorchEBM, Pyro and a hand-written loop, equal work.

Every contender samples the same float32 2-D Gaussian mixture (8 components on a circle of
radius 3, std 0.5) from the same start points, with the same number of chains, steps and step
parameters, on one torch thread.  Two ways to get the gradient:

- closed form: the mixture's exact score (`GaussianMixture.score`, no autograd);
- autograd: ∇ log p by autograd through the mixture's log-density (the energy E = −log p).

Rows (each repeat runs every contender once, right next to a run of ours; a ratio is the median
of these paired ratios, which cancels most of the drift in load on a shared machine):

- Langevin: `scorelab.samplers.langevin` vs TorchEBM `LangevinDynamics` vs a hand loop.
- MALA: `scorelab.samplers.mala` vs a hand loop (neither TorchEBM nor Pyro has MALA).
- HMC with the Metropolis test, timed per chain-transition: `scorelab.samplers.hmc(log_prob_fn=…)`
  vs TorchEBM `HamiltonianMonteCarlo` vs Pyro `HMC` (one chain per call: its kernel's
  `sample` loop and its `MCMC` API, each timed on a few chains and normalised per transition)
  vs a hand loop.

Each row also checks that the contenders do the same work: MMD² (scorelab.metrics.mmd, fixed
bandwidths down to the component std) between ours and the contender, against the noise floor
of two runs of ours with different seeds (consecutive repeats).  Every run starts from the same
points, so the MMD compares the laws given the start: the shared starts put the unbiased MMD²
below zero, floor included, and make the test sharp.  Langevin's default ε = 0.002 × 500 steps
(diffusion time 0.5) stops the chains in transit from the broad start, where a 10 % error in
the step-size mapping already lifts the MMD² above the floor.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/langevin_hmc.py            # ~6 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/langevin_hmc.py --quick    # ~45 s
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from _machine import cpu_name  # noqa: E402  (benchmarks/ is the script dir)

from scorelab.distributions import GaussianMixture
from scorelab.metrics import median_heuristic, mmd
from scorelab.samplers import hmc, langevin, mala

Tensor = torch.Tensor


# -- the target and its two gradients ---------------------------------------------------------
def ring_mixture() -> GaussianMixture:
    """8 equal components N(3·(cos θₖ, sin θₖ), 0.5²I), float32."""
    theta = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = 3.0 * torch.stack([theta.cos(), theta.sin()], 1)
    return GaussianMixture(means, stds=0.5, dtype=torch.float32)


def autograd_score(log_prob: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """x ↦ ∇ₓ log p(x) by autograd (rows are independent, so the gradient of the sum)."""

    def score(x: Tensor) -> Tensor:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(log_prob(xx).sum(), xx)
        return g

    return score


# -- peers --------------------------------------------------------------------------------------
def torchebm_models(target: GaussianMixture):
    """TorchEBM energies E = −log p: one with the closed-form gradient −∇log p, one on autograd."""
    from torchebm.core import BaseModel

    class MixtureEnergy(BaseModel):  # BaseModel.gradient: autograd of forward
        def forward(self, x: Tensor) -> Tensor:
            return -target.log_prob(x)

    class MixtureEnergyClosedForm(MixtureEnergy):
        def gradient(self, x: Tensor, model_kwargs=None) -> Tensor:
            return -target.score(x)

    kw = {"dtype": torch.float32, "device": "cpu"}
    return {"closed form": MixtureEnergyClosedForm(**kw), "autograd": MixtureEnergy(**kw)}


def pyro_potentials(target: GaussianMixture):
    """Pyro potentials U(z) = −log p(z["x"]) for one chain (a (2,) site).  Pyro always takes the
    gradient by autograd; the closed-form one routes that backward pass to the exact score."""

    class ClosedForm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return -target.log_prob(x)

        @staticmethod
        def backward(ctx, grad_out: Tensor) -> Tensor:
            (x,) = ctx.saved_tensors
            return -target.score(x) * grad_out[:, None]

    return {
        "closed form": lambda z: ClosedForm.apply(z["x"][None])[0],
        "autograd": lambda z: -target.log_prob(z["x"][None])[0],
    }


def pyro_hmc_chains(potential, x0: Tensor, eps: float, n_lf: int, n: int, seed: int, api: bool):
    """One Pyro HMC call per chain (Pyro runs one chain per call); final state of each chain.

    Same kernel as ours: unit mass (adapt_mass_matrix=False), fixed leapfrog step ε
    (adapt_step_size=False) and L steps, Metropolis test, no warm-up.  `api` uses
    `MCMC(...).run()`; otherwise the kernel's `sample` is called n times (Pyro's own floor).
    """
    import pyro
    from pyro.infer.mcmc import HMC, MCMC

    pyro.set_rng_seed(seed)
    out = []
    for x in x0:
        kernel = HMC(
            potential_fn=potential,
            step_size=eps,
            num_steps=n_lf,
            adapt_step_size=False,
            adapt_mass_matrix=False,
        )
        init = {"x": x.clone()}
        if api:
            run = MCMC(
                kernel, num_samples=n, warmup_steps=0, initial_params=init, disable_progbar=True
            )
            run.run()
            out.append(run.get_samples()["x"][-1])
        else:
            kernel.initial_params = init
            kernel.setup(warmup_steps=0)
            params = init
            for _ in range(n):
                params = kernel.sample(params)
            out.append(params["x"])
    return torch.stack(out)


# -- hand-written batched loops (the floor) ---------------------------------------------------
def hand_langevin(score, x: Tensor, eps: float, n: int, g: torch.Generator) -> Tensor:
    half, root = eps / 2.0, math.sqrt(eps)
    for _ in range(n):
        x = x + half * score(x) + root * torch.randn(x.shape, generator=g)
    return x


def hand_mala(score, log_prob, x: Tensor, eps: float, n: int, g: torch.Generator) -> Tensor:
    half, root = eps / 2.0, math.sqrt(eps)
    lp, s = log_prob(x), score(x)
    for _ in range(n):
        y = x + half * s + root * torch.randn(x.shape, generator=g)
        lp_y, s_y = log_prob(y), score(y)
        fwd = ((y - x - half * s) ** 2).sum(1)
        bwd = ((x - y - half * s_y) ** 2).sum(1)
        log_a = lp_y - lp + (fwd - bwd) / (2.0 * eps)
        acc = torch.rand(x.shape[0], generator=g).log() < log_a
        x = torch.where(acc[:, None], y, x)
        s = torch.where(acc[:, None], s_y, s)
        lp = torch.where(acc, lp_y, lp)
    return x


def hand_hmc(score, log_prob, x: Tensor, eps: float, n_lf: int, n: int, g) -> Tensor:
    s, lp = score(x), log_prob(x)
    for _ in range(n):
        p0 = torch.randn(x.shape, generator=g)
        p = p0 + 0.5 * eps * s
        y = x
        for l in range(n_lf):
            y = y + eps * p
            s_y = score(y)
            p = p + (eps if l < n_lf - 1 else 0.5 * eps) * s_y
        lp_y = log_prob(y)
        log_a = (lp_y - 0.5 * (p * p).sum(1)) - (lp - 0.5 * (p0 * p0).sum(1))
        acc = torch.rand(x.shape[0], generator=g).log() < log_a
        x = torch.where(acc[:, None], y, x)
        s = torch.where(acc[:, None], s_y, s)
        lp = torch.where(acc, lp_y, lp)
    return x


# -- timing and checking ------------------------------------------------------------------------
def timed(fn: Callable[[], Tensor]) -> tuple[Tensor, float, float]:
    """(output, wall s, CPU s of this thread): the CPU clock does not count time this process
    spent descheduled by the other jobs on the machine."""
    t0, c0 = time.perf_counter(), time.thread_time()
    out = fn()
    return out, time.perf_counter() - t0, time.thread_time() - c0


def run_row(contenders: dict, repeats: int) -> dict:
    """Per repeat, each other contender (in a rotated order) runs right next to a run of ours
    (ours first on even repeats, second on odd ones): each ratio comes from an adjacent pair,
    so the load of the shared machine is nearly the same on both sides of it.

    Returns, per contender, its times and outputs, and `pair`: ours' (wall, CPU) times of the
    run paired with each of its runs.  Ours' outputs are those of its first run per repeat.
    """
    others = [k for k in contenders if k != "ours"]
    res = {k: {"wall": [], "cpu": [], "out": [], "pair": []} for k in contenders}
    for r in range(repeats):
        for i, k in enumerate(others[r % len(others) :] + others[: r % len(others)]):
            order = ("ours", k) if r % 2 == 0 else (k, "ours")
            got = {}
            for j in order:
                got[j] = timed(lambda j=j, r=r: contenders[j](r))
            (o_out, o_w, o_c), (out, w, c) = got["ours"], got[k]
            res["ours"]["wall"].append(o_w)
            res["ours"]["cpu"].append(o_c)
            if i == 0:
                res["ours"]["out"].append(o_out.detach().to(torch.float64))
            res[k]["wall"].append(w)
            res[k]["cpu"].append(c)
            res[k]["out"].append(out.detach().to(torch.float64))
            res[k]["pair"].append((o_w, o_c))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--steps", type=int, default=500, help="Langevin and MALA steps")
    p.add_argument("--step-size", type=float, default=0.002, help="Langevin/MALA ε (ours)")
    p.add_argument("--hmc-steps", type=int, default=100, help="HMC transitions per chain")
    p.add_argument("--leapfrog", type=int, default=10)
    p.add_argument("--leapfrog-step", type=float, default=0.1)
    p.add_argument("--pyro-chains", type=int, default=2, help="Pyro chains timed per repeat")
    p.add_argument("--pyro-mmd-chains", type=int, default=200, help="Pyro chains for the MMD check")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="small run (~45 s): a smoke test")
    a = p.parse_args()
    if a.quick:
        a.chains, a.steps, a.hmc_steps, a.repeats = 300, 100, 20, 3
        a.pyro_chains, a.pyro_mmd_chains = 1, 30
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    print(f"load average at the start: {load0[0]:.2f}", file=sys.stderr)

    from torchebm.samplers import HamiltonianMonteCarlo, LangevinDynamics

    target = ring_mixture()
    log_prob = target.log_prob
    scores = {"closed form": target.score, "autograd": autograd_score(log_prob)}
    ebm = torchebm_models(target)
    pots = pyro_potentials(target)
    x0 = 3.0 * torch.randn(a.chains, 2, generator=torch.Generator().manual_seed(0))
    exact = target.sample(a.chains, generator=torch.Generator().manual_seed(1)).double()
    h0 = median_heuristic(exact, exact)
    bw = [h0 / 8, h0 / 4, h0 / 2, h0]  # down to ~ the component std: sees within-mode spread
    eps, n = a.step_size, a.steps
    lf_eps, n_lf, n_hmc = a.leapfrog_step, a.leapfrog, a.hmc_steps
    m = min(a.pyro_mmd_chains, a.chains)

    def gen(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    rows = []
    for grad_name, score in scores.items():

        def ours_score(x, sigma=None, score=score):
            return score(x)

        # ε (ours: x + (ε/2)s + √ε z) = 2η for TorchEBM's x − η∇E + √(2η)·noise_scale·z with
        # noise_scale = 1: the same update, term by term (docs/conventions.md).
        tebm_l = LangevinDynamics(
            ebm[grad_name], step_size=eps / 2.0, noise_scale=1.0, device="cpu"
        )
        contenders = {
            "ours": lambda r, s=ours_score: (
                langevin(s, x0, step_size=eps, n_steps=n, generator=gen(100 + r)).samples
            ),
            "TorchEBM": lambda r, t=tebm_l: t.sample(x=x0, n_steps=n, generator=gen(200 + r)),
            "hand loop": lambda r, s=score: hand_langevin(s, x0, eps, n, gen(300 + r)),
        }
        rows.append(Row(f"Langevin, {grad_name}", run_row(contenders, a.repeats), n))

        if grad_name == "closed form":
            contenders = {
                "ours": lambda r, s=ours_score: (
                    mala(
                        s,
                        x0,
                        log_prob_fn=log_prob,
                        step_size=eps,
                        n_steps=n,
                        generator=gen(100 + r),
                    ).samples
                ),
                "hand loop": lambda r, s=score: hand_mala(s, log_prob, x0, eps, n, gen(300 + r)),
            }
            rows.append(Row(f"MALA, {grad_name}", run_row(contenders, a.repeats), n))

        # The same leapfrog step ε and L everywhere: TorchEBM's step_size/n_leapfrog_steps and
        # Pyro's step_size/num_steps mean ours; unit mass everywhere.
        tebm_h = HamiltonianMonteCarlo(
            ebm[grad_name], step_size=lf_eps, n_leapfrog_steps=n_lf, device="cpu"
        )
        kp, pot = a.pyro_chains, pots[grad_name]
        contenders = {
            "ours": lambda r, s=ours_score: (
                hmc(
                    s,
                    x0,
                    log_prob_fn=log_prob,
                    step_size=lf_eps,
                    n_leapfrog=n_lf,
                    n_steps=n_hmc,
                    generator=gen(100 + r),
                ).samples
            ),
            "TorchEBM": lambda r, t=tebm_h: t.sample(x=x0, n_steps=n_hmc, generator=gen(200 + r)),
            "Pyro (kernel loop)": lambda r, u=pot, xs=x0[:kp]: pyro_hmc_chains(
                u, xs, lf_eps, n_lf, n_hmc, 400 + r, api=False
            ),
            "Pyro (MCMC API)": lambda r, u=pot, xs=x0[:kp]: pyro_hmc_chains(
                u, xs, lf_eps, n_lf, n_hmc, 500 + r, api=True
            ),
            "hand loop": lambda r, s=score: hand_hmc(
                s, log_prob, x0, lf_eps, n_lf, n_hmc, gen(300 + r)
            ),
        }
        res = run_row(contenders, a.repeats)
        # Pyro's timed runs have too few chains for an MMD: one untimed run on the first m
        pyro_set = pyro_hmc_chains(pot, x0[:m], lf_eps, n_lf, n_hmc, 600, api=False)
        chains = {k: a.chains for k in contenders} | {k: kp for k in contenders if "Pyro" in k}
        rows.append(Row(f"HMC, {grad_name}", res, n_hmc, chains, {"Pyro (kernel loop)": pyro_set}))

    load1 = os.getloadavg()
    report(a, rows, bw, exact, m, load0, load1)


class Row:
    """One comparison: each contender's times and outputs, and how to normalise them."""

    def __init__(self, name, res, n_steps, chains=None, mmd_sets=None) -> None:
        self.name, self.res, self.n_steps = name, res, n_steps
        self.chains = chains or {}
        self.mmd_sets = mmd_sets or {}

    def per_transition(self, k: str, clock: str, n_chains: int) -> list[float]:
        """Seconds per chain-transition, one per repeat."""
        nt = self.chains.get(k, n_chains) * self.n_steps
        return [t / nt for t in self.res[k][clock]]


def report(a, rows, bw, exact, m, load0, load1) -> None:
    import pyro
    import torchebm

    args = " ".join(sys.argv[1:])
    print(
        f"`OMP_NUM_THREADS=1 .venv/bin/python benchmarks/langevin_hmc.py {args}`".replace(" `", "`")
    )
    print()
    print(
        f"{datetime.date.today()}, {cpu_name()}, {os.cpu_count()} cores, 1 torch thread, "
        f"Python {platform.python_version()}, torch {torch.__version__}, torchebm "
        f"{torchebm.__version__}, pyro-ppl {pyro.__version__}; load average {load0[0]:.2f} at "
        f"the start, {load1[0]:.2f} at the end."
    )
    print(
        f"{a.chains} chains, float32, start N(0, 3²I); Langevin/MALA {a.steps} steps of "
        f"ε = {a.step_size:g}; HMC {a.hmc_steps} transitions × {a.leapfrog} leapfrog steps of "
        f"{a.leapfrog_step:g}; Pyro: {a.pyro_chains} chain(s) timed per repeat, {m} for the MMD. "
        f"{a.repeats} repeats; each contender's run is paired with an adjacent run of ours, and "
        f"a ratio is the median of the paired ratios. MMD² "
        f"(unbiased, RBF bandwidths {', '.join(f'{b:.2f}' for b in bw)}) of ours against the "
        f"contender, per repeat, every run from the same start points; floor: ours against ours "
        f"of the next repeat (another seed)."
    )
    print()
    print(
        "| comparison | contender | median s | µs per chain-step | ours/this (wall) | "
        "ours/this (CPU) | MMD² vs ours | floor: median / max |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for row in rows:
        ours = row.res["ours"]["out"]
        nr = len(ours)
        nxt = [(r + 1) % nr for r in range(nr)] if nr > 1 else [0]
        floor = [mmd(ours[r], ours[nxt[r]], bw) for r in range(nr)]
        cells = {}
        for k, v in row.res.items():
            pw, pc = (row.per_transition(k, c, a.chains) for c in ("wall", "cpu"))
            if k == "ours":
                rw = rc = 1.0
            else:
                nt = a.chains * row.n_steps  # ours' chain-transitions per run
                rw = statistics.median(o / nt / t for (o, _), t in zip(v["pair"], pw, strict=True))
                rc = statistics.median(o / nt / t for (_, o), t in zip(v["pair"], pc, strict=True))
            fl = floor
            if k == "ours":
                mm = "—"
            elif k in row.mmd_sets:
                other = row.mmd_sets[k].double()
                vals = [mmd(o[: other.shape[0]], other, bw) for o in ours]
                fl = [
                    mmd(ours[r][: other.shape[0]], ours[nxt[r]][: other.shape[0]], bw)
                    for r in range(nr)
                ]
                mm = f"{statistics.median(vals):.1e}"
            elif "Pyro" in k:
                mm, fl = "same kernel as the loop", None
            else:
                vals = [mmd(o, c, bw) for o, c in zip(ours, v["out"], strict=True)]
                mm = f"{statistics.median(vals):.1e}"
            fls = "—" if fl is None else f"{statistics.median(fl):.1e} / {max(fl):.1e}"
            us = statistics.median(pw) * 1e6
            print(
                f"| {row.name} | {k} | {statistics.median(v['wall']):.3f} | {us:.3g} | "
                f"{rw:.3g} | {rc:.3g} | {mm} | {fls} |"
            )
            if k != "ours":
                cells[k] = (f"{rw:.3g} ({rc:.3g})", mm, fls)
        peers = [k for k in cells if k != "hand loop"] or [None]
        for k in peers:
            rw, mm, fls = cells[k] if k else (None, *cells["hand loop"][1:])
            summary.append((row.name, k, rw, cells["hand loop"][0], mm, fls))
    ex = [f"{row.name} {mmd(row.res['ours']['out'][0], exact, bw):.1e}" for row in rows]
    print()
    print(
        "For information, MMD² of ours (one repeat, all chains) against exact samples: "
        + ", ".join(ex)
        + " (ULA's step bias and incomplete mixing from the broad start show here)."
    )
    print()
    print(
        "| comparison | peer | ours/peer, wall (CPU clock) | ours/hand loop, wall (CPU clock) | "
        "MMD² ours–peer vs floor (median / max) |"
    )
    print("|---|---|---|---|---|")
    for name, k, rw, h, mm, fls in summary:
        print(f"| {name} | {k or 'none'} | {rw or '—'} | {h} | {mm} vs {fls} |")


if __name__ == "__main__":
    main()
