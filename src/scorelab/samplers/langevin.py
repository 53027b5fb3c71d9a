"""Unadjusted Langevin dynamics and annealed Langevin dynamics (NCSN).

Convention (seed 001 eq. 1): one step is x ← x + (ε/2)·s(x) + √ε·z.  This is Euler–Maruyama
for the Langevin diffusion dX = ∇log p(X) dt + √2 dB with time step h = ε/2, so n steps cover a
diffusion time T = n·ε/2.  The lecture's x ← x + ε'·s + √(2ε')·η (seed 002, SGLD) is the same
step with ε' = ε/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from scorelab._types import SampleResult, ScoreFn
from scorelab._utils import ScorelabError, as_sigma, check_finite, randn_like
from scorelab.samplers._loop import (
    Noise,
    check_count,
    check_positive,
    check_start,
    iterate,
    same_layout,
    scalar,
)


def steps_for_time(time: float, step_size: float) -> int:
    """Number of steps n with n·ε/2 ≈ T: the early-stopping time of seed 000 as a step count."""
    check_positive("time", time)
    check_positive("step_size", step_size)
    return max(1, round(2.0 * time / step_size))


def langevin(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    step_size: float,
    n_steps: int | None = None,
    time: float | None = None,
    sigma: float | Tensor | None = None,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Unadjusted Langevin algorithm (seed 001 eq. 1): x ← x + (ε/2)·s(x, σ) + √ε·z.

    Give either n_steps or a diffusion time T (early stopping, seed 000): n = round(2T/ε).
    `sigma` fixes the noise level handed to a noise-conditional score (None: unconditional).
    Started from `from_data(...)` this is the data-initialised sampler of Koehler & Vuong.
    """
    x0 = check_start(x0)
    eps = check_positive("step_size", step_size)
    if (n_steps is None) == (time is None):
        raise ScorelabError("give exactly one of n_steps= or time=")
    n = steps_for_time(time, eps) if time is not None else check_count("n_steps", n_steps)
    s = as_sigma(sigma, x0)
    half, root = eps / 2.0, math.sqrt(eps)
    step = _langevin_step(score_fn, generator, [(s, half, root)], lambda i: 0)

    hint = f"reduce step_size (now {eps:g})"
    x, traj, seconds = iterate(
        step, x0, n, sampler="langevin", hint=hint, record_every=record_every, progress=progress
    )
    info = {"step_size": eps, "n_steps": n, "time": n * half, "seconds": seconds}
    return SampleResult(samples=x, nfe=n, trajectory=traj, info=info)


def annealed_langevin(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    sigmas: Tensor | list[float],
    step_size: float,
    n_steps_each: int,
    denoise: bool = False,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1; seed 002 Algorithm 1).

    For σ₁ > … > σ_L: αᵢ = ε·σᵢ²/σ_L², then T steps x ← x + (αᵢ/2)·s(x, σᵢ) + √αᵢ·z.
    With denoise=True a final Tweedie step x ← x + σ_L²·s(x, σ_L) returns E[x₀ | x].
    """
    x0 = check_start(x0)
    eps = check_positive("step_size", step_size)
    t_each = check_count("n_steps_each", n_steps_each, minimum=1)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if sig.numel() == 0 or not bool(torch.isfinite(sig).all()) or bool((sig <= 0).any()):
        raise ScorelabError("sigmas must be a non-empty list of positive finite noise levels")
    if sig.numel() > 1 and not bool((sig[1:] < sig[:-1]).all()):
        raise ScorelabError("sigmas must be strictly decreasing (σ₁ > σ₂ > … > σ_L)")
    sig_l = float(sig[-1])
    alphas = [eps * float(si) ** 2 / sig_l**2 for si in sig]
    level_sigmas = [as_sigma(float(si), x0) for si in sig]
    n_total = t_each * len(alphas)
    levels = [(ls, a / 2.0, math.sqrt(a)) for ls, a in zip(level_sigmas, alphas, strict=True)]
    step = _langevin_step(score_fn, generator, levels, lambda i: i // t_each)

    hint = f"reduce step_size (now ε={eps:g}; the largest step is α₁={alphas[0]:g})"
    x, traj, seconds = iterate(
        step,
        x0,
        n_total,
        sampler="annealed_langevin",
        hint=hint,
        record_every=record_every,
        progress=progress,
    )
    nfe = n_total
    if denoise:
        x = tweedie_denoise(score_fn, x, sig_l)
        nfe += 1
    info = {
        "step_size": eps,
        "n_steps_each": t_each,
        "sigmas": sig.tolist(),
        "alphas": alphas,
        "denoise": denoise,
        "seconds": seconds,
    }
    return SampleResult(samples=x, nfe=nfe, trajectory=traj, info=info)


def _langevin_step(
    score_fn: ScoreFn,
    generator: torch.Generator | None,
    levels: list[tuple[Tensor | None, float, float]],
    level_of: Callable[[int], int],
) -> Callable[[Tensor, int], Tensor]:
    """Step i: x ← x + h·s(x, σ) + r·z with (σ, h, r) = levels[level_of(i)].

    Four tensor ops around the score call, on the score's fresh output and a reused noise
    buffer; the bits are those of `x + h * s + r * randn_like(x)` (same products, same order
    of the two sums, which commute exactly).
    """
    noise = Noise(generator)

    def step(x: Tensor, i: int) -> Tensor:
        sig, h, r = levels[level_of(i)]
        sx = score_fn(x, sig)
        if not same_layout(sx, x):  # broadcasting or type promotion: the plain expression
            return x + h * sx + r * randn_like(x, generator)
        out = sx * scalar(h, sx)
        out += x
        z = noise(x)
        out += z.mul_(scalar(r, z))
        return out

    return step


def tweedie_denoise(score_fn: ScoreFn, x: Tensor, sigma: float) -> Tensor:
    """Tweedie's formula (seed 002): E[x₀ | x̃] = x̃ + σ²·∇log q_σ(x̃) ≈ x̃ + σ²·s(x̃, σ)."""
    check_positive("sigma", sigma)
    out = x + sigma**2 * score_fn(x, as_sigma(sigma, x))
    check_finite(out, where="tweedie_denoise", step=0, hint=f"check the score at sigma={sigma:g}")
    return out
