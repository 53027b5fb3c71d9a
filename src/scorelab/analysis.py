"""Structure of mixtures: pairwise component overlaps and the overlap graph (seed 000, Thm 2).

Koehler & Vuong bound the log-Sobolev constant of a mixture by the overlaps of its
components: join i and j when δᵢⱼ ≥ δ; on each connected component of that graph Langevin
mixes fast, across components it does not, so data-based initialisation is what keeps the
weights right.  We read the overlap as δᵢⱼ = ∫ min(pᵢ, pⱼ) dx = 1 − TV(pᵢ, pⱼ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from scorelab._utils import ScorelabError


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
