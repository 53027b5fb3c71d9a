"""The shared sampler loop and its fast paths: exact finiteness checks, reused draws, 0-d
scalars, and the plain formulas every Langevin-family sampler must still match bit for bit."""

import math

import pytest
import torch

from scorelab import DivergenceError
from scorelab._utils import randn_like
from scorelab.distributions import seed001_fig3, target_log_prob_fn, target_score_fn
from scorelab.samplers import annealed_langevin, hmc, langevin, mala
from scorelab.samplers._loop import Noise, all_finite, flat_sum, iterate, scalar
from scorelab.samplers._mh import mh_select

DTYPES = [torch.float32, torch.float64]


# -- all_finite: one reduction, still exact ------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES + [torch.float16, torch.bfloat16])
def test_all_finite_is_exact(dtype):
    big = torch.finfo(dtype).max
    x = torch.zeros(50, 3, dtype=dtype)
    assert all_finite(x)
    x[:2] = big  # finite entries whose sum overflows: still finite
    assert all_finite(x)
    for bad in (math.inf, -math.inf, math.nan):
        y = x.clone()
        y[7, 1] = bad
        assert not all_finite(y)
    z = torch.zeros(4, 2, dtype=dtype)
    z[0, 0], z[1, 0] = math.inf, -math.inf  # the sum is NaN
    assert not all_finite(z)


def test_all_finite_on_complex_states():
    x = torch.zeros(3, 2, dtype=torch.complex64)
    assert all_finite(x)
    x[1, 1] = complex(0.0, math.inf)
    assert not all_finite(x)


# -- iterate: divergence named by step, or by step range when checking every k steps -------------
def _nan_at(step_no: int):
    def step(x, i):
        return x + (math.nan if i + 1 == step_no else 1.0)

    return step


def test_iterate_names_the_first_bad_step_when_checking_every_step():
    with pytest.raises(DivergenceError, match=r"toy diverged at step 5: 2 of 2 chains.*; hint"):
        iterate(_nan_at(5), torch.zeros(2, 3), 9, sampler="toy", hint="hint", check_every=1)


@pytest.mark.parametrize(("n_steps", "match"), [(9, "step 4 and step 6"), (5, "step 4 and step 5")])
def test_iterate_names_the_step_range_when_checking_every_k_steps(n_steps, match):
    # checks after steps 3, 6, ... and after the last step
    with pytest.raises(DivergenceError, match=f"toy diverged between {match}: 2 of 2 chains"):
        iterate(_nan_at(5), torch.zeros(2, 3), n_steps, sampler="toy", hint="h", check_every=3)


