"""Toy 2-D targets and the log-concave mixture: score = ∇ log p, normalisation, moments, noising.

Reference values come from the densities themselves, integrated on a midpoint grid. Every
density here is analytic, with smoothness length ℓ ≥ its noise width, and the grid step is
h ≤ ℓ/2.5, so the midpoint rule is spectrally accurate (error ~ exp(−2π²(ℓ/h)²) < 1e-50);
the boxes reach 8 noise widths beyond the support, so truncation drops < exp(−32) ≈ 1e-14.
What is left is float64 round-off over ~1e4–1e5 terms (≲ 1e-12; measured ≤ 5e-16), so the
mass tolerance of 1e-9 has a 1000× margin and still catches any wrong constant down to 1e-9
(float32-rounded quadrature weights, for one, move the moons' mass by 5e-9).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from scorelab._utils import ScorelabError
from scorelab.distributions.base import Target
from scorelab.distributions.logconcave import LogConcaveMixture, log_normaliser
from scorelab.distributions.toy import Checkerboard, NoisedCheckerboard, NoisyCircle, TwoMoons

N_SAMPLES = 20_000
# Each statistic is compared at 5 standard errors: for a normal sampling error the two-sided
# false-alarm rate is 6e-7 per check (≈ 1e-4 over the whole file), while a bias of the size
# of a wrong formula (e.g. a missing scale or noise term) is tens of standard errors.
Z_TOL = 5.0

F64 = torch.float64


@dataclass(frozen=True)
class Case:
    """A target, a box that holds its mass, and a grid step below its smoothness length / 2.5."""

    make: Callable[[], Target]
    box: tuple[float, float, float, float]  # x-lo, x-hi, y-lo, y-hi
    h: float


def _lcm() -> LogConcaveMixture:
    return LogConcaveMixture(
        [[-2.0, 0.0], [2.0, 1.0]], [0.5, 0.8], [0.3, 0.7], tilt=2.0, dtype=torch.float64
    )


# noise widths: circle 0.1; noised circle √(0.5²·0.3² + 0.2²) = 0.25; moons 0.1; noised moons
# √(0.5²·0.3² + 0.1²) = 0.18; noised board 0.2; log-concave s ≥ 0.5 (tails lighter than s·N).
# The noised cases shrink (scale ½) a wide base law: a noised() that forgot to scale the base
# noise would be off by ≥ 30 standard errors in the second moments.
CASES: dict[str, Case] = {
    "circle": Case(lambda: NoisyCircle(1.5, 0.1), (-2.3, 2.3, -2.3, 2.3), 0.04),
    "noised_circle": Case(
        lambda: NoisyCircle(1.5, 0.3).noised(0.2, scale=0.5), (-2.75, 2.75, -2.75, 2.75), 0.1
    ),
    "moons": Case(lambda: TwoMoons(0.1), (-1.8, 2.8, -1.3, 1.8), 0.04),
    "noised_moons": Case(
        lambda: TwoMoons(0.3).noised(0.1, scale=0.5), (-2.0, 2.5, -1.75, 2.0), 0.07
    ),
    "noised_board": Case(lambda: Checkerboard(4, 4.0).noised(0.2), (-3.6, 3.6, -3.6, 3.6), 0.08),
    "logconcave": Case(_lcm, (-6.0, 8.5, -6.5, 8.5), 0.1),
}


def _grid(case: Case) -> tuple[torch.Tensor, float]:
    """Midpoint-rule nodes (M, 2) in float64 and the cell area."""
    x0, x1, y0, y1 = case.box
    nx, ny = round((x1 - x0) / case.h), round((y1 - y0) / case.h)
    hx, hy = (x1 - x0) / nx, (y1 - y0) / ny
    gx = x0 + hx * (torch.arange(nx, dtype=F64) + 0.5)
    gy = y0 + hy * (torch.arange(ny, dtype=F64) + 0.5)
    xx, yy = torch.meshgrid(gx, gy, indexing="ij")
    return torch.stack([xx.ravel(), yy.ravel()], dim=1), hx * hy


def _stats(x: torch.Tensor) -> torch.Tensor:
    """Per-point statistics whose means are compared: x, y, x², y², xy."""
    x = x.to(F64)
    return torch.stack([x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 1] ** 2, x[:, 0] * x[:, 1]], 1)


def _grid_law(target: Target, case: Case) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(mass, E f, Var f) of the statistics f under exp(log_prob), by the midpoint rule."""
    pts, area = _grid(case)
    w = target.log_prob(pts).exp() * area
    mass = float(w.sum())
    f = _stats(pts)
    mean = (w[:, None] * f).sum(0) / mass
    var = (w[:, None] * f**2).sum(0) / mass - mean**2
    return mass, mean, var


