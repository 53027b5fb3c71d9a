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
    with pytest.raises(
        ScorelabError, match="known: ancestral, annealed_langevin, hmc, langevin, mala"
    ):
        SAMPLERS.get("nope")


def test_samplers_are_shape_agnostic(gen):
    """Image-shaped chains (N, 1, 3, 3) on N(0, I): the same code, the right variance.

    MALA and HMC are exact: per-pixel variance 1 within 5 s.e. (s.e. of a variance estimate
    from 2000·9 draws ≈ √(2/18000) = 0.011). ULA with ε = 0.2 has variance 1/(1 − ε/4).
    """

    def score(x, sigma):
        return -x

    def log_prob(x):
        return -0.5 * x.flatten(1).square().sum(1)

    x0 = torch.zeros(2000, 1, 3, 3, dtype=torch.float64)
    runs = {
        "ula": (langevin(score, x0, step_size=0.2, n_steps=200, generator=gen), 1 / (1 - 0.05)),
        "mala": (
            mala(score, x0, log_prob_fn=log_prob, step_size=0.5, n_steps=200, generator=gen),
            1.0,
        ),
        "hmc": (
            hmc(
                score,
                x0,
                log_prob_fn=log_prob,
                step_size=0.3,
                n_leapfrog=5,
                n_steps=40,
                generator=gen,
            ),
            1.0,
        ),
    }
    for name, (res, var) in runs.items():
        assert res.samples.shape == x0.shape, name
        assert abs(float(res.samples.var()) - var) < 5 * 0.011, name
        assert abs(float(res.samples.mean())) < 5 * (1 / 18000) ** 0.5, name


def test_progress_bar_is_off_by_default_and_available(gauss, gen, capsys):
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    langevin(target_score_fn(gauss), x0, step_size=0.1, n_steps=5, generator=gen)
    assert capsys.readouterr().err == ""
    langevin(target_score_fn(gauss), x0, step_size=0.1, n_steps=5, generator=gen, progress=True)
    assert "langevin" in capsys.readouterr().err


# --- annealed Langevin's final Tweedie step --------------------------------------------------


def _annealed_gaussian_law(mean, cov, start_cov, sigmas, eps, n_each):
    """Exact law of annealed Langevin on N(μ, Σ) started from N(μ, C₀): the steps are linear.

    At level σᵢ (step αᵢ = ε·σᵢ²/σ_L²) the exact score is −(Σ + σᵢ²I)⁻¹(x − μ), so one step is
    x − μ ← A(x − μ) + √αᵢ z with A = I − (αᵢ/2)(Σ + σᵢ²I)⁻¹: the mean stays μ and
    C ← A C Aᵀ + αᵢI.  No stationarity or small-step assumption is involved.
    """
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    c = start_cov.clone()
    for s in sigmas:
        alpha = eps * s**2 / sigmas[-1] ** 2
        a = eye - 0.5 * alpha * torch.linalg.inv(cov + s**2 * eye)
        for _ in range(n_each):
            c = a @ c @ a.T + alpha * eye
    return mean, c


def test_annealed_denoise_is_tweedie_applied_to_the_last_iterate(fig3):
    """denoise=True returns exactly tweedie_denoise(score, x_L, σ_L) of the denoise=False
    output x_L: the same seed gives the same Langevin path, then one extra score evaluation."""
    sf = target_score_fn(fig3)
    sigmas, sig_l = [3.0, 1.0, 0.5], 0.5
    runs = {}
    for denoise in (False, True):
        g = torch.Generator().manual_seed(99)
        x0 = gaussian_prior(500, 2, 3.0, generator=g)
        runs[denoise] = annealed_langevin(
            sf, x0, sigmas=sigmas, step_size=0.05, n_steps_each=10, denoise=denoise, generator=g
        )
    want = tweedie_denoise(sf, runs[False].samples, sig_l)
    # Same arithmetic on the same inputs: equal up to float32 rounding at |x| ≤ ~10 (≲ 1e-5).
    torch.testing.assert_close(runs[True].samples, want, rtol=0, atol=1e-5)
    # The Tweedie shift σ_L²·s is not small here (σ_L² = 0.25, |s| ~ 1 at typical points), so
    # returning x_L unchanged would miss `want` by ≫ 1e-5.
    assert float((want - runs[False].samples).norm(dim=1).median()) > 0.1
    assert runs[True].nfe == runs[False].nfe + 1 == 3 * 10 + 1


