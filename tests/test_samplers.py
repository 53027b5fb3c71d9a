"""Samplers on targets with exact answers: moments on a Gaussian, weights on the seed mixtures."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from scorelab import DivergenceError, ScorelabError
from scorelab.distributions import (
    Gaussian,
    seed000_mixture,
    seed001_fig3,
    target_log_prob_fn,
    target_score_fn,
)
from scorelab.metrics import mixture_weights
from scorelab.samplers import (
    SAMPLERS,
    annealed_langevin,
    from_data,
    gaussian_prior,
    hmc,
    langevin,
    mala,
    steps_for_time,
    tweedie_denoise,
    uniform_box,
)

MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=torch.float64)
N_CHAINS = 4000


@pytest.fixture
def gauss():
    return Gaussian(MEAN, COV, dtype=torch.float64)


def _moments(x):
    return x.mean(0), torch.cov(x.T)


def _assert_moments(x, mean, cov, n_se=5.0):
    """Sample mean within n_se standard errors √(Σᵢᵢ/N); covariance entries within n_se s.e.

    For independent chains the s.e. of a sample covariance entry Cᵢⱼ is √((CᵢᵢCⱼⱼ + Cᵢⱼ²)/N).
    """
    m, c = _moments(x)
    n = x.shape[0]
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert ((m - mean).abs() < n_se * se_mean).all(), (m, mean)
    d = torch.diagonal(cov)
    se_cov = ((d[:, None] * d[None, :] + cov**2) / n).sqrt()
    assert ((c - cov).abs() < n_se * se_cov).all(), (c, cov)


def ula_stationary_cov(cov: torch.Tensor, eps: float) -> torch.Tensor:
    """Exact stationary covariance of x' = (I − (ε/2)P)x + … + √ε z: C = A C Aᵀ + εI."""
    a = np.eye(cov.shape[0]) - 0.5 * eps * np.linalg.inv(cov.numpy())
    return torch.as_tensor(scipy.linalg.solve_discrete_lyapunov(a, eps * np.eye(cov.shape[0])))


# --- moments on a Gaussian -------------------------------------------------------------------


def test_ula_reaches_its_exact_discretised_law(gauss, gen):
    eps = 0.2
    x0 = torch.zeros(N_CHAINS, 2, dtype=torch.float64)
    res = langevin(target_score_fn(gauss), x0, step_size=eps, n_steps=400, generator=gen)
    c_eps = ula_stationary_cov(COV, eps)
    # ULA's stationary law is N(μ, C_ε) with C_ε ≠ Σ: the O(ε) bias is what ε buys.
    assert (c_eps - COV).abs().max() > 0.04
    _assert_moments(res.samples, MEAN, c_eps)
    assert res.nfe == 400 and res.info["time"] == pytest.approx(400 * eps / 2)


def test_mala_removes_the_discretisation_bias(gauss, gen):
    eps = 0.8  # ULA at this step inflates the largest variance by 0.26 (13%); MALA must not
    x0 = torch.zeros(N_CHAINS, 2, dtype=torch.float64)
    res = mala(
        target_score_fn(gauss),
        x0,
        log_prob_fn=target_log_prob_fn(gauss),
        step_size=eps,
        n_steps=300,
        generator=gen,
    )
    assert (ula_stationary_cov(COV, eps) - COV).abs().max() > 0.25
    _assert_moments(res.samples, MEAN, COV)
    assert 0.4 < res.info["acceptance_rate"] < 0.95
    assert res.nfe == 301


def test_hmc_exact_moments_and_sane_acceptance(gauss, gen):
    x0 = torch.zeros(N_CHAINS, 2, dtype=torch.float64)
    res = hmc(
        target_score_fn(gauss),
        x0,
        log_prob_fn=target_log_prob_fn(gauss),
        step_size=0.4,
        n_leapfrog=5,
        n_steps=60,
        generator=gen,
    )
    _assert_moments(res.samples, MEAN, COV)
    assert 0.6 < res.info["acceptance_rate"] < 1.0
    assert res.info["adjusted"] is True
    assert res.nfe == 1 + 60 * 5


def test_hmc_acceptance_falls_as_the_step_grows(gauss, gen):
    x0 = gauss.sample(1000, generator=gen)
    sf, lp = target_score_fn(gauss), target_log_prob_fn(gauss)
    rates = [
        hmc(sf, x0, log_prob_fn=lp, step_size=h, n_leapfrog=5, n_steps=10, generator=gen).info[
            "acceptance_rate"
        ]
        for h in (0.2, 0.8, 1.3)
    ]
    assert rates[0] > rates[1] > rates[2]


