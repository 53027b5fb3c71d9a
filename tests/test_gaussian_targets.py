"""Exact and statistical checks of GaussianMixture / Gaussian and the named presets.

Exact identities (score = ∇ log p, normalisation, noised laws, responsibilities) are checked in
float64 against independent references (torch.distributions, autograd, grid quadrature) with
tolerances a few orders above float64 rounding.  Sampling is checked through moments: every
moment bound is 4 standard errors, computed from the exact variance (means, label frequencies)
or from the sample spread of the products (covariances).  At 4 s.e. a correct sampler fails a
single comparison with probability ~6e-5 (and the seeds are fixed), while the errors these
tests guard against (a transposed rotation, σ for σ², a missing scale) move a moment by tens of
standard errors at n = 50 000.
"""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from scorelab._utils import ScorelabError
from scorelab.distributions import (
    Gaussian,
    GaussianMixture,
    ncsn_toy,
    seed000_mixture,
    seed001_fig3,
    seed001_fig10,
    target_score_fn,
)

F64 = torch.float64
N_SAMPLES = 50_000
N_SE = 4.0  # standard errors allowed per moment (see module docstring)


# -- reference mixtures (float64), each with its parameters in full-matrix form ---------------


def _t(v) -> torch.Tensor:
    return torch.tensor(v, dtype=F64)


def _rotation(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return _t([[c, -s], [s, c]])


def _full_covs_2d() -> torch.Tensor:
    """Three SPD matrices with distinct eigenvalues and eigenvector rotations."""
    covs = []
    for theta, lam in [(0.3, (1.0, 0.2)), (1.1, (2.0, 0.5)), (-0.7, (0.6, 1.5))]:
        r = _rotation(theta)
        covs.append(r @ torch.diag(_t(lam)) @ r.T)
    return torch.stack(covs)


def _full_covs_3d() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    a = torch.randn(2, 3, 3, generator=g, dtype=F64)
    return a @ a.transpose(1, 2) + 0.3 * torch.eye(3, dtype=F64)


def _case(name: str):
    """(target, means (K, d), full covariances (K, d, d), normalised weights (K,))."""
    if name == "full":
        means, covs, w = _t([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]]), _full_covs_2d(), [2, 5, 3]
        return GaussianMixture(means, covs, w, dtype=F64), means, covs, _t(w) / 10
    if name == "full3d":
        means, covs = _t([[0.0, 1.0, -1.0], [2.0, -1.0, 0.5]]), _full_covs_3d()
        return GaussianMixture(means, covs, [0.7, 0.3], dtype=F64), means, covs, _t([0.7, 0.3])
    if name == "diagonal":
        means, diag = (
            _t([[0.0, 1.0, -1.0], [2.0, 0.0, 1.0]]),
            _t([[1.0, 0.5, 2.0], [0.3, 1.2, 0.8]]),
        )
        gm = GaussianMixture(means, diag, [0.6, 0.4], dtype=F64)
        return gm, means, torch.diag_embed(diag), _t([0.6, 0.4])
    if name == "isotropic":
        means, var = _t([[0.0, 0.0], [3.0, 1.0], [-1.0, 2.5]]), _t([0.5, 1.0, 2.0])
        gm = GaussianMixture(means, var, [1.0, 1.0, 2.0], dtype=F64)
        covs = var[:, None, None] * torch.eye(2, dtype=F64)
        return gm, means, covs, _t([0.25, 0.25, 0.5])
    if name == "scalar":
        means = _t([[-1.0, 0.5], [2.0, -0.5]])
        gm = GaussianMixture(means, 0.7, dtype=F64)  # default weights: uniform
        return gm, means, 0.7 * torch.eye(2, dtype=F64).expand(2, 2, 2), _t([0.5, 0.5])
    if name == "stds":
        means = _t([[-1.0, 0.5], [2.0, -0.5]])
        gm = GaussianMixture(means, stds=[0.5, 2.0], weights=[0.3, 0.7], dtype=F64)
        covs = _t([0.25, 4.0])[:, None, None] * torch.eye(2, dtype=F64)
        return gm, means, covs, _t([0.3, 0.7])
    if name == "gaussian_full":
        mean, cov = _t([1.0, -2.0]), _full_covs_2d()[1]
        return Gaussian(mean, cov, dtype=F64), mean[None], cov[None], _t([1.0])
    if name == "gaussian_diag":
        mean, diag = _t([0.5, 0.0, -0.5]), _t([1.0, 3.0, 0.2])
        return Gaussian(mean, diag, dtype=F64), mean[None], torch.diag(diag)[None], _t([1.0])
    raise AssertionError(name)


