"""Score-SDE samplers side by side with diffusers, torchsde and torchdiffeq, on equal work.

Three comparisons, each on the same score function, the same particles (float32), the same
number of steps and step parameters, one torch thread:

1. VE predictor–corrector: `predictor_corrector` (reverse-diffusion predictor + 1 Langevin
   corrector) against the diffusers `ScoreSdeVeScheduler` loop of its `ScoreSdeVePipeline`
   (set_timesteps / set_sigmas, step_correct, step_pred).
2. Reverse SDE, Euler–Maruyama: `reverse_sde` against torchsde `sdeint(method="euler")`, once
   with a Brownian motion that draws the same increments as ours from the same generator (so
   the outputs agree to rounding) and once with torchsde's default `BrownianInterval`.
3. Probability-flow ODE: `probability_flow` Euler / Heun against torchdiffeq `odeint`
   "euler" / "heun2" on the same grid, and our adaptive solvers, "dopri5" (torch-native
   Dormand–Prince 5(4), PI control) and "adaptive" (scipy's RK45 in float64), against
   torchdiffeq "dopri5" with the same rtol/atol (NFE compared too).

Each row also times a hand-written batched loop doing our math with precomputed step
coefficients (the floor a library can reach) and the score calls alone (as many calls as our
NFE, on one batch: the sampler-overhead denominator).  Timing: every contestant runs once per
round, in an order rotated from round to round, `--repeats` rounds; seconds are CPU seconds of
this process (`--clock cpu`, time.process_time: with one thread that is the work done, and
unlike wall time it does not count the time other jobs on the shared cores hold the CPU);
tables give median seconds and, for each ratio, the median of the per-round ratios.
Correctness: MMD² (scorelab.metrics.mmd) between ours and the peer, each run from an
independent start set and seed, against the 95th percentile of the same statistic over random
splits of the pooled samples (the permutation noise floor), and beside the MMD² of two
independent runs of ours; where ours and the peer make the same draws (or none) the max
difference on one start set too.  Scores: the exact noised score of seed 001's Fig. 3 mixture
(`exact_score_fn`) and a small MLP with EDM preconditioning (untrained: its cost is what
counts).  A last table sweeps the adaptive solvers' tolerance (NFE, error, time).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sde_peers.py            # markdown to stdout
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sde_peers.py --quick    # ~30 s smoke run
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
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from scorelab.distributions import seed001_fig3
from scorelab.metrics import mmd
from scorelab.samplers import predictor_corrector, probability_flow, reverse_sde
from scorelab.sde import SDE, VESDE, VPSDE, exact_score_fn

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import diffusers  # noqa: E402
import torchdiffeq  # noqa: E402
import torchsde  # noqa: E402
from diffusers import ScoreSdeVeScheduler  # noqa: E402
from torchsde._brownian import BaseBrownian  # noqa: E402

Score = Callable[[Tensor, Tensor], Tensor]


# -- score functions --------------------------------------------------------------------------
class EDMScore(nn.Module):
    """An MLP score net 3 → 128 → 128 → 2 (SiLU) with EDM preconditioning (Karras et al. 2022).

    x̃ = x/a(t) has noise level σ = s(t)/a(t); D(x̃) = c_skip·x̃ + c_out·F(c_in·x̃, ¼ log σ) and
    the score is (D − x̃)/(σ²·a) = [−x̃/(σ² + σ_d²) + σ_d·F/(σ·√(σ² + σ_d²))]/a.  Untrained, so
    its samples are not the mixture; it is a stable score of a learned network's cost.
    """

    def __init__(self, sde: SDE, sigma_data: float = 5.0, width: int = 128) -> None:
        super().__init__()
        self.sde, self.sd = sde, sigma_data
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )
        self.requires_grad_(False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        a, s = self.sde.marginal(t)
        a, sig = a[:, None], (s / a)[:, None]
        xs = x / a
        c_in = (sig**2 + self.sd**2).rsqrt()
        f = self.net(torch.cat([xs * c_in, 0.25 * sig.log()], dim=1))
        return (-xs * c_in**2 + (self.sd * c_in / sig) * f) / a


def scores_for(sde: SDE, names: list[str]) -> dict[str, Score]:
    target = seed001_fig3()
    out: dict[str, Score] = {}
    if "exact" in names:
        out["exact mixture"] = exact_score_fn(sde, target)
    if "mlp" in names:
        out["mlp 3-128-128-2"] = EDMScore(sde)
    return out


def full(n: int, t: float) -> Tensor:
    return torch.full((n,), t)


# -- hand-written loops: our math, coefficients precomputed in float64 --------------------------
def hand_pc_ve(score: Score, x: Tensor, sde: VESDE, n: int, snr: float, g) -> Tensor:
    """Reverse-diffusion predictor then one Langevin corrector, scorelab's grid and order."""
    ts = torch.linspace(sde.T, sde.eps, n + 1, dtype=torch.float64)
    var = sde.marginal(ts)[1] ** 2
    gd2 = (var[:-1] - var[1:]).tolist()
    gd = [math.sqrt(v) for v in gd2]
    ts = ts.tolist()
    m = x.shape[0]
    for i in range(n):
        s = score(x, full(m, ts[i]))
        x = x + gd2[i] * s + gd[i] * torch.randn(x.shape, generator=g)
        s = score(x, full(m, ts[i + 1]))
        z = torch.randn(x.shape, generator=g)
        # Song et al. Alg. 4 (α = 1 for VE): ε' = 2(snr‖z‖/‖s‖)², x + ε's + √(2ε')z
        zn = torch.linalg.vector_norm(z, dim=1).mean()
        e = 2.0 * (snr * zn / torch.linalg.vector_norm(s, dim=1).mean()) ** 2
        x = x + e * s + (2.0 * e).sqrt() * z
    return x


