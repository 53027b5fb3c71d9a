"""Probability-flow ODE samplers side by side with k-diffusion's Karras samplers, on equal work.

`probability_flow(method="euler_sigma" | "heun_sigma", denoise=True)` on a VE SDE against
`k_diffusion.sampling.sample_euler` / `sample_heun` (Karras et al. 2022, Alg. 1 / 2 with
s_churn = 0, i.e. the deterministic samplers), on the same network, the same particles
(float32), the same nodes and the same NFE, one torch thread.

The math.  VE SDE (σ_min = 0.01, σ_max = 25, eps = 1e-5, as in sde_peers.py): the noised law at
t has a(t) = 1 and std s(t) = √(σ(t)² − σ_min²), σ(t) = σ_min(σ_max/σ_min)^(t/T).  Our PF-ODE
dx/dt = −½g(t)²·score(x, t) and Karras' dx/dσ = (x − D(x; σ))/σ with the denoiser
D(x; σ) = x + σ²·∇log p_σ(x) are one ODE under σ = s(t).  Our "_sigma" methods step it in σ on
the nodes s(tᵢ) of the uniform grid tᵢ = linspace(T, eps, n + 1), then take Tweedie's step
x + s(eps)²·score(x, eps): NFE n + 1 (Euler), 2n + 1 (Heun).  k-diffusion gets sigmas = s(tᵢ)
with 0 appended, in x's dtype (as its own `get_sigmas_*` return them); its last step
s(eps) → 0 is an Euler step, x + (x − D)/σ·(0 − σ) = D, which is the Tweedie step.  So the two
do the same arithmetic up to rounding, with NFE n + 1 / 2n + 1 each (counted and checked).  The
error columns compare both with a fine Heun solution.  Rows "(t-steps)" run our "euler" / "heun"
methods instead, on the same nodes and NFE but stepping in t: what stepping in σ buys on VE.

Models (both contestants evaluate the same network):
1. exact: the exact noised score of seed 001's Fig. 3 mixture (`exact_score_fn`, takes t).
   k-diffusion's model is D(x, σ) = x + σ²·score(x, t(σ)), t(σ) = T·½log1p(σ²/σ_min²)/log(σ_max/
   σ_min), the inverse of s(t) (checked against `sde.marginal` at start-up).
2. mlp: sde_peers' `EDMScore` network F (untrained 3→128→128→2 SiLU) in its natural σ-form,
   D(x; σ) = c_skip·x + c_out·F(c_in·x, ¼ log σ), c_in = 1/√(σ² + σ_d²), c_skip = σ_d²/(σ² +
   σ_d²), c_out = σσ_d/√(σ² + σ_d²): k-diffusion calls D; ours calls the score of the same
   network, (D − x)/σ² written out as −x·c_in² + σ_d·c_in·F/σ (no float32 cancellation) at
   σ = s(t) = σ_min·√expm1(2t·log(σ_max/σ_min)/T) (checked at start-up against `sde.marginal`
   and against `EDMScore`).  Ours thus pays the t → σ map per call, k-diffusion its (x − D)/σ.
   The table shows both "model calls alone" baselines: score calls (ours) and D calls
   (k-diffusion), NFE calls each.

Both run without a progress bar: our default (`progress=False`) and `disable=True` for
k-diffusion (its tqdm `trange` otherwise decides from the terminal; a bar costs time per step),
the fair setting.  Timing as in sde_peers.py: every contestant once per round, order rotated,
`--repeats` rounds, CPU seconds (`--clock cpu`) by default; medians, and each ratio the median of
the per-round ratios.  Correctness: MMD² between ours and k-diffusion from independent start
sets against the permutation floor, beside the MMD² of two runs of ours.  A last table gives each
loop's own µs per NFE with a near-free model.

Loading k-diffusion.  It is installed with `pip install --no-deps k-diffusion==0.1.1.post1`: its
dependency list (torchvision, wandb, clean-fid, ...) would replace the installed torch.  Its
package `__init__` imports modules that need those missing packages, so `import k_diffusion`
fails.  Only `k_diffusion/sampling.py` is loaded: a stub package `k_diffusion` and a stub
`k_diffusion.utils` defining `append_dims` (the only `utils.` name sampling.py uses, checked at
load time) go into sys.modules, then sampling.py is executed from its file with
`importlib.util.spec_from_file_location("k_diffusion.sampling", path)`.  Its own imports (scipy,
torchdiffeq, torchsde, tqdm) are real; they come with `.[bench]`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/karras_peers.py            # ~1.5 min, markdown
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/karras_peers.py --quick    # ~15 s smoke run
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import math
import os
import platform
import re
import statistics
import sys
import time
import types
from collections.abc import Callable

import torch
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_name  # noqa: E402  (benchmarks/ is the script dir)
from sde_peers import CLOCK, EDMScore, bare, counted, interleaved, perm_floor, start, summary  # noqa: E402

from scorelab.distributions import seed001_fig3  # noqa: E402
from scorelab.metrics import mmd  # noqa: E402
from scorelab.samplers import probability_flow  # noqa: E402
from scorelab.sde import VESDE, exact_score_fn  # noqa: E402

KD_VERSION = "0.1.1.post1"
INSTALL = f".venv/bin/pip install --no-deps k-diffusion=={KD_VERSION}"
Model = Callable[[Tensor, Tensor], Tensor]


# -- k-diffusion's sampling.py without its package ------------------------------------------------
def load_k_sampling() -> types.ModuleType:
    """`k_diffusion.sampling`, loaded from its file under stub `k_diffusion` / `.utils` modules."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"k-diffusion is not installed: {INSTALL}")
    path = os.path.join(list(spec.submodule_search_locations)[0], "sampling.py")
    with open(path, encoding="utf-8") as f:
        used = set(re.findall(r"\butils\.(\w+)", f.read()))
    if used != {"append_dims"}:
        sys.exit(f"{path} uses utils.{sorted(used)}, the stub has only append_dims: {INSTALL}")

    def append_dims(x: Tensor, target_dims: int) -> Tensor:
        """k_diffusion.utils.append_dims: trailing singleton dims up to target_dims."""
        if target_dims < x.ndim:
            raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}")
        return x[(...,) + (None,) * (target_dims - x.ndim)]

    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = []  # a package, but nothing else of it can be imported
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = append_dims
    pkg.utils = utils
    sys.modules["k_diffusion"], sys.modules["k_diffusion.utils"] = pkg, utils
    sspec = importlib.util.spec_from_file_location("k_diffusion.sampling", path)
    mod = importlib.util.module_from_spec(sspec)
    sys.modules["k_diffusion.sampling"] = mod
    try:
        sspec.loader.exec_module(mod)
    except ImportError as e:
        sys.exit(f"k_diffusion/sampling.py needs {e.name}: .venv/bin/pip install -e '.[bench]'")
    return mod


