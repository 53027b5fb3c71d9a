"""Noise-schedule heuristics of Song & Ermon 2020 ("Improved techniques"), as functions of data.

Seed 001 §4.1–4.2 quotes the rules; anchor implementations hard-code their outcome (σ₁ = 50,
L = 232, ε = 6.2e-6 for CIFAR-10).  Here each rule is a function:

- technique 1 — σ₁ = max_{i,j} ‖x⁽ⁱ⁾ − x⁽ʲ⁾‖ (`sigma_max_from_data`);
- technique 2 — a geometric ladder whose ratio γ solves C(γ) ≈ 0.5 (`ladder_ratio`, `n_levels`);
- technique 4 — the step ε that brings a Gaussian's variance back to σ_L² after T steps
  (`step_size`, returned in scorelab's Langevin convention, i.e. 2ε; see its docstring).

D is always the data dimension: the number of entries of one data point (C·H·W for images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from scipy.optimize import brentq
from scipy.stats import norm
from torch import Tensor

from scorelab._utils import ScorelabError
from scorelab.schedules import geometric_sigmas

__all__ = [
    "NoiseSchedule",
    "ladder_ratio",
    "n_levels",
    "overlap_probability",
    "sigma_max_from_data",
    "step_size",
    "suggest_schedule",
    "variance_ratio",
]

# C(1) = Φ(3) − Φ(−3): the overlap of a level with itself under the 3-std rule.
_C_AT_ONE = float(norm.cdf(3.0) - norm.cdf(-3.0))


# ---------------------------------------------------------------------------------------------
# technique 1: σ₁ from the data diameter


def _flat_data(data: Any) -> Tensor:
    """Data (N, ...) as a finite float64 (N, D) tensor with N ≥ 2."""
    x = torch.as_tensor(data)
    if x.ndim == 0:
        raise ScorelabError("data must have shape (N, ...), got a scalar")
    dim = math.prod(x.shape[1:])
    x = x.detach().to(device="cpu", dtype=torch.float64).reshape(x.shape[0], dim)
    if x.shape[0] < 2 or x.shape[1] == 0:
        raise ScorelabError(
            f"data needs at least 2 points of dimension ≥ 1, got shape {tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ScorelabError("data contains NaN or inf values")
    return x


def sigma_max_from_data(
    data: Any,
    *,
    max_points: int | None = None,
    generator: torch.Generator | None = None,
    block_size: int = 1024,
) -> float:
    """σ₁ = max_{i<j} ‖x⁽ⁱ⁾ − x⁽ʲ⁾‖₂ over the training points (Song & Ermon 2020, technique 1).

    Seed 001 §4.1.2: with σ₁ this large, every perturbed component q⁽ⁱ⁾ = N(x⁽ⁱ⁾, σ₁²I) keeps
    E_{q⁽ⁱ⁾}[r⁽ʲ⁾] ≤ ½ exp(−‖x⁽ⁱ⁾ − x⁽ʲ⁾‖²/(8σ₁²)) from vanishing, so Langevin dynamics at σ₁
    can move between any two data points.  Points (N, ...) are flattened to (N, D).

    Exact for any N: row blocks of torch.cdist against the remaining rows, O(N²·D) time and
    O(block_size·N) memory; the winning pair's distance is recomputed directly, so the value
    carries no matrix-multiply round-off.  With `max_points` < N the maximum is taken over a
    random subset of that size drawn from `generator` — a lower bound on the exact value.
    """
    x = _flat_data(data)
    if max_points is not None:
        if isinstance(max_points, bool) or int(max_points) != max_points or max_points < 2:
            raise ScorelabError(f"max_points must be an integer ≥ 2, got {max_points!r}")
        if x.shape[0] > max_points:
            x = x[torch.randperm(x.shape[0], generator=generator)[: int(max_points)]]
    if block_size < 1:
        raise ScorelabError(f"block_size must be ≥ 1, got {block_size}")
    n = x.shape[0]
    best, pair = -1.0, (0, 1)
    for start in range(0, n - 1, block_size):
        # pairs (i, j) with i in this block and j ≥ start: each unordered pair is seen once or
        # twice, never zero times, and memory stays block_size × n.
        d = torch.cdist(x[start : start + block_size], x[start:])
        flat = int(d.argmax())
        value = float(d.reshape(-1)[flat])
        if value > best:
            best = value
            pair = (start + flat // d.shape[1], start + flat % d.shape[1])
    return float(torch.linalg.vector_norm(x[pair[0]] - x[pair[1]]))


# ---------------------------------------------------------------------------------------------
# technique 2: the ratio of the geometric ladder


def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise ScorelabError(f"dim must be a positive integer (the data dimension D), got {dim!r}")
    return int(dim)


def overlap_probability(gamma: float, dim: int) -> float:
    """C(γ) = Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) (Song & Ermon 2020, technique 2).

    For one data point, ‖x‖ under N(0, σ²I) is approximately N(σ√D, σ²/2) (seed 001 §4.1.2;
    the seed prints the interval half-width as 3σ²/2, the formula uses the standard deviation
    σ/√2).  C(γ) is the probability that ‖x‖, x ~ N(0, σᵢ²I), falls in the 3-std interval
    [σᵢ₋₁√D − 3σᵢ₋₁/√2, σᵢ₋₁√D + 3σᵢ₋₁/√2] of the previous level, γ = σᵢ₋₁/σᵢ.
    """
    d = _check_dim(dim)
    g = float(gamma)
    if not (math.isfinite(g) and g > 0):
        raise ScorelabError(f"gamma must be finite and positive, got {gamma}")
    centre = math.sqrt(2.0 * d) * (g - 1.0)
    lo, hi = centre - 3.0 * g, centre + 3.0 * g
    if lo > 0:  # both in the upper tail: difference of survival functions keeps the digits
        return float(norm.sf(lo) - norm.sf(hi))
    return float(norm.cdf(hi) - norm.cdf(lo))


def ladder_ratio(dim: int, overlap: float = 0.5) -> float:
    """The γ > 1 with C(γ) = overlap (technique 2 recommends C ≈ 0.5), by brentq.

    C(1) = Φ(3) − Φ(−3) ≈ 0.9973; C first rises, then (when √(2D) > 3) falls to 0, so there
    is exactly one root for overlap < 0.9973.  For D ≤ 4 (√(2D) ≤ 3) C(γ) stays above 0.997
    for every γ ≥ 1: the radial approximation behind the rule then places no limit on γ and
    this function raises ScorelabError (choose the number of levels yourself).
    """
    d = _check_dim(dim)
    c = float(overlap)
    if not 0.0 < c < _C_AT_ONE:
        raise ScorelabError(
            f"overlap must lie in (0, {_C_AT_ONE:.4f}) (C(1) = Φ(3) − Φ(−3)), got {overlap}"
        )
    if math.sqrt(2.0 * d) <= 3.0:
        raise ScorelabError(
            f"technique 2 does not determine γ in dimension D = {d}: with √(2D) ≤ 3 the overlap "
            f"C(γ) stays above {_C_AT_ONE:.4f} for every γ ≥ 1, so no ratio gives C = {c:g}; "
            "choose the number of noise levels directly"
        )
    hi = 2.0
    while overlap_probability(hi, d) >= c:  # C → 0 as γ → ∞ here, so this ends
        hi *= 2.0
    return float(brentq(lambda g: overlap_probability(g, d) - c, 1.0, hi, xtol=1e-14))


def n_levels(sigma_max: float, sigma_min: float, dim: int, overlap: float = 0.5) -> int:
    """L = ⌈log(σ₁/σ_L) / log γ⌉ + 1: the shortest geometric ladder σ₁ → σ_L with ratio ≤ γ."""
    hi, lo = float(sigma_max), float(sigma_min)
    if not (math.isfinite(hi) and math.isfinite(lo) and 0 < lo < hi):
        raise ScorelabError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    steps = math.log(hi / lo) / math.log(ladder_ratio(dim, overlap))
    # 1e-12 absorbs round-off when the quotient is an integer up to the last bits
    return max(1, math.ceil(steps * (1.0 - 1e-12))) + 1


_n_levels_rule = n_levels


# ---------------------------------------------------------------------------------------------
# technique 4: the Langevin step size


def _check_t_gamma_sigma(n_steps_each: int, gamma: float, sigma_min: float) -> None:
    if isinstance(n_steps_each, bool) or int(n_steps_each) != n_steps_each or n_steps_each < 1:
        raise ScorelabError(f"n_steps_each (T) must be an integer ≥ 1, got {n_steps_each!r}")
    if not (math.isfinite(gamma) and gamma > 1.0):
        raise ScorelabError(f"gamma must be finite and > 1, got {gamma}")
    if not (math.isfinite(sigma_min) and sigma_min > 0):
        raise ScorelabError(f"sigma_min must be finite and positive, got {sigma_min}")


def _ratio(u: float, t: int, gamma: float) -> float:
    """The quoted expression with u = ε/σ_L²: r^{2T}(γ² − V) + V, r = 1 − u, V = 2/(2 − u)."""
    v = 2.0 / (2.0 - u)
    decay = math.exp(2.0 * t * math.log1p(-u)) if u < 1.0 else 0.0
    return decay * (gamma * gamma - v) + v


def _ratio_slope(u: float, t: int, gamma: float) -> float:
    """d/du of `_ratio`: −2T r^{2T−1}(γ² − V) + V′ (1 − r^{2T}), V′ = 2/(2 − u)²."""
    v, dv = 2.0 / (2.0 - u), 2.0 / (2.0 - u) ** 2
    log_r = math.log1p(-u) if u < 1.0 else -math.inf
    return -2.0 * t * math.exp((2 * t - 1) * log_r) * (gamma * gamma - v) - dv * math.expm1(
        2 * t * log_r
    )


def variance_ratio(eps: float, n_steps_each: int, gamma: float, sigma_min: float) -> float:
    """Seed 001 §4.2.2's expression, literally, with ε in Song & Ermon 2020's convention.

    (1 − ε/σ_L²)^{2T} (γ² − 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²)) + 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²)
    = Var_T/σᵢ² of `step_size`'s derivation.  ε here is HALF of scorelab's step size.
    """
    _check_t_gamma_sigma(n_steps_each, gamma, sigma_min)
    s2 = sigma_min**2
    if not 0.0 < eps < s2:
        raise ScorelabError(f"eps must lie in (0, σ_L²) = (0, {s2:g}), got {eps}")
    r = 1.0 - eps / s2
    v = 2.0 * eps / (s2 - s2 * r**2)
    return r ** (2 * n_steps_each) * (gamma**2 - v) + v


def step_size(
    n_steps_each: int, gamma: float, sigma_min: float, *, target: float | None = None
) -> float:
    """Technique 4 of Song & Ermon 2020: the Langevin step, returned in scorelab's convention.

    Derivation (one data point, so q_σ = N(0, σ²I) and ∇log q_σ(x) = −x/σ²).  Song & Ermon 2020
    write a Langevin step as x ← x + α∇log q(x) + √(2α)·z with α = ε·σᵢ²/σ_L².  At level σᵢ:

        x_{t+1} = (1 − α/σᵢ²)·x_t + √(2α)·z = r·x_t + √(2α)·z,   r = 1 − ε/σ_L²,

    so per coordinate Var_{t+1} = r²·Var_t + 2α.  The fixed point is V·σᵢ² with
    V = 2α/(σᵢ²(1 − r²)) = 2ε/(σ_L²(1 − r²)) = 2ε/(σ_L² − σ_L² r²) (σᵢ cancels: the same ratio
    at every level), and Var_t − Vσᵢ² shrinks by r² per step.  Started at the previous level's
    spread, Var_0 = γ²σᵢ², after T steps

        Var_T/σᵢ² = r^{2T}·(γ² − V) + V,

    which is the expression quoted in seed 001 §4.2.2 (`variance_ratio`).  Writing u = ε/σ_L²,
    V = 1/(1 − u/2) > 1 and r^{2T} > 0, so Var_T/σᵢ² is a weighted mean of γ² > 1 and V > 1:
    it is > 1 for EVERY ε.  "≈ 1" therefore means "as close to 1 as possible": as u grows the
    ratio falls from γ² (u → 0) to a single minimum and rises again towards 2 (u → 1).

    - target=None (default, Song & Ermon's "maximally close to 1"): the minimiser, found by
      brentq on the derivative over u ∈ [0, 1] (negative at 0, +2 at 1, one sign change).
    - target=c: the smaller ε with Var_T/σᵢ² = c, by brentq on [0, u_min]; raises ScorelabError
      when no ε reaches c (c below the minimum — too few steps T for this γ — or c ≥ γ²).

    Convention mapping: scorelab's step is x ← x + (h/2)·s + √h·z (samplers/langevin.py), the
    same update as Song & Ermon's with α = h/2.  So the step size returned here, to pass as
    `annealed_langevin(step_size=...)` (or `langevin` at level σ_L), is h = 2ε.
    """
    _check_t_gamma_sigma(n_steps_each, gamma, sigma_min)
    t, g = int(n_steps_each), float(gamma)
    u_min = float(brentq(_ratio_slope, 0.0, 1.0, args=(t, g), xtol=1e-300, maxiter=1000))
    if target is None:
        u = u_min
    else:
        c, lowest = float(target), _ratio(u_min, t, g)
        if not (math.isfinite(c) and lowest <= c < g * g):
            raise ScorelabError(
                f"no step size gives Var_T/σ² = {target} with T = {t} steps and γ = {g:g}: "
                f"reachable values are [{lowest:.6g}, γ² = {g * g:.6g}) (the smallest at "
                f"ε = {u_min * sigma_min**2:.3g}); use more steps per level, a smaller γ (more "
                "levels), or target=None for the closest value"
            )
        u = (
            u_min
            if c == lowest
            else float(brentq(lambda w: _ratio(w, t, g) - c, 0.0, u_min, xtol=1e-300, maxiter=1000))
        )
    return 2.0 * u * sigma_min**2


# ---------------------------------------------------------------------------------------------
# all of it at once


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A resolved NCSN schedule: geometric σ ladder, steps per level, step size (scorelab's h).

    dim is the data dimension D; overlap is the C(γ) the ladder was solved for (None when
    n_levels was given); variance_ratio is the predicted Var_T/σ² of `step_size`.
    """

    sigma_max: float
    sigma_min: float
    n_levels: int
    gamma: float
    sigmas: Tensor
    step_size: float
    n_steps_each: int
    dim: int
    overlap: float | None
    variance_ratio: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable values (sigmas as a list of floats)."""
        return {
            "sigma_max": self.sigma_max,
            "sigma_min": self.sigma_min,
            "n_levels": self.n_levels,
            "gamma": self.gamma,
            "sigmas": [float(s) for s in self.sigmas],
            "step_size": self.step_size,
            "n_steps_each": self.n_steps_each,
            "dim": self.dim,
            "overlap": self.overlap,
            "variance_ratio": self.variance_ratio,
        }


def suggest_schedule(
    data: Any,
    *,
    n_steps_each: int = 100,
    sigma_min: float = 0.01,
    overlap: float = 0.5,
    n_levels: int | None = None,
    sigma_max: float | None = None,
    step: float | None = None,
) -> NoiseSchedule:
    """σ₁ from the data diameter, L from C(γ) = overlap in the data dimension D, ε from T and γ.

    `n_levels` overrides technique 2 (needed for D ≤ 4, where it fixes no γ); `sigma_max` and
    `step` (scorelab's step size) override techniques 1 and 4 — a config fixes some values and
    leaves the rest to the rules.  gamma is the ladder's actual ratio (σ₁/σ_L)^{1/(L−1)} ≤ the
    rule's γ, and the step size is solved for it.
    """
    x = _flat_data(data)
    dim = x.shape[1]
    s_min = float(sigma_min)
    if not (math.isfinite(s_min) and s_min > 0):
        raise ScorelabError(f"sigma_min must be finite and positive, got {sigma_min}")
    if not 0.0 < float(overlap) < 1.0:
        raise ScorelabError(f"overlap must lie in (0, 1), got {overlap}")
    if isinstance(n_steps_each, bool) or int(n_steps_each) != n_steps_each or n_steps_each < 1:
        raise ScorelabError(f"n_steps_each (T) must be an integer ≥ 1, got {n_steps_each!r}")
    s_max = sigma_max_from_data(x) if sigma_max is None else float(sigma_max)
    if not s_min < s_max:
        raise ScorelabError(
            f"sigma_min ({s_min:g}) must be smaller than σ₁ = max pairwise distance ({s_max:g})"
        )
    if n_levels is None:
        levels = _n_levels_rule(s_max, s_min, dim, overlap)
        used_overlap: float | None = float(overlap)
    else:
        levels, used_overlap = int(n_levels), None
    sigmas = geometric_sigmas(s_max, s_min, levels)
    gamma = math.exp(math.log(s_max / s_min) / (levels - 1))
    h = step_size(int(n_steps_each), gamma, s_min) if step is None else float(step)
    return NoiseSchedule(
        sigma_max=s_max,
        sigma_min=s_min,
        n_levels=levels,
        gamma=gamma,
        sigmas=sigmas,
        step_size=h,
        n_steps_each=int(n_steps_each),
        dim=dim,
        overlap=used_overlap,
        variance_ratio=_ratio(h / (2.0 * s_min**2), int(n_steps_each), gamma),
    )
