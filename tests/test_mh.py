"""The Metropolis–Hastings test shared by MALA and HMC: support, start points, bookkeeping."""

import math

import pytest
import torch

from scorelab import ScorelabError
from scorelab.samplers import hmc, mala
from scorelab.samplers._mh import mh_select


def _box_log_prob(x):
    """Uniform on the unit box: 0 inside, −inf outside."""
    inside = (x.abs() <= 1).all(1)
    return torch.where(inside, 0.0, -math.inf).to(x.dtype)


def _zero_score(x, sigma):
    return torch.zeros_like(x)


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_start_points_outside_the_support_are_refused(sampler):
    x0 = torch.full((10, 2), 0.5)
    x0[3] = 1.5  # one chain outside the box
    kwargs = {"log_prob_fn": _box_log_prob, "step_size": 0.5, "n_steps": 5}
    if sampler == "hmc":
        kwargs["n_leapfrog"] = 2
    fn = mala if sampler == "mala" else hmc
    with pytest.raises(ScorelabError, match="1 of 10 start points have a non-finite log-density"):
        fn(_zero_score, x0, **kwargs)


def test_nan_log_density_at_the_start_is_refused():
    with pytest.raises(ScorelabError, match="non-finite log-density"):
        mala(
            _zero_score,
            torch.zeros(4, 2),
            log_prob_fn=lambda x: torch.full((4,), math.nan),
            step_size=0.1,
            n_steps=3,
        )


def test_chains_never_leave_the_support_and_acceptance_is_counted(gen):
    res = hmc(
        _zero_score,
        torch.zeros(2000, 2),
        log_prob_fn=_box_log_prob,
        step_size=0.4,
        n_leapfrog=3,
        n_steps=30,
        generator=gen,
    )
    assert (res.samples.abs() <= 1).all()
    # zero score: a proposal moves by ε·L·p with p ~ N(0, I); about half land outside the box
    assert 0.2 < res.info["acceptance_rate"] < 0.8
    # uniform on the box after mixing: mean 0, variance 1/3 (s.e. of the variance ≈ 0.005)
    assert res.samples.var(0).sub(1 / 3).abs().max() < 0.03


def test_no_steps_means_no_acceptance_rate():
    res = mala(_zero_score, torch.zeros(3, 2), log_prob_fn=_box_log_prob, step_size=0.1, n_steps=0)
    assert res.info["acceptance_rate"] is None and torch.equal(res.samples, torch.zeros(3, 2))


def test_mh_select_accepts_with_probability_min_one_exp_log_alpha(gen):
    """P(accept) = min(1, e^{log α}): check it per value of log α with 20000 draws each
    (binomial s.e. ≤ 0.0036, bound 0.015 ≈ 4 s.e.); NaN and −inf are always rejected."""
    n = 20000
    log_alpha = torch.tensor([0.5, 0.0, math.log(0.3), -math.inf, math.nan]).repeat(n)
    cur, new = torch.zeros(5 * n, 1), torch.ones(5 * n, 1)
    accept, (chosen,) = mh_select(log_alpha, (cur,), (new,), gen)
    rates = accept.reshape(n, 5).double().mean(0)
    assert torch.allclose(
        rates, torch.tensor([1.0, 1.0, 0.3, 0.0, 0.0], dtype=torch.float64), atol=0.015
    )
    assert torch.equal(chosen[:, 0], accept.to(chosen.dtype))


def test_hmc_without_metropolis_reports_no_acceptance_rate(gen):
    res = hmc(
        lambda x, s: -x, torch.zeros(8, 2), step_size=0.1, n_leapfrog=2, n_steps=3, generator=gen
    )
    assert res.info["adjusted"] is False and res.info["acceptance_rate"] is None