CASES = [
    "full",
    "full3d",
    "diagonal",
    "isotropic",
    "scalar",
    "stds",
    "gaussian_full",
    "gaussian_diag",
]


def _reference(means, covs, w) -> MixtureSameFamily:
    return MixtureSameFamily(
        Categorical(probs=w), MultivariateNormal(means, covariance_matrix=covs)
    )


def _mixture_moments(means, covs, w) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Σ wμ and covariance Σ w(Σ + μμᵀ) − mmᵀ of a Gaussian mixture."""
    m = (w[:, None] * means).sum(0)
    second = (w[:, None, None] * (covs + means[:, :, None] * means[:, None, :])).sum(0)
    return m, second - torch.outer(m, m)


def _assert_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    """Sample mean within N_SE·√(Σⱼⱼ/n); each sample covariance entry within N_SE of its s.e.

    The s.e. of the (j, k) covariance entry is the spread of (xⱼ − x̄ⱼ)(xₖ − x̄ₖ) over √n (the
    centring by x̄ changes it by O(1/n)).
    """
    n = x.shape[0]
    x = x.double()
    se_mean = (cov.diagonal() / n).sqrt()
    err_mean = (x.mean(0) - mean).abs()
    assert bool((err_mean <= N_SE * se_mean).all()), (err_mean / se_mean).tolist()
    c = x - x.mean(0)
    prods = c[:, :, None] * c[:, None, :]
    s = prods.sum(0) / (n - 1)
    se_cov = prods.std(0) / math.sqrt(n)
    err_cov = (s - cov).abs()
    assert bool((err_cov <= N_SE * se_cov).all()), (err_cov / se_cov).tolist()


def _test_points(d: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(near points around the modes, far points with ‖x‖ = 50 in random directions)."""
    near = 2.5 * torch.randn(40, d, generator=gen, dtype=F64)
    u = torch.randn(20, d, generator=gen, dtype=F64)
    far = 50.0 * u / u.norm(dim=1, keepdim=True)
    return near, far


def _saturated_far_points(means, covs, w) -> torch.Tensor:
    """Points at ‖x‖ = 50 where the posterior over components is one-hot, by construction.

    Directions are fixed, not drawn (± every coordinate axis and ± every eigenvector of every
    Σₖ), and a point is kept only if the log-odds between its best and second-best component,
    computed independently with torch.distributions, is ≥ 40 nats: there every other component
    has posterior ≤ (K − 1)·e⁻⁴⁰ < 1e-17, i.e. the softmax is saturated to float64 precision.
    """
    d = means.shape[1]
    dirs = torch.cat([torch.eye(d, dtype=F64)] + [torch.linalg.eigh(c)[1].T for c in covs])
    x = 50.0 * torch.cat([dirs, -dirs])
    joint = MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :]) + w.log()
    top2 = joint.topk(2, dim=1).values
    keep = top2[:, 0] - top2[:, 1] >= 40.0
    # The construction must not silently thin out: for every multi-component case here most
    # fixed directions qualify (the fewest is 15 of 16, for "full"), so ask for over half.
    assert int(keep.sum()) > x.shape[0] // 2, int(keep.sum())
    return x[keep]


def _autograd_score(log_prob, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_prob(x).sum(), x)
    return g


def _grid_2d(lo: float, hi: float, h: float) -> torch.Tensor:
    ax = torch.arange(lo, hi + h / 2, h, dtype=F64)
    return torch.cartesian_prod(ax, ax)


