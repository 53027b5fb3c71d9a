"""Metropolis-adjusted Langevin algorithm: the Langevin proposal plus a Metropolis–Hastings test."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelab._types import LogProbFn, SampleResult, ScoreFn
from scorelab._utils import randn_like
from scorelab.samplers._loop import check_count, check_positive, check_start, flat_sum, iterate
from scorelab.samplers._mh import acceptance_rate, check_start_log_prob, mh_select


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
    state = {
        "logp": logp0,
        "grad": score_fn(x0, None),
        "accepted": torch.zeros((), device=x0.device),
    }

    def log_q(to: Tensor, frm: Tensor, grad_frm: Tensor) -> Tensor:
        return -flat_sum((to - frm - half * grad_frm) ** 2) / (2.0 * eps)

    def step(x: Tensor, i: int) -> Tensor:
        logp_x, grad_x = state["logp"], state["grad"]
        y = x + half * grad_x + root * randn_like(x, generator)
        logp_y, grad_y = log_prob_fn(y), score_fn(y, None)
        log_alpha = logp_y - logp_x + log_q(x, y, grad_y) - log_q(y, x, grad_x)
        accept, (x, state["logp"], state["grad"]) = mh_select(
            log_alpha, (x, logp_x, grad_x), (y, logp_y, grad_y), generator
        )
        state["accepted"] += accept.sum()
        return x

    hint = f"reduce step_size (now {eps:g})"
    x, traj, seconds = iterate(
        step, x0, n, sampler="mala", hint=hint, record_every=record_every, progress=progress
    )
    info = {
        "step_size": eps,
        "n_steps": n,
        "acceptance_rate": acceptance_rate(state["accepted"], x0.shape[0], n),
        "log_prob_evals": n + 1,
        "seconds": seconds,
    }
    return SampleResult(samples=x, nfe=n + 1, trajectory=traj, info=info)