def _lin_coefs(sde: SDE, ts: Tensor) -> tuple[list[float], list[float]]:
    """c(t) and g(t)² on the grid (float64): f = c·x."""
    return sde.drift_coef(ts).tolist(), (sde.diffusion(ts) ** 2).tolist()


def hand_em(score: Score, x: Tensor, sde: SDE, n: int, g) -> Tensor:
    """Euler–Maruyama for the reverse SDE: x + (g²s − c·x)h + g√h·z."""
    ts = torch.linspace(sde.T, sde.eps, n + 1, dtype=torch.float64)
    h = (sde.T - sde.eps) / n
    c, g2 = _lin_coefs(sde, ts)
    a = [1.0 - ci * h for ci in c]
    b = [gi * h for gi in g2]
    sd = [math.sqrt(gi * h) for gi in g2]
    ts = ts.tolist()
    m = x.shape[0]
    for i in range(n):
        s = score(x, full(m, ts[i]))
        x = a[i] * x + b[i] * s + sd[i] * torch.randn(x.shape, generator=g)
    return x


def hand_pf(score: Score, x: Tensor, sde: SDE, n: int, method: str) -> Tensor:
    """Probability-flow ODE dx/dt = c·x − ½g²s backwards: Euler or Heun (trapezoid)."""
    ts = torch.linspace(sde.T, sde.eps, n + 1, dtype=torch.float64)
    h = (sde.T - sde.eps) / n
    c, g2 = _lin_coefs(sde, ts)
    k = [0.5 * v for v in g2]
    ts = ts.tolist()
    m = x.shape[0]
    for i in range(n):
        d1 = c[i] * x - k[i] * score(x, full(m, ts[i]))
        if method == "euler":
            x = x - h * d1
        else:
            xe = x - h * d1
            d2 = c[i + 1] * xe - k[i + 1] * score(xe, full(m, ts[i + 1]))
            x = x - (0.5 * h) * (d1 + d2)
    return x


def bare(score: Score, x: Tensor, n_calls: int) -> None:
    t = full(x.shape[0], 0.5)
    for _ in range(n_calls):
        score(x, t)