KS = load_k_sampling()


# -- σ ↔ t and the two denoisers ----------------------------------------------------------------
def t_of_sigma(ve: VESDE, sig: Tensor) -> Tensor:
    """The inverse of s(t) = √(σ(t)² − σ_min²): t = T·½log1p(σ²/σ_min²)/log(σ_max/σ_min)
    (log1p keeps float32 accurate near eps); clamped to T against rounding above it."""
    k = 0.5 * ve.T / math.log(ve.sigma_max / ve.sigma_min)
    return torch.log1p((sig / ve.sigma_min) ** 2).mul_(k).clamp_(max=ve.T)


class ExactDenoiser:
    """D(x, σ) = x + σ²·score(x, t(σ)) around a score that takes t."""

    def __init__(self, ve: VESDE, score: Model) -> None:
        self.ve, self.score = ve, score

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return x + (sigma**2)[:, None] * self.score(x, t_of_sigma(self.ve, sigma))


def s_of_t(ve: VESDE, t: Tensor) -> Tensor:
    """s(t) = √(σ(t)² − σ_min²) = σ_min·√expm1(2t·log(σ_max/σ_min)/T)."""
    return (
        torch.expm1(t * (2.0 * math.log(ve.sigma_max / ve.sigma_min) / ve.T))
        .sqrt_()
        .mul_(ve.sigma_min)
    )


class EDMSigmaScore(nn.Module):
    """The score of the EDM-preconditioned network, computed from σ = s(t) directly:
    ∇log p = (D − x)/σ² = −x/(σ² + σ_d²) + σ_d·F/(σ√(σ² + σ_d²)) (written out: D − x would
    cancel catastrophically in float32 at σ ≈ 1e-4)."""

    def __init__(self, ve: VESDE, net: nn.Module, sigma_data: float) -> None:
        super().__init__()
        self.ve, self.net, self.sd = ve, net, sigma_data

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        sig = s_of_t(self.ve, t)[:, None]
        c_in = (sig**2 + self.sd**2).rsqrt()
        f = self.net(torch.cat([x * c_in, 0.25 * sig.log()], dim=1))
        return -x * c_in**2 + (self.sd * c_in / sig) * f


