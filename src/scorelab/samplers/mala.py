"""Metropolis-adjusted Langevin algorithm: the Langevin proposal plus a Metropolis–Hastings test."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelab._types import LogProbFn, SampleResult, ScoreFn
from scorelab._utils import randn_like
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


def mala(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    log_prob_fn: LogProbFn,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    record_every: int = 0,
    progress: bool = False,
) -> SampleResult:
    """MALA (Roberts & Tweedie 1996): y = x + (ε/2)∇log p(x) + √ε z, accepted with probability
    min(1, p(y) q(x|y) / (p(x) q(y|x))), q(y|x) = N(y; x + (ε/2)∇log p(x), εI).

    Same step as `langevin`, so ε means the same thing in both.  Proposals with non-finite
    log-density are rejected, so chains never leave the support; start points must be inside it.
    """
    x0 = check_start(x0)
    eps = check_positive("step_size", step_size)
    n = check_count("n_steps", n_steps)
    half, root = eps / 2.0, math.sqrt(eps)
    logp0 = check_start_log_prob(log_prob_fn(x0), "mala")
    noise = Noise(generator)
    accepted = AcceptanceCounter(x0.shape[0], x0.device)
    # the state carries (ε/2)∇log p(x), the only form the step uses: the proposal mean and
    # both proposal densities reuse one product per state (the bits of recomputing it)
    state = {
        "logp": logp0,
        "hgrad": _times(half, score_fn(x0, None)),
    }

    def log_q(to: Tensor, frm: Tensor, hgrad_frm: Tensor) -> Tensor:
        # −‖to − frm − (ε/2)g‖²/(2ε), the negation folded into the divisor (exact)
        d = to - frm
        d -= hgrad_frm
        v = flat_sum(d * d)
        return v / scalar(-2.0 * eps, v)

    def step(x: Tensor, i: int) -> Tensor:
        logp_x, hgrad_x = state["logp"], state["hgrad"]
        if same_layout(hgrad_x, x):
            y = hgrad_x + x
            z = noise(x)
            y += z.mul_(scalar(root, z))
        else:
            y = x + hgrad_x + root * randn_like(x, generator)
        logp_y, hgrad_y = log_prob_fn(y), _times(half, score_fn(y, None))
        log_alpha = logp_y - logp_x + log_q(x, y, hgrad_y) - log_q(y, x, hgrad_x)
        accept, (x, state["logp"], state["hgrad"]) = mh_select(
            log_alpha, (x, logp_x, hgrad_x), (y, logp_y, hgrad_y), generator, noise=noise
        )
        accepted.add(accept)
        return x

    hint = f"reduce step_size (now {eps:g})"
    x, traj, seconds = iterate(
        step, x0, n, sampler="mala", hint=hint, record_every=record_every, progress=progress
    )
    info = {
        "step_size": eps,
        "n_steps": n,
        "acceptance_rate": accepted.rate(n),
        "log_prob_evals": n + 1,
        "seconds": seconds,
    }
    return SampleResult(samples=x, nfe=n + 1, trajectory=traj, info=info)


def _times(c: float, t: Tensor) -> Tensor:
    """c·t with c as a cached 0-d tensor of t's dtype (the bits of the Python-float product)."""
    return t * scalar(c, t)