# -- peers ---------------------------------------------------------------------------------------
def diffusers_pc(score: Score, x: Tensor, sde: VESDE, n: int, snr: float, g) -> Tensor:
    """The ScoreSdeVePipeline loop (corrector, then predictor, at each t), our score model.

    Mapping: sigma_min/sigma_max/sampling_eps = the VESDE's; num_inference_steps = n_steps;
    snr and correct_steps=1 as ours.  The model is conditioned on t (the pipeline passes σ(t),
    a bijection of t); it returns `prev_sample_mean` of the last step, as the pipeline does.
    """
    sched = ScoreSdeVeScheduler(
        snr=snr, sigma_min=sde.sigma_min, sigma_max=sde.sigma_max, sampling_eps=sde.eps
    )
    sched.set_timesteps(n)
    sched.set_sigmas(n)
    m = x.shape[0]
    sample = x
    out = None
    for t in sched.timesteps:
        t_vec = t * torch.ones(m)
        for _ in range(sched.config.correct_steps):
            sample = sched.step_correct(score(sample, t_vec), sample, generator=g).prev_sample
        out = sched.step_pred(score(sample, t_vec), t, sample, generator=g)
        sample = out.prev_sample
    return out.prev_sample_mean


class GeneratorBM(BaseBrownian):
    """Brownian increments √(tb − ta)·z, z drawn from a torch.Generator in call order.

    torchsde's Euler calls bm(t, t + dt) once per step, so this draws the same z as
    `reverse_sde` does (one randn per step, after the score call).
    """

    __slots__ = ("_shape", "_dtype", "_g")

    def __init__(self, shape, dtype, generator) -> None:
        self._shape, self._dtype, self._g = torch.Size(shape), dtype, generator

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        z = torch.randn(self._shape, generator=self._g, dtype=self._dtype)
        return z * math.sqrt(float(tb - ta))

    def __repr__(self) -> str:
        return "GeneratorBM"

    dtype = property(lambda self: self._dtype)
    device = property(lambda self: torch.device("cpu"))
    shape = property(lambda self: self._shape)
    levy_area_approximation = property(lambda self: "none")


