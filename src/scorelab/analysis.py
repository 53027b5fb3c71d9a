"""Structure of mixtures: pairwise component overlaps and the overlap graph (seed 000, Thm 2).

Koehler & Vuong bound the log-Sobolev constant of a mixture by the overlaps of its
components: join i and j when δᵢⱼ ≥ δ; on each connected component of that graph Langevin
mixes fast, across components it does not, so data-based initialisation is what keeps the
weights right.  We read the overlap as δᵢⱼ = ∫ min(pᵢ, pⱼ) dx = 1 − TV(pᵢ, pⱼ).

Also the terms of seed 002's TV bound for the exponential-integrator reverse SDE (Chen et al.
2023) and the constants it needs for a 1-D target: KL(q‖γ) and the score's Lipschitz constant
along the OU process.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from scorelab._utils import ScorelabError
from scorelab.sde import SDE, exact_score_fn


@dataclass(frozen=True)
class OverlapGraph:
    """Pairwise overlaps δ (K, K), the edges δᵢⱼ ≥ threshold, and the graph's components."""

    overlaps: np.ndarray
    threshold: float
    adjacency: np.ndarray
    components: list[list[int]]
    method: str

    @property
    def connected(self) -> bool:
        return len(self.components) == 1

    def as_dict(self) -> dict:
        return {
            "overlaps": self.overlaps.tolist(),
            "threshold": self.threshold,
            "components": self.components,
            "method": self.method,
        }


def _equal_covariances(mixture) -> bool:
    cov = getattr(mixture, "covariances", None)
    # relative test only: an absolute tolerance would call tiny, different covariances equal
    return cov is not None and bool(
        torch.allclose(cov, cov[:1].expand_as(cov), rtol=1e-9, atol=0.0)
    )


def component_overlaps(
    mixture, *, n_mc: int = 20_000, generator: torch.Generator | None = None
) -> tuple[np.ndarray, str]:
    """δᵢⱼ = ∫ min(pᵢ, pⱼ): 2Φ(−Δᵢⱼ/2) for equal Gaussian covariances (Δ Mahalanobis), else
    the Monte Carlo estimate ½(E_pᵢ[min(1, pⱼ/pᵢ)] + E_pⱼ[min(1, pᵢ/pⱼ)])."""
    k = mixture.n_components
    if _equal_covariances(mixture):
        cov = mixture.covariances[0].double()
        mu = mixture.means.double()
        diff = (mu[:, None, :] - mu[None, :, :]).reshape(k * k, -1)  # (K², d)
        maha2 = (diff * torch.linalg.solve(cov, diff.T).T).sum(-1).reshape(k, k)
        maha = maha2.clamp_min(0).sqrt()
        delta = torch.special.erfc(maha / (2 * math.sqrt(2.0)))  # 2Φ(−Δ/2) = erfc(Δ/(2√2))
        return delta.numpy(), "closed form"
    if n_mc < 100:
        raise ScorelabError("n_mc must be at least 100 for a Monte Carlo overlap estimate")
    ratio_mean = np.zeros((k, k))
    for i in range(k):
        xi = mixture.sample_component(i, n_mc, generator)
        logp = mixture.component_log_prob(xi)  # (n, K)
        ratio_mean[i] = torch.exp((logp - logp[:, i : i + 1]).clamp(max=0.0)).mean(0).numpy()
    delta = 0.5 * (ratio_mean + ratio_mean.T)
    np.fill_diagonal(delta, 1.0)
    return delta, "monte carlo"


def overlap_graph(
    mixture, threshold: float, *, n_mc: int = 20_000, generator: torch.Generator | None = None
) -> OverlapGraph:
    """Components joined iff δᵢⱼ ≥ threshold, and the connected components of that graph."""
    if not 0.0 <= threshold <= 1.0:
        raise ScorelabError(f"threshold must be in [0, 1], got {threshold}")
    delta, method = component_overlaps(mixture, n_mc=n_mc, generator=generator)
    adj = delta >= threshold
    np.fill_diagonal(adj, False)
    n, labels = connected_components(csr_matrix(adj.astype(np.int8)), directed=False)
    comps = [sorted(np.flatnonzero(labels == c).tolist()) for c in range(n)]
    comps.sort(key=lambda c: c[0])
    return OverlapGraph(delta, float(threshold), adj, comps, method)


# ---------------------------------------------------------------------------------------------
# seed 002: TV bound for the exponential-integrator reverse SDE (Chen et al. 2023)


@dataclass(frozen=True)
class TVBound:
    """The three terms of seed 002's TV bound, their sum, and whether h ≲ 1/L holds."""

    initialisation: float  # C·√KL(q‖γ^d)·e^{−T}
    discretisation: float  # C·(L√(dh) + L·m₂·h)·√T
    score_error: float  # C·ε·√T
    total: float
    constant: float
    step_condition_holds: bool  # h ≤ 1/L, the theorem's assumption (flagged, not enforced)

    def as_dict(self) -> dict:
        return asdict(self)


def _check_number(name: str, v: float, *, positive: bool = False, minimum: float = 0.0) -> float:
    v = float(v)
    ok = math.isfinite(v) and (v > minimum if positive else v >= minimum)
    if not ok:
        rel = ">" if positive else "≥"
        raise ScorelabError(f"{name} must be finite and {rel} {minimum:g}, got {v}")
    return v