# -- score and log_prob ----------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_score_equals_autograd_of_log_prob(name, gen):
    target, means, covs, w = _case(name)
    near, far = _test_points(target.dim, gen)
    saturated = _saturated_far_points(means, covs, w) if len(w) > 1 else far[:0]
    x = torch.cat([near, far, saturated])
    score = target.score(x)
    # float64: closed form and autograd evaluate the same algebra up to rounding (~1e-13
    # relative at |score| ≤ 250); 1e-9 leaves room and still catches any wrong term.
    torch.testing.assert_close(score, _autograd_score(target.log_prob, x), rtol=1e-9, atol=1e-9)
    # ...and against autograd of an independent implementation (Cholesky-based torch.distributions).
    ref = _reference(means, covs, w)
    torch.testing.assert_close(score, _autograd_score(ref.log_prob, x), rtol=1e-8, atol=1e-8)
    if len(w) > 1:
        # The saturated points (in x above, so the score was checked there) really exercise the
        # one-hot softmax: the library's posterior is one-hot to 1e-12 and picks the reference's
        # component (its other entries are < 1e-17 in exact arithmetic, see the helper).
        r = target.responsibilities(saturated)
        assert bool((r.max(1).values > 1 - 1e-12).all()), r
        ref_joint = MultivariateNormal(means, covariance_matrix=covs).log_prob(
            saturated[:, None, :]
        )
        assert torch.equal(r.argmax(1), (ref_joint + w.log()).argmax(1))
        # ...and at every far point (saturated or nearly tied) the posterior is the reference's:
        # both are a softmax of float64 log-densities of size ≤ ~1e4, so they agree to ~1e-12.
        ref_r = torch.softmax(
            MultivariateNormal(means, covariance_matrix=covs).log_prob(far[:, None, :]) + w.log(),
            dim=1,
        )
        torch.testing.assert_close(target.responsibilities(far), ref_r, rtol=0, atol=1e-10)
    assert bool(torch.isfinite(score).all())


def test_score_far_points_float32_matches_float64():
    """Default-dtype (float32) preset: saturated softmax at ‖x‖ = 50 stays finite and accurate."""
    x64 = 50.0 * torch.nn.functional.normalize(_t([[1.0, 0.2], [-1.0, -0.3], [0.1, -1.0]]))
    m32 = ncsn_toy(2)
    m64 = GaussianMixture(m32.means, 1.0, m32.weights, dtype=F64)
    s32 = m32.score(x64.float())
    # float32 rounding of x (|x| = 50) and of the differences x − μ: relative error ~1e-6.
    torch.testing.assert_close(s32.double(), m64.score(x64), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_log_prob_matches_torch_distributions(name, gen):
    target, means, covs, w = _case(name)
    near, far = _test_points(target.dim, gen)
    x = torch.cat([near, far])
    # float64, eigen- vs Cholesky-based: agree to rounding (|log p| ≤ ~1e4 at the far points).
    torch.testing.assert_close(
        target.log_prob(x), _reference(means, covs, w).log_prob(x), rtol=1e-10, atol=1e-10
    )
    # component_log_prob: each column is log N(x; μₖ, Σₖ).
    comp = MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :])
    torch.testing.assert_close(target.component_log_prob(x), comp, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["full", "isotropic", "scalar", "stds", "gaussian_full"])
def test_log_prob_integrates_to_one_2d(name):
    target = _case(name)[0]
    # Box = means ± ≥8 largest std (mass outside < 1e-13); h ≤ 0.25·smallest std, where the
    # Riemann sum of a Gaussian is exact to ~exp(−2π²σ²/h²) < 1e-100.  So 1e-6 is pure slack.
    x = _grid_2d(-16.0, 16.0, 0.1)
    mass = target.log_prob(x).exp().sum() * 0.1**2
    assert abs(float(mass) - 1.0) < 1e-6, float(mass)


def test_log_prob_integrates_to_one_1d():
    target = GaussianMixture(
        _t([[-3.0], [0.5], [4.0]]), _t([0.25, 1.0, 4.0]), [0.2, 0.5, 0.3], dtype=F64
    )
    h = 0.01  # smallest std 0.5, largest 2 → box ±20 covers > 8 stds of every component
    x = torch.arange(-20.0, 20.0 + h / 2, h, dtype=F64)[:, None]
    mass = float(target.log_prob(x).exp().sum() * h)
    assert abs(mass - 1.0) < 1e-8, mass