def test_annealed_denoise_gives_the_exact_posterior_mean_law_on_a_gaussian(gauss, gen):
    """On N(μ, Σ) the output of annealed Langevin is exactly N(μ, C_L) (see the helper), and
    Tweedie maps x to μ + B(x − μ), B = Σ(Σ + σ_L²I)⁻¹, so the denoised law is N(μ, B C_L Bᵀ).

    The recursion is exact after any number of steps, so the chains need not have relaxed (here
    they have not).  Moments within 5 s.e. at N = 20 000 chains.  Without the final step the
    covariance would be C_L itself: entry (1, 1) 3.82 instead of 0.97, hundreds of s.e. away.
    """
    sigmas, eps, n_each = [2.0, 1.0], 0.1, 10
    x0 = gauss.noised(2.0).sample(20_000, generator=gen)
    res = annealed_langevin(
        target_score_fn(gauss),
        x0,
        sigmas=sigmas,
        step_size=eps,
        n_steps_each=n_each,
        denoise=True,
        generator=gen,
    )
    start_cov = COV + 4.0 * torch.eye(2, dtype=COV.dtype)
    mean, c_l = _annealed_gaussian_law(MEAN, COV, start_cov, sigmas, eps, n_each)
    b = COV @ torch.linalg.inv(COV + torch.eye(2, dtype=COV.dtype))
    want_cov = b @ c_l @ b.T
    assert (c_l - want_cov).abs().max() > 0.9  # the two laws are far apart
    _assert_moments(res.samples, mean, want_cov)


def test_annealed_denoise_shrinks_each_fig3_mode_by_one_over_one_plus_sigma2(fig3, gen):
    """Fig. 3 mixture (modes (∓5, 5), covariance I, 10 apart); chains start at exact draws of
    its σ₁-noised law and are assigned to the mode on their side of the midpoint x₁ = 0.

    Within a mode the noised score is −(x − μₖ)/(1 + σ²) (the other mode's posterior weight is
    < e⁻⁶ but for ~1e-3 of the chains, and at σ ≤ 0.75 the 8-nat barrier keeps chains from
    crossing), so per mode and coordinate the variance follows the exact linear recursion
    v ← a²v + α, a = 1 − α/(2(1 + σᵢ²)), and Tweedie divides x − μₖ by 1 + σ_L²: the denoised
    variance is v_L/(1 + σ_L²)² = 0.812 ≈ 1/(1 + σ_L²) = 0.8 (ULA's O(α) bias and the
    unfinished relaxation add 1.5 %).  Without denoising it would be v_L ≈ 1.27.  Tolerance:
    5 s.e. of a variance, v·√(2/n) with n ≥ 3000 chains per mode → ≤ 0.09, plus 0.01 for the
    few chains near the midpoint.
    """
    sigmas, eps, n_each = [0.75, 0.5], 0.05, 100
    x0 = fig3.noised(sigmas[0]).sample(20_000, generator=gen)
    res = annealed_langevin(
        target_score_fn(fig3),
        x0,
        sigmas=sigmas,
        step_size=eps,
        n_steps_each=n_each,
        denoise=True,
        generator=gen,
    )
    v = 1.0 + sigmas[0] ** 2
    for s in sigmas:
        alpha = eps * s**2 / sigmas[-1] ** 2
        a = 1.0 - alpha / (2.0 * (1.0 + s**2))
        for _ in range(n_each):
            v = a * a * v + alpha
    want = v / (1.0 + sigmas[-1] ** 2) ** 2
    assert want == pytest.approx(1.0 / (1.0 + sigmas[-1] ** 2), rel=0.02)
    x = res.samples.double()
    means = fig3.means.double()
    for k, xk in enumerate([x[x[:, 0] < 0], x[x[:, 0] >= 0]]):
        n_k = xk.shape[0]
        assert n_k > 3000  # weights 0.2 / 0.8 of 20 000
        var_k = (xk - means[k]).square().mean(0)  # about the exact mode, per coordinate
        assert ((var_k - want).abs() < 5 * want * (2 / n_k) ** 0.5 + 0.01).all(), (k, var_k)
        se_mean = (want / n_k) ** 0.5
        assert ((xk.mean(0) - means[k]).abs() < 5 * se_mean).all(), (k, xk.mean(0))


# --- stationarity: a Metropolis-adjusted kernel leaves its target exactly invariant ----------
# Chains start at exact draws of N(μ, Σ); a correct MALA/HMC kernel is reversible w.r.t. the
# target at ANY step size, so after every step the N chains are again i.i.d. N(μ, Σ) and the
# moments must match within 5 s.e. (p ≈ 6e-7 per entry).  With N = 100 000 one s.e. of Σ₁₁ is
# 0.0045, so a kernel that is only approximately right (a wrong Hastings ratio, a stale
# gradient after a rejection) shows: the step sizes are chosen large so that rejections are
# common, and enough steps are run for the bias to build up.  Measured on deliberately broken
# kernels (stale gradient after a rejection; ΔH without ½‖p_new‖²), the worst covariance entry
# moves by 20–100 s.e.

N_STATIONARY = 100_000


