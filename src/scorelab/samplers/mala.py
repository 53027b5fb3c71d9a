"""Metropolis-adjusted Langevin algorithm: the Langevin proposal plus a Metropolis–Hastings test."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelab._types import LogProbFn, SampleResult, ScoreFn
from scorelab._utils import randn_like
from scorelab.samplers._loop import check_count, check_positive, check_start, flat_sum, iterate


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
    log-density are rejected (acceptance probability 0), so chains never leave the support.
    """
    x0 = check_start(x0)
    eps = check_positive("step_size", step_size)
    n = check_count("n_steps", n_steps)
    half, root = eps / 2.0, math.sqrt(eps)
    state = {"logp": log_prob_fn(x0), "grad": score_fn(x0, None), "accepted": 0.0}

    def log_q(to: Tensor, frm: Tensor, grad_frm: Tensor) -> Tensor:
        return -flat_sum((to - frm - half * grad_frm) ** 2) / (2.0 * eps)

    def step(x: Tensor, i: int) -> Tensor:
        logp_x, grad_x = state["logp"], state["grad"]
        y = x + half * grad_x + root * randn_like(x, generator)
        logp_y, grad_y = log_prob_fn(y), score_fn(y, None)
        log_alpha = logp_y - logp_x + log_q(x, y, grad_y) - log_q(y, x, grad_x)
        log_alpha = torch.where(torch.isfinite(log_alpha), log_alpha, -math.inf)
        u = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype)
        accept = u.log() < log_alpha
        state["accepted"] += float(accept.double().mean())
        state["logp"] = torch.where(accept, logp_y, logp_x)
        mask = accept.reshape((-1,) + (1,) * (x.ndim - 1))
        state["grad"] = torch.where(mask, grad_y, grad_x)
        return torch.where(mask, y, x)

    hint = f"reduce step_size (now {eps:g})"
    x, traj, seconds = iterate(
        step, x0, n, sampler="mala", hint=hint, record_every=record_every, progress=progress
    )
    info = {
        "step_size": eps,
        "n_steps": n,
        "acceptance_rate": state["accepted"] / max(n, 1),
        "log_prob_evals": n + 1,
        "seconds": seconds,
    }
    return SampleResult(samples=x, nfe=n + 1, trajectory=traj, info=info)