# -- sampling --------------------------------------------------------------------------------


# full3d matters: eigh may return a 2×2 eigenvector matrix that is a (symmetric) reflection,
# so in 2-D a sampler applying Uᵀ instead of U can go unnoticed; in 3-D it cannot.
@pytest.mark.parametrize("name", ["full", "full3d", "diagonal", "isotropic"])
def test_sample_moments(name, gen):
    target, means, covs, w = _case(name)
    x = target.sample(N_SAMPLES, gen)
    assert x.shape == (N_SAMPLES, target.dim) and x.dtype == F64
    _assert_moments(x, *_mixture_moments(means, covs, w))


def test_sample_labels_match_weights_and_components(gen):
    target, means, covs, w = _case("full")
    x, labels = target.sample(N_SAMPLES, gen, return_labels=True)
    assert labels.shape == (N_SAMPLES,) and labels.dtype == torch.long
    freq = torch.bincount(labels, minlength=3).double() / N_SAMPLES
    se = (w * (1 - w) / N_SAMPLES).sqrt()  # binomial standard error of each frequency
    assert bool(((freq - w).abs() <= N_SE * se).all()), ((freq - w) / se).tolist()
    for k in range(3):  # the draws carrying label k come from component k
        _assert_moments(x[labels == k], means[k], covs[k])