def test_iterate_checks_after_the_last_step_and_keeps_the_trajectory():
    x, traj, _ = iterate(
        lambda x, i: x + 1,
        torch.zeros(2, 1),
        7,
        sampler="t",
        hint="h",
        record_every=2,
        check_every=5,
    )
    assert torch.equal(x, torch.full((2, 1), 7.0))
    assert traj[:, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
    with pytest.raises(DivergenceError, match="between step 6 and step 7"):
        iterate(_nan_at(7), torch.zeros(2, 1), 7, sampler="t", hint="h", check_every=5)


def test_cpu_states_are_checked_every_step_by_default():
    with pytest.raises(DivergenceError, match="at step 2:"):
        iterate(_nan_at(2), torch.zeros(3, 2), 50, sampler="t", hint="h")


# -- reused draws and 0-d scalars give the plain expressions' bits ------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 16, 1001])
def test_noise_draws_the_bits_of_randn_and_rand(dtype, n):
    x = torch.empty(n, 2, dtype=dtype).t()  # non-contiguous: the draws are still randn's order
    a, b = torch.Generator().manual_seed(n), torch.Generator().manual_seed(n)
    noise = Noise(a)
    for _ in range(3):
        assert torch.equal(noise(x), randn_like(x, b))
        u = torch.empty(n, dtype=dtype)
        assert torch.equal(noise.uniform(u), torch.rand(n, generator=b, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_tensors_multiply_like_python_floats(dtype, gen):
    t = torch.randn(1000, 3, generator=gen, dtype=dtype) * 10.0 ** torch.randint(
        -6, 6, (1000, 1), generator=gen
    )
    for c in (0.005, math.sqrt(0.01), 1 / 3, 0.1234567891, 7.5e-9):
        assert torch.equal(t * scalar(c, t), t * c)
        assert torch.equal(flat_sum(t * t), (t * t).reshape(t.shape[0], -1).sum(1))
    assert scalar(0.25, t) is scalar(0.25, t) and scalar(0.25, t).dtype == dtype
    assert scalar(0.25, t.half()) == 0.25  # half types keep the Python float


def test_mh_select_rejects_every_non_finite_log_alpha(gen):
    log_alpha = torch.tensor([math.inf, -math.inf, math.nan, 50.0]).repeat(1000)
    cur, new = torch.zeros(4000, 2), torch.ones(4000, 2)
    g2 = torch.Generator().manual_seed(1234)
    accept, (chosen,) = mh_select(log_alpha, (cur,), (new,), gen)
    accept2, (chosen2,) = mh_select(log_alpha, (cur,), (new,), g2, noise=Noise(g2))
    assert torch.equal(accept, accept2) and torch.equal(chosen, chosen2)
    assert accept.reshape(1000, 4).sum(0).tolist() == [0, 0, 0, 1000]


# -- the samplers still compute exactly the plain formulas ---------------------------------------
def _plain_langevin(sf, x, levels, t_each, g):
    for sig, a in levels:
        for _ in range(t_each):
            x = x + (a / 2.0) * sf(x, sig) + math.sqrt(a) * randn_like(x, g)
    return x


def _plain_mala(sf, lp, x, eps, n, g):
    half, root = eps / 2.0, math.sqrt(eps)

    def log_q(to, frm, grad):
        return -((to - frm - half * grad) ** 2).reshape(to.shape[0], -1).sum(1) / (2.0 * eps)

    logp, grad = lp(x), sf(x, None)
    for _ in range(n):
        y = x + half * grad + root * randn_like(x, g)
        logp_y, grad_y = lp(y), sf(y, None)
        la = logp_y - logp + log_q(x, y, grad_y) - log_q(y, x, grad)
        la = torch.where(torch.isfinite(la), la, -math.inf)
        acc = torch.rand(la.shape, generator=g, dtype=la.dtype).log() < la
        x = torch.where(acc[:, None], y, x)
        logp, grad = torch.where(acc, logp_y, logp), torch.where(acc[:, None], grad_y, grad)
    return x


def _plain_hmc(sf, lp, x, eps, n_lf, n, g):
    grad, logp = sf(x, None), (lp(x) if lp is not None else None)
    for _ in range(n):
        p0 = randn_like(x, g)
        p, y = p0 + 0.5 * eps * grad, x
        for i in range(n_lf):
            y = y + eps * p
            grad_y = sf(y, None)
            p = p + (eps if i < n_lf - 1 else 0.5 * eps) * grad_y
        if lp is None:
            x, grad = y, grad_y
            continue
        logp_y = lp(y)
        dh = (-logp_y + 0.5 * (p**2).reshape(p.shape[0], -1).sum(1)) - (
            -logp + 0.5 * (p0**2).reshape(p.shape[0], -1).sum(1)
        )
        la = -dh
        la = torch.where(torch.isfinite(la), la, -math.inf)
        acc = torch.rand(la.shape, generator=g, dtype=la.dtype).log() < la
        x = torch.where(acc[:, None], y, x)
        logp, grad = torch.where(acc, logp_y, logp), torch.where(acc[:, None], grad_y, grad)
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 500])
@pytest.mark.parametrize("score_dtype", [None, torch.float64])
def test_samplers_match_the_plain_formulas_bit_for_bit(dtype, n, score_dtype):
    """Also with a score of another dtype than the chains (type promotion: the slow path)."""
    target = seed001_fig3()
    sf, lp = target_score_fn(target), target_log_prob_fn(target)
    if score_dtype is not None:
        sf = (lambda f: lambda x, s: f(x.to(score_dtype), s))(sf)
    x0 = target.sample(n, generator=torch.Generator().manual_seed(0)).to(dtype)

    def g():
        return torch.Generator().manual_seed(7)

    got = langevin(sf, x0, step_size=0.03, n_steps=40, generator=g()).samples
    assert torch.equal(got, _plain_langevin(sf, x0, [(None, 0.03)], 40, g()))

    sigmas = [2.0, 0.7, 0.2]
    got = annealed_langevin(sf, x0, sigmas=sigmas, step_size=0.01, n_steps_each=5, generator=g())
    levels = [(torch.full((n,), s, dtype=dtype), 0.01 * s**2 / sigmas[-1] ** 2) for s in sigmas]
    assert torch.equal(got.samples, _plain_langevin(sf, x0, levels, 5, g()))

    got = mala(sf, x0, log_prob_fn=lp, step_size=0.6, n_steps=40, generator=g()).samples
    assert torch.equal(got, _plain_mala(sf, lp, x0, 0.6, 40, g()))

    for log_prob in (lp, None):
        got = hmc(
            sf, x0, log_prob_fn=log_prob, step_size=0.4, n_leapfrog=4, n_steps=15, generator=g()
        ).samples
        assert torch.equal(got, _plain_hmc(sf, log_prob, x0, 0.4, 4, 15, g()))
