"""Samplers for the reverse-time SDE and the probability-flow ODE (Song et al. 2021).

All run on a uniform time grid t₀ = T > t₁ > … > t_n = sde.eps, h = (T − eps)/n, and see only a
`score_fn(x, t)` with per-sample time t of shape (N,).  For the linear SDEs of `scorelab.sde`,
f(x, t) = c(t)·x and x_t | x_0 ~ N(a(t)·x_0, s(t)²I); the moment ODEs a' = c·a and
(s²)' = 2c·s² + g² give every closed form below.

- `reverse_sde`: Euler–Maruyama or the exponential integrator (seed 002) for eq. 6.
- `ancestral`: the exact Gaussian reverse step of the discretised chain (SMLD / DDPM).
- `predictor_corrector`: Song et al. 2021 Algorithm 1 (predictor, then Langevin corrector).
- `probability_flow`: the ODE dx = [f − ½g²·s] dt (eq. 13) by Euler, Heun, torch-native
  Dormand–Prince 5(4) or scipy's RK45.

Langevin steps use scorelab's convention (docs/conventions.md): x ← x + (ε/2)·s + √ε·z.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scorelab._types import SampleResult, ScoreFn
from scorelab._utils import ScorelabError, append_dims, check_finite, randn_like
from scorelab.samplers._loop import check_count, check_positive, check_start, iterate
from scorelab.samplers._ode import dopri5
from scorelab.sde import SDE

__all__ = ["ancestral", "predictor_corrector", "probability_flow", "reverse_sde"]

_PREDICTORS = ("reverse_diffusion", "ancestral", "euler_maruyama")
_PF_METHODS = ("euler", "heun", "euler_sigma", "heun_sigma", "dopri5", "adaptive")


# -- shared pieces ------------------------------------------------------------------------------
def _setup(score_fn: ScoreFn, x0: Tensor, sde: SDE, n_steps: int | None) -> tuple[Tensor, int]:
    if not callable(score_fn):
        raise ScorelabError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if not isinstance(sde, SDE):
        raise ScorelabError(f"sde must be a scorelab.sde.SDE, got {type(sde).__name__}")
    x0 = check_start(x0)
    n = check_count("n_steps", n_steps, minimum=1) if n_steps is not None else 0
    return x0, n


def _grid(sde: SDE, n: int) -> list[float]:
    """t₀ = T > … > t_n = eps, uniform."""
    return torch.linspace(sde.T, sde.eps, n + 1, dtype=torch.float64).tolist()


def _t(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _ms(sde: SDE, t: float, x: Tensor) -> tuple[Tensor, Tensor]:
    a, s = sde.marginal(_t(t, x))
    return append_dims(a, x.ndim), append_dims(s, x.ndim)


# Per-step coefficients.  A step's coefficients are the same for every chain, so they are
# computed once per run on the whole time grid — with the same float operations, in x's dtype,
# that a per-chain evaluation at t = tᵢ would do — and applied as Python scalars: a step is
# then a handful of tensor ops around the score call.
def _on_grid(ts: list[float], x: Tensor) -> Tensor:
    return torch.tensor(ts, dtype=x.dtype, device=x.device)


def _lin_coefs(sde: SDE, tg: Tensor) -> tuple[list[float], list[float], Tensor]:
    """(c(tᵢ), g(tᵢ)², g(tᵢ)) on the grid: f(x, t) = c(t)·x."""
    g = sde.diffusion(tg)
    return sde.drift_coef(tg).tolist(), (g**2).tolist(), g


def _denoise(score_fn: ScoreFn, x: Tensor, sde: SDE) -> Tensor:
    """Tweedie at eps: E[x₀ | x_eps] = (x + s(x, eps)·s(eps)²)/a(eps)."""
    a, s = _ms(sde, sde.eps, x)
    out = (x + s**2 * score_fn(x, _t(sde.eps, x))) / a
    check_finite(out, where="denoise", step=0, hint="check the score at t = sde.eps")
    return out


def _ancestral_coefs(sde: SDE, tg: Tensor) -> tuple[list[float], list[float], list[float]]:
    """(α, v, √var) per step t_i → t_{i+1} of `_ancestral`, from the grid marginals."""
    a, s = sde.marginal(tg)
    a1, s1, a0, s0 = a[:-1], s[:-1], a[1:], s[1:]
    alpha = a1 / a0
    v = (s1**2 - alpha**2 * s0**2).clamp_min(0.0)
    var = (v * s0**2 / s1**2).clamp_min(0.0)
    return alpha.tolist(), v.tolist(), var.sqrt().tolist()


def _ancestral(
    score_fn: ScoreFn, sde: SDE, ts: list[float], x0: Tensor, gen: torch.Generator | None
) -> Callable[[Tensor, int], Tensor]:
    """Step i: the exact Gaussian reverse step tᵢ → tᵢ₊₁ of the chain x_t = α·x_{t_next} + √v·z.

    α = a(t)/a(t_next), v = s(t)² − α²s(t_next)²:  mean (x + v·s(x, t))/α (Tweedie for one
    Gaussian step), variance v·s(t_next)²/s(t)² (the DDPM posterior variance β̃).
    """
    coefs = list(zip(*_ancestral_coefs(sde, _on_grid(ts, x0)), strict=True))
    n, dtype, device = x0.shape[0], x0.dtype, x0.device

    def step(x: Tensor, i: int) -> Tensor:
        alpha, v, sd = coefs[i]
        mean = x + v * score_fn(x, torch.full((n,), ts[i], dtype=dtype, device=device))
        if alpha != 1.0:  # VE: α = 1 exactly
            mean = mean / alpha
        return mean + sd * torch.randn(x.shape, generator=gen, dtype=dtype, device=device)

    return step


def _euler_maruyama(
    score_fn: ScoreFn,
    sde: SDE,
    ts: list[float],
    h: float,
    x0: Tensor,
    gen: torch.Generator | None,
) -> Callable[[Tensor, int], Tensor]:
    """Step i: Euler–Maruyama for the reverse SDE, x − [c·x − g²s]·h + g√h·z at t = tᵢ."""
    c, g2, g = _lin_coefs(sde, _on_grid(ts, x0))
    coefs = list(zip(c, g2, (g * math.sqrt(h)).tolist(), strict=True))
    n, dtype, device = x0.shape[0], x0.dtype, x0.device

    def step(x: Tensor, i: int) -> Tensor:
        c, g2, gsh = coefs[i]
        s = score_fn(x, torch.full((n,), ts[i], dtype=dtype, device=device))
        z = torch.randn(x.shape, generator=gen, dtype=dtype, device=device)
        if c == 0.0:  # VE: no drift, x − (−g²s)·h = x + (g²s)·h exactly
            return x + (g2 * s) * h + gsh * z
        return x - (c * x - g2 * s) * h + gsh * z

    return step


_NP_SCALAR = {torch.float32: np.float32, torch.float64: np.float64}


def _corrector(x: Tensor, r: float, alphas: list[float]) -> Callable[[Tensor, Tensor, int], Any]:
    """(s, z, i) → (ε/2, √ε) of the Langevin corrector at step i: ε = 2ε', ε' = 2αᵢ(r‖z‖/‖s‖)²
    with per-chain norms averaged over the batch (as score_sde).

    On the CPU in float32/float64 the scalar arithmetic runs on numpy scalars of x's dtype: the
    same IEEE operations in the same order as on 0-d tensors (so the same bits), without a
    tensor dispatch per operation; the square root stays a torch op (torch's float32 sqrt is
    not always correctly rounded, numpy's is).  Elsewhere (GPU, half precision) it all stays
    on 0-d tensors.
    """
    n, dtype = x.shape[0], x.dtype
    norm = torch.linalg.vector_norm

    def mean_norm(v: Tensor) -> Tensor:
        return norm(v if v.ndim == 2 else v.reshape(n, -1), dim=1).mean()

    def tensor_step(s_norm: Tensor, z_norm: Tensor, i: int) -> tuple[Tensor, Tensor]:
        eps_paper = 2.0 * alphas[i] * (r * z_norm / s_norm.clamp_min(1e-30)) ** 2
        eps = 2.0 * eps_paper
        return eps / 2.0, eps.sqrt()

    f = _NP_SCALAR.get(dtype) if x.device.type == "cpu" else None
    if f is None:
        return lambda s, z, i: tensor_step(mean_norm(s), mean_norm(z), i)
    fr, tiny, two = f(r), f(1e-30), f(2.0)
    two_alpha = [f(2.0 * a) for a in alphas]

    def scalar_step(s: Tensor, z: Tensor, i: int) -> tuple[Any, Tensor]:
        s_norm, z_norm = mean_norm(s), mean_norm(z)
        sn, zn = s_norm.item(), z_norm.item()
        if not (sn > 1e-30 and alphas[i] * (r * zn / sn) ** 2 < 1e30):
            return tensor_step(s_norm, z_norm, i)  # 0, NaN or overflow: as torch does it
        q = fr * f(zn) / max(f(sn), tiny)
        eps = two * (two_alpha[i] * (q * q))
        return float(eps / two), torch.scalar_tensor(float(eps), dtype=dtype).sqrt()

    return scalar_step


def _finish(
    score_fn: ScoreFn,
    x: Tensor,
    sde: SDE,
    denoise: bool,
    nfe: int,
    traj: Tensor | None,
    info: dict,
) -> SampleResult:
    if denoise:
        x = _denoise(score_fn, x, sde)
        nfe += 1
    info["denoise"] = bool(denoise)
    return SampleResult(samples=x, nfe=nfe, trajectory=traj, info=info)


# -- samplers -----------------------------------------------------------------------------------
def reverse_sde(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    sde: SDE,
    n_steps: int,
    method: str = "euler_maruyama",
    denoise: bool = False,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Reverse-time SDE dx = [f − g²·s] dt + g dB̄ from T to eps (Song et al. 2021, eq. 6).

    method="euler_maruyama": x ← x − [f(x, t) − g(t)²·s(x, t)]·h + g(t)√h·z.
    method="exponential" (seed 002; Chen et al. 2023): the linear part c(t)x is integrated
    exactly over [t − h, t] with the score frozen at (x_k, t_k):

        x ← ρ·x + κ·s(x, t) + √ν·z,   ρ = a(t−h)/a(t),
        κ = a(t−h)·∫_{t−h}^{t} g(τ)²/a(τ) dτ,   ν = a(t−h)²·[s(t)²/a(t)² − s(t−h)²/a(t−h)²].

    VE: ρ = 1, κ = ν = s(t)² − s(t−h)²;  VP and OU (g² = −2c, s² = 1 − a²): κ = 2(ρ − 1),
    ν = ρ² − 1; seed 002's OU (ρ = eʰ): x ← eʰx + 2(eʰ − 1)s + √(e^{2h} − 1)·z.
    The coefficients come from `SDE.exponential_coefs` (general for every linear SDE here,
    sub-VP included).  denoise=True adds Tweedie's x ← (x + s(x, eps)·s(eps)²)/a(eps)
    (one more NFE).
    """
    x0, n = _setup(score_fn, x0, sde, n_steps)
    if method not in ("euler_maruyama", "exponential"):
        raise ScorelabError(f"method must be 'euler_maruyama' or 'exponential', got {method!r}")
    ts = _grid(sde, n)
    h = (sde.T - sde.eps) / n
    if method == "exponential":
        coefs = [sde.exponential_coefs(ts[i], ts[i + 1]) for i in range(n)]
        sq = [math.sqrt(nu) for _, _, nu in coefs]

        def step(x: Tensor, i: int) -> Tensor:
            rho, kappa, _ = coefs[i]
            s = score_fn(x, _t(ts[i], x))
            return rho * x + kappa * s + sq[i] * randn_like(x, generator)

    else:
        step = _euler_maruyama(score_fn, sde, ts, h, x0, generator)

    x, traj, seconds = iterate(
        step,
        x0,
        n,
        sampler=f"reverse_sde[{method}]",
        hint=f"increase n_steps (now {n})",
        record_every=record_every,
        progress=progress,
    )
    info = {"method": method, "n_steps": n, "step": h, "seconds": seconds}
    return _finish(score_fn, x, sde, denoise, n, traj, info)


def ancestral(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    sde: SDE,
    n_steps: int,
    denoise: bool = False,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Ancestral sampling of the discretised chain (SMLD for VE, DDPM for VP; Song et al. App. E).

    The forward chain on the grid is x_i = αᵢ·x_{i−1} + √vᵢ·z with αᵢ = a(tᵢ)/a(tᵢ₋₁),
    vᵢ = s(tᵢ)² − αᵢ²s(tᵢ₋₁)² (`SDE.transition`); its Gaussian reverse step is

        x_{i−1} = (x_i + vᵢ·s(x_i, tᵢ))/αᵢ + √(vᵢ·s(tᵢ₋₁)²/s(tᵢ)²)·z.

    VE: x + (σᵢ² − σᵢ₋₁²)s + √(σᵢ₋₁²(σᵢ² − σᵢ₋₁²)/σᵢ²)·z (SMLD);  VP: (x + βᵢs)/√(1 − βᵢ) +
    √β̃ᵢ·z with the DDPM posterior variance β̃ᵢ = βᵢ(1 − ᾱᵢ₋₁)/(1 − ᾱᵢ).  Works for every
    linear SDE in scorelab.sde (VE, VP, sub-VP, OU), since only the marginals are used.
    """
    x0, n = _setup(score_fn, x0, sde, n_steps)
    ts = _grid(sde, n)
    x, traj, seconds = iterate(
        _ancestral(score_fn, sde, ts, x0, generator),
        x0,
        n,
        sampler="ancestral",
        hint=f"increase n_steps (now {n})",
        record_every=record_every,
        progress=progress,
    )
    info = {"n_steps": n, "seconds": seconds}
    return _finish(score_fn, x, sde, denoise, n, traj, info)


def predictor_corrector(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    sde: SDE,
    n_steps: int,
    predictor: str = "reverse_diffusion",
    n_corrector: int = 1,
    snr: float = 0.16,
    denoise: bool = False,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Predictor–corrector sampling (Song et al. 2021, Algorithm 1; Algs. 2/3 for VE/VP).

    Order: each step runs the PREDICTOR t → t − h first, then `n_corrector` Langevin CORRECTOR
    steps at the new time, as in the paper's Algorithms 1–3.  score_sde's code loops
    corrector-then-predictor at the same t; the two differ only in where the first/last
    corrector sits (ours ends with a corrector at eps, theirs starts with one at T).

    Predictors: "reverse_diffusion" — score_sde's ReverseDiffusionPredictor on the discrete
    chain (f_d, G from `SDE.transition`): x ← x − f_d + G²·s + G·z;  "ancestral" — `ancestral`'s
    step;  "euler_maruyama" — `reverse_sde`'s EM step.

    Corrector (paper Alg. 4/5): the paper's step ε' = 2α(snr·‖z‖/‖s‖)² with
    x ← x + ε'·s + √(2ε')·z is scorelab's Langevin step x + (ε/2)s + √ε·z with ε = 2ε'
    (docs/conventions.md).  ‖·‖ are per-chain norms averaged over the batch (as score_sde);
    α = (a(t)/a(t − h))² of the step just taken: 1 for VE, 1 − βᵢ (DDPM's αᵢ) for VP.
    NFE = n_steps·(1 + n_corrector) (+1 with denoise).
    """
    x0, n = _setup(score_fn, x0, sde, n_steps)
    if predictor not in _PREDICTORS:
        raise ScorelabError(f"predictor must be one of {_PREDICTORS}, got {predictor!r}")
    m = check_count("n_corrector", n_corrector)
    r = check_positive("snr", snr)
    ts = _grid(sde, n)
    h = (sde.T - sde.eps) / n
    a_grid = sde.marginal(torch.tensor(ts, dtype=torch.float64))[0].tolist()
    n0, dtype, device = x0.shape[0], x0.dtype, x0.device
    if predictor == "ancestral":
        predict = _ancestral(score_fn, sde, ts, x0, generator)
    elif predictor == "euler_maruyama":
        predict = _euler_maruyama(score_fn, sde, ts, h, x0, generator)
    else:
        # `SDE.transition(x, t_next, t − t_next)` on the grid: t_next + dt in x's dtype
        tn = _on_grid(ts[1:], x0)
        dt = torch.tensor([ts[i] - ts[i + 1] for i in range(n)], dtype=dtype, device=device)
        a0, s0 = sde.marginal(tn)
        a1, s1 = sde.marginal(sde.check_t(tn + dt))
        alpha = a1 / a0
        g_d = (s1**2 - alpha**2 * s0**2).clamp_min(0.0).sqrt()
        rd = list(zip((alpha - 1.0).tolist(), (g_d**2).tolist(), g_d.tolist(), strict=True))

        def predict(x: Tensor, i: int) -> Tensor:
            """Reverse diffusion on the discrete chain: x − f_d + G²·s + G·z, f_d = (α − 1)·x."""
            am1, g2, g = rd[i]
            xm = x if am1 == 0.0 else x - am1 * x  # VE: f_d = 0
            s = score_fn(x, torch.full((n0,), ts[i], dtype=dtype, device=device))
            z = torch.randn(x.shape, generator=generator, dtype=dtype, device=device)
            return xm + g2 * s + g * z

    corrector = _corrector(x0, r, [(a_grid[i] / a_grid[i + 1]) ** 2 for i in range(n)])

    def step(x: Tensor, i: int) -> Tensor:
        x = predict(x, i)
        tt = torch.full((n0,), ts[i + 1], dtype=dtype, device=device)
        for _ in range(m):
            s = score_fn(x, tt)
            z = torch.randn(x.shape, generator=generator, dtype=dtype, device=device)
            half_eps, sqrt_eps = corrector(s, z, i)
            x = x + half_eps * s + sqrt_eps * z
        return x

    x, traj, seconds = iterate(
        step,
        x0,
        n,
        sampler=f"predictor_corrector[{predictor}]",
        hint=f"increase n_steps (now {n}) or reduce snr (now {r:g})",
        record_every=record_every,
        progress=progress,
    )
    info = {
        "predictor": predictor,
        "n_corrector": m,
        "snr": r,
        "n_steps": n,
        "order": "predictor-then-corrector (Song et al. 2021, Alg. 1)",
        "seconds": seconds,
    }
    return _finish(score_fn, x, sde, denoise, n * (1 + m), traj, info)


def probability_flow(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    sde: SDE,
    n_steps: int | None = None,
    method: str = "euler",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    denoise: bool = False,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Probability-flow ODE dx/dt = f − ½g²·s from T to eps (Song et al. 2021, eq. 13).

    method="euler": x ← x − h·d(x, t), d = f − ½g²s (NFE = n_steps);
    method="heun": d₁ = d(x, t), x̃ = x − h·d₁, d₂ = d(x̃, t − h), x ← x − (h/2)(d₁ + d₂)
    (NFE = 2·n_steps; EDM Alg. 1 without the last-step shortcut);
    method="euler_sigma" / "heun_sigma": the same nodes tᵢ, but Euler / Heun steps in the scaled
    variables y = x/a(t), σ̃ = s(t)/a(t), where the ODE is dy/dσ̃ = −σ̃·a·s(a·y, t) (Karras et al.
    2022, eq. 4 with their D(y; σ̃) = y + σ̃²·a·s): Euler is x ← rᵢx + qᵢsᵢ with rᵢ = aᵢ₊₁/aᵢ,
    qᵢ = aᵢ₊₁aᵢσ̃ᵢ(σ̃ᵢ − σ̃ᵢ₊₁) (DDIM with η = 0 for VP, k-diffusion's `sample_euler` for VE);
    Heun averages it with q′ᵢ = aᵢ₊₁²σ̃ᵢ₊₁(σ̃ᵢ − σ̃ᵢ₊₁) at the Euler point (EDM Alg. 1).  While
    the noise dominates, y − E[x₀] ∝ σ̃, so these steps are nearly exact where t-steps are not
    (NFE as euler / heun);
    method="dopri5": adaptive Dormand–Prince 5(4) with PI step control (`samplers._ode`), in x's
    dtype and on its device, error = RMS over the whole batch (n_steps must be None; NFE counted,
    6 per attempted step + 2 to start; no trajectory);
    method="adaptive": scipy.integrate.solve_ivp RK45 on the flattened batch in float64 with
    rtol/atol (n_steps must be None; NFE = counted calls of the ODE function; no trajectory).
    denoise=True adds Tweedie's step at eps, as in the other samplers (one more NFE).
    Deterministic: takes no generator.
    """
    x0, n = _setup(score_fn, x0, sde, n_steps)
    if method not in _PF_METHODS:
        raise ScorelabError(
            f"method must be one of {', '.join(map(repr, _PF_METHODS))}, got {method!r}"
        )

    coefs: dict[float, tuple[float, float]] = {}

    def prepare(times: list[float]) -> None:
        """c(t) and ½g(t)² at the solver's next stage times, in one batch (`dopri5`'s on_step)."""
        c, g2, _ = _lin_coefs(sde, torch.tensor(times, dtype=x0.dtype, device=x0.device))
        coefs.clear()
        coefs.update((t, (ci, 0.5 * gi)) for t, ci, gi in zip(times, c, g2, strict=True))

    def drift(x: Tensor, t: float) -> Tensor:
        # `sde.reverse(score_fn, probability_flow=True).sde(x, t)[0]`: c·x − (½g²)·s
        if t not in coefs:
            prepare([t])
        c, k = coefs[t]
        s = score_fn(x, _t(t, x))
        return s * -k if c == 0.0 else c * x - k * s  # VE: c = 0

    if method in ("adaptive", "dopri5"):
        if n_steps is not None:
            raise ScorelabError(f"method={method!r} chooses its own steps: leave n_steps=None")
        rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
        if method == "dopri5":
            res = _pf_dopri5(drift, prepare, x0, sde, rtol, atol)
        else:
            res = _pf_adaptive(drift, x0, sde, rtol, atol)
        return _finish(score_fn, res.samples, sde, denoise, res.nfe, None, res.info)
    if n_steps is None:
        raise ScorelabError(f"method={method!r} needs n_steps")
    ts = _grid(sde, n)
    h = (sde.T - sde.eps) / n
    c, g2, _ = _lin_coefs(sde, _on_grid(ts, x0))
    k = [0.5 * v for v in g2]  # ½g², exact in binary floating point
    no_drift = all(v == 0.0 for v in c)  # VE: d = −(½g²)s and x − h·d = x + h·(½g²)s

    def step(x: Tensor, i: int) -> Tensor:
        s1 = score_fn(x, _t(ts[i], x))
        if method == "euler":
            return x + h * (k[i] * s1) if no_drift else x - h * (c[i] * x - k[i] * s1)
        if no_drift:
            xe = x + h * (k[i] * s1)
            w = k[i] * s1 + k[i + 1] * score_fn(xe, _t(ts[i + 1], x))
            return x + (0.5 * h) * w
        d1 = c[i] * x - k[i] * s1
        xe = x - h * d1
        d2 = c[i + 1] * xe - k[i + 1] * score_fn(xe, _t(ts[i + 1], x))
        return x - (0.5 * h) * (d1 + d2)

    info: dict[str, Any] = {"method": method, "n_steps": n, "step": h}
    if method in ("euler_sigma", "heun_sigma"):
        step, ends = _sigma_step(score_fn, sde, ts, heun=method == "heun_sigma")
        info = {"method": method, "n_steps": n, **ends}
    x, traj, seconds = iterate(
        step,
        x0,
        n,
        sampler=f"probability_flow[{method}]",
        hint=f"increase n_steps (now {n})",
        record_every=record_every,
        progress=progress,
    )
    nfe = n if method in ("euler", "euler_sigma") else 2 * n
    info["seconds"] = seconds
    return _finish(score_fn, x, sde, denoise, nfe, traj, info)


def _sigma_step(
    score_fn: ScoreFn, sde: SDE, ts: list[float], heun: bool
) -> tuple[Callable[[Tensor, int], Tensor], dict[str, float]]:
    """The Euler / Heun step in (y = x/a, σ̃ = s/a) on the nodes ts (see `probability_flow`),
    and σ̃ at both ends for the info."""
    n = len(ts) - 1
    a, s = sde.marginal(torch.tensor(ts, dtype=torch.float64))
    a, sig = a.tolist(), (s / a).tolist()
    r = [a[i + 1] / a[i] for i in range(n)]
    q = [a[i + 1] * a[i] * sig[i] * (sig[i] - sig[i + 1]) for i in range(n)]
    q2 = [a[i + 1] ** 2 * sig[i + 1] * (sig[i] - sig[i + 1]) for i in range(n)]

    def step(x: Tensor, i: int) -> Tensor:
        xr = x if r[i] == 1.0 else r[i] * x  # VE: a = 1
        s1 = score_fn(x, _t(ts[i], x))
        xe = xr + q[i] * s1
        if not heun:
            return xe
        s2 = score_fn(xe, _t(ts[i + 1], x))
        return xr + (0.5 * q[i]) * s1 + (0.5 * q2[i]) * s2

    return step, {"sigma_T": sig[0], "sigma_eps": sig[-1]}


def _pf_dopri5(
    drift: Callable[[Tensor, float], Tensor],
    prepare: Callable[[list[float]], None],
    x0: Tensor,
    sde: SDE,
    rtol: float,
    atol: float,
) -> SampleResult:
    t0 = _time.perf_counter()
    sol = dopri5(drift, x0, sde.T, sde.eps, rtol=rtol, atol=atol, on_step=prepare)
    seconds = _time.perf_counter() - t0
    check_finite(sol.y, where="probability_flow[dopri5]", step=sol.nfe, hint="tighten rtol/atol")
    info = {
        "method": "dopri5",
        "rtol": rtol,
        "atol": atol,
        "n_accepted_steps": sol.n_accepted,
        "n_rejected_steps": sol.n_rejected,
        "seconds": seconds,
    }
    return SampleResult(samples=sol.y, nfe=sol.nfe, trajectory=None, info=info)


def _pf_adaptive(
    drift: Callable[[Tensor, float], Tensor], x0: Tensor, sde: SDE, rtol: float, atol: float
) -> SampleResult:
    from scipy.integrate import solve_ivp

    shape, dtype, device = x0.shape, x0.dtype, x0.device
    calls = 0

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        x = torch.from_numpy(y).reshape(shape).to(dtype=dtype, device=device)
        return drift(x, float(t)).detach().double().cpu().reshape(-1).numpy()

    t0 = _time.perf_counter()
    y0 = x0.detach().double().cpu().reshape(-1).numpy()
    sol = solve_ivp(fun, (sde.T, sde.eps), y0, method="RK45", rtol=rtol, atol=atol)
    seconds = _time.perf_counter() - t0
    if not sol.success:
        raise ScorelabError(f"probability_flow adaptive solver failed: {sol.message}")
    x = torch.from_numpy(sol.y[:, -1].copy()).reshape(shape).to(dtype=dtype, device=device)
    check_finite(x, where="probability_flow[adaptive]", step=calls, hint="tighten rtol/atol")
    info = {
        "method": "adaptive",
        "rtol": rtol,
        "atol": atol,
        "n_accepted_steps": int(sol.t.size - 1),
        "seconds": seconds,
    }
    return SampleResult(samples=x, nfe=calls, trajectory=None, info=info)
