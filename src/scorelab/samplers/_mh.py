"""The Metropolis–Hastings test shared by MALA and HMC."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelab._utils import ScorelabError, append_dims


def check_start_log_prob(logp: Tensor, sampler: str) -> Tensor:
    """A chain started where log p is −inf or NaN would reject every move: refuse it up front."""
    bad = ~torch.isfinite(logp)
    if bool(bad.any()):
        raise ScorelabError(
            f"{sampler}: {int(bad.sum())} of {logp.shape[0]} start points have a non-finite "
            "log-density (outside the support?); start every chain where log p is finite"
        )
    return logp


def mh_select(
    log_alpha: Tensor,
    current: tuple[Tensor, ...],
    proposed: tuple[Tensor, ...],
    generator: torch.Generator | None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Accept chain i's proposal with probability min(1, exp(log αᵢ)); keep everything else.

    A non-finite log α (a proposal where log p is −inf or NaN) counts as a rejection, so chains
    never leave the support.  `current` and `proposed` are matching per-chain tensors (state,
    log-density, gradient, ...), selected together.
    """
    log_alpha = torch.where(torch.isfinite(log_alpha), log_alpha, -math.inf)
    u = torch.rand(
        log_alpha.shape, generator=generator, dtype=log_alpha.dtype, device=log_alpha.device
    )
    accept = u.log() < log_alpha
    chosen = tuple(
        torch.where(append_dims(accept, new.ndim), new, old)
        for old, new in zip(current, proposed, strict=True)
    )
    return accept, chosen


def acceptance_rate(n_accepted: Tensor, n_chains: int, n_steps: int) -> float | None:
    """Accepted moves ÷ proposals over all chains and steps (None when nothing was proposed)."""
    return float(n_accepted) / (n_chains * n_steps) if n_steps else None