class EDMDenoiser(nn.Module):
    """`EDMScore`'s network in its natural σ-form (same weights):
    D(x; σ) = c_skip·x + c_out·F(c_in·x, ¼ log σ) for VE (a = 1)."""

    def __init__(self, score: EDMScore) -> None:
        super().__init__()
        self.net, self.sd = score.net, score.sd

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sig = sigma[:, None]
        v = sig**2 + self.sd**2
        c_in = v.rsqrt()
        f = self.net(torch.cat([x * c_in, 0.25 * sig.log()], dim=1))
        return (self.sd**2 / v) * x + (sig * self.sd * c_in) * f


def check_maps(ve: VESDE, edm: EDMScore | None) -> None:
    """t(σ) inverts sde.marginal; x + σ²·EDMScore(x, t) = EDMDenoiser(x, σ) to float32 rounding."""
    ts = torch.linspace(ve.T, ve.eps, 1001, dtype=torch.float64)
    s64 = ve.marginal(ts)[1]
    assert torch.allclose(t_of_sigma(ve, s64), ts, rtol=1e-12, atol=0), "t(σ) in float64"
    # float32: t(σ) to a few ulps, relative; eps's σ ≈ 1.3e-4 is where a naive log loses digits
    assert torch.allclose(t_of_sigma(ve, s64.float()).double(), ts, rtol=1e-6, atol=0), "t(σ) f32"
    if edm is None:
        return
    g = torch.Generator().manual_seed(3)
    t = ve.eps + (ve.T - ve.eps) * torch.rand(4096, generator=g)
    x = 30.0 * torch.randn(4096, 2, generator=g)
    sig = ve.marginal(t)[1]
    d_t = x + (sig**2)[:, None] * edm(x, t)
    d_s = EDMDenoiser(edm)(x, sig)
    err = ((d_t - d_s).abs() / (1.0 + x.abs())).max().item()
    assert err < 1e-5, f"EDMScore and EDMDenoiser disagree: {err:.1e}"
    assert torch.allclose(s_of_t(ve, ts), s64, rtol=1e-12, atol=0), "s(t) in float64"
    sig_score = EDMSigmaScore(ve, edm.net, edm.sd)(x, t)
    err = ((sig_score - edm(x, t)).abs() / (1.0 + edm(x, t).abs())).max().item()
    assert err < 1e-4, f"EDMSigmaScore and EDMScore disagree: {err:.1e}"  # measured 1.9e-5


# -- the contestants -------------------------------------------------------------------------------
def ours(ve: VESDE, score: Model, x: Tensor, n: int, method: str, variant: str = "sigma"):
    """method "euler" | "heun"; variant "sigma" (our euler_sigma / heun_sigma) or "t"."""
    m = f"{method}_sigma" if variant == "sigma" else method
    return probability_flow(score, x, sde=ve, n_steps=n, method=m, denoise=True)


def karras_sigmas(ve: VESDE, n: int, like: Tensor) -> Tensor:
    """s(t) on our grid linspace(T, eps, n + 1), then 0, in x's dtype."""
    ts = torch.linspace(ve.T, ve.eps, n + 1, dtype=torch.float64)
    sig = ve.marginal(ts)[1]
    return torch.cat([sig, sig.new_zeros(1)]).to(like.dtype)


def peer(ve: VESDE, model: Model, x: Tensor, n: int, method: str) -> Tensor:
    sampler = KS.sample_euler if method == "euler" else KS.sample_heun
    return sampler(model, x, karras_sigmas(ve, n, x), disable=True)


def bare_d(model: Model, x: Tensor, sigma: float, n_calls: int) -> None:
    s = torch.full((x.shape[0],), sigma)
    for _ in range(n_calls):
        model(x, s)


