"""Hamiltonian Monte Carlo with a leapfrog integrator, with or without the Metropolis test."""

from __future__ import annotations

import torch
from torch import Tensor

from scorelab._types import LogProbFn, SampleResult, ScoreFn
from scorelab.samplers._loop import (
    Noise,
    check_count,
    check_positive,
    check_start,
    flat_sum,
    iterate,
    same_layout,
    scalar,
)
from scorelab.samplers._mh import AcceptanceCounter, check_start_log_prob, mh_select


def leapfrog(
    score_fn: ScoreFn, x: Tensor, p: Tensor, grad: Tensor, step_size: float, n_leapfrog: int
) -> tuple[Tensor, Tensor, Tensor]:
    """L leapfrog steps for H = −log p(x) + ½‖p‖² (seed 001 §1.3.2), reusing ∇log p at x.

    p ← p + (ε/2)∇log p(x); then L times: x ← x + εp, g ← ∇log p(x), p ← p + ε g (ε/2 on the
    last); L score evaluations in all.  Each update is one product and one in-place sum into
    it, which gives the bits of the plain out-of-place expressions.
    """
    half = 0.5 * step_size
    p = _plus(p, grad, half)
    for l in range(n_leapfrog):
        x = _plus(x, p, step_size)
        grad = score_fn(x, None)
        p = _plus(p, grad, step_size if l < n_leapfrog - 1 else half)
    return x, p, grad


def _plus(a: Tensor, b: Tensor, c: float) -> Tensor:
    """a + c·b as a new tensor, computed as c·b then a sum into it (the same bits)."""
    if not same_layout(a, b):
        return a + c * b
    out = b * scalar(c, b)
    out += a
    return out


def hmc(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    step_size: float,
    n_leapfrog: int,
    n_steps: int,
    log_prob_fn: LogProbFn | None = None,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """HMC (Duane et al. 1987; seed 001 §1.3.2): momentum p ~ N(0, I), L leapfrog steps, then
    accept with probability min(1, exp(−ΔH)).

    Without `log_prob_fn` the Metropolis test is skipped: the score-only HMC of seed 001 §5.1,
    which is biased by the leapfrog error (it is what a learned score alone allows).
    n_steps counts transitions; each costs L score evaluations.
    """
    x0 = check_start(x0)
    eps = check_positive("step_size", step_size)
    n_lf = check_count("n_leapfrog", n_leapfrog, minimum=1)
    n = check_count("n_steps", n_steps)
    adjusted = log_prob_fn is not None
    state = {"grad": score_fn(x0, None)}
    if adjusted:
        state["logp"] = check_start_log_prob(log_prob_fn(x0), "hmc")
    noise = Noise(generator)
    accepted = AcceptanceCounter(x0.shape[0], x0.device)

    def step(x: Tensor, i: int) -> Tensor:
        p0 = noise(x)  # the same bits as randn_like(x, generator); used up within this step
        x_new, p_new, grad_new = leapfrog(score_fn, x, p0, state["grad"], eps, n_lf)
        if not adjusted:
            state["grad"] = grad_new
            return x_new
        logp_new = log_prob_fn(x_new)
        # log α = −ΔH = H(old) − H(new), H = −log p + ½‖p‖², written as (½‖p₀‖² − log p) −
        # (½‖p‖² − log p'): the same bits as −((−log p' + ½‖p‖²) − (−log p + ½‖p₀‖²)), since
        # −a + b = b − a and −(a − b) = b − a exactly in floating point
        k_old, k_new = flat_sum(p0 * p0), flat_sum(p_new * p_new)
        h_old = k_old * scalar(0.5, k_old) - state["logp"]
        h_new = k_new * scalar(0.5, k_new) - logp_new
        accept, (x, state["logp"], state["grad"]) = mh_select(
            h_old - h_new,
            (x, state["logp"], state["grad"]),
            (x_new, logp_new, grad_new),
            generator,
            noise=noise,
        )
        accepted.add(accept)
        return x

    hint = f"reduce step_size (now {eps:g}) or n_leapfrog (now {n_lf})"
    name = "hmc" if adjusted else "hmc (no Metropolis)"
    x, traj, seconds = iterate(
        step, x0, n, sampler=name, hint=hint, record_every=record_every, progress=progress
    )
    info = {
        "step_size": eps,
        "n_leapfrog": n_lf,
        "n_steps": n,
        "adjusted": adjusted,
        "acceptance_rate": accepted.rate(n) if adjusted else None,
        "seconds": seconds,
    }
    return SampleResult(samples=x, nfe=1 + n * n_lf, trajectory=traj, info=info)
