"""log_likelihood: exact log-densities by the probability-flow ODE (Song et al. 2021, App. D.2)."""

import math

import pytest
import torch

from scorelab._utils import ScorelabError
from scorelab.distributions import Gaussian, GaussianMixture
from scorelab.samplers.likelihood import log_likelihood
from scorelab.sde import VESDE, VPSDE, exact_score_fn


def mixture():
    return GaussianMixture(
        [[-1.5, 0.0], [1.5, 0.5]], stds=[0.6, 0.8], weights=[0.4, 0.6], dtype=torch.float64
    )


def eps_marginal(target, sde):
    """The law the ODE actually starts from: p_eps = law of a(eps)X + s(eps)Z."""
    a, s = sde.marginal(torch.tensor([sde.eps], dtype=torch.float64))
    return target.noised(float(s), scale=float(a))


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_max=50.0)])
def test_exact_trace_matches_the_mixture_density(sde):
    """Exact score + exact trace: MAE < 0.05 nats against log p_eps on 150 points.

    The reference is the eps-marginal's exact log-density (VP: s(eps) ≈ 0.01, VE: ≈ 0.01);
    the remaining error is mostly the prior mismatch log p_T − log N(0, prior_std²I).
    """
    target = mixture()
    x = target.sample(150, torch.Generator().manual_seed(0))
    log_p, info = log_likelihood(exact_score_fn(sde, target), x, sde=sde)
    err = (log_p - eps_marginal(target, sde).log_prob(x)).abs()
    assert log_p.shape == (150,)
    assert err.mean() < 0.05, float(err.mean())
    assert info["nfe"] > 0 and info["x_T"].shape == x.shape
    assert torch.allclose(log_p, info["prior_log_p"] + info["delta_log_p"])


def test_heun_agrees_with_the_adaptive_solver():
    sde, target = VPSDE(), mixture()
    x = target.sample(50, torch.Generator().manual_seed(1))
    score = exact_score_fn(sde, target)
    adaptive, _ = log_likelihood(score, x, sde=sde)
    heun, info = log_likelihood(score, x, sde=sde, method="heun", n_steps=100)
    assert info["nfe"] == 200
    assert (heun - adaptive).abs().max() < 0.01


def test_single_gaussian_in_1d_is_the_closed_form():
    """N(0.5, 2) under VP: the ODE gives log N(x; a·0.5, a²·2 + s²) at eps.

    The raw answer differs from it only by the prior mismatch log p_T(x_T) − log N(x_T; 0, 1)
    (≤ 0.011 nats here); swapping in the exact log p_T isolates the integral, which is then
    right to 1e-4 nats.
    """
    sde = VPSDE()
    target = Gaussian([0.5], [[2.0]], dtype=torch.float64)
    x = torch.linspace(-4.0, 5.0, 37, dtype=torch.float64)[:, None]
    log_p, info = log_likelihood(exact_score_fn(sde, target), x, sde=sde, rtol=1e-7, atol=1e-7)
    a, s = sde.marginal(torch.tensor([sde.eps], dtype=torch.float64))
    var = a**2 * 2.0 + s**2
    closed = -0.5 * (x[:, 0] - a * 0.5) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)
    assert (log_p - closed).abs().max() < 0.02
    a_T, s_T = sde.marginal(torch.tensor([sde.T], dtype=torch.float64))
    exact_prior = target.noised(float(s_T), scale=float(a_T)).log_prob(info["x_T"])
    corrected = exact_prior + info["delta_log_p"]
    assert (corrected - closed).abs().max() < 1e-4


def test_hutchinson_agrees_with_the_exact_trace_within_its_standard_error():
    """16 probes per point: the probe average is unbiased for the exact-trace answer."""
    sde, target = VPSDE(), mixture()
    x = target.sample(100, torch.Generator().manual_seed(2))
    score = exact_score_fn(sde, target)
    exact, _ = log_likelihood(score, x, sde=sde)
    for probe in ("rademacher", "gaussian"):
        g = torch.Generator().manual_seed(3)
        est, info = log_likelihood(
            score, x, sde=sde, trace="hutchinson", n_probes=16, probe=probe, generator=g
        )
        assert info["log_p_probes"].shape == (16, 100) and info["stderr"].shape == (100,)
        diff = info["log_p_probes"] - exact  # independent across probes and points
        se = diff.std() / math.sqrt(diff.numel())
        assert abs(float(diff.mean())) < 4 * float(se), (probe, float(diff.mean()), float(se))
        assert torch.allclose(est, info["log_p_probes"].mean(0))
        inside = ((est - exact).abs() <= 4 * info["stderr"] + 1e-4).double().mean()
        assert inside > 0.9


def test_rademacher_hutchinson_is_exact_in_1d():
    """v² = 1 in one dimension, so vᵀJv = J: Hutchinson reproduces the exact trace."""
    sde = VPSDE()
    target = Gaussian([0.5], [[2.0]], dtype=torch.float64)
    x = torch.linspace(-3.0, 3.0, 11, dtype=torch.float64)[:, None]
    score = exact_score_fn(sde, target)
    exact, _ = log_likelihood(score, x, sde=sde)
    g = torch.Generator().manual_seed(0)
    est, _ = log_likelihood(score, x, sde=sde, trace="hutchinson", n_probes=3, generator=g)
    assert torch.allclose(est, exact, atol=1e-6)


def test_deterministic():
    sde, target = VPSDE(), mixture()
    x = target.sample(20, torch.Generator().manual_seed(4))
    score = exact_score_fn(sde, target)
    a, _ = log_likelihood(score, x, sde=sde)
    b, _ = log_likelihood(score, x, sde=sde)
    assert torch.equal(a, b)
    kw = {"sde": sde, "trace": "hutchinson", "n_probes": 2}
    h1, _ = log_likelihood(score, x, generator=torch.Generator().manual_seed(7), **kw)
    h2, _ = log_likelihood(score, x, generator=torch.Generator().manual_seed(7), **kw)
    h3, _ = log_likelihood(score, x, generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(h1, h2)
    assert not torch.equal(h1, h3)


def test_bad_arguments_raise():
    sde, target = VPSDE(), mixture()
    score = exact_score_fn(sde, target)
    x = target.sample(4, torch.Generator().manual_seed(0))
    bad = [
        {"trace": "skilling"},
        {"method": "rk4"},
        {"probe": "uniform"},
        {"n_probes": 0, "trace": "hutchinson"},
        {"n_probes": 2},  # probes with the exact trace
        {"n_steps": 0, "method": "heun"},
        {"rtol": 0.0},
        {"atol": float("nan")},
        {"eps": 1.0},
        {"eps": -0.1},
    ]
    for kw in bad:
        with pytest.raises(ScorelabError):
            log_likelihood(score, x, sde=sde, **kw)
    with pytest.raises(ScorelabError, match="SDE"):
        log_likelihood(score, x, sde="vp")
    with pytest.raises(ScorelabError, match="callable"):
        log_likelihood(None, x, sde=sde)
    with pytest.raises(ScorelabError, match="batch"):
        log_likelihood(score, x[0], sde=sde)
    with pytest.raises(ScorelabError, match="finite"):
        log_likelihood(score, torch.full((2, 2), float("nan"), dtype=torch.float64), sde=sde)