def per_chain(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().amax(dim=1)


def build_models(ve: VESDE, names: list[str]) -> list[tuple[str, Model, Model]]:
    out = []
    check_maps(ve, EDMScore(ve) if "mlp" in names else None)
    if "exact" in names:
        sf = exact_score_fn(ve, seed001_fig3())
        out.append(("exact mixture", sf, ExactDenoiser(ve, sf)))
    if "mlp" in names:
        edm = EDMScore(ve)
        out.append(("mlp 3-128-128-2", EDMSigmaScore(ve, edm.net, edm.sd), EDMDenoiser(edm)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--ode-steps", type=int, default=200, help="Euler steps; Heun takes half")
    p.add_argument("--ref-steps", type=int, default=2000, help="Heun steps of the reference")
    p.add_argument("--sigma-max", type=float, default=25.0)
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--perms", type=int, default=40, help="permutations for the MMD floor")
    p.add_argument("--scores", default="exact,mlp", help="comma list of exact, mlp")
    p.add_argument("--only", default="", help="run only the euler or the heun rows")
    p.add_argument("--clock", choices=list(CLOCK), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="300 chains, 1/5 of the steps, 3 repeats")
    a = p.parse_args()
    if a.quick:
        a.chains, a.repeats, a.perms = 300, 3, 10
        a.ode_steps, a.ref_steps = a.ode_steps // 5, a.ref_steps // 5
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    print(f"load average at start: {load0}", file=sys.stderr)
    ve = VESDE(sigma_min=0.01, sigma_max=a.sigma_max, eps=1e-5)
    s_half = ve.marginal(torch.tensor([0.5]))[1].item()  # D calls alone at t = 0.5, as `bare`
    methods = [m for m in ("euler", "heun") if not a.only or a.only == m]
    xa, xb = start(ve, a.chains, 1), start(ve, a.chains, 2)
    results, refs = [], {}
    for sname, score, den in build_models(ve, a.scores.split(",")):
        # the reference: fine Heun, ours; k-diffusion's on the same fine grid must agree
        ref = ours(ve, score, xa, a.ref_steps, "heun").samples  # heun_sigma
        refs[sname] = per_chain(ref, peer(ve, den, xa, a.ref_steps, "heun")).max().item()
        for method, variant in [(m, v) for v in ("sigma", "t") for m in methods]:
            n = a.ode_steps if method == "euler" else a.ode_steps // 2
            want = n + 1 if method == "euler" else 2 * n + 1
            cf, calls = counted(score)
            res = ours(ve, cf, xa, n, method, variant)
            nfe_ours, o_a = calls[0], res.samples
            cf, calls = counted(den)
            p_a = peer(ve, cf, xa, n, method)
            nfe_peer = calls[0]
            assert nfe_ours == res.nfe == nfe_peer == want, (nfe_ours, res.nfe, nfe_peer, want)
            print(
                f"NFE {method} ({variant}) / {sname}: ours {nfe_ours}, k-diffusion {nfe_peer}",
                file=sys.stderr,
            )
            o_b = ours(ve, score, xb, n, method, variant).samples
            p_b = peer(ve, den, xb, n, method)
            e_o, e_p = per_chain(o_a, ref), per_chain(p_a, ref)
            stats = {
                "nfe": (nfe_ours, nfe_peer),
                "same": per_chain(o_a, p_a).max().item(),
                "err_med": (e_o.median().item(), e_p.median().item()),
                "err_max": (e_o.max().item(), e_p.max().item()),
                "mmd_op": mmd(o_a, p_b),
                "mmd_oo": mmd(o_a, o_b),
                "floor": perm_floor(o_a, p_b, a.perms, 5),
            }
            jobs = {
                "ours": lambda s=score, n=n, m=method, v=variant: ours(ve, s, xa, n, m, v),
                "peer": lambda d=den, n=n, m=method: peer(ve, d, xa, n, m),
                "score calls": lambda s=score, k=nfe_ours: bare(s, xa, k),
                "D calls": lambda d=den, k=nfe_peer: bare_d(d, xa, s_half, k),
            }
            times = interleaved(jobs, a.repeats, a.clock)
            med = summary(times)
            med["peer/D calls"] = statistics.median(
                pt / dt for pt, dt in zip(times["peer"], times["D calls"], strict=True)
            )
            results.append((method, variant, sname, med, stats))
            print(
                f"done: {method} ({variant}) / {sname}: {med}; load {os.getloadavg()}",
                file=sys.stderr,
            )
    over = overheads(a, ve, methods)
    load1 = os.getloadavg()
    print(f"load average at end: {load1}", file=sys.stderr)
    report(a, results, refs, over, load0, load1, time.perf_counter() - t_start)


def overheads(a, ve: VESDE, methods: list[str]) -> list[tuple]:
    """Each loop's own cost per model evaluation, with a near-free model (score −10⁻³·x for
    ours, D = 0.999·x for k-diffusion: one multiply each): (seconds − seconds of its own model
    calls alone) / NFE, in µs.  4× the steps: with a free model a run is short and times noisily."""

    def cheap_score(x, t):
        return -1e-3 * x

    def cheap_d(x, sigma):
        return 0.999 * x

    x = start(ve, a.chains, 1)
    out = []
    for method in methods:
        n = 4 * a.ode_steps if method == "euler" else 2 * a.ode_steps
        nfe = n + 1 if method == "euler" else 2 * n + 1
        jobs = {
            "ours": lambda n=n, m=method: ours(ve, cheap_score, x, n, m),
            "peer": lambda n=n, m=method: peer(ve, cheap_d, x, n, m),
            "score calls": lambda k=nfe: bare(cheap_score, x, k),
            "D calls": lambda k=nfe: bare_d(cheap_d, x, 0.5, k),
        }
        med = summary(interleaved(jobs, a.repeats, a.clock))
        us = {
            "ours": 1e6 * (med["ours"] - med["score calls"]) / nfe,
            "peer": 1e6 * (med["peer"] - med["D calls"]) / nfe,
        }
        out.append((method, nfe, us))
        print(f"done: overhead {method}: {us}; load {os.getloadavg()}", file=sys.stderr)
    return out


LABEL = {"euler": "euler_sigma · `sample_euler`", "heun": "heun_sigma · `sample_heun`"}


def report(a, results, refs, over, load0, load1, wall) -> None:
    kd = importlib.metadata.version("k-diffusion")
    print(
        f"{a.chains} chains (2-D, float32), {a.threads} torch thread(s), {a.clock} seconds, median "
        f"of {a.repeats} interleaved repeats; VE SDE σ_min 0.01, σ_max {a.sigma_max:g}, eps 1e-5; "
        f"Euler {a.ode_steps} steps, Heun {a.ode_steps // 2} steps, + the final denoise; "
        f"k-diffusion samplers with s_churn = 0, disable=True (no tqdm bar)."
    )
    print(
        f"torch {torch.__version__}, k-diffusion {kd} (sampling.py only), Python "
        f"{platform.python_version()}, {cpu_name()}, {os.cpu_count()} cores; "
        f"{datetime.date.today()}; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; "
        f"{wall:.0f} s in all."
    )
    print()
    print(
        f"Reference for the error columns: our heun_sigma with {a.ref_steps} steps, same start; "
        "k-diffusion's Heun on the same fine grid differs from it by at most "
        + ", ".join(f"{v:.1e} ({k})" for k, v in refs.items())
        + ". Errors and differences are per chain max over the 2 coordinates, then median or max "
        "over the chains."
    )
    print()
    print(
        "| sampler · k-diffusion | score | NFE ours / peer | ours s | peer s | score calls s "
        "| D calls s | ours/peer | ours/score calls | peer/D calls "
        "| max abs diff ours−peer, same start | median error ours / peer | max error ours / peer "
        "| MMD² ours–peer | MMD² ours–ours | floor (perm. 95 %) |"
    )
    print("|---" * 16 + "|")
    for method, variant, sname, med, st in results:
        flag = "" if st["mmd_op"] <= st["floor"] else " (above)"
        label = LABEL[method] if variant == "sigma" else f"{method} (t-steps) · k-diffusion"
        print(
            f"| {label} | {sname} | {st['nfe'][0]} / {st['nfe'][1]} | {med['ours']:.3f} "
            f"| {med['peer']:.3f} | {med['score calls']:.3f} | {med['D calls']:.3f} "
            f"| {med['ours/peer']:.2f} | {med['ours/score calls']:.2f} | {med['peer/D calls']:.2f} "
            f"| {st['same']:.1e} | {st['err_med'][0]:.1e} / {st['err_med'][1]:.1e} "
            f"| {st['err_max'][0]:.1e} / {st['err_max'][1]:.1e} | {st['mmd_op']:.1e}{flag} "
            f"| {st['mmd_oo']:.1e} | {st['floor']:.1e} |"
        )
    print()
    print(
        "Each loop's own cost, with a near-free model (score −10⁻³·x for ours, D = 0.999·x for "
        "k-diffusion): (seconds − seconds of its own model calls alone) / NFE, in µs per "
        "evaluation:"
    )
    print()
    print("| sampler · k-diffusion | NFE | ours µs | peer µs |")
    print("|---" * 4 + "|")
    for method, nfe, us in over:
        print(f"| {LABEL[method]} | {nfe} | {us['ours']:.1f} | {us['peer']:.1f} |")


if __name__ == "__main__":
    main()
