"""Targets named after the seed documents (see docs/targets.md for how each was read)."""

from __future__ import annotations

import torch

from scorelab._utils import ScorelabError
from scorelab.distributions.logconcave import LogConcaveMixture
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


def _axis_means(n_components: int, dim: int, separation: float) -> torch.Tensor:
    """Means at ±separation·e_(k mod d): positive axes first, then negative ones."""
    if n_components < 1 or dim < 1:
        raise ScorelabError("n_components and dim must be at least 1")
    if n_components > 2 * dim:
        raise ScorelabError(f"at most 2·dim = {2 * dim} components fit on the coordinate axes")
    means = torch.zeros(n_components, dim)
    for k in range(n_components):
        means[k, k % dim] = separation if k < dim else -separation
    return means


def _default_weights(n_components: int, weights):
    """Weights ∝ 1, 2, …, K unless given, so that recovering unequal weights is tested."""
    if weights is None:
        return torch.arange(1, n_components + 1, dtype=torch.get_default_dtype())
    return weights


def seed000_mixture(
    n_components: int = 2, dim: int = 2, separation: float = 8.0, weights=None
) -> GaussianMixture:
    """Seed 000's example: K Gaussians in d dimensions with covariances alternating I and 2I.

    (I and 2I are the pair seed 000 mentions: their χ² divergence is infinite, yet Theorem 2
    applies.)  Means sit on the coordinate axes at distance `separation` from the origin.
    """
    variances = torch.tensor([1.0 if k % 2 == 0 else 2.0 for k in range(n_components)])
    return GaussianMixture(
        _axis_means(n_components, dim, separation),
        variances,
        _default_weights(n_components, weights),
    )


def seed000_logconcave(
    n_components: int = 2,
    dim: int = 2,
    separation: float = 8.0,
    tilt: float = 1.0,
    weights=None,
) -> LogConcaveMixture:
    """Seed 000's setting proper: K non-Gaussian, strongly log-concave components.

    Same geometry as `seed000_mixture`, with component scales alternating 1 and √2 and the
    sech-tilted density of `LogConcaveMixture` (α = 1/s², β = (1 + tilt)/s²).
    """
    scales = torch.tensor([1.0 if k % 2 == 0 else 2.0**0.5 for k in range(n_components)])
    return LogConcaveMixture(
        _axis_means(n_components, dim, separation),
        scales,
        _default_weights(n_components, weights),
        tilt=tilt,
    )