def test_hmc_without_metropolis_is_close_for_small_steps(gauss, gen):
    """Seed 001 §5.1's score-only HMC: no test, so only the leapfrog error (O(ε²)) biases it."""
    x0 = torch.zeros(N_CHAINS, 2, dtype=torch.float64)
    res = hmc(target_score_fn(gauss), x0, step_size=0.1, n_leapfrog=10, n_steps=40, generator=gen)
    assert res.info["adjusted"] is False
    _assert_moments(res.samples, MEAN, COV, n_se=6.0)


def test_tweedie_is_the_posterior_mean_for_a_gaussian(gauss, gen):
    """E[x₀ | x] = μ + Σ(Σ + σ²I)⁻¹(x − μ) for x₀ ~ N(μ, Σ): Tweedie with the exact score is it."""
    sigma = 0.7
    x = gauss.noised(sigma).sample(50, generator=gen)
    got = tweedie_denoise(target_score_fn(gauss), x, sigma)
    want = MEAN + (x - MEAN) @ torch.linalg.solve(
        COV + sigma**2 * torch.eye(2, dtype=COV.dtype), COV
    )
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


# --- the seed 001 Fig. 3 mixture with exact scores -------------------------------------------
# Weight tolerance 0.03: with n = 5000 chains the binomial s.e. of a 0.2 weight is
# √(0.16/5000) = 0.0057, so 0.03 leaves > 5 s.e. for the sampler's own bias.


@pytest.fixture(scope="module")
def fig3():
    return seed001_fig3()


def test_annealed_langevin_recovers_the_weights(fig3, gen):
    sigmas = torch.logspace(1, -1, 20)  # σ₁ = 10 ≈ the distance between the modes, σ_L = 0.1
    x0 = gaussian_prior(5000, 2, 10.0, generator=gen)
    res = annealed_langevin(
        target_score_fn(fig3),
        x0,
        sigmas=sigmas,
        step_size=0.005,
        n_steps_each=200,
        denoise=True,
        generator=gen,
    )
    assert mixture_weights(res.samples, fig3).tv < 0.03
    assert res.nfe == 20 * 200 + 1
    assert res.info["alphas"][0] == pytest.approx(0.005 * 100 / 0.01)


def test_plain_langevin_from_a_uniform_start_gets_the_weights_wrong(fig3, gen):
    """Seed 001 §2.2.2: chains stay in the basin they start in, so weights follow the start."""
    x0 = uniform_box(5000, 2, -10.0, 10.0, generator=gen)
    res = langevin(target_score_fn(fig3), x0, step_size=0.1, n_steps=500, generator=gen)
    report = mixture_weights(res.samples, fig3)
    assert report.tv > 0.1
    # and it is no discretisation failure: each chain sits in a mode (≈ unit variance there)
    assert res.samples[:, 1].var() == pytest.approx(1.0 / (1 - 0.1 / 4), rel=0.1)


def test_langevin_from_data_with_early_stopping_keeps_the_weights(fig3, gen):
    data = fig3.sample(5000, generator=gen)
    x0 = from_data(data, 5000, generator=gen, replace=False)
    res = langevin(target_score_fn(fig3), x0, step_size=0.05, time=5.0, generator=gen)
    assert res.info["n_steps"] == steps_for_time(5.0, 0.05) == 200
    assert mixture_weights(res.samples, fig3).tv < 0.03


def test_data_init_keeps_weights_in_higher_dimension(gen):
    """Seed 000's setting: K = 3 components in d = 4 with covariances I, 2I, I; weights 1:2:3."""
    target = seed000_mixture(3, 4, separation=8.0)
    data = target.sample(6000, generator=gen)
    x0 = from_data(data, 6000, generator=gen, replace=False)
    res = langevin(target_score_fn(target), x0, step_size=0.05, time=5.0, generator=gen)
    assert mixture_weights(res.samples, target).tv < 0.03


# --- conventions: determinism, records, errors -----------------------------------------------