def reverse_sde_tv_bound(
    *,
    kl: float,
    lipschitz: float,
    dim: int,
    m2: float,
    h: float,
    T: float,
    eps_score: float = 0.0,
    constant: float = 1.0,
) -> TVBound:
    """Chen et al. 2023 (seed 002): TV(p_T, q) ≲ √KL·e^{−T} + (L√(dh) + L·m₂·h)√T + ε√T.

    Derivation: Girsanov KL(paths) ≲ (ε² + L²dh + L²m₂²h²)T, then Pinsker and √ΣᵢXᵢ ≤ Σᵢ√Xᵢ.
    Inputs: kl = KL(q‖γ^d), lipschitz = L ≥ 1 (the score of every q_t is L-Lipschitz),
    dim = d, m2 = m₂ = √E_q‖x‖² (the root second moment), h the step, T the horizon,
    eps_score = ε with E_{q_kh}‖s − ∇log q_kh‖² ≤ ε².  The first term is OU's KL decay
    KL(q_T‖γ) ≤ e^{−2T}KL(q‖γ) with Pinsker and data processing.  The theorem holds up to an
    unknown universal constant: every term is multiplied by `constant`, and we report C = 1.
    h ≲ 1/L is an assumption of the theorem; h > 1/L is flagged by `step_condition_holds`,
    not rejected.  Negative or non-finite inputs raise ScorelabError.
    """
    kl = _check_number("kl", kl)
    lip = _check_number("lipschitz", lipschitz)
    if lip < 1.0:
        raise ScorelabError(
            f"lipschitz must be ≥ 1 (the theorem assumes L ≥ 1; pass max(L, 1)), got {lip}"
        )
    try:
        dim_ok = not isinstance(dim, bool) and float(dim).is_integer() and dim >= 1
    except (TypeError, ValueError):
        dim_ok = False
    if not dim_ok:
        raise ScorelabError(f"dim must be a positive integer, got {dim!r}")
    m2 = _check_number("m2", m2)
    h = _check_number("h", h, positive=True)
    T = _check_number("T", T, positive=True)
    eps = _check_number("eps_score", eps_score)
    c = _check_number("constant", constant, positive=True)
    root_t = math.sqrt(T)
    init = c * math.sqrt(kl) * math.exp(-T)
    disc = c * (lip * math.sqrt(int(dim) * h) + lip * m2 * h) * root_t
    score = c * eps * root_t
    return TVBound(init, disc, score, init + disc + score, c, h <= 1.0 / lip)


def _check_1d(target) -> None:
    if getattr(target, "dim", None) != 1:
        raise ScorelabError(f"need a 1-D target, got dim={getattr(target, 'dim', None)}")


def kl_to_standard_normal(target, *, limits: tuple[float, float] | None = None) -> float:
    """KL(q‖N(0, 1)) = ∫ q (log q − log φ) for a 1-D target with a normalised `log_prob`.

    By scipy.integrate.quad over (−∞, 0] and [0, ∞) (or over `limits`), in float64.
    """
    from scipy.integrate import quad

    _check_1d(target)

    def integrand(x: float) -> float:
        lq = float(target.log_prob(torch.tensor([[x]], dtype=torch.float64)))
        if lq == -math.inf:
            return 0.0
        return math.exp(lq) * (lq + 0.5 * x * x + 0.5 * math.log(2.0 * math.pi))

    pieces = [(-math.inf, 0.0), (0.0, math.inf)] if limits is None else [limits]
    total = sum(quad(integrand, a, b, limit=200, epsabs=1e-11, epsrel=1e-10)[0] for a, b in pieces)
    return max(float(total), 0.0)  # round-off can push a KL of ~0 below zero


def score_lipschitz_1d(
    target,
    sde: SDE,
    *,
    x_range: tuple[float, float] = (-10.0, 10.0),
    n_x: int = 2001,
    n_t: int = 201,
) -> float:
    """sup over t ∈ [0, T] and x on a grid of |∂ₓ ∇log q_t(x)|, q_t = target pushed through sde.

    ∂ₓ of `exact_score_fn(sde, target)` by autograd, in float64, on n_x points of x_range and
    n_t uniform plus n_t geometric (from 1e-4·T) times, so fast changes near t = 0 are seen.
    This is the raw sup (a grid estimate, so a lower bound on the true sup); the theorem
    needs L ≥ 1, so pass max(L, 1) to `reverse_sde_tv_bound`.
    """
    _check_1d(target)
    lo, hi = float(x_range[0]), float(x_range[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ScorelabError(f"x_range must be finite with lo < hi, got {x_range!r}")
    if n_x < 2 or n_t < 2:
        raise ScorelabError(f"n_x and n_t must be ≥ 2, got {n_x}, {n_t}")
    f64 = torch.float64
    ts = torch.cat(
        [
            torch.linspace(0.0, sde.T, n_t, dtype=f64),
            torch.logspace(math.log10(1e-4 * sde.T), math.log10(sde.T), n_t, dtype=f64),
        ]
    ).clamp(0.0, sde.T)
    xs = torch.linspace(lo, hi, n_x, dtype=f64)
    x = xs.repeat(ts.numel())[:, None].requires_grad_(True)  # every (t, x) pair in one batch
    t = ts.repeat_interleave(n_x)
    score = exact_score_fn(sde, target)(x, t)
    (dsdx,) = torch.autograd.grad(score.sum(), x)  # rows are independent: ∂ₓ of each row
    if not bool(torch.isfinite(dsdx).all()):
        raise ScorelabError("the score's derivative is not finite on the grid")
    return float(dsdx.abs().max())
