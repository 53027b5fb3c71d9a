"""Targets named after the seed documents (see docs/targets.md for how each was read)."""

from __future__ import annotations

import torch

from scorelab._utils import ScorelabError
from scorelab.distributions.mixture import GaussianMixture


def seed001_fig3() -> GaussianMixture:
    """Seed 001 Fig. 3: weights 0.2 / 0.8 at (−5, 5) and (5, 5), identity covariances."""
    return GaussianMixture([[-5.0, 5.0], [5.0, 5.0]], 1.0, [0.2, 0.8])


def seed001_fig10() -> GaussianMixture:
    """Seed 001 Fig. 10: broad N((−5,−5), 3²I) w=0.2 and peaked N((5,5), 0.5²I) w=0.8.

    The caption's "σ = 3I" and "σ = 0.5I" are read as standard deviations (covariances 9I and
    0.25I): the text calls the first component one "with large support", and σ denotes a
    standard deviation everywhere else in the seed.
    """
    return GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], stds=[3.0, 0.5], weights=[0.2, 0.8])


def ncsn_toy(dim: int = 2) -> GaussianMixture:
    """The ermongroup/ncsn toy mixture: 0.8·N(5·𝟙, I) + 0.2·N(−5·𝟙, I) in `dim` dimensions."""
    if dim < 1:
        raise ScorelabError(f"dim must be at least 1, got {dim}")
    ones = torch.ones(dim)
    return GaussianMixture(torch.stack([5 * ones, -5 * ones]), 1.0, [0.8, 0.2])


def seed000_mixture(
    n_components: int = 2, dim: int = 2, separation: float = 8.0, weights=None
) -> GaussianMixture:
    """Seed 000's example: K components in d dimensions with covariances alternating I and 2I.

    Means sit at `separation`·eₖ (coordinate axes, cycling signs when K > d) so that every pair
    is at least `separation`/√2·√2 apart; default weights ∝ 1, 2, …, K so that recovering
    unequal weights is part of the test.
    """
    if n_components < 1 or dim < 1:
        raise ScorelabError("n_components and dim must be at least 1")
    if n_components > 2 * dim:
        raise ScorelabError(f"at most 2·dim = {2 * dim} components fit on the coordinate axes")
    means = torch.zeros(n_components, dim)
    for k in range(n_components):
        means[k, k % dim] = separation if k < dim else -separation
    variances = torch.tensor([1.0 if k % 2 == 0 else 2.0 for k in range(n_components)])
    if weights is None:
        weights = torch.arange(1, n_components + 1, dtype=torch.get_default_dtype())
    return GaussianMixture(means, variances, weights)
