"""Noise-schedule heuristics (Song & Ermon 2020, seed 001 §4): each rule against an independent
computation — scipy's pdist, scipy.stats.norm, the quoted ε expression transcribed literally,
Langevin simulations, and the step sizes published in ermongroup/ncsnv2's configs."""

import json
import math

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch

from scorelab import ScorelabError
from scorelab.distributions import Gaussian, ncsn_toy, seed001_fig3, target_score_fn
from scorelab.heuristics import (
    NoiseSchedule,
    ladder_ratio,
    n_levels,
    overlap_probability,
    sigma_max_from_data,
    step_size,
    suggest_schedule,
    variance_ratio,
)
from scorelab.samplers import langevin
from scorelab.schedules import geometric_sigmas

F64 = torch.float64


def quoted_expression(eps: float, t: int, gamma: float, sigma_l: float) -> float:
    """Seed 001 §4.2.2, character for character (ε in Song & Ermon 2020's convention)."""
    s2 = sigma_l**2
    frac = 2 * eps / (s2 - s2 * (1 - eps / s2) ** 2)
    return (1 - eps / s2) ** (2 * t) * (gamma**2 - frac) + frac


# ---------------------------------------------------------------------------------------------
# geometric ladder


@pytest.mark.parametrize("hi, lo, n", [(50.0, 0.01, 232), (1.0, 0.01, 10), (3.0, 2.0, 2)])
def test_geometric_sigmas_endpoints_and_constant_ratio(hi, lo, n):
    sig = geometric_sigmas(hi, lo, n)
    assert sig.dtype == F64 and sig.shape == (n,)
    assert float(sig[0]) == hi and float(sig[-1]) == lo  # exact, not approximate
    assert bool((sig[1:] < sig[:-1]).all())
    ratios = sig[:-1] / sig[1:]
    # float64 exp/log round-off is ~1e-15 relative per level
    assert torch.allclose(ratios, torch.full_like(ratios, (hi / lo) ** (1 / (n - 1))), rtol=1e-12)


@pytest.mark.parametrize(
    "args",
    [(1.0, 0.1, 1), (1.0, 0.1, 0), (1.0, 0.1, 2.5), (1.0, 0.1, True), (0.1, 1.0, 5),
     (1.0, 1.0, 5), (1.0, 0.0, 5), (1.0, -0.1, 5), (float("inf"), 0.1, 5),
     (float("nan"), 0.1, 5), (1.0, 1.0 - 1e-15, 50)],
)  # fmt: skip
def test_geometric_sigmas_rejects_bad_arguments(args):
    with pytest.raises(ScorelabError):
        geometric_sigmas(*args)


# ---------------------------------------------------------------------------------------------
# technique 1: σ₁ = max pairwise distance


@pytest.mark.parametrize("n, d, block", [(2500, 3, 1024), (101, 5, 7), (2, 1, 1024)])
def test_sigma_max_equals_brute_force_pdist(gen, n, d, block):
    # n is never a multiple of the block size, so the last (short) block is exercised
    x = torch.randn(n, d, generator=gen, dtype=F64) * torch.rand(d, generator=gen, dtype=F64)
    expected = scipy.spatial.distance.pdist(x.numpy()).max()
    got = sigma_max_from_data(x, block_size=block)
    # the winning pair is recomputed directly, so only the last-bit round-off of a norm differs
    assert got == pytest.approx(expected, rel=1e-13)


def test_sigma_max_on_image_shaped_and_numpy_data(gen):
    x = torch.randn(300, 1, 4, 4, generator=gen, dtype=F64)
    expected = scipy.spatial.distance.pdist(x.reshape(300, 16).numpy()).max()
    assert sigma_max_from_data(x) == pytest.approx(expected, rel=1e-13)
    assert sigma_max_from_data(x.numpy().astype(np.float32)) == pytest.approx(expected, rel=1e-6)


def test_sigma_max_subsample_is_a_seeded_lower_bound(gen):
    x = torch.randn(500, 2, generator=gen, dtype=F64)
    exact = sigma_max_from_data(x)
    a = sigma_max_from_data(x, max_points=50, generator=torch.Generator().manual_seed(1))
    b = sigma_max_from_data(x, max_points=50, generator=torch.Generator().manual_seed(1))
    assert a == b and a <= exact
    assert sigma_max_from_data(x, max_points=1000) == exact  # fewer points than max_points


