"""Statistical and exact checks of scorelab.metrics on laws whose distances are known.

Tolerances for the two-sample metrics come from each estimator's null spread, measured over 40
seeds at the sizes used here (2-D standard normals); each comment gives the numbers. A bound is
kept many null standard deviations above zero and well below the value for a unit mean shift,
so a seed change does not flip the test but a broken estimator does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch

from scorelab._utils import ScorelabError
from scorelab.distributions import GaussianMixture
from scorelab.metrics import (
    WeightReport,
    energy_distance,
    fisher_divergence,
    histogram_kl,
    histogram_tv,
    histogram_tv_to_density,
    median_heuristic,
    mixture_weights,
    mmd,
    sliced_wasserstein,
    wasserstein2,
    weights_from_labels,
)

F64 = torch.float64


def normal(gen: torch.Generator, n: int, d: int = 2, shift: float | list[float] = 0.0):
    """n points of N(shift, I_d) in float64."""
    return torch.randn(n, d, generator=gen, dtype=F64) + torch.as_tensor(shift, dtype=F64)


class StandInMixture:
    """Isotropic Gaussian mixture with exact posterior responsibilities (duck-typed target)."""

    def __init__(self, means: list[list[float]], weights: list[float], std: float) -> None:
        self.means = torch.tensor(means, dtype=F64)
        self.weights = torch.tensor(weights, dtype=F64)
        self.std = std
        self.n_components = len(weights)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(k | x) ∝ w_k N(x; μ_k, std² I), normalised over k."""
        sq = torch.cdist(x.double(), self.means).square()
        return torch.softmax(self.weights.log() - sq / (2 * self.std**2), dim=1)

    def sample_given(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(labels.numel(), self.means.shape[1], generator=gen, dtype=F64)
        return self.means[labels] + self.std * noise

    def sample(self, n: int, generator=None, return_labels: bool = False):
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        x = self.sample_given(labels, generator)
        return (x, labels) if return_labels else x


class StandInGaussian:
    """N(mean, diag(std²)) with its exact score, the duck type fisher_divergence expects."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        self.mean = torch.tensor(mean, dtype=F64)
        self.std = torch.tensor(std, dtype=F64)
        self.dim = len(mean)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        return self.mean + self.std * torch.randn(n, self.dim, generator=generator, dtype=F64)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return -(x - self.mean) / self.std**2


# ---------------------------------------------------------------------------------------------
# mixture weights


def three_blobs() -> StandInMixture:
    # Means 6 apart with std 0.5: a sample sits 6σ past the midpoint before it could be
    # misassigned, so the argmax of the exact posterior equals the label with near certainty.
    return StandInMixture([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]], [0.25, 0.25, 0.5], std=0.5)


def test_argmax_assignment_recovers_labels_and_weights(gen):
    mix = three_blobs()
    x, labels = mix.sample(2000, generator=gen, return_labels=True)
    assert torch.equal(mix.responsibilities(x).argmax(dim=1), labels)
    report = mixture_weights(x, mix)
    assert report.estimated == weights_from_labels(labels, 3).tolist()
    assert report.true == [0.25, 0.25, 0.5]
    expected_tv = 0.5 * sum(abs(a - b) for a, b in zip(report.estimated, report.true, strict=True))
    assert report.tv == pytest.approx(expected_tv, abs=1e-15)
    # Multinomial noise on 2000 draws: each ŵ has sd ≤ 0.012, so tv stays far below 0.05.
    assert 0.0 < report.tv < 0.05


def test_tv_is_zero_when_counts_match_weights(gen):
    mix = three_blobs()
    labels = torch.tensor([0] * 100 + [1] * 100 + [2] * 200)
    report = mixture_weights(mix.sample_given(labels, gen), mix)
    assert report.estimated == [0.25, 0.25, 0.5]
    assert report.tv == 0.0
    assert report.as_dict() == {"estimated": [0.25, 0.25, 0.5], "true": [0.25, 0.25, 0.5], "tv": 0}


def test_tv_detects_a_missing_mode(gen):
    mix = three_blobs()
    labels = torch.tensor([0] * 200 + [2] * 200)  # component 1 (weight 0.25) never visited
    report = mixture_weights(mix.sample_given(labels, gen), mix)
    assert report.estimated == [0.5, 0.0, 0.5]
    assert report.tv == pytest.approx(0.25, abs=1e-15)
    assert isinstance(report, WeightReport)


def test_weights_from_labels_counts_empty_components():
    w = weights_from_labels(torch.tensor([0, 0, 3, 3, 3, 3, 0, 0]), 5)
    assert w.tolist() == [0.5, 0.0, 0.0, 0.5, 0.0]


def test_weight_recovery_with_library_gaussian_mixture(gen):
    mix = GaussianMixture(
        means=torch.tensor([[-6.0, 0.0], [6.0, 0.0]]),
        stds=torch.tensor([0.5, 0.5]),
        weights=torch.tensor([0.25, 0.75]),
    )
    x, labels = mix.sample(4000, generator=gen, return_labels=True)
    report = mixture_weights(x, mix)
    assert report.estimated == weights_from_labels(labels, 2).tolist()
    assert report.tv < 0.03  # binomial sd of ŵ at n=4000 is 0.007


# ---------------------------------------------------------------------------------------------
# MMD and energy distance


def test_mmd_matches_brute_force_formula(gen):
    x, y = normal(gen, 6, 3), normal(gen, 5, 3, shift=0.7)
    h = [0.5, 2.0]
    k = lambda a, b: sum(  # noqa: E731
        np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * s**2)) for s in h
    )
    a, b = x.numpy(), y.numpy()
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    u = (kxx.sum() - np.trace(kxx)) / 30 + (kyy.sum() - np.trace(kyy)) / 20 - 2 * kxy.mean()
    v = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    assert mmd(x, y, h) == pytest.approx(u, rel=1e-12)
    assert mmd(x, y, h, unbiased=False) == pytest.approx(v, rel=1e-12)


def test_mmd_default_bandwidths_are_median_heuristic_times_half_one_two(gen):
    x, y = normal(gen, 40), normal(gen, 31, shift=1.0)
    d = scipy.spatial.distance.pdist(np.concatenate([x.numpy(), y.numpy()]))
    h0 = np.sort(d)[(d.size - 1) // 2]  # lower median, as documented
    assert median_heuristic(x, y) == pytest.approx(h0, rel=1e-12)
    assert mmd(x, y) == pytest.approx(mmd(x, y, [0.5 * h0, h0, 2 * h0]), rel=1e-12)


def test_biased_mmd_of_a_set_with_itself_is_zero(gen):
    x = normal(gen, 50)
    assert mmd(x, x, unbiased=False) == pytest.approx(0.0, abs=1e-12)


def test_mmd_same_law_small_shifted_law_large(gen):
    x, y, z = normal(gen, 1000), normal(gen, 1000), normal(gen, 1000, shift=[1.0, 0.0])
    # Null (same law) at n=1000: mean ≈ 0, sd 0.0012, |max| 0.003 over 40 seeds; a unit shift
    # gives 0.26 ± 0.02. The bound 0.02 is > 15 null sd and < 1/10 of the shifted value.
    assert abs(mmd(x, y)) < 0.02
    assert mmd(x, z) > 0.15


def test_mmd_accepts_numpy(gen):
    x, y = normal(gen, 30), normal(gen, 20)
    assert mmd(x.numpy(), y.numpy()) == mmd(x, y)


def test_energy_distance_same_law_small_shifted_law_large(gen):
    x, y, z = normal(gen, 1000), normal(gen, 1000), normal(gen, 1000, shift=[1.0, 0.0])
    # Null at n=1000: sd 0.0016, |max| 0.004 over 40 seeds. Unit shift in 2-D: 2E‖N(m,2I)‖ −
    # 2E‖N(0,2I)‖ ≈ 0.43 ± 0.03. The bound 0.03 is ~20 null sd.
    assert abs(energy_distance(x, y)) < 0.03
    assert energy_distance(x, z) > 0.3


def test_energy_distance_matches_scipy_up_to_u_versus_v_statistics(gen):
    x, y = normal(gen, 200, 1), normal(gen, 150, 1, shift=0.5)
    a, b = x.numpy().ravel(), y.numpy().ravel()
    # scipy returns sqrt(2E|X−Y| − V_xx − V_yy) with V-statistics V = S/n²; ours uses
    # U = S/(n(n−1)) = V + V/(n−1) within each sample, so ours = scipy² − V_xx/(n−1) − V_yy/(m−1).
    v_xx = np.abs(a[:, None] - a[None]).mean()
    v_yy = np.abs(b[:, None] - b[None]).mean()
    expected = scipy.stats.energy_distance(a, b) ** 2 - v_xx / 199 - v_yy / 149
    assert energy_distance(x, y) == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# optimal transport


def test_sliced_wasserstein_same_law_small_shifted_law_large(gen):
    x, y, z = normal(gen, 1000), normal(gen, 1000), normal(gen, 1000, shift=[1.0, 0.0])
    # Null at n=1000: 0.079 ± 0.013 (max 0.105) — SW₂ between two empirical laws is positive.
    # A unit shift gives ‖m‖/√2 ≈ 0.72 ± 0.03. The bound 0.25 is > 10 null sd above the mean.
    assert sliced_wasserstein(x, y, generator=gen) < 0.25
    assert sliced_wasserstein(x, z, generator=gen) > 0.5


def test_sliced_wasserstein_of_a_shift_is_norm_over_sqrt_d(gen):
    m = [3.0, 4.0]
    x, y = normal(gen, 1000), normal(gen, 1000, shift=m)
    # In 1-D, W₂²(P, Q + c) = (c + ΔE)² + W₂²(centred), so SW₂² = E_θ (θ·m)² + O(1/n) =
    # ‖m‖²/d. Monte Carlo over 2000 directions: sd(cos²φ) = 0.35 → 0.8 % on SW₂; the
    # sample-mean error ‖x̄ − ȳ‖ ≈ 0.045 adds ~1 %. Tolerance 5 %.
    value = sliced_wasserstein(x, y, n_projections=2000, generator=gen)
    assert value == pytest.approx(5.0 / math.sqrt(2), rel=0.05)


def test_sliced_wasserstein_unequal_sizes_and_identity(gen):
    x = normal(gen, 300)
    assert sliced_wasserstein(x, x, generator=gen) == pytest.approx(0.0, abs=1e-12)
    # Duplicating every point leaves the empirical law unchanged; POT's quantile matching with
    # weights 1/300 vs 1/600 leaves ~1e-15 round-off in SW², i.e. ~1e-7 after the square root.
    assert sliced_wasserstein(x, torch.cat([x, x]), generator=gen) == pytest.approx(0.0, abs=1e-6)
    assert sliced_wasserstein(x[:100], normal(gen, 257, shift=2.0), generator=gen) > 1.0


def test_sliced_wasserstein_is_deterministic_given_seed(gen):
    x, y = normal(gen, 200), normal(gen, 300, shift=0.5)
    values = [
        sliced_wasserstein(x, y, n_projections=16, generator=torch.Generator().manual_seed(s))
        for s in (7, 7, 8)
    ]
    assert values[0] == values[1]
    assert values[0] != values[2]  # the generator really drives the projections


def test_wasserstein2_exact_small_cases():
    x = torch.tensor([[0.0], [1.0], [5.0]])
    assert wasserstein2(x, x + 2.5) == pytest.approx(2.5, abs=1e-12)
    # Two points vs their midpoint: each moves 1/2 → W₂ = 1/2 (unequal sizes).
    assert wasserstein2([[0.0, 0.0], [1.0, 0.0]], [[0.5, 0.0]]) == pytest.approx(0.5, abs=1e-12)


def test_wasserstein2_same_law_and_shift(gen):
    m = [3.0, 4.0]
    x, y, z = normal(gen, 500), normal(gen, 500), normal(gen, 500, shift=m)
    # Null at n=500 in 2-D: 0.26 ± 0.02 (max 0.30); a unit shift gives 1.05 ± 0.05.
    assert wasserstein2(x, y) < 0.5
    # W₂² = ‖m + ȳ − x̄‖² + W₂²(centred) ≈ 25 + 0.07; the mean error along m has sd
    # √(2/500) = 0.063, so |W₂ − 5| < 0.25 is a 4-sd band.
    assert wasserstein2(x, z) == pytest.approx(5.0, abs=0.25)


def test_wasserstein2_refuses_large_sets_naming_the_limit(gen):
    x = normal(gen, 11)
    with pytest.raises(ScorelabError, match="max_points=10"):
        wasserstein2(x, x, max_points=10)


# ---------------------------------------------------------------------------------------------
# histograms


def test_histogram_tv_and_kl_same_law_small(gen):
    x, y = torch.randn(5000, 1, generator=gen), torch.randn(5000, 1, generator=gen)
    # 20 bins, 5000 points each: null TV 0.026 ± 0.006 (max 0.035), null KL 0.006 ± 0.004
    # (max 0.023, chi-square-like ≈ (bins−1)/n).
    assert histogram_tv(x, y, bins=20) < 0.06
    assert histogram_kl(x, y, bins=20) < 0.05
    assert histogram_tv(x, y + 1.0, bins=20) > 0.3


def test_histogram_tv_and_kl_disjoint_laws():
    x = torch.linspace(0.0, 1.0, 1000)[:, None]
    y = torch.linspace(2.0, 3.0, 1000)[:, None]
    assert histogram_tv(x, y) == pytest.approx(1.0, abs=1e-12)
    # Each occupied p-bin meets eps in q: KL ≈ log(p_b / eps) ≈ log(0.05 / 1e-10) ≈ 20.
    assert histogram_kl(x, y) > 15.0


def test_histogram_tv_two_dimensional(gen):
    x, y = normal(gen, 5000), normal(gen, 5000)
    assert histogram_tv(x, y, bins=10) < 0.1
    assert histogram_tv(x, normal(gen, 5000, shift=[0.0, 3.0]), bins=10) > 0.7


def test_histogram_explicit_range_drops_outside_points():
    x = torch.tensor([[0.1], [0.6], [9.0]])
    y = torch.tensor([[0.2], [0.7]])
    assert histogram_tv(x, y, bins=2, range=(0.0, 1.0)) == 0.0


def test_histogram_tv_to_density_matches_target_and_catches_wrong_orientation(gen):
    mu = torch.tensor([1.5, -1.0], dtype=F64)

    def log_p(mean):
        return lambda u: -0.5 * ((u - mean) ** 2).sum(dim=1)

    x = normal(gen, 20000, shift=mu.tolist())
    grid = ((-3.0, 6.0), (-5.5, 3.5))
    # Midpoint rule on 30² cells of width 0.3 is accurate to ~1e-3; sampling noise adds ~0.03.
    assert histogram_tv_to_density(x, log_p(mu), bins=30, range=grid) < 0.06
    # The same law with its axes swapped: wrong if the grid were flattened in the wrong order.
    assert histogram_tv_to_density(x, log_p(mu.flip(0)), bins=30, range=grid) > 0.5


def test_histogram_tv_to_density_one_dimensional(gen):
    x = torch.randn(20000, 1, generator=gen)
    # Null at n=20000, 30 bins on (−4, 4): 0.012 ± 0.002 (max 0.018) over 40 seeds.
    assert histogram_tv_to_density(x, lambda u: -0.5 * u[:, 0] ** 2, 30, (-4.0, 4.0)) < 0.04
    assert histogram_tv_to_density(x, lambda u: -0.5 * (u[:, 0] - 2) ** 2, 30, (-4.0, 4.0)) > 0.5


# ---------------------------------------------------------------------------------------------
# Fisher divergence


def test_fisher_divergence_exact_score_is_zero(gen):
    target = StandInGaussian([1.0, -2.0, 0.5], [0.5, 2.0, 1.0])
    assert fisher_divergence(lambda x, s: target.score(x), target, n=500, generator=gen) == 0.0


def test_fisher_divergence_of_constant_shift_is_its_squared_norm(gen):
    target = StandInGaussian([1.0, -2.0, 0.5], [0.5, 2.0, 1.0])
    c = torch.tensor([0.3, -1.2, 2.0], dtype=F64)
    value = fisher_divergence(lambda x, s: target.score(x) + c, target, n=500, generator=gen)
    assert value == pytest.approx(float(c @ c), rel=1e-12)


def test_fisher_divergence_given_points_and_sigma_forwarding(gen):
    from scorelab.distributions import Gaussian

    target = Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    x = target.noised(0.1).sample(64, generator=gen)
    seen = []

    def score_fn(pts, sigma):
        seen.append(sigma)
        # twice the exact noised score −x/(1 + σ²): the error is ‖x‖²/(1 + σ²)²
        return -2.0 * pts / (1.0 + 0.1**2)

    value = fisher_divergence(score_fn, target, x=x, sigma=0.1)
    want = float(x.square().sum(1).mean()) / (1.0 + 0.1**2) ** 2
    assert value == pytest.approx(want, rel=1e-12)
    assert seen[0].shape == (64,) and bool((seen[0] == 0.1).all())
    fisher_divergence(score_fn, target, x=x)
    assert seen[1] is None
    # a noise level needs an exact noised law; a bare stand-in has none
    bare = StandInGaussian([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ScorelabError, match="exact noised law"):
        fisher_divergence(score_fn, bare, x=x, sigma=0.1)


def test_fisher_divergence_sampling_is_seeded():
    target = StandInGaussian([0.0, 0.0], [1.0, 1.0])
    fn = lambda x, s: 0.5 * target.score(x)  # noqa: E731
    a, b = (
        fisher_divergence(fn, target, n=100, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    )
    assert a == b


# ---------------------------------------------------------------------------------------------
# bad input


TWO_SAMPLE = [mmd, energy_distance, sliced_wasserstein, wasserstein2, histogram_tv, histogram_kl]
GOOD = torch.zeros(5, 2).normal_(generator=torch.Generator().manual_seed(0))
NAN = GOOD.clone()
NAN[2, 1] = float("nan")
INF = GOOD.clone()
INF[0, 0] = float("inf")
BAD_PAIRS = {
    "one-dimensional": (GOOD[:, 0], GOOD),
    "three-dimensional": (GOOD[None], GOOD),
    "mismatched d": (GOOD, torch.zeros(5, 3)),
    "empty": (GOOD[:0], GOOD),
    "zero-width": (torch.zeros(5, 0), torch.zeros(5, 0)),
    "nan": (NAN, GOOD),
    "inf": (GOOD, INF),
}


@pytest.mark.parametrize("fn", TWO_SAMPLE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", list(BAD_PAIRS))
def test_two_sample_metrics_reject_bad_input(fn, case):
    x, y = BAD_PAIRS[case]
    with pytest.raises(ScorelabError):
        fn(x, y)


def test_other_bad_arguments(gen):
    x = normal(gen, 10)
    with pytest.raises(ScorelabError, match="d=3"):
        histogram_tv(normal(gen, 10, 3), normal(gen, 10, 3))
    with pytest.raises(ScorelabError, match="d=3"):
        histogram_tv_to_density(normal(gen, 10, 3), lambda u: u.sum(1))
    with pytest.raises(ScorelabError, match="NaN"):
        histogram_tv_to_density(x, lambda u: u.sum(1) * float("nan"))
    with pytest.raises(ScorelabError, match="range"):
        histogram_tv(x, x, range=((0.0, 1.0),))
    with pytest.raises(ScorelabError, match="no point"):
        histogram_tv(x, x, range=((50.0, 51.0), (50.0, 51.0)))
    with pytest.raises(ScorelabError, match="bandwidths"):
        mmd(x, x, [1.0, -1.0])
    with pytest.raises(ScorelabError, match="at least 2"):
        energy_distance(x[:1], x)
    with pytest.raises(ScorelabError, match="n_projections"):
        sliced_wasserstein(x, x, n_projections=0)
    with pytest.raises(ScorelabError, match="labels"):
        weights_from_labels(torch.tensor([0, 3]), 3)
    with pytest.raises(ScorelabError, match="integers"):
        weights_from_labels(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ScorelabError, match="responsibilities"):
        mixture_weights(x, _WrongShapeMixture())
    target = StandInGaussian([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ScorelabError, match="exactly one"):
        fisher_divergence(lambda u, s: u, target)
    with pytest.raises(ScorelabError, match="exactly one"):
        fisher_divergence(lambda u, s: u, target, n=5, x=x)
    with pytest.raises(ScorelabError, match="dimension"):
        fisher_divergence(lambda u, s: u, target, x=normal(gen, 5, 3))
    with pytest.raises(ScorelabError, match="score_fn returned NaN"):
        fisher_divergence(lambda u, s: u * float("nan"), target, x=x)


class _WrongShapeMixture:
    n_components = 3
    weights = torch.tensor([0.25, 0.25, 0.5])

    def responsibilities(self, x):
        return torch.ones(x.shape[0], 2) / 2


def test_mixture_weights_survive_far_but_finite_points():
    """Chains far out are finite but overflow (or cannot be told apart) in float32.

    At |x| = 1e19, ‖x − μ‖² ≈ 1e38 sits at float32's limit: the report must not crash (the
    assignment itself is arbitrary there, even in float64).  At x = 1e12 the two components'
    log-densities differ by 10·x = 1e13, below float32's resolution (≈ 6e16 at 1e24) but
    well above float64's (≈ 1e8): computed in float64 the point goes to the nearer mode.
    """
    from scorelab.distributions import seed001_fig3

    huge = torch.tensor([[1.6e19, 5.0], [-5.0, 5.0], [5.0, 5.0]])
    assert sum(mixture_weights(huge, seed001_fig3()).estimated) == pytest.approx(1.0)
    far = torch.tensor([[1e12, 5.0], [-5.0, 5.0], [5.0, 5.0]])
    assert mixture_weights(far, seed001_fig3()).estimated == pytest.approx([1 / 3, 2 / 3])
