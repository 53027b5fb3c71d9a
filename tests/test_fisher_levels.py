"""fisher_divergence at one or many noise levels, against the exact noised target p ∗ N(0, σ²I)."""

import pytest
import torch

from scorelab import ScorelabError
from scorelab.distributions import Gaussian, seed001_fig3, target_score_fn
from scorelab.metrics import fisher_divergence

F64 = torch.float64
LEVELS = [0.1, 1.0, 3.0]
S0 = 0.5  # std of the clean target N(μ, S0²I)


@pytest.fixture
def gauss():
    return Gaussian(torch.tensor([1.0, -2.0, 0.5]), S0**2, dtype=F64)


@pytest.mark.parametrize("target_name", ["gauss", "fig3"])
def test_exact_noised_score_gives_zero_at_every_level(gauss, gen, target_name):
    target = gauss if target_name == "gauss" else seed001_fig3()
    values = fisher_divergence(target_score_fn(target), target, n=500, sigma=LEVELS, generator=gen)
    assert values == [0.0, 0.0, 0.0]


def test_score_of_the_wrong_level_is_clearly_positive(gauss, gen):
    # s(x, σ) = exact score at 2σ.  For N(μ, S0²I) at level σ, v = S0² + σ², w = S0² + 4σ²:
    # s − ∇log p_σ = −(x − μ)(1/w − 1/v), so E‖·‖² = d·v·(1/v − 1/w)².
    def wrong(x, sigma):
        return gauss.noised_score(x, 2 * sigma)

    n, d = 20_000, 3
    values = fisher_divergence(wrong, gauss, n=n, sigma=LEVELS, generator=gen)
    for value, s in zip(values, LEVELS, strict=True):
        v, w = S0**2 + s**2, S0**2 + 4 * s**2
        exact = d * v * (1 / v - 1 / w) ** 2
        # value = exact·χ²_d/d averaged over n: relative sd √(2/(n·d)) ≈ 0.6%, 5 sd ≈ 3%
        assert value == pytest.approx(exact, rel=0.03)
        assert value > 0.1  # the smallest (σ = 0.1) exact value is ≈ 0.123
    # the clean score (what the old reference was) is also wrong at σ > 0
    clean = fisher_divergence(lambda x, s: gauss.score(x), gauss, n=n, sigma=1.0, generator=gen)
    assert clean == pytest.approx(d * (S0**2 + 1) * (1 / S0**2 - 1 / (S0**2 + 1)) ** 2, rel=0.03)


def test_constant_shift_gives_its_squared_norm_per_level(gauss, gen):
    c = torch.tensor([0.3, -1.2, 2.0], dtype=F64)
    exact = target_score_fn(gauss)
    values = fisher_divergence(
        lambda x, s: exact(x, s) + c, gauss, n=300, sigma=LEVELS, generator=gen
    )
    assert values == pytest.approx([float(c @ c)] * 3, rel=1e-12)


def test_list_and_tensor_levels_return_one_float_per_level(gauss):
    fn = lambda x, s: 0.5 * gauss.noised_score(x, s)  # noqa: E731
    seeded = dict(n=200, generator=None)
    for sigma in (LEVELS, tuple(LEVELS), torch.tensor(LEVELS), [2.0]):
        seeded["generator"] = torch.Generator().manual_seed(5)
        values = fisher_divergence(fn, gauss, sigma=sigma, **seeded)
        assert isinstance(values, list) and len(values) == len(sigma)
        assert all(isinstance(v, float) and v > 0 for v in values)
    # one level in a list = that level as a scalar (same draws from the same seed)
    one = fisher_divergence(
        fn, gauss, n=200, sigma=[2.0], generator=torch.Generator().manual_seed(5)
    )
    scalar = fisher_divergence(
        fn, gauss, n=200, sigma=2.0, generator=torch.Generator().manual_seed(5)
    )
    assert isinstance(scalar, float) and one == [scalar]


def test_scalar_sigma_samples_and_scores_the_noised_law(gauss):
    def fn(x, sigma):
        return 0.5 * gauss.noised_score(x, sigma)

    value = fisher_divergence(
        fn, gauss, n=300, sigma=1.5, generator=torch.Generator().manual_seed(7)
    )
    x = gauss.noised(1.5).sample(300, generator=torch.Generator().manual_seed(7))
    ref = gauss.noised_score(x, 1.5)
    assert value == pytest.approx(float((0.5 * ref - ref).square().sum(1).mean()), rel=1e-12)
    # with points given, the reference is still the noised score at σ
    assert fisher_divergence(fn, gauss, x=x, sigma=1.5) == pytest.approx(value, rel=1e-12)
    # σ = 0 is the clean law; sigma=None keeps the clean law and forwards None
    assert fisher_divergence(fn, gauss, x=x, sigma=0.0) == pytest.approx(
        float((0.5 * gauss.score(x) - gauss.score(x)).square().sum(1).mean()), rel=1e-12
    )
    seen = []
    fisher_divergence(lambda u, s: seen.append(s) or gauss.score(u), gauss, x=x)
    assert seen == [None]


def test_points_with_several_levels_and_other_bad_input_raise(gauss, gen):
    x = gauss.sample(10, generator=gen)
    fn = target_score_fn(gauss)
    with pytest.raises(ScorelabError, match="give n"):
        fisher_divergence(fn, gauss, x=x, sigma=LEVELS)
    with pytest.raises(ScorelabError, match="give n"):
        fisher_divergence(fn, gauss, x=x, sigma=torch.tensor(LEVELS))
    with pytest.raises(ScorelabError, match="sigma"):
        fisher_divergence(fn, gauss, n=10, sigma=[])
    with pytest.raises(ScorelabError, match="sigma"):
        fisher_divergence(fn, gauss, n=10, sigma=torch.ones(2, 2))
    with pytest.raises(ScorelabError, match="sigma"):
        fisher_divergence(fn, gauss, n=10, sigma=[1.0, -1.0])
    with pytest.raises(ScorelabError, match="sigma"):
        fisher_divergence(fn, gauss, n=10, sigma=float("nan"))
    with pytest.raises(ScorelabError, match="exactly one"):
        fisher_divergence(fn, gauss, sigma=LEVELS)


def test_several_levels_need_a_target_with_a_noised_law():
    class Minimal:  # dim / sample / score only
        dim = 1

        def sample(self, n, generator=None):
            return torch.randn(n, 1, generator=generator, dtype=F64)

        def score(self, x):
            return -x

    with pytest.raises(ScorelabError, match="noised"):
        fisher_divergence(lambda x, s: -x, Minimal(), n=10, sigma=[0.1, 1.0])