@pytest.mark.parametrize(
    "data",
    [torch.zeros(0, 3), torch.zeros(1, 3), torch.zeros(5, 0), torch.tensor(1.0),
     torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]),
     torch.tensor([[0.0, 1.0], [float("inf"), 0.0]])],
)  # fmt: skip
def test_sigma_max_rejects_bad_data(data):
    with pytest.raises(ScorelabError):
        sigma_max_from_data(data)


def test_sigma_max_rejects_bad_max_points(gen):
    with pytest.raises(ScorelabError, match="max_points"):
        sigma_max_from_data(torch.randn(5, 2, generator=gen), max_points=1)


# ---------------------------------------------------------------------------------------------
# technique 2: the ladder ratio γ


@pytest.mark.parametrize("dim", [1, 2, 5, 64, 784, 3072])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.01, 1.04, 1.3, 2.0, 20.0])
def test_overlap_probability_matches_scipy_formula(dim, gamma):
    a = math.sqrt(2 * dim) * (gamma - 1)
    expected = scipy.stats.norm.cdf(a + 3 * gamma) - scipy.stats.norm.cdf(a - 3 * gamma)
    assert overlap_probability(gamma, dim) == pytest.approx(expected, rel=1e-12, abs=1e-15)


DIMS = [5, 64, 784, 3072]


def test_ladder_ratio_solves_c_equals_half_and_decreases_towards_one():
    gammas = [ladder_ratio(d) for d in DIMS]
    for d, g in zip(DIMS, gammas, strict=True):
        assert g > 1.0
        assert abs(overlap_probability(g, d) - 0.5) < 1e-10
    assert all(a > b for a, b in zip(gammas, gammas[1:], strict=False))
    # large D: C ≈ ½ where √(2D)(γ−1) = 3γ, i.e. γ ≈ √(2D)/(√(2D) − 3) → 1
    s = math.sqrt(2 * 3072)
    assert gammas[-1] == pytest.approx(s / (s - 3), rel=1e-3)


def test_ladder_ratio_other_overlaps_and_dimension_limit():
    # a larger required overlap needs a finer ladder
    assert ladder_ratio(64, overlap=0.9) < ladder_ratio(64) < ladder_ratio(64, overlap=0.1)
    assert abs(overlap_probability(ladder_ratio(784, 0.9), 784) - 0.9) < 1e-10
    # D ≤ 4: √(2D) ≤ 3 and C(γ) never falls below C(1) ≈ 0.9973 — no γ solves the rule
    for d in (1, 2, 4):
        assert min(overlap_probability(g, d) for g in np.geomspace(1, 1e4, 200)) > 0.997
        with pytest.raises(ScorelabError, match="does not determine"):
            ladder_ratio(d)
    for bad in (0.0, 1.0, 0.998, -0.5, float("nan")):
        with pytest.raises(ScorelabError, match="overlap"):
            ladder_ratio(64, overlap=bad)
    for bad_dim in (0, -3, 2.5):
        with pytest.raises(ScorelabError, match="dim"):
            ladder_ratio(bad_dim)


@pytest.mark.parametrize("dim", DIMS)
def test_n_levels_gives_the_shortest_ladder_with_ratio_at_most_gamma(dim):
    hi, lo = 50.0, 0.01
    g, n = ladder_ratio(dim), n_levels(hi, lo, dim)
    sig = geometric_sigmas(hi, lo, n)
    assert float((sig[:-1] / sig[1:]).max()) <= g * (1 + 1e-12)
    assert (hi / lo) ** (1 / (n - 2)) > g  # one level fewer would need a larger ratio


def test_n_levels_validation():
    with pytest.raises(ScorelabError):
        n_levels(0.01, 50.0, 64)
    with pytest.raises(ScorelabError):
        n_levels(50.0, 0.0, 64)


# ---------------------------------------------------------------------------------------------
# technique 4: the step size


@pytest.mark.parametrize(
    "t, gamma, sigma_l, target",
    [(100, 1.04, 0.01, 1.02), (5, 1.04, 0.01, 1.07), (20, 1.5, 0.1, 1.3), (1, 3.0, 1.0, 5.0)],
)
def test_step_size_solves_the_quoted_expression(t, gamma, sigma_l, target):
    h = step_size(t, gamma, sigma_l, target=target)
    eps = h / 2  # the quoted expression is in Song & Ermon's convention: scorelab's step is 2ε
    assert 0 < eps < sigma_l**2
    assert abs(quoted_expression(eps, t, gamma, sigma_l) - target) < 1e-8
    assert variance_ratio(eps, t, gamma, sigma_l) == pytest.approx(target, abs=1e-8)