def test_mala_leaves_the_target_exactly_invariant(gauss, gen):
    x0 = gauss.sample(N_STATIONARY, generator=gen)
    res = mala(
        target_score_fn(gauss),
        x0,
        log_prob_fn=target_log_prob_fn(gauss),
        step_size=2.0,  # ULA here would make Σ₁₁ 2.25 (not 1); MALA rejects ~30 % of moves
        n_steps=20,
        generator=gen,
    )
    # the regime the test relies on: many rejections, yet the chains do move
    assert 0.5 < res.info["acceptance_rate"] < 0.85
    _assert_moments(res.samples, MEAN, COV)


def test_hmc_leaves_the_target_exactly_invariant(gauss, gen):
    x0 = gauss.sample(N_STATIONARY, generator=gen)
    res = hmc(
        target_score_fn(gauss),
        x0,
        log_prob_fn=target_log_prob_fn(gauss),
        step_size=1.2,  # below the leapfrog stability limit 2√λ_min(Σ) = 1.78, ~7 % rejections
        n_leapfrog=4,
        n_steps=16,
        generator=gen,
    )
    assert 0.8 < res.info["acceptance_rate"] < 0.97
    _assert_moments(res.samples, MEAN, COV)


# --- from_data: the empirical-distribution start of seed 000 ---------------------------------


def _labelled_rows(m: int = 1000, share0: float = 0.3) -> torch.Tensor:
    """m distinct rows (row id, label): the first share0·m rows have label 0, the rest 1."""
    ids = torch.arange(m, dtype=torch.float64)
    return torch.stack([ids, (ids >= share0 * m).double()], dim=1)


def test_from_data_with_replacement_is_iid_from_the_empirical_law(gen):
    """replace=True: n i.i.d. draws from (1/M) Σ δ_{xᵢ}, the start Koehler–Vuong analyse."""
    data = _labelled_rows()
    m = data.shape[0]
    # 1. Occupancy: n = M = 1000 draws hit E = M(1 − (1 − 1/M)^n) ≈ 632.3 distinct rows, s.d.
    #    ≈ 9.9 (exact occupancy variance below).  A permutation / the first n rows gives 1000.
    starts = from_data(data, m, generator=gen)
    assert starts.shape == (m, 2)
    q1, q2 = (1 - 1 / m) ** m, (1 - 2 / m) ** m
    mean = m * (1 - q1)
    sd = (m * (m - 1) * q2 + m * q1 - m * m * q1 * q1) ** 0.5
    assert 9 < sd < 11
    distinct = torch.unique(starts[:, 0]).numel()
    assert abs(distinct - mean) < 5 * sd, distinct
    # every start is a row of the data, copied whole
    assert torch.equal(starts[:, 1], data[starts[:, 0].long(), 1])
    # 2. Frequencies over n = 20 000 draws.  Label 0 has probability 0.3: share within 5
    #    binomial s.e. √(0.21/n) = 0.0032.  Per row, Pearson's χ² over the M = 1000 rows has
    #    mean M − 1 = 999 and s.d. √(2(M − 1)) = 44.7: within 5 s.d. both ways, so both too
    #    uneven and too even (a deterministic sweep through the rows) fail.
    n = 20_000
    starts = from_data(data, n, generator=gen)
    share0 = float((starts[:, 1] == 0).double().mean())
    assert abs(share0 - 0.3) < 5 * (0.21 / n) ** 0.5, share0
    counts = torch.bincount(starts[:, 0].long(), minlength=m).double()
    chi2 = float(((counts - n / m) ** 2 / (n / m)).sum())
    assert abs(chi2 - (m - 1)) < 5 * (2 * (m - 1)) ** 0.5, chi2


def test_from_data_without_replacement_takes_distinct_random_rows(gen):
    data = _labelled_rows()
    m = data.shape[0]
    perm = from_data(data, m, generator=gen, replace=False)
    # all M rows, each once, in a shuffled order
    assert torch.equal(perm[:, 0].sort().values, data[:, 0])
    assert not torch.equal(perm, data)
    # n < M: distinct rows, a uniformly random subset, so label 0 has share 0.3 within 5
    # hypergeometric s.e. √(0.21/n · (M − n)/(M − 1)) = 0.018 (the first 400 rows: share 0.75)
    n = 400
    sub = from_data(data, n, generator=gen, replace=False)
    assert torch.unique(sub[:, 0]).numel() == n
    share0 = float((sub[:, 1] == 0).double().mean())
    assert abs(share0 - 0.3) < 5 * (0.21 / n * (m - n) / (m - 1)) ** 0.5, share0


def test_from_data_copies_rows_and_is_reproducible():
    data = _labelled_rows(50)
    a = from_data(data, 30, generator=torch.Generator().manual_seed(3))
    b = from_data(data, 30, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    a[:] = -1.0  # the starts are a copy: moving chains must never write into the data
    assert (data >= 0).all()
