"""The Metropolis–Hastings test shared by MALA and HMC."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelab._utils import ScorelabError, append_dims
from scorelab.samplers._loop import Noise


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
    *,
    noise: Noise | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Accept chain i's proposal with probability min(1, exp(log αᵢ)); keep everything else.

    A non-finite log α (a proposal where log p is −inf or NaN) counts as a rejection, so chains
    never leave the support.  `current` and `proposed` are matching per-chain tensors (state,
    log-density, gradient, ...), selected together.  The uniforms come from `generator`, through
    `noise`'s reused buffer when given (the same draws).
    """
    # NaN and ±inf → −inf in one op (was isfinite + where; the same values)
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf, posinf=-math.inf, neginf=-math.inf)
    if noise is None:
        u = torch.rand(
            log_alpha.shape, generator=generator, dtype=log_alpha.dtype, device=log_alpha.device
        )
    else:
        u = noise.uniform(log_alpha)
    accept = u.log() < log_alpha
    masks: dict[int, Tensor] = {accept.ndim: accept}  # the broadcast mask, once per rank
    chosen = []
    for old, new in zip(current, proposed, strict=True):
        m = masks.get(new.ndim)
        if m is None:
            m = masks[new.ndim] = append_dims(accept, new.ndim)
        chosen.append(torch.where(m, new, old))
    return accept, tuple(chosen)


class AcceptanceCounter:
    """Accepted moves per chain, summed once at the end (one in-place add per step)."""

    def __init__(self, n_chains: int, device: torch.device) -> None:
        self.counts = torch.zeros(n_chains, dtype=torch.int64, device=device)

    def add(self, accept: Tensor) -> None:
        self.counts += accept

    def rate(self, n_steps: int) -> float | None:
        return acceptance_rate(self.counts.sum(), self.counts.shape[0], n_steps)


def acceptance_rate(n_accepted: Tensor, n_chains: int, n_steps: int) -> float | None:
    """Accepted moves ÷ proposals over all chains and steps (None when nothing was proposed)."""
    return float(n_accepted) / (n_chains * n_steps) if n_steps else None
