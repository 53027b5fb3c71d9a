"""Noise-level ladders for annealed Langevin dynamics and NCSN training.

NCSN (Song & Ermon 2019; seed 001 §4.1.2) uses a geometric ladder σ₁ > σ₂ > … > σ_L with a
constant ratio γ = σᵢ₋₁/σᵢ; `scorelab.heuristics` chooses σ₁, γ and L from the data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelab._utils import ScorelabError

__all__ = ["geometric_sigmas"]


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> Tensor:
    """σᵢ = σ₁·(σ_L/σ₁)^{(i−1)/(L−1)}, i = 1…L: float64, strictly decreasing, ratio constant.

    The endpoints are exactly `sigma_max` and `sigma_min` (set after the log-space grid, so
    round-off in exp/log never moves them).
    """
    if isinstance(n_levels, bool) or int(n_levels) != n_levels or n_levels < 2:
        raise ScorelabError(f"n_levels must be an integer ≥ 2, got {n_levels!r}")
    hi, lo = float(sigma_max), float(sigma_min)
    if not (math.isfinite(hi) and math.isfinite(lo) and lo > 0):
        raise ScorelabError(
            f"sigma_max and sigma_min must be finite and positive, got {sigma_max}, {sigma_min}"
        )
    if not lo < hi:
        raise ScorelabError(f"sigma_min ({lo:g}) must be smaller than sigma_max ({hi:g})")
    n = int(n_levels)
    sig = torch.exp(torch.linspace(math.log(hi), math.log(lo), n, dtype=torch.float64))
    sig[0], sig[-1] = hi, lo
    if not bool((sig[1:] < sig[:-1]).all()):
        raise ScorelabError(
            f"{n} levels between {hi:g} and {lo:g} are too close to be distinct in float64"
        )
    return sig