class TorchsdeReverse(nn.Module):
    """The reverse-time VP SDE in τ = T − t (torchsde needs increasing time), diagonal noise:
    dX = [½β(t)·X + β(t)·s(X, t)] dτ + √β(t) dW — the same Euler–Maruyama step as ours."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, score: Score, sde: VPSDE) -> None:
        super().__init__()
        self.score, self.T = score, sde.T
        self.b0, self.db = sde.beta_min, (sde.beta_max - sde.beta_min) / sde.T

    def f_and_g(self, tau, y):
        t = self.T - tau
        beta = self.b0 + self.db * t
        f = (0.5 * beta) * y + beta * self.score(y, t.float().expand(y.shape[0]))
        return f, beta.sqrt().float().expand_as(y)


def torchsde_em(score: Score, x: Tensor, sde: VPSDE, n: int, g, bm_kind: str) -> Tensor:
    h = (sde.T - sde.eps) / n
    ts = torch.tensor([0.0, sde.T - sde.eps], dtype=torch.float64)
    bm = GeneratorBM(x.shape, x.dtype, g) if bm_kind == "same increments" else None
    # dt a hair above h: float64 accumulation of τ + h must not leave a tiny (n+1)-th step
    ys = torchsde.sdeint(
        TorchsdeReverse(score, sde), x, ts, bm=bm, method="euler", dt=h * 1.0000001
    )
    return ys[-1]


def torchdiffeq_pf(
    score: Score, x: Tensor, sde: VPSDE, n: int | None, method: str, rtol: float, atol: float
) -> Tensor:
    """dx/dt = −½β(t)(x + s(x, t)) from T to eps; fixed grids = ours (n uniform steps)."""
    m = x.shape[0]
    b0, db = sde.beta_min, (sde.beta_max - sde.beta_min) / sde.T

    def func(t, y):
        return (-0.5 * (b0 + db * t)) * (y + score(y, t.expand(m)))

    t = torch.tensor([sde.T, sde.eps])
    if method == "dopri5":
        # step_t: land a step on eps; by default dopri5 steps past the end and interpolates
        # back, which would evaluate the score at t < 0 (scipy's RK45 clips its last step)
        opts = {"step_t": t[1:]}
        return torchdiffeq.odeint(func, x, t, method=method, rtol=rtol, atol=atol, options=opts)[-1]
    # same n uniform steps as ours (step_size=h could round to n + 1 steps)
    opts = {"grid_constructor": lambda f, y0, tt: torch.linspace(tt[0], tt[-1], n + 1)}
    return torchdiffeq.odeint(func, x, t, method=method, options=opts)[-1]


# -- rows ----------------------------------------------------------------------------------------
# A row: (comparison, score name, peer name, sde, score, {"ours"|"peer"|"hand": run(sf, x, seed)},
# paired: ours and the peer make the same draws, or none).  Every run takes the score function,
# so NFE is counted by passing a counting wrapper (untimed); the "score calls alone" baseline
# makes that many calls.
Run = Callable[[Score, Tensor, int], Tensor]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build_rows(a, names: list[str]) -> list[tuple]:
    n_pc, n_sde, n_ode, snr = a.pc_steps, a.sde_steps, a.ode_steps, a.snr
    ve = VESDE(sigma_min=0.01, sigma_max=25.0, eps=1e-5)
    vp = VPSDE()
    rows = []
    for sname, sf in scores_for(ve, names).items():
        runs: dict[str, Run] = {
            "ours": lambda f, x, sd: (
                predictor_corrector(f, x, sde=ve, n_steps=n_pc, snr=snr, generator=_gen(sd)).samples
            ),
            "peer": lambda f, x, sd: diffusers_pc(f, x, ve, n_pc, snr, _gen(sd)),
            "hand": lambda f, x, sd: hand_pc_ve(f, x, ve, n_pc, snr, _gen(sd)),
        }
        rows.append(("VE predictor-corrector", sname, "diffusers", ve, sf, runs, False))
    for sname, sf in scores_for(vp, names).items():
        for bm_kind in ("same increments", "BrownianInterval"):
            runs = {
                "ours": lambda f, x, sd: (
                    reverse_sde(f, x, sde=vp, n_steps=n_sde, generator=_gen(sd)).samples
                ),
                "peer": lambda f, x, sd, k=bm_kind: torchsde_em(f, x, vp, n_sde, _gen(sd), k),
                "hand": lambda f, x, sd: hand_em(f, x, vp, n_sde, _gen(sd)),
            }
            rows.append(
                (
                    "reverse SDE, EM",
                    sname,
                    f"torchsde euler, {bm_kind}",
                    vp,
                    sf,
                    runs,
                    bm_kind == "same increments",
                )
            )
        for method, peer_method in (("euler", "euler"), ("heun", "heun2")):
            n = n_ode if method == "euler" else n_ode // 2
            runs = {
                "ours": lambda f, x, sd, n=n, mt=method: (
                    probability_flow(f, x, sde=vp, n_steps=n, method=mt).samples
                ),
                "peer": lambda f, x, sd, n=n, pm=peer_method: torchdiffeq_pf(f, x, vp, n, pm, 0, 0),
                "hand": lambda f, x, sd, n=n, mt=method: hand_pf(f, x, vp, n, mt),
            }
            rows.append(
                (f"PF-ODE {method}", sname, f"torchdiffeq {peer_method}", vp, sf, runs, True)
            )
        for method in ("dopri5", "adaptive"):
            runs = {
                "ours": lambda f, x, sd, mt=method: (
                    probability_flow(f, x, sde=vp, method=mt, rtol=a.rtol, atol=a.atol).samples
                ),
                "peer": lambda f, x, sd: torchdiffeq_pf(f, x, vp, None, "dopri5", a.rtol, a.atol),
            }
            comp = "PF-ODE dopri5" if method == "dopri5" else "PF-ODE adaptive (scipy RK45)"
            rows.append((comp, sname, "torchdiffeq dopri5", vp, sf, runs, True))
    return rows


def counted(sf: Score) -> tuple[Score, list[int]]:
    calls = [0]

    def f(x, t):
        calls[0] += 1
        return sf(x, t)

    return f, calls


def start(sde: SDE, n: int, seed: int) -> Tensor:
    """The exact law at T: same particles for every contestant."""
    g = torch.Generator().manual_seed(seed)
    x0 = seed001_fig3().sample(n, generator=g)
    return sde.perturb(x0, sde.T, generator=g)[0]


def perm_floor(x: Tensor, y: Tensor, k: int, seed: int) -> float:
    """95th percentile of MMD² over k random equal splits of the pooled x ∪ y: the
    permutation null of the two-sample test "x and y have the same law"."""
    pool = torch.cat([x, y])
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(k):
        p = torch.randperm(pool.shape[0], generator=g)
        vals.append(mmd(pool[p[: x.shape[0]]], pool[p[x.shape[0] :]]))
    vals.sort()
    return vals[min(k - 1, math.ceil(0.95 * k) - 1)]


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, clock: str) -> float:
    c = CLOCK[clock]
    t0 = c()
    fn()
    return c() - t0


def interleaved(jobs: dict[str, Callable[[], object]], repeats: int, clock: str) -> dict:
    """Seconds of each job in each of `repeats` rounds; a round runs every job once, in an order
    rotated from round to round, so drifts in machine load hit all of them alike."""
    names = list(jobs)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            times[k].append(timed(jobs[k], clock))
    return times


def summary(times: dict[str, list[float]]) -> dict:
    """Median seconds per job, and ours/job as the median of the per-round ratios (each ratio
    compares runs made seconds apart, which cancels slow changes in the machine's load)."""
    out = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        if k != "ours":
            out[f"ours/{k}"] = statistics.median(
                o / t for o, t in zip(times["ours"], v, strict=True)
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--pc-steps", type=int, default=250)
    p.add_argument("--sde-steps", type=int, default=500)
    p.add_argument("--ode-steps", type=int, default=250, help="NFE of the fixed-step ODE rows")
    p.add_argument("--snr", type=float, default=0.16)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--tols", default="1e-3,1e-4,1e-5,1e-6", help="work-precision sweep")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--perms", type=int, default=40, help="permutations for the MMD floor")
    p.add_argument("--scores", default="exact,mlp", help="comma list of exact, mlp")
    p.add_argument("--only", default="", help="run only rows whose comparison contains this")
    p.add_argument("--clock", choices=list(CLOCK), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="300 chains, 1/5 of the steps, 3 repeats")
    a = p.parse_args()
    if a.quick:
        a.chains, a.repeats, a.perms, a.tols = 300, 3, 10, "1e-3,1e-5"
        a.pc_steps, a.sde_steps, a.ode_steps = a.pc_steps // 5, a.sde_steps // 5, a.ode_steps // 5
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    print(f"load average at start: {load0}", file=sys.stderr)
    results = []
    for comp, sname, peer, sde, sf, runs, paired in build_rows(a, a.scores.split(",")):
        if a.only and a.only not in comp:
            continue
        xa, xb = start(sde, a.chains, 1), start(sde, a.chains, 2)
        # untimed: NFE on the timed start set; ours and the peer from independent starts and
        # seeds for the MMD; on one start and seed for the max difference where paired
        cf, calls = counted(sf)
        ours_21 = runs["ours"](cf, xa, 21)
        nfe_ours = calls[0]
        cf, calls = counted(sf)
        peer_21 = runs["peer"](cf, xa, 21)
        nfe_peer = calls[0]
        same = (ours_21 - peer_21).abs().max().item() if paired else None
        hand = None
        if "hand" in runs:
            hand = (ours_21 - runs["hand"](sf, xa, 21)).abs().max().item()
        ours_a = runs["ours"](sf, xa, 11)
        ours_b = runs["ours"](sf, xb, 12)
        peer_b = runs["peer"](sf, xb, 13)
        stats = {
            "mmd_op": mmd(ours_a, peer_b),
            "mmd_oo": mmd(ours_a, ours_b),
            "floor": perm_floor(ours_a, peer_b, a.perms, 5),
            "same": same,
            "hand": hand,
            "nfe": (nfe_ours, nfe_peer),
        }
        jobs = {k: (lambda f=f, sf=sf, x=xa: f(sf, x, 100)) for k, f in runs.items()}
        jobs["score calls"] = lambda sf=sf, x=xa, n=nfe_ours: bare(sf, x, n)
        med = summary(interleaved(jobs, a.repeats, a.clock))
        results.append((comp, sname, peer, med, stats))
        print(f"done: {comp} / {sname} / {peer}: {med}; load {os.getloadavg()}", file=sys.stderr)
    sweep = []
    if not a.only or a.only in "PF-ODE dopri5 adaptive":
        sweep = work_precision(a)
    over = overheads(a)
    load1 = os.getloadavg()
    print(f"load average at end: {load1}", file=sys.stderr)
    report(a, results, sweep, over, load0, load1, time.perf_counter() - t_start)


def work_precision(a) -> list[tuple]:
    """Adaptive solvers at several tolerances: NFE, max error against a tight solution, time."""
    vp = VPSDE()
    x = start(vp, a.chains, 1)
    out = []
    for sname, sf in scores_for(vp, a.scores.split(",")).items():
        # scipy's RK45 keeps its state in float64 (the score is evaluated in float32)
        ref = probability_flow(sf, x, sde=vp, method="adaptive", rtol=1e-10, atol=1e-10)
        ref = ref.samples.double()
        for tol in [float(v) for v in a.tols.split(",")]:
            runs = {
                "ours": lambda f, tol=tol: (
                    probability_flow(f, x, sde=vp, method="dopri5", rtol=tol, atol=tol).samples
                ),
                "rk45": lambda f, tol=tol: (
                    probability_flow(f, x, sde=vp, method="adaptive", rtol=tol, atol=tol).samples
                ),
                "peer": lambda f, tol=tol: torchdiffeq_pf(f, x, vp, None, "dopri5", tol, tol),
            }
            row = {"score": sname, "tol": tol}
            for k, run in runs.items():
                cf, calls = counted(sf)
                row[f"err_{k}"] = (run(cf).double() - ref).abs().max().item()
                row[f"nfe_{k}"] = calls[0]
            jobs = {k: (lambda r=r, sf=sf: r(sf)) for k, r in runs.items()}
            row.update(summary(interleaved(jobs, a.repeats, a.clock)))
            out.append(row)
            print(f"done: adaptive {sname} tol {tol:g}: {row}", file=sys.stderr)
    return out


def overheads(a) -> list[tuple]:
    """Each loop's own cost per score evaluation, with a near-free score s(x, t) = −10⁻³·x:
    (seconds − seconds of the score calls alone) / NFE, in µs."""

    def cheap(x, t):
        return -1e-3 * x

    out = []
    first = a.scores.split(",")[0]
    # 4× the steps: with a free score a run is short, and short runs time noisily
    b = argparse.Namespace(**vars(a))
    b.pc_steps, b.sde_steps, b.ode_steps = 4 * a.pc_steps, 4 * a.sde_steps, 4 * a.ode_steps
    for comp, _sname, peer, sde, _, runs, _ in build_rows(b, [first]):
        # the adaptive solvers pick different NFE with a free score: no per-NFE loop cost
        if comp.startswith(("PF-ODE dopri5", "PF-ODE adaptive")) or (a.only and a.only not in comp):
            continue
        x = start(sde, a.chains, 1)
        cf, calls = counted(cheap)
        runs["ours"](cf, x, 0)
        nfe = calls[0]
        jobs = {k: (lambda f=f, x=x: f(cheap, x, 100)) for k, f in runs.items()}
        jobs["score calls"] = lambda x=x, n=nfe: bare(cheap, x, n)
        med = summary(interleaved(jobs, a.repeats, a.clock))
        us = {k: 1e6 * (med[k] - med["score calls"]) / nfe for k in runs}
        out.append((comp, peer, nfe, us))
        print(f"done: overhead {comp} / {peer}: {us}; load {os.getloadavg()}", file=sys.stderr)
    return out


def report(a, results, sweep, over, load0, load1, wall) -> None:
    machine = platform.processor() or platform.machine()
    print(
        f"{a.chains} chains (2-D, float32), {a.threads} torch thread(s), {a.clock} seconds, median "
        f"of {a.repeats} interleaved repeats; VE PC {a.pc_steps} steps (snr {a.snr}, 1 "
        f"corrector), reverse SDE {a.sde_steps} steps, PF-ODE fixed-step NFE {a.ode_steps}, "
        f"adaptive rtol {a.rtol} atol {a.atol}."
    )
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, torchsde "
        f"{torchsde.__version__}, torchdiffeq {torchdiffeq.__version__}, Python "
        f"{platform.python_version()}, {machine}, {os.cpu_count()} cores; {datetime.date.today()}; "
        f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; {wall:.0f} s in all."
    )
    print()
    print(
        "| comparison | score | peer | NFE ours / peer | ours s | peer s | hand loop s "
        "| score calls s | ours/peer | ours/hand | ours/score calls "
        "| max abs diff ours−peer / ours−hand, same start | MMD² ours–peer "
        "| MMD² ours–ours | floor (perm. 95 %) |"
    )
    print("|---" * 15 + "|")

    def f(v):
        return "—" if v is None else f"{v:.3f}"

    def e(v):
        return "—" if v is None else f"{v:.1e}"

    for comp, sname, peer, med, st in results:

        def ratio(k, med=med):
            return f"{med['ours/' + k]:.2f}" if k in med else "—"

        flag = "" if st["mmd_op"] <= st["floor"] else " (above)"
        print(
            f"| {comp} | {sname} | {peer} | {st['nfe'][0]} / {st['nfe'][1]} | {med['ours']:.3f} "
            f"| {med['peer']:.3f} | {f(med.get('hand'))} | {f(med.get('score calls'))} "
            f"| {ratio('peer')} | {ratio('hand')} | {ratio('score calls')} "
            f"| {e(st['same'])} / {e(st['hand'])} | {st['mmd_op']:.1e}{flag} "
            f"| {st['mmd_oo']:.1e} | {st['floor']:.1e} |"
        )

    if over:
        print()
        print(
            "Each loop's own cost, with a near-free score s(x, t) = −10⁻³·x: (seconds − seconds "
            "of the score calls alone) / NFE, in µs per score evaluation:"
        )
        print()
        print("| comparison | peer | NFE | ours µs | peer µs | hand loop µs | ours − hand µs |")
        print("|---" * 7 + "|")
        for comp, peer, nfe, us in over:
            print(
                f"| {comp} | {peer} | {nfe} | {us['ours']:.1f} | {us['peer']:.1f} "
                f"| {us['hand']:.1f} | {us['ours'] - us['hand']:.1f} |"
            )
    if not sweep:
        return
    print()
    print(
        "Adaptive solvers, work against precision (error: max |x − x_ref| over all chains, "
        'x_ref = scipy RK45 in float64 at rtol = atol = 1e-10; ours = `method="dopri5"`, '
        'RK45 = `method="adaptive"`, peer = torchdiffeq dopri5):'
    )
    print()
    print(
        "| score | rtol = atol | NFE ours / RK45 / peer | max error ours / RK45 / peer "
        "| ours s | RK45 s | peer s | ours/peer | RK45/peer | ours/peer per NFE |"
    )
    print("|---" * 10 + "|")
    for r in sweep:
        per = r["ours/peer"] * r["nfe_peer"] / r["nfe_ours"]
        rk_peer = r["ours/peer"] / r["ours/rk45"]
        print(
            f"| {r['score']} | {r['tol']:g} | {r['nfe_ours']} / {r['nfe_rk45']} / {r['nfe_peer']} "
            f"| {r['err_ours']:.1e} / {r['err_rk45']:.1e} / {r['err_peer']:.1e} "
            f"| {r['ours']:.3f} | {r['rk45']:.3f} | {r['peer']:.3f} "
            f"| {r['ours/peer']:.2f} | {rk_peer:.2f} | {per:.2f} |"
        )


if __name__ == "__main__":
    main()
