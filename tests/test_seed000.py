"""Seed 000's setting end to end: a mixture of strongly log-concave, non-Gaussian components,
its overlap graph, and Langevin from the data with early stopping keeping the weights."""

import pytest
import torch

from scorelab import ScorelabError
from scorelab.analysis import overlap_graph
from scorelab.distributions import (
    TARGETS,
    LogConcaveMixture,
    seed000_logconcave,
    target_score_fn,
)
from scorelab.metrics import mixture_weights
from scorelab.samplers import from_data, langevin, uniform_box


def test_preset_geometry():
    t = seed000_logconcave(3, 3, separation=8.0, tilt=2.0)
    assert torch.allclose(t.weights, torch.tensor([1.0, 2.0, 3.0]) / 6)
    assert torch.allclose(t.scales, torch.tensor([1.0, 2.0**0.5, 1.0]))
    assert torch.allclose(t.means, 8.0 * torch.eye(3))
    assert torch.allclose(t.strong_convexity, 1 / t.scales**2)
    assert torch.allclose(t.smoothness, 3 / t.scales**2)


def test_far_apart_components_are_islands_of_the_overlap_graph(gen):
    g = overlap_graph(seed000_logconcave(3, 3, separation=8.0), 1e-3, n_mc=5000, generator=gen)
    assert g.method == "monte carlo" and g.components == [[0], [1], [2]]
    near = overlap_graph(seed000_logconcave(2, 2, separation=1.0), 0.1, n_mc=5000, generator=gen)
    assert near.connected and near.overlaps[0, 1] > 0.3


def test_langevin_from_data_keeps_log_concave_mixture_weights(gen):
    """Koehler & Vuong's theorem in the regime it covers: the estimate is exact here, the
    components are far apart (δ ≈ 0), and T = 4 is long against within-component mixing
    (α ≥ ½) and short against crossing. 6000 chains: the s.e. of a weight is ≤ 0.0065, so
    TV < 0.03 leaves room for the sampler's own error; a uniform start must miss by > 0.1."""
    target = seed000_logconcave(3, 2, separation=8.0)
    score_fn = target_score_fn(target)
    data = target.sample(6000, generator=gen)
    res = langevin(
        score_fn,
        from_data(data, 6000, generator=gen, replace=False),
        step_size=0.05,
        time=4.0,
        generator=gen,
    )
    assert mixture_weights(res.samples, target).tv < 0.03
    uniform = langevin(
        score_fn,
        uniform_box(6000, 2, -10.0, 10.0, generator=gen),
        step_size=0.05,
        time=4.0,
        generator=gen,
    )
    assert mixture_weights(uniform.samples, target).tv > 0.1


def test_registry_builds_every_target_and_rejects_unknown_names(gen):
    for name in [
        "seed001_fig3",
        "seed001_fig10",
        "ncsn_toy",
        "seed000_mixture",
        "seed000_logconcave",
        "circle",
        "two_moons",
        "checkerboard",
    ]:
        t = TARGETS.build(name)
        assert t.sample(5, generator=gen).shape == (5, t.dim)
    with pytest.raises(ScorelabError, match="unknown target 'moons'; known: .*two_moons"):
        TARGETS.get("moons")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_log_concave_mixture_rejects_bad_weights(bad):
    with pytest.raises(ScorelabError, match="weights"):
        LogConcaveMixture([[0.0, 0.0], [5.0, 5.0]], 1.0, [bad, 1.0])
