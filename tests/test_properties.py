"""Property-based checks (hypothesis) of identities that hold for every input, not one example.

Mixtures are drawn small (K ≤ 3 components in d ≤ 3 dimensions) with bounded parameters, so
every tolerance below follows from float64 rounding on bounded numbers (each comment says how).
Examples are derandomised (the same 30 per test on every run, like the seeded tests elsewhere)
and no example database is written; raise max_examples locally to search harder.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from scorelab import ScorelabError
from scorelab.distributions import GaussianMixture
from scorelab.metrics import mixture_weights, weights_from_labels
from scorelab.samplers import annealed_langevin, hmc, langevin, mala

F64 = torch.float64
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def _floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def mixtures(draw, max_k: int = 3, max_d: int = 3):
    """(mixture, means, covariances, weights, points) with Σₖ = AₖAₖᵀ + 0.1I, float64.

    Bounds: |μ| ≤ 3, |Aᵢⱼ| ≤ 1.5 so the eigenvalues of Σₖ lie in [0.1, 20.35], weights
    ∈ [0.05, 1] before normalising, and 4 points in [−6, 6]^d.
    """
    k = draw(st.integers(1, max_k))
    d = draw(st.integers(1, max_d))
    means = torch.tensor(draw(st.lists(_floats(-3, 3), min_size=k * d, max_size=k * d)))
    a = torch.tensor(draw(st.lists(_floats(-1.5, 1.5), min_size=k * d * d, max_size=k * d * d)))
    w = torch.tensor(draw(st.lists(_floats(0.05, 1.0), min_size=k, max_size=k)))
    x = torch.tensor(draw(st.lists(_floats(-6, 6), min_size=4 * d, max_size=4 * d)))
    means, a, w, x = (t.to(F64) for t in (means, a, w, x))
    a = a.reshape(k, d, d)
    covs = a @ a.transpose(1, 2) + 0.1 * torch.eye(d, dtype=F64)
    mix = GaussianMixture(means.reshape(k, d), covs, w, dtype=F64)
    return mix, means.reshape(k, d), covs, w / w.sum(), x.reshape(4, d)


def _reference(means, covs, w) -> MixtureSameFamily:
    """The same mixture from torch.distributions (Cholesky-based): an independent log p."""
    return MixtureSameFamily(
        Categorical(probs=w), MultivariateNormal(means, covariance_matrix=covs)
    )


def _autograd_score(log_prob, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_prob(x).sum(), x)
    return g


# -- (1) the closed-form score is the gradient of the log-density ----------------------------


@SETTINGS
@given(mixtures())
def test_score_is_the_gradient_of_log_prob(case):
    mix, means, covs, w, x = case
    score = mix.score(x)
    # |score| ≤ ‖Σ⁻¹‖·‖x − μ‖ ≤ 10·9√3 ≈ 160 and cond(Σ) ≤ 204: float64 evaluations of the
    # same algebra (closed form vs autograd through the eigen-form log p) agree to ~1e-12.
    torch.testing.assert_close(score, _autograd_score(mix.log_prob, x), rtol=1e-9, atol=1e-9)
    # ...and with autograd of an independent (Cholesky) implementation: log p ≤ ~1e3 in size,
    # so the two log-densities differ by ~1e-12 and their gradients by ~1e-11.
    ref = _reference(means, covs, w)
    torch.testing.assert_close(mix.log_prob(x), ref.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(score, _autograd_score(ref.log_prob, x), rtol=1e-8, atol=1e-8)


# -- (2) the noised law: parameters, and composition of noisings -----------------------------


@SETTINGS
@given(mixtures(), _floats(0.0, 3.0), _floats(0.1, 3.0))
def test_noised_has_scaled_means_and_inflated_covariances(case, sigma, scale):
    mix, means, covs, w, x = case
    out = mix.noised(sigma, scale)
    eye = torch.eye(mix.dim, dtype=F64)
    # entries ≤ 9·20.35 + 9 ≈ 190, rebuilt from an eigendecomposition: error ~1e-13
    torch.testing.assert_close(out.means, scale * means, rtol=1e-12, atol=1e-12)
    want_covs = scale**2 * covs + sigma**2 * eye
    torch.testing.assert_close(out.covariances, want_covs, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.weights, w, rtol=1e-12, atol=0.0)
    # the law itself, not only its parameters: log-density of N-mixture(scale·μ, scale²Σ + σ²I)
    ref = _reference(scale * means, want_covs, w)
    torch.testing.assert_close(out.log_prob(x), ref.log_prob(x), rtol=1e-10, atol=1e-10)
    # and the batched noise-conditional score is the score of that law (scale = 1)
    torch.testing.assert_close(
        mix.noised_score(x, sigma), mix.noised(sigma).score(x), rtol=1e-10, atol=1e-10
    )
    assert mix.means.equal(means)  # noising returns a new law, the original is untouched


@SETTINGS
@given(mixtures(), _floats(0.0, 3.0), _floats(0.0, 3.0), _floats(0.2, 2.0), _floats(0.2, 2.0))
def test_noising_composes(case, s1, s2, a, b):
    """X + σ₁Z₁ + σ₂Z₂ ~ X + √(σ₁² + σ₂²)Z; with scales, b(aX + σ₁Z₁) + σ₂Z₂ has the law of
    abX + √(b²σ₁² + σ₂²)Z.  The variances differ only by rounding (~1e-15 relative), so the
    log-densities (≤ ~1e3 in size) agree to ~1e-12."""
    mix, _, _, _, x = case
    twice = mix.noised(s1).noised(s2)
    once = mix.noised(math.sqrt(s1**2 + s2**2))
    torch.testing.assert_close(twice.log_prob(x), once.log_prob(x), rtol=1e-10, atol=1e-10)
    twice = mix.noised(s1, a).noised(s2, b)
    once = mix.noised(math.sqrt(b**2 * s1**2 + s2**2), a * b)
    torch.testing.assert_close(twice.log_prob(x), once.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(twice.score(x), once.score(x), rtol=1e-9, atol=1e-9)


# -- (3) samplers refuse step sizes that are not positive and finite -------------------------

BAD_STEPS = st.one_of(
    st.floats(max_value=0.0),  # every non-positive float, −0.0 and −inf included
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]),
)


def _quadratic_score(x, sigma):
    return -x


def _quadratic_log_prob(x):
    return -0.5 * x.square().sum(1)


SAMPLER_CALLS = {
    "langevin": lambda x0, eps: langevin(_quadratic_score, x0, step_size=eps, n_steps=1),
    "annealed_langevin": lambda x0, eps: annealed_langevin(
        _quadratic_score, x0, sigmas=[1.0, 0.5], step_size=eps, n_steps_each=1
    ),
    "mala": lambda x0, eps: mala(
        _quadratic_score, x0, log_prob_fn=_quadratic_log_prob, step_size=eps, n_steps=1
    ),
    "hmc": lambda x0, eps: hmc(
        _quadratic_score,
        x0,
        log_prob_fn=_quadratic_log_prob,
        step_size=eps,
        n_leapfrog=1,
        n_steps=1,
    ),
    "hmc_no_metropolis": lambda x0, eps: hmc(
        _quadratic_score, x0, step_size=eps, n_leapfrog=1, n_steps=1
    ),
}


@pytest.mark.parametrize("sampler", list(SAMPLER_CALLS))
@SETTINGS
@given(bad=BAD_STEPS)
def test_every_sampler_rejects_a_bad_step_size(sampler, bad):
    x0 = torch.zeros(3, 2, dtype=F64)
    # the argument check's own message, not e.g. a DivergenceError after a NaN step
    with pytest.raises(ScorelabError, match="step_size must be a positive finite"):
        SAMPLER_CALLS[sampler](x0, bad)


# -- (4) weights of labelled points on a well-separated mixture ------------------------------


@st.composite
def labelled_points(draw):
    """A mixture with means 20 apart along e₁ (± a jitter ≤ 1 per coordinate), stds ∈ [0.5, 1],
    and points μ_label + offset with |offset| ≤ 0.5 per coordinate.

    Each point is provably assigned to its label: its own component's log-density term is
    ≥ −½·0.75/0.25 = −1.5 while every other one is ≤ −½·15.7² = −123 (|x − μⱼ| ≥ 20 − 2√3 −
    √0.75); log-determinants and log-weights move the log-odds by < 6, so the margin is > 100.
    """
    k = draw(st.integers(1, 4))
    d = draw(st.integers(1, 3))
    jitter = torch.tensor(draw(st.lists(_floats(-1, 1), min_size=k * d, max_size=k * d)))
    means = jitter.to(F64).reshape(k, d)
    means[:, 0] += 20.0 * torch.arange(k, dtype=F64)
    stds = draw(st.lists(_floats(0.5, 1.0), min_size=k, max_size=k))
    weights = draw(st.lists(_floats(0.05, 1.0), min_size=k, max_size=k))
    mix = GaussianMixture(means, stds=stds, weights=weights, dtype=F64)
    labels = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=60)))
    n = labels.shape[0]
    offsets = torch.tensor(draw(st.lists(_floats(-0.5, 0.5), min_size=n * d, max_size=n * d)))
    x = means[labels] + offsets.to(F64).reshape(n, d)
    return mix, x, labels


@SETTINGS
@given(labelled_points())
def test_mixture_weights_of_separated_labelled_points_are_the_label_frequencies(case):
    mix, x, labels = case
    k = mix.n_components
    report = mixture_weights(x, mix)
    want = weights_from_labels(labels, k)
    assert report.estimated == want.tolist()  # exact: the same counts divided by the same N
    true = mix.weights.double()
    assert report.true == pytest.approx(true.tolist(), abs=1e-15)
    assert report.tv == pytest.approx(0.5 * float((want - true).abs().sum()), abs=1e-12)