def _assert_means_match(sample_mean, mean, var, n, *, two_sample: bool = False) -> None:
    # Standard error of a mean of n i.i.d. values is √(Var f / n); the difference of two
    # independent sample means has variance 2·Var f / n.
    se = torch.sqrt(var * (2.0 if two_sample else 1.0) / n)
    z = (sample_mean - mean).abs() / se
    assert bool((z < Z_TOL).all()), f"z-scores {z.tolist()} (mean {mean.tolist()})"


def _far_and_random_points(case: Case, g: torch.Generator) -> torch.Tensor:
    x0, x1, y0, y1 = case.box
    u = torch.rand(64, 2, generator=g, dtype=F64)
    inside = torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], 1)
    far = torch.tensor(
        [[50.0, -40.0], [1e3, 2.0], [-30.0, 0.5], [0.0, 25.0], [-200.0, -300.0]], dtype=F64
    )
    return torch.cat([inside, far])


# -- generic properties of every target with a density ------------------------------------------
@pytest.mark.parametrize("key", list(CASES))
def test_score_is_gradient_of_log_prob(key: str, gen: torch.Generator) -> None:
    case = CASES[key]
    target = case.make()
    x = _far_and_random_points(case, gen).requires_grad_(True)
    log_p = target.log_prob(x)
    assert bool(torch.isfinite(log_p).all())
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    score = target.score(x.detach())
    assert score.shape == x.shape and score.dtype == F64
    torch.testing.assert_close(score, grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("key", list(CASES))
def test_log_prob_integrates_to_one(key: str) -> None:
    case = CASES[key]
    mass, _, _ = _grid_law(case.make(), case)
    assert mass == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("key", list(CASES))
def test_sample_moments_match_density(key: str, gen: torch.Generator) -> None:
    case = CASES[key]
    target = case.make()
    _, mean, var = _grid_law(target, case)
    x = target.sample(N_SAMPLES, generator=gen)
    assert x.shape == (N_SAMPLES, 2)
    _assert_means_match(_stats(x).mean(0), mean, var, N_SAMPLES)


@pytest.mark.parametrize("key", list(CASES))
def test_same_seed_same_samples(key: str) -> None:
    target = CASES[key].make()
    a = target.sample(500, generator=torch.Generator().manual_seed(7))
    b = target.sample(500, generator=torch.Generator().manual_seed(7))
    c = target.sample(500, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("make", [c.make for c in CASES.values()] + [Checkerboard])
def test_sample_sizes(make) -> None:
    target = make()
    assert target.sample(0, generator=torch.Generator().manual_seed(0)).shape == (0, 2)
    with pytest.raises(ScorelabError, match="non-negative"):
        target.sample(-1)


@pytest.mark.parametrize("key", ["circle", "moons", "noised_board"])
def test_float32_inputs_stay_float32(key: str) -> None:
    target = CASES[key].make()
    x = torch.tensor([[0.3, -0.2], [40.0, 1.0]], dtype=torch.float32)
    assert target.log_prob(x).dtype == torch.float32
    s = target.score(x)
    assert s.dtype == torch.float32 and bool(torch.isfinite(s).all())
    torch.testing.assert_close(s.double(), target.score(x.double()), rtol=1e-3, atol=1e-3)


# -- noising ------------------------------------------------------------------------------------
NOISED = {
    # base target, sigma, scale, case for the noised law
    "circle": (lambda: NoisyCircle(1.5, 0.3), 0.2, 0.5, CASES["noised_circle"]),
    "moons": (lambda: TwoMoons(0.3), 0.1, 0.5, CASES["noised_moons"]),
    "board": (lambda: Checkerboard(4, 4.0), 0.2, 1.0, CASES["noised_board"]),
    "board_scaled": (
        lambda: Checkerboard(4, 4.0),
        0.25,
        0.6,
        Case(lambda: None, (-3.2, 3.2, -3.2, 3.2), 0.1),
    ),
}


@pytest.mark.parametrize("key", list(NOISED))
def test_noised_matches_simulation(key: str, gen: torch.Generator) -> None:
    make, sigma, scale, case = NOISED[key]
    base = make()
    noised = base.noised(sigma, scale=scale)
    mass, mean, var = _grid_law(noised, case)
    assert mass == pytest.approx(1.0, abs=1e-9)
    x = base.sample(N_SAMPLES, generator=gen)
    sim = scale * x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    direct = noised.sample(N_SAMPLES, generator=gen)
    # simulation vs the noised density (one-sample), and vs the noised sampler (two-sample)
    _assert_means_match(_stats(sim).mean(0), mean, var, N_SAMPLES)
    _assert_means_match(
        _stats(sim).mean(0), _stats(direct).mean(0), var, N_SAMPLES, two_sample=True
    )


def test_noising_composes() -> None:
    """noised(σ₂, a₂) ∘ noised(σ₁, a₁) = noised(√(a₂²σ₁² + σ₂²), a₂a₁) for closed families."""
    x = torch.tensor([[0.1, 0.2], [1.5, -0.7], [3.0, 3.0]], dtype=F64)
    for base in (NoisyCircle(1.0, 0.1), TwoMoons(0.1), Checkerboard(4, 4.0)):
        twice = base.noised(0.3, scale=0.9).noised(0.2, scale=0.5)
        once = base.noised(math.hypot(0.5 * 0.3, 0.2), scale=0.45)
        torch.testing.assert_close(twice.log_prob(x), once.log_prob(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: NoisyCircle(1.0, 0.1),
        lambda: NoisyCircle(1.0, 0.0),
        lambda: TwoMoons(0.1),
        lambda: TwoMoons(0.1).noised(0.1, scale=0.5),
        lambda: Checkerboard(4, 4.0),
        lambda: Checkerboard(4, 4.0).noised(0.2, scale=0.7),
    ],
)
def test_batched_noised_score_matches_per_level_noised_law(make, gen: torch.Generator) -> None:
    """noised_score(x, σ) with a per-sample σ equals noised(σᵢ).score row by row."""
    target = make()
    x = 3.0 * torch.randn(12, 2, generator=gen, dtype=F64)
    sigma = torch.tensor([0.05, 0.3, 1.0, 4.0], dtype=F64).repeat(3)
    got = target.noised_score(x, sigma)
    want = torch.cat([target.noised(float(s)).score(x[i : i + 1]) for i, s in enumerate(sigma)])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    if getattr(target, "noise", getattr(target, "sigma", 0.0)) > 0:  # σ = 0 rows: the target
        torch.testing.assert_close(target.noised_score(x, 0.0), target.score(x))


def test_noise_free_targets_have_no_score_at_sigma_zero() -> None:
    x = torch.zeros(3, 2, dtype=F64)
    sigma = torch.tensor([0.1, 0.0, 0.2], dtype=F64)
    for target in (Checkerboard(), NoisyCircle(1.0, 0.0), TwoMoons(0.0)):
        with pytest.raises(ScorelabError, match="noised"):
            target.noised_score(x, sigma)


def test_bad_noise_arguments_raise() -> None:
    with pytest.raises(ScorelabError):
        NoisyCircle().noised(-0.1)
    with pytest.raises(ScorelabError):
        TwoMoons().noised(0.1, scale=0.0)
    with pytest.raises(ScorelabError):
        Checkerboard().noised(0.0)
    with pytest.raises(ScorelabError):
        _lcm().noised(0.1)


# -- circle ---------------------------------------------------------------------------------------
def test_circle_score_at_origin_is_zero_and_density_is_radial() -> None:
    c = NoisyCircle(1.0, 0.3)
    torch.testing.assert_close(c.score(torch.zeros(1, 2, dtype=F64)), torch.zeros(1, 2, dtype=F64))
    theta = torch.linspace(0, 2 * math.pi, 7, dtype=F64)
    ring = 1.2 * torch.stack([theta.cos(), theta.sin()], 1)
    lp = c.log_prob(ring)
    torch.testing.assert_close(lp, lp[:1].expand_as(lp))


def test_circle_without_noise_is_a_curve() -> None:
    c = NoisyCircle(2.0, 0.0)
    x = c.sample(1000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.norm(dim=1), torch.full((1000,), 2.0), rtol=1e-6, atol=1e-6)
    with pytest.raises(ScorelabError, match="noised"):
        c.log_prob(x)
    with pytest.raises(ScorelabError):
        NoisyCircle(1.0, -0.1)


# -- moons ----------------------------------------------------------------------------------------
def test_moons_without_noise_lie_on_the_arcs() -> None:
    x = TwoMoons(0.0).sample(2000, generator=torch.Generator().manual_seed(0)).double()
    upper = ((x.norm(dim=1) - 1).abs() < 1e-6) & (x[:, 1] >= -1e-6)
    lower = (((x - torch.tensor([1.0, 0.5], dtype=F64)).norm(dim=1) - 1).abs() < 1e-6) & (
        x[:, 1] <= 0.5 + 1e-6
    )
    assert bool((upper | lower).all())
    # each moon has mass ½: the count of the upper one is Binomial(2000, ½), sd ≈ 22
    assert abs(int(upper.sum()) - 1000) < Z_TOL * 22.4


def test_moons_quadrature_is_converged() -> None:
    """The documented claim: 512 nodes at noise 0.1, and the auto-raised count at noise 0.005."""
    x = torch.tensor([[0.0, 1.0], [1.0, -0.5], [0.5, 0.25], [2.0, 0.5], [-1.0, 0.05]], dtype=F64)
    ref = TwoMoons(0.1, n_nodes=2048)
    torch.testing.assert_close(TwoMoons(0.1).log_prob(x), ref.log_prob(x), rtol=0, atol=1e-9)
    fine = TwoMoons(0.005, n_nodes=4096)
    # n_nodes=64 is raised to ⌈π²/0.005⌉ = 1974 nodes, keeping the spacing at noise/2
    auto = TwoMoons(0.005, n_nodes=64)
    torch.testing.assert_close(auto.log_prob(x), fine.log_prob(x), rtol=0, atol=1e-7)
    torch.testing.assert_close(auto.score(x), fine.score(x), rtol=1e-6, atol=1e-4)


# -- checkerboard ---------------------------------------------------------------------------------
def test_checkerboard_log_prob_and_score() -> None:
    board = Checkerboard(4, 4.0)  # 8 dark unit squares: density 1/8 on them
    dark = torch.tensor([[-1.5, -1.5], [-0.5, -0.5], [0.5, -1.5], [1.9, 1.9]], dtype=F64)
    light = torch.tensor([[-0.5, -1.5], [1.5, 0.5], [-1.5, 1.5]], dtype=F64)
    outside = torch.tensor([[2.5, 0.0], [0.0, -2.1], [1e6, 1e6]], dtype=F64)
    torch.testing.assert_close(board.log_prob(dark), torch.full((4,), -math.log(8.0), dtype=F64))
    assert bool(torch.isneginf(board.log_prob(torch.cat([light, outside]))).all())
    with pytest.raises(ScorelabError, match=r"noised\(sigma\)"):
        board.score(dark)


def test_checkerboard_samples_fill_dark_squares_evenly(gen: torch.Generator) -> None:
    board = Checkerboard(4, 4.0)
    x = board.sample(N_SAMPLES, generator=gen).double()
    assert bool(torch.isfinite(board.log_prob(x)).all())
    cell = torch.floor(x + 2.0).long()
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16).double()
    dark = torch.tensor([(i + j) % 2 == 0 for i in range(4) for j in range(4)])
    assert bool((counts[~dark] == 0).all())
    # each dark count is Binomial(n, 1/8): sd = √(n·(1/8)(7/8))
    sd = math.sqrt(N_SAMPLES * (1 / 8) * (7 / 8))
    assert bool(((counts[dark] - N_SAMPLES / 8).abs() < Z_TOL * sd).all())


def test_noised_checkerboard_far_away_is_finite_and_points_back() -> None:
    nb = NoisedCheckerboard(4, 4.0, sigma=0.05)
    x = torch.tensor([[30.0, 0.5], [-1e4, -1e4]], dtype=F64)
    lp, s = nb.log_prob(x), nb.score(x)
    assert bool(torch.isfinite(lp).all() and torch.isfinite(s).all())
    # far away the nearest corner/edge dominates: score ≈ −(x − nearest point)/σ²
    torch.testing.assert_close(s[0], torch.tensor([-(30.0 - 2.0) / 0.05**2, 0.0], dtype=F64),
                               rtol=1e-3, atol=1e-3 / 0.05**2)  # fmt: skip
    assert bool((s[1] > 0).all())


def test_board_arguments_validated() -> None:
    with pytest.raises(ScorelabError):
        Checkerboard(0, 4.0)
    with pytest.raises(ScorelabError):
        Checkerboard(4, -1.0)
    with pytest.raises(ScorelabError):
        NoisedCheckerboard(4, 4.0, sigma=0.0)


# -- log-concave mixture --------------------------------------------------------------------------
@pytest.mark.parametrize("tilt", [0.0, 0.5, 1.0, 3.0, 20.0])
def test_log_normaliser_matches_quad(tilt: float) -> None:
    def f(u: float) -> float:
        log_sech = -abs(u) - math.log1p(math.exp(-2 * abs(u))) + math.log(2.0)
        return math.exp(-0.5 * u * u + tilt * log_sech)

    val, err = integrate.quad(f, -np.inf, np.inf, epsabs=0.0, epsrel=1e-13, limit=200)
    assert err < 1e-12 * val
    assert log_normaliser(tilt) == pytest.approx(math.log(val), abs=1e-10)


def test_logconcave_components_are_strongly_log_concave(gen: torch.Generator) -> None:
    """Hessian of −log pₖ has eigenvalues in [1/sₖ², (1 + c)/sₖ²], and c > 0 is not Gaussian."""
    m = _lcm()
    pts = 3.0 * torch.randn(12, 2, generator=gen, dtype=F64)
    for k in range(m.n_components):
        comp = LogConcaveMixture(m.means[k : k + 1], m.scales[k : k + 1], tilt=m.tilt, dtype=F64)

        def neg_log_p(x: torch.Tensor, comp=comp) -> torch.Tensor:
            return -comp.log_prob(x[None])[0]

        eig = torch.stack(
            [torch.linalg.eigvalsh(torch.autograd.functional.hessian(neg_log_p, p)) for p in pts]
        )
        alpha, beta = float(m.strong_convexity[k]), float(m.smoothness[k])
        assert float(eig.min()) >= alpha - 1e-9
        assert float(eig.max()) <= beta + 1e-9
        assert float(eig.max() - eig.min()) > 0.1 * alpha  # curvature varies: not Gaussian


def test_logconcave_draws_have_law_q(gen: torch.Generator) -> None:
    """Standardised draws (x − μₖ)/sₖ of the labelled components are i.i.d. q: KS + moments."""
    m = _lcm()
    # 5e4 draws (1e5 coordinates): a 2% error in the scale of the draws is then ≥ 7 SE in E u²
    x, labels = m.sample(50_000, generator=gen, return_labels=True)
    u = ((x - m.means[labels]) / m.scales[labels, None]).ravel().numpy()
    grid = np.linspace(-8.0, 8.0, 16_001)
    # q from its definition, independent of the class: e^{−u²/2} sech(u)ᶜ / Z_c
    log_sech = -np.abs(grid) - np.log1p(np.exp(-2.0 * np.abs(grid))) + math.log(2.0)
    dens = np.exp(-0.5 * grid**2 + m.tilt * log_sech - m.log_z)
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
    assert cdf[-1] == pytest.approx(1.0, abs=1e-9)
    assert stats.kstest(u, lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3
    # E u², E u⁴ against quadrature; SE of a mean of n = 2N values is √(Var/n)
    f = np.stack([grid**2, grid**4])
    mean = integrate.trapezoid(f * dens, grid)
    var = integrate.trapezoid(f**2 * dens, grid) - mean**2
    sample_mean = np.stack([u**2, u**4]).mean(1)
    assert np.all(np.abs(sample_mean - mean) < Z_TOL * np.sqrt(var / u.size))


def test_logconcave_labels_and_responsibilities(gen: torch.Generator) -> None:
    m = _lcm()
    x, labels = m.sample(N_SAMPLES, generator=gen, return_labels=True)
    r = m.responsibilities(x)
    torch.testing.assert_close(r.sum(1), torch.ones(N_SAMPLES, dtype=F64))
    # label frequencies and E[rₖ(X)] both estimate wₖ; SE ≤ √(wₖ(1 − wₖ)/n)
    se = torch.sqrt(m.weights * (1 - m.weights) / N_SAMPLES)
    freq = torch.bincount(labels, minlength=2).double() / N_SAMPLES
    assert bool(((freq - m.weights).abs() < Z_TOL * se).all())
    assert bool(((r.mean(0) - m.weights).abs() < Z_TOL * se).all())
    # components are 4 widths apart: the posterior recovers the label almost always
    assert float((r.argmax(1) == labels).double().mean()) > 0.99


def test_logconcave_tilt_zero_is_a_gaussian_mixture() -> None:
    m = LogConcaveMixture([[-1.0, 0.0], [1.0, 2.0]], [0.7, 1.3], [0.4, 0.6], tilt=0.0, dtype=F64)
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-3.0, 4.0]], dtype=F64)
    comps = torch.distributions.Normal(m.means[None], m.scales[None, :, None])
    ref = torch.logsumexp(comps.log_prob(x[:, None]).sum(2) + m.weights.log(), dim=1)
    torch.testing.assert_close(m.log_prob(x), ref)


def test_logconcave_arguments_validated() -> None:
    with pytest.raises(ScorelabError):
        LogConcaveMixture([[0.0, 0.0]], [-1.0])
    with pytest.raises(ScorelabError):
        LogConcaveMixture([[0.0, 0.0]], [1.0], tilt=-0.5)
    with pytest.raises(ScorelabError):
        LogConcaveMixture([[0.0, 0.0], [1.0, 1.0]], 1.0, weights=[1.0, -1.0])
    with pytest.raises(ScorelabError):
        LogConcaveMixture([[0.0, 0.0], [1.0, 1.0]], 1.0, weights=[1.0, math.inf])
    with pytest.raises(ScorelabError):
        LogConcaveMixture([0.0, 0.0], 1.0)
    with pytest.raises(ScorelabError):
        _lcm().log_prob(torch.zeros(3, 3))
