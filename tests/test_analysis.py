"""Pairwise component overlaps δᵢⱼ = ∫ min(pᵢ, pⱼ) and the overlap graph (scorelab.analysis).

The closed form (equal covariances) is checked against scipy's normal CDF to float64 rounding.
The Monte Carlo path is checked against a grid quadrature of min(pᵢ, pⱼ) built from scipy
densities; its tolerance is 4 Monte Carlo standard errors (derived in `_mc_tolerance`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from scorelab._utils import ScorelabError
from scorelab.analysis import OverlapGraph, component_overlaps, overlap_graph
from scorelab.distributions import GaussianMixture, seed001_fig3

F64 = torch.float64
N_MC = 20_000


def _closed_form(maha: float) -> float:
    """Overlap of two Gaussians with a common covariance at Mahalanobis distance Δ: 2Φ(−Δ/2)."""
    return 2.0 * scipy.stats.norm.cdf(-maha / 2.0)


def _mc_tolerance(delta: np.ndarray, n: int = N_MC) -> np.ndarray:
    """4 standard errors of the symmetrised Monte Carlo estimate.

    Each direction averages n values of min(1, pⱼ/pᵢ) ∈ [0, 1] with mean δ, whose variance is at
    most δ(1 − δ) (a [0, 1]-valued variable); the two directions are independent, so their mean
    has variance ≤ δ(1 − δ)/(2n).  At n = 20 000 and δ ≈ 0.38 this is 4 × 0.0024 ≈ 0.01.  The
    grid quadrature it is compared with is converged to ~1e-6 (h = 0.05 vs 0.0125 differ by
    < 2e-6), which the 1e-4 floor covers.
    """
    return 4.0 * np.sqrt(delta * (1.0 - delta) / (2 * n)) + 1e-4


def _grid_overlaps(means: np.ndarray, covs: np.ndarray, h: float = 0.05, half: float = 12.0):
    """∫ min(pᵢ, pⱼ) by a Riemann sum over [−half, half]² (all mass within; scipy densities)."""
    ax = np.arange(-half, half + h / 2, h)
    xx, yy = np.meshgrid(ax, ax)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    dens = [
        scipy.stats.multivariate_normal(m, c).pdf(pts) for m, c in zip(means, covs, strict=True)
    ]
    k = len(means)
    return np.array(
        [[np.minimum(dens[i], dens[j]).sum() * h * h for j in range(k)] for i in range(k)]
    )


def _line_mixture(positions, cov=1.0) -> GaussianMixture:
    means = [[p, 0.0] for p in positions]
    return GaussianMixture(means, cov, dtype=F64)


# -- closed form -----------------------------------------------------------------------------


@pytest.mark.parametrize("separation", [0.0, 0.5, 1.0, 2.0, 4.0, 10.0])
def test_closed_form_isotropic_pair(separation):
    mix = _line_mixture([0.0, separation])
    delta, method = component_overlaps(mix)
    assert method == "closed form"
    assert delta.shape == (2, 2)
    # float64 erfc vs scipy's Φ: agree to rounding; rtol 1e-10 still separates 2Φ(−5) = 5.7e-7
    # from any neighbouring Δ.
    np.testing.assert_allclose(delta[0, 1], _closed_form(separation), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.diag(delta), 1.0, rtol=0, atol=1e-15)


def test_closed_form_uses_mahalanobis_distance_for_shared_full_covariance():
    cov = np.array([[2.0, 0.8], [0.8, 0.5]])
    means = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, -1.0], [-2.0, 0.5]])
    mix = GaussianMixture(torch.tensor(means), torch.tensor(cov).expand(4, 2, 2), dtype=F64)
    delta, method = component_overlaps(mix)
    assert method == "closed form"
    inv = np.linalg.inv(cov)
    for i in range(4):
        for j in range(4):
            diff = means[i] - means[j]
            maha = math.sqrt(diff @ inv @ diff)
            np.testing.assert_allclose(delta[i, j], _closed_form(maha), rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(delta, delta.T)


def test_seed001_fig3_overlap_value():
    delta, method = component_overlaps(seed001_fig3())
    assert method == "closed form"
    # Δ = 10 (unit covariances, means 10 apart): δ = 2Φ(−5) ≈ 5.733e-7.
    np.testing.assert_allclose(delta[0, 1], _closed_form(10.0), rtol=1e-9)
    assert 5.7e-7 < delta[0, 1] < 5.8e-7


# -- Monte Carlo path ------------------------------------------------------------------------

MC_MEANS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
MC_COVS = np.array([np.eye(2), np.diag([2.0, 0.5]), [[1.0, 0.5], [0.5, 1.5]]])


def test_monte_carlo_matches_grid_integral(gen):
    mix = GaussianMixture(torch.tensor(MC_MEANS), torch.tensor(MC_COVS), dtype=F64)
    delta, method = component_overlaps(mix, n_mc=N_MC, generator=gen)
    assert method == "monte carlo"
    exact = _grid_overlaps(MC_MEANS, MC_COVS)  # ≈ 0.383, 0.250, 0.096 off the diagonal
    err = np.abs(delta - exact)
    assert np.all(err <= _mc_tolerance(exact)), err
    np.testing.assert_array_equal(delta, delta.T)
    np.testing.assert_array_equal(np.diag(delta), 1.0)
    assert np.all((delta >= 0) & (delta <= 1))


def test_monte_carlo_agrees_with_closed_form_for_nearly_equal_covariances(gen):
    """Covariances I and (1 + 1e-6)I take the MC path; δ must still be ≈ 2Φ(−Δ/2)."""
    mix = GaussianMixture([[0.0, 0.0], [1.5, 0.0], [0.0, 3.0]], [1.0, 1.0 + 1e-6, 1.0], dtype=F64)
    delta, method = component_overlaps(mix, n_mc=N_MC, generator=gen)
    assert method == "monte carlo"
    means = mix.means.numpy()
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    exact = 2.0 * scipy.stats.norm.cdf(-dist / 2.0)  # the 1e-6 variance change moves δ by ~1e-6
    assert np.all(np.abs(delta - exact) <= _mc_tolerance(exact)), delta - exact


def test_monte_carlo_is_reproducible():
    mix = GaussianMixture(torch.tensor(MC_MEANS), torch.tensor(MC_COVS), dtype=F64)

    def run(seed):
        return component_overlaps(mix, n_mc=2000, generator=torch.Generator().manual_seed(seed))[0]

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_monte_carlo_needs_enough_samples():
    mix = GaussianMixture(torch.tensor(MC_MEANS), torch.tensor(MC_COVS), dtype=F64)
    with pytest.raises(ScorelabError):
        component_overlaps(mix, n_mc=10)


# -- overlap graph ---------------------------------------------------------------------------


def test_graph_line_0_3_30():
    # δ(0,3) = 2Φ(−1.5) ≈ 0.134 ≥ 0.05; δ(3,30) = 2Φ(−13.5) ≈ 1e-41 and δ(0,30) smaller.
    graph = overlap_graph(_line_mixture([0.0, 3.0, 30.0]), 0.05)
    assert isinstance(graph, OverlapGraph)
    assert graph.components == [[0, 1], [2]]
    assert not graph.connected
    assert graph.method == "closed form" and graph.threshold == 0.05
    expected_adj = np.array([[False, True, False], [True, False, False], [False, False, False]])
    np.testing.assert_array_equal(graph.adjacency, expected_adj)
    np.testing.assert_allclose(graph.overlaps[0, 1], _closed_form(3.0), rtol=1e-10)
    d = graph.as_dict()
    assert d["components"] == [[0, 1], [2]] and d["method"] == "closed form"
    assert np.array_equal(np.asarray(d["overlaps"]), graph.overlaps)


def test_graph_component_order_is_by_smallest_index():
    # Components 0 and 2 overlap, 1 is far away: expect [[0, 2], [1]].
    graph = overlap_graph(_line_mixture([0.0, 40.0, 2.0]), 0.05)
    assert graph.components == [[0, 2], [1]]


def test_graph_threshold_zero_connects_everything():
    graph = overlap_graph(_line_mixture([0.0, 3.0, 30.0]), 0.0)
    assert graph.components == [[0, 1, 2]] and graph.connected


def test_graph_threshold_one_gives_singletons():
    graph = overlap_graph(_line_mixture([0.0, 0.5, 3.0, 30.0]), 1.0)
    assert graph.components == [[0], [1], [2], [3]]
    assert not graph.adjacency.any()


def test_graph_monte_carlo_path(gen):
    mix = GaussianMixture(torch.tensor(MC_MEANS), torch.tensor(MC_COVS), dtype=F64)
    # δ₁₂ ≈ 0.096 and the others ≥ 0.25, each known to ±0.01: threshold 0.2 drops only (1, 2),
    # which stays connected through 0.
    graph = overlap_graph(mix, 0.2, n_mc=N_MC, generator=gen)
    assert graph.method == "monte carlo" and graph.connected
    assert graph.adjacency[0, 1] and graph.adjacency[0, 2] and not graph.adjacency[1, 2]
    # threshold 0.3 keeps only (0, 1) (δ ≈ 0.383; δ₀₂ ≈ 0.250).
    graph = overlap_graph(mix, 0.3, n_mc=N_MC, generator=gen)
    assert graph.components == [[0, 1], [2]]


@pytest.mark.parametrize("threshold", [1e-6, 1e-3, 0.05, 0.5, 1.0])
def test_seed001_fig3_is_disconnected(threshold):
    graph = overlap_graph(seed001_fig3(), threshold)
    assert graph.components == [[0], [1]] and not graph.connected


def test_seed001_fig3_connects_below_its_overlap():
    # The counterpart that makes the test above able to fail: δ ≈ 5.73e-7 ≥ 5e-7.
    assert overlap_graph(seed001_fig3(), 5e-7).connected


@pytest.mark.parametrize("threshold", [-0.1, -1e-12, 1.0 + 1e-12, 2.0, float("nan")])
def test_threshold_out_of_range_raises(threshold):
    with pytest.raises(ScorelabError):
        overlap_graph(seed001_fig3(), threshold)


# -- regression: tiny unequal covariances once passed allclose's absolute tolerance ----------


def test_small_unequal_covariances_not_treated_as_equal(gen):
    # Scale-free problem: N(0, s²·0.1 I) vs N((s, 0), s²·0.4 I) has the same overlap for any s.
    scale = 1e-4
    mix = GaussianMixture([[0.0, 0.0], [scale, 0.0]], [0.1 * scale**2, 0.4 * scale**2], dtype=F64)
    delta, method = component_overlaps(mix, n_mc=N_MC, generator=gen)
    exact = _grid_overlaps(
        np.array([[0.0, 0.0], [1.0, 0.0]]),
        np.array([0.1, 0.4])[:, None, None] * np.eye(2),
        h=0.02,
        half=6.0,
    )
    assert method == "monte carlo"
    assert abs(delta[0, 1] - exact[0, 1]) <= _mc_tolerance(exact[0, 1])