@pytest.mark.parametrize("t, gamma", [(100, 1.04), (5, 1.04), (20, 1.5), (1, 3.0), (10**5, 1.01)])
def test_default_step_size_minimises_the_expression(t, gamma):
    sigma_l = 0.01
    eps = step_size(t, gamma, sigma_l) / 2
    best = quoted_expression(eps, t, gamma, sigma_l)
    assert best > 1.0  # the expression exceeds 1 for every ε (see step_size's docstring)
    for factor in (0.98, 0.999, 1.001, 1.02):
        assert quoted_expression(eps * factor, t, gamma, sigma_l) > best - 1e-13
    # no ε in a fine grid does better (only a check: the function itself uses brentq)
    grid = np.linspace(1e-6, 1 - 1e-6, 20001) * sigma_l**2
    assert min(quoted_expression(e, t, gamma, sigma_l) for e in grid) > best - 1e-12


@pytest.mark.parametrize(
    "sigma_begin, num_classes, n_steps_each, step_lr",
    [(50, 232, 5, 0.0000062), (90, 500, 5, 0.0000033), (348, 2311, 3, 0.0000009)],
)
def test_default_step_size_reproduces_ncsnv2_configs(
    sigma_begin, num_classes, n_steps_each, step_lr
):
    # ermongroup/ncsnv2 configs/{cifar10,celeba,ffhq}.yml: geometric σ from sigma_begin to 0.01,
    # step_lr = ε in x + ε·s + √(2ε)·z, printed to 7 decimals; we return scorelab's 2ε.
    gamma = (sigma_begin / 0.01) ** (1 / (num_classes - 1))
    eps = step_size(n_steps_each, gamma, 0.01) / 2
    assert round(eps, 7) == pytest.approx(step_lr, abs=1e-12)


def test_step_size_rejects_unreachable_targets_and_bad_arguments():
    # Var_T/σ² > 1 for every ε, so 1.0 exactly is never reachable
    with pytest.raises(ScorelabError, match="no step size"):
        step_size(100, 1.04, 0.01, target=1.0)
    with pytest.raises(ScorelabError, match="more steps"):
        step_size(5, 1.5, 0.01, target=1.1)  # the minimum for T = 5, γ = 1.5 is ≈ 1.20
    with pytest.raises(ScorelabError, match="no step size"):
        step_size(5, 1.5, 0.01, target=1.5**2)  # γ² is the ε → 0 limit: the chain never moves
    for args in [(0, 1.5, 0.01), (2.5, 1.5, 0.01), (5, 1.0, 0.01), (5, 0.9, 0.01),
                 (5, float("inf"), 0.01), (5, 1.5, 0.0), (5, 1.5, -1.0)]:  # fmt: skip
        with pytest.raises(ScorelabError):
            step_size(*args)


@pytest.mark.parametrize("target", [None, 1.3])
def test_simulated_langevin_confirms_the_two_epsilon_mapping(gen, target):
    # One data point at 0: q_σ = N(0, σ²I) with its exact score.  Chains start at the previous
    # level's spread N(0, γ²σ_L²I) and run T steps of scorelab's Langevin at σ_L.
    t, gamma, sigma_l, dim, n = 20, 1.5, 0.1, 2, 50_000
    h = step_size(t, gamma, sigma_l, target=target)
    if target is None:  # the smallest value the quoted expression takes over ε (a grid check)
        grid = np.linspace(1e-5, 1 - 1e-5, 100_000) * sigma_l**2
        predicted = min(quoted_expression(e, t, gamma, sigma_l) for e in grid)
    else:
        predicted = target
    wrong = quoted_expression(h / 4, t, gamma, sigma_l)  # what passing ε instead of 2ε gives
    score_fn = target_score_fn(Gaussian(torch.zeros(dim), sigma_l**2, dtype=F64))
    x0 = gamma * sigma_l * torch.randn(n, dim, generator=gen, dtype=F64)

    def final_ratio(step: float) -> float:
        x = langevin(score_fn, x0, step_size=step, n_steps=t, generator=gen).samples
        return float(x.square().mean()) / sigma_l**2  # mean is 0 exactly

    # The chains stay exactly Gaussian, so mean(x²)/σ² estimates the ratio with relative
    # standard error √(2/(n·d)) ≈ 0.45%; 4 standard errors bound it.
    se = predicted * math.sqrt(2 / (n * dim))
    assert abs(final_ratio(h) - predicted) < 4 * se
    assert wrong - predicted > 15 * se  # the two conventions are far apart here...
    assert abs(final_ratio(h / 2) - wrong) < 4 * wrong / predicted * se  # ...and ε lands there