@pytest.mark.parametrize("name", ["full", "full3d", "diagonal"])
def test_sample_component_moments(name, gen):
    target, means, covs, _ = _case(name)
    for k in range(target.n_components):
        x = target.sample_component(k, N_SAMPLES // 2, gen)
        assert x.shape == (N_SAMPLES // 2, target.dim)
        _assert_moments(x, means[k], covs[k])


def test_sample_deterministic_given_generator():
    target = _case("full")[0]

    def draw(seed: int, global_seed: int):
        torch.manual_seed(global_seed)  # the global RNG must play no part
        g = torch.Generator().manual_seed(seed)
        x, lab = target.sample(1000, g, return_labels=True)
        return x, lab, target.sample_component(1, 100, g)

    with torch.random.fork_rng():  # leave the global RNG as other tests found it
        a, b, c = draw(5, 0), draw(5, 99), draw(6, 0)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[2], c[2])


def test_covariances_property_roundtrip():
    for name in CASES:
        target, means, covs, w = _case(name)
        torch.testing.assert_close(target.covariances, covs, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(target.means, means, rtol=0, atol=0)
        torch.testing.assert_close(target.weights, w, rtol=1e-15, atol=1e-15)
        assert target.n_components == len(w) and target.dim == means.shape[1]


# -- noised laws -----------------------------------------------------------------------------


@pytest.mark.parametrize(("sigma", "scale"), [(0.8, 1.0), (0.8, 0.6), (2.0, 1.5)])
def test_noised_matches_simulation(sigma, scale, gen):
    target, means, covs, w = _case("full")
    noised = target.noised(sigma, scale)
    nm, nc = _mixture_moments(noised.means, noised.covariances, noised.weights)
    m, c = _mixture_moments(means, covs, w)
    # Exact algebra: the noised law's moments are scale·m and scale²C + σ²I.
    torch.testing.assert_close(nm, scale * m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        nc, scale**2 * c + sigma**2 * torch.eye(2, dtype=F64), rtol=1e-12, atol=1e-12
    )
    # Simulation: moments of scale·X + σZ agree with the noised law's within 4 s.e.
    y = scale * target.sample(N_SAMPLES, gen) + sigma * torch.randn(
        N_SAMPLES, 2, generator=gen, dtype=F64
    )
    _assert_moments(y, nm, nc)


def test_noised_1d_ks_against_simulation(gen):
    """Whole-law check in 1-D: KS test of scale·X + σZ against the noised mixture's CDF."""
    target = GaussianMixture(
        _t([[-3.0], [0.5], [4.0]]), _t([0.25, 1.0, 4.0]), [0.2, 0.5, 0.3], dtype=F64
    )
    sigma, scale = 0.7, 1.3
    noised = target.noised(sigma, scale)
    mu, sd, w = noised.means[:, 0], noised.covariances[:, 0, 0].sqrt(), noised.weights

    def cdf(y):
        z = (torch.as_tensor(y, dtype=F64)[:, None] - mu) / sd
        return (w * torch.special.ndtr(z)).sum(1).numpy()

    y = scale * target.sample(N_SAMPLES, gen) + sigma * torch.randn(
        N_SAMPLES, 1, generator=gen, dtype=F64
    )
    # p > 1e-3 for the true law (fixed seed); with n = 5e4 the KS test rejects CDF errors
    # above ~0.01, e.g. the law with σ in place of σ² (CDF off by ~0.03) gives p ≈ 0.
    assert scipy.stats.kstest(y[:, 0].numpy(), cdf).pvalue > 1e-3


def test_noised_log_prob_integrates_to_one():
    noised = _case("full")[0].noised(0.5, scale=1.3)
    # Noised stds ≥ √(1.69·0.2 + 0.25) ≈ 0.77, ≤ √(1.69·2 + 0.25) ≈ 1.9; |means| ≤ 3:
    # box ±16 and h = 0.1 as in test_log_prob_integrates_to_one_2d.
    x = _grid_2d(-16.0, 16.0, 0.1)
    mass = float(noised.log_prob(x).exp().sum() * 0.1**2)
    assert abs(mass - 1.0) < 1e-6, mass


@pytest.mark.parametrize("name", CASES)
def test_noised_score_per_sample_sigma_equals_rowwise(name, gen):
    target = _case(name)[0]
    x = 2.0 * torch.randn(12, target.dim, generator=gen, dtype=F64)
    sig = torch.linspace(0.0, 3.0, 12, dtype=F64)  # includes σ = 0 (the clean score)
    batched = target.noised_score(x, sig)
    rows = torch.cat([target.noised(float(s)).score(x[i : i + 1]) for i, s in enumerate(sig)])
    torch.testing.assert_close(batched, rows, rtol=1e-12, atol=1e-12)  # same float64 algebra
    torch.testing.assert_close(batched[:1], target.score(x[:1]), rtol=1e-12, atol=1e-12)
    # A scalar σ broadcasts to every row.
    torch.testing.assert_close(
        target.noised_score(x, 0.9), target.noised(0.9).score(x), rtol=1e-12, atol=1e-12
    )
    # And the noised score is the gradient of the noised log-density.
    noised = target.noised(1.7)
    torch.testing.assert_close(
        target.noised_score(x, 1.7), _autograd_score(noised.log_prob, x), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("name", CASES)
def test_noised_zero_is_original_and_original_untouched(name, gen):
    target = _case(name)[0]
    eig_before, means_before = target.eigvals.clone(), target.means.clone()
    same = target.noised(0.0)
    assert type(same) is type(target)
    x = 2.0 * torch.randn(30, target.dim, generator=gen, dtype=F64)
    # σ = 0, scale = 1: the arithmetic is exact (λ·1 + 0 = λ), so equality is bitwise.
    assert torch.equal(same.means, target.means) and torch.equal(same.eigvals, target.eigvals)
    assert torch.equal(same.log_prob(x), target.log_prob(x))
    assert torch.equal(same.score(x), target.score(x))
    target.noised(1.5, scale=0.3)
    assert torch.equal(target.eigvals, eig_before) and torch.equal(target.means, means_before)


def test_noised_negative_sigma_raises():
    with pytest.raises(ScorelabError):
        _case("full")[0].noised(-0.1)


@pytest.mark.parametrize("name", CASES)
def test_target_score_fn(name, gen):
    target = _case(name)[0]
    fn = target_score_fn(target)
    x = 2.0 * torch.randn(10, target.dim, generator=gen, dtype=F64)
    assert torch.equal(fn(x, None), target.score(x))
    assert torch.equal(fn(x), target.score(x))
    sig = torch.linspace(0.1, 2.0, 10, dtype=F64)
    assert torch.equal(fn(x, sig), target.noised_score(x, sig))
    assert not torch.allclose(fn(x, sig), fn(x, None))  # σ really is used


@pytest.mark.parametrize(("sigma", "scale"), [(0.5, 1.0), (1.2, 0.7)])
def test_gaussian_noised_stays_gaussian(sigma, scale):
    mean, cov = _t([1.0, -2.0]), _full_covs_2d()[1]
    g = Gaussian(mean, cov, dtype=F64)
    out = g.noised(sigma, scale)
    assert isinstance(out, Gaussian)
    torch.testing.assert_close(out.mean, scale * mean, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(
        out.covariance, scale**2 * cov + sigma**2 * torch.eye(2, dtype=F64), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(g.covariance, cov, rtol=1e-12, atol=1e-12)


# -- responsibilities ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_responsibilities(name, gen):
    target, _, _, w = _case(name)
    x = 2.5 * torch.randn(50, target.dim, generator=gen, dtype=F64)
    r = target.responsibilities(x)
    assert r.shape == (50, len(w))
    torch.testing.assert_close(r.sum(1), torch.ones(50, dtype=F64), rtol=0, atol=1e-12)
    # Bayes' rule from the component densities and the mixture density (float64; the points
    # lie within ~8 stds of some mode so nothing under/overflows).
    expected = (w.log() + target.component_log_prob(x) - target.log_prob(x)[:, None]).exp()
    torch.testing.assert_close(r, expected, rtol=1e-10, atol=1e-12)


# -- presets ---------------------------------------------------------------------------------


def _eye(d: int, k: int) -> torch.Tensor:
    return torch.eye(d).expand(k, d, d)


def test_preset_seed001_fig3():
    t = seed001_fig3()
    assert (t.dim, t.n_components) == (2, 2)
    torch.testing.assert_close(t.weights, torch.tensor([0.2, 0.8]))
    torch.testing.assert_close(t.means, torch.tensor([[-5.0, 5.0], [5.0, 5.0]]))
    torch.testing.assert_close(t.covariances, _eye(2, 2))


def test_preset_seed001_fig10():
    t = seed001_fig10()
    torch.testing.assert_close(t.weights, torch.tensor([0.2, 0.8]))
    torch.testing.assert_close(t.means, torch.tensor([[-5.0, -5.0], [5.0, 5.0]]))
    # "σ = 3I / 0.5I" read as standard deviations: covariances 9I and 0.25I.
    torch.testing.assert_close(
        t.covariances, torch.stack([9.0 * torch.eye(2), 0.25 * torch.eye(2)])
    )


def test_preset_ncsn_toy():
    t = ncsn_toy(dim=3)
    assert (t.dim, t.n_components) == (3, 2)
    torch.testing.assert_close(t.weights, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(t.means, torch.tensor([[5.0] * 3, [-5.0] * 3]))
    torch.testing.assert_close(t.covariances, _eye(3, 2))
    assert ncsn_toy().dim == 2
    with pytest.raises(ScorelabError):
        ncsn_toy(dim=0)


def test_preset_seed000_mixture():
    t = seed000_mixture(n_components=3, dim=2)
    assert (t.dim, t.n_components) == (2, 3)
    torch.testing.assert_close(t.weights, torch.tensor([1.0, 2.0, 3.0]) / 6)
    scales = torch.tensor([1.0, 2.0, 1.0])  # alternating I, 2I
    torch.testing.assert_close(t.covariances, scales[:, None, None] * _eye(2, 3))
    torch.testing.assert_close(t.means, torch.tensor([[8.0, 0.0], [0.0, 8.0], [-8.0, 0.0]]))
    with pytest.raises(ScorelabError):
        seed000_mixture(n_components=5, dim=2)  # more than 2·dim axis positions


# -- input validation ------------------------------------------------------------------------

M2 = [[0.0, 0.0], [1.0, 1.0]]  # K = 2, d = 2

BAD_CONSTRUCTORS = {
    "non-PD full": lambda: GaussianMixture(M2[:1], [[[1.0, 2.0], [2.0, 1.0]]]),
    "singular full": lambda: GaussianMixture(M2[:1], [[[1.0, 1.0], [1.0, 1.0]]]),
    "negative diagonal": lambda: GaussianMixture(M2, [[1.0, 1.0], [1.0, -1.0]]),
    "zero scalar variance": lambda: GaussianMixture(M2, 0.0),
    "negative isotropic": lambda: GaussianMixture(M2, [1.0, -2.0]),
    "infinite variance": lambda: GaussianMixture(M2, [1.0, float("inf")]),
    "asymmetric": lambda: GaussianMixture(M2[:1], [[[1.0, 0.5], [0.0, 1.0]]]),
    "means 1-D": lambda: GaussianMixture([0.0, 1.0], 1.0),
    "means empty": lambda: GaussianMixture(torch.zeros(0, 2), 1.0),
    "means non-finite": lambda: GaussianMixture([[0.0, float("nan")], [1.0, 1.0]], 1.0),
    "cov (K+1,)": lambda: GaussianMixture(M2, [1.0, 1.0, 1.0]),
    "cov (K, d+1)": lambda: GaussianMixture(M2, torch.ones(2, 3)),
    "cov (K, d, d+1)": lambda: GaussianMixture(M2, torch.ones(2, 2, 3)),
    "cov (d, d) for K=2": lambda: GaussianMixture(torch.zeros(2, 3), torch.eye(3)),
    "cov 4-D": lambda: GaussianMixture(M2, torch.eye(2).expand(1, 2, 2, 2)),
    "weights wrong length": lambda: GaussianMixture(M2, 1.0, [0.2, 0.3, 0.5]),
    "weights negative": lambda: GaussianMixture(M2, 1.0, [1.2, -0.2]),
    "weights all zero": lambda: GaussianMixture(M2, 1.0, [0.0, 0.0]),
    "stds zero": lambda: GaussianMixture(M2, stds=[1.0, 0.0]),
    "stds negative": lambda: GaussianMixture(M2, stds=-1.0),
    "both cov and stds": lambda: GaussianMixture(M2, 1.0, stds=1.0),
    "neither cov nor stds": lambda: GaussianMixture(M2),
    "Gaussian mean 2-D": lambda: Gaussian([[0.0, 0.0]], torch.eye(2)),
    "Gaussian cov (d+1, d+1)": lambda: Gaussian([0.0, 0.0], torch.eye(3)),
    "Gaussian diag wrong length": lambda: Gaussian([0.0, 0.0], [1.0, 1.0, 1.0]),
    "Gaussian non-PD": lambda: Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, -1.0]]),
}


@pytest.mark.parametrize("make", BAD_CONSTRUCTORS.values(), ids=BAD_CONSTRUCTORS.keys())
def test_bad_construction_raises(make):
    with pytest.raises(ScorelabError):
        make()


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.log_prob(torch.zeros(5, 3)),
        lambda t: t.log_prob(torch.zeros(2)),
        lambda t: t.log_prob(torch.zeros(1, 5, 2)),
        lambda t: t.score(torch.zeros(5, 1)),
        lambda t: t.responsibilities(torch.zeros(5, 3)),
        lambda t: t.component_log_prob(torch.zeros(5, 3)),
        lambda t: t.noised_score(torch.zeros(5, 3), 1.0),
        lambda t: t.noised_score(torch.zeros(5, 2), torch.ones(4)),  # σ of the wrong length
        lambda t: t.sample(-1),
    ],
    ids=[
        "log_prob d",
        "log_prob 1-D",
        "log_prob 3-D",
        "score d",
        "responsibilities d",
        "component_log_prob d",
        "noised_score d",
        "noised_score sigma",
        "sample n<0",
    ],
)
def test_bad_call_raises(call):
    with pytest.raises(ScorelabError):
        call(seed001_fig3())


# -- regressions -------------------------------------------------------------------------------


def test_sample_zero_is_empty():
    x = seed001_fig3().sample(0)
    assert x.shape == (0, 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_raise(bad):
    with pytest.raises(ScorelabError, match="finite"):
        GaussianMixture(M2, 1.0, [bad, 1.0])


@pytest.mark.parametrize("sigma, scale", [(-1.0, 1.0), (float("nan"), 1.0), (1.0, 0.0)])
def test_bad_noised_arguments_raise(sigma, scale):
    with pytest.raises(ScorelabError):
        seed001_fig3().noised(sigma, scale)