def _run_all(seed: int, gauss):
    g = torch.Generator().manual_seed(seed)
    sf, lp = target_score_fn(gauss), target_log_prob_fn(gauss)
    x0 = gauss.sample(64, generator=g)
    return [
        langevin(sf, x0, step_size=0.1, n_steps=20, generator=g).samples,
        annealed_langevin(
            sf, x0, sigmas=[1.0, 0.5], step_size=0.01, n_steps_each=5, generator=g, denoise=True
        ).samples,
        mala(sf, x0, log_prob_fn=lp, step_size=0.5, n_steps=20, generator=g).samples,
        hmc(sf, x0, log_prob_fn=lp, step_size=0.3, n_leapfrog=3, n_steps=10, generator=g).samples,
    ]


def test_same_seed_same_bits(gauss):
    a, b, c = _run_all(7, gauss), _run_all(7, gauss), _run_all(8, gauss)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not any(torch.equal(u, w) for u, w in zip(a, c, strict=True))


def test_trajectory_is_recorded_every_k_steps(gauss, gen):
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    res = langevin(
        target_score_fn(gauss), x0, step_size=0.1, n_steps=20, generator=gen, record_every=5
    )
    assert res.trajectory.shape == (5, 10, 2)
    assert torch.equal(res.trajectory[0], x0) and torch.equal(res.trajectory[-1], res.samples)


def test_divergence_names_the_step_size_and_the_step(gauss, gen):
    x0 = torch.zeros(10, 2)
    with pytest.raises(DivergenceError, match=r"step \d+.*step_size \(now 50\)"):
        langevin(target_score_fn(gauss), x0, step_size=50.0, n_steps=500, generator=gen)


def test_annealed_divergence_is_caught(gen):
    g = Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(DivergenceError, match="annealed_langevin diverged"):
        annealed_langevin(
            target_score_fn(g),
            torch.zeros(8, 2),
            sigmas=[10.0, 0.01],
            step_size=0.01,  # α₁ = ε·σ₁²/σ_L² = 1e4 on a law of variance 101: unstable
            n_steps_each=200,
            generator=gen,
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"step_size": 0.0, "n_steps": 5}, "step_size must be a positive"),
        ({"step_size": -1.0, "n_steps": 5}, "step_size must be a positive"),
        ({"step_size": math.nan, "n_steps": 5}, "step_size must be a positive"),
        ({"step_size": 0.1, "n_steps": -1}, "n_steps must be an integer"),
        ({"step_size": 0.1}, "exactly one of n_steps= or time="),
        ({"step_size": 0.1, "n_steps": 3, "time": 1.0}, "exactly one of n_steps= or time="),
    ],
)
def test_bad_langevin_arguments_are_rejected(gauss, kwargs, match):
    with pytest.raises(ScorelabError, match=match):
        langevin(target_score_fn(gauss), torch.zeros(4, 2), **kwargs)


def test_bad_start_points_and_ladders_are_rejected(gauss):
    sf = target_score_fn(gauss)
    with pytest.raises(ScorelabError, match="non-finite"):
        langevin(sf, torch.full((4, 2), math.nan), step_size=0.1, n_steps=1)
    with pytest.raises(ScorelabError, match="N > 0"):
        langevin(sf, torch.zeros(0, 2), step_size=0.1, n_steps=1)
    with pytest.raises(ScorelabError, match="strictly decreasing"):
        annealed_langevin(sf, torch.zeros(4, 2), sigmas=[0.1, 1.0], step_size=0.1, n_steps_each=1)
    with pytest.raises(ScorelabError, match="positive"):
        annealed_langevin(sf, torch.zeros(4, 2), sigmas=[1.0, -1.0], step_size=0.1, n_steps_each=1)
    with pytest.raises(ScorelabError, match="distinct starts"):
        from_data(torch.zeros(3, 2), 5, replace=False)


def test_mala_rejects_moves_out_of_the_support(gen):
    """A log-density of −inf outside the unit box: MALA must never leave it."""

    def log_prob(x):
        inside = (x.abs() <= 1).all(1)
        return torch.where(inside, torch.zeros(x.shape[0]), torch.full((x.shape[0],), -math.inf))

    def score(x, sigma):
        return torch.zeros_like(x)

    res = mala(
        score, torch.zeros(500, 2), log_prob_fn=log_prob, step_size=0.5, n_steps=50, generator=gen
    )
    assert (res.samples.abs() <= 1).all()
    assert 0.05 < res.info["acceptance_rate"] < 0.95


def test_sampler_registry_names_the_known_samplers():
    assert SAMPLERS.get("langevin") is langevin
    with pytest.raises(ScorelabError, match="known: annealed_langevin, hmc, langevin, mala"):
        SAMPLERS.get("nope")