# ---------------------------------------------------------------------------------------------
# suggest_schedule


@pytest.fixture
def fig3_samples(gen):
    return seed001_fig3().sample(2000, generator=gen)


def test_suggest_schedule_on_seed001_fig3(fig3_samples):
    # D = 2: technique 2 fixes no γ, so the number of levels must be chosen
    with pytest.raises(ScorelabError, match="D = 2"):
        suggest_schedule(fig3_samples)
    sch = suggest_schedule(fig3_samples, n_levels=10)
    assert isinstance(sch, NoiseSchedule) and sch.dim == 2 and sch.overlap is None
    assert sch.sigma_max == pytest.approx(
        scipy.spatial.distance.pdist(fig3_samples.double().numpy()).max(), rel=1e-12
    )
    # means 10 apart with unit spread: points beyond ±6σ of their mean are e^{-18}-rare
    assert 10.0 < sch.sigma_max < 10.0 + 2 * 6.0
    assert torch.equal(sch.sigmas, geometric_sigmas(sch.sigma_max, 0.01, 10))
    assert sch.gamma == pytest.approx(float(sch.sigmas[0] / sch.sigmas[1]), rel=1e-12)
    assert sch.step_size == step_size(100, sch.gamma, 0.01)
    assert 0 < sch.step_size < 2 * 0.01**2
    assert sch.variance_ratio == pytest.approx(
        quoted_expression(sch.step_size / 2, 100, sch.gamma, 0.01), rel=1e-12
    )
    d = json.loads(json.dumps(sch.as_dict()))
    assert d["n_levels"] == 10 and len(d["sigmas"]) == 10 and d["sigmas"][0] == sch.sigma_max


def test_suggest_schedule_applies_technique_two_in_higher_dimension(gen):
    x = ncsn_toy(dim=64).sample(400, generator=gen)
    sch = suggest_schedule(x, n_steps_each=5, sigma_min=0.05)
    assert sch.dim == 64 and sch.overlap == 0.5
    assert sch.n_levels == n_levels(sch.sigma_max, 0.05, 64) == len(sch.sigmas)
    assert 1 < sch.gamma <= ladder_ratio(64) * (1 + 1e-12)
    assert sch.step_size == step_size(5, sch.gamma, 0.05)
    images = x.reshape(400, 1, 8, 8)
    assert suggest_schedule(images, n_steps_each=5, sigma_min=0.05).as_dict() == sch.as_dict()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"sigma_min": 100.0}, "smaller"), ({"sigma_min": 0.0}, "sigma_min"),
     ({"overlap": 0.0}, "overlap"), ({"overlap": 1.0}, "overlap"),
     ({"n_steps_each": 0}, "n_steps_each"), ({"n_levels": 1}, "n_levels")],
)  # fmt: skip
def test_suggest_schedule_validation(fig3_samples, kwargs, match):
    with pytest.raises(ScorelabError, match=match):
        suggest_schedule(fig3_samples, **{"n_levels": 10, **kwargs})


def test_suggest_schedule_rejects_bad_data():
    with pytest.raises(ScorelabError):
        suggest_schedule(torch.zeros(0, 2), n_levels=10)
    with pytest.raises(ScorelabError, match="NaN"):
        suggest_schedule(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), n_levels=10)


def test_suggest_schedule_keeps_values_a_config_fixes():
    """A config may fix σ₁ and ε and leave the rest to the rules (scorelab train does this)."""
    data = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    free = suggest_schedule(data, n_steps_each=50, sigma_min=0.1, n_levels=5)
    fixed = suggest_schedule(
        data, n_steps_each=50, sigma_min=0.1, n_levels=5, sigma_max=7.0, step=0.01
    )
    assert fixed.sigma_max == 7.0 and fixed.step_size == 0.01
    assert float(fixed.sigmas[0]) == pytest.approx(7.0) and len(fixed.sigmas) == 5
    assert free.sigma_max == pytest.approx(sigma_max_from_data(data))
    assert free.step_size != 0.01
