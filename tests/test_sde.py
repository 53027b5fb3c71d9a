"""Forward SDEs: marginals vs simulation and moment ODEs, exact scores vs autograd, reverses."""

import math

import pytest
import torch

from scorelab import ScorelabError
from scorelab.distributions import GaussianMixture
from scorelab.distributions.toy import NoisyCircle
from scorelab.sde import OUSDE, SDES, VESDE, VPSDE, SubVPSDE, exact_score_fn

D64 = torch.float64


def all_sdes():
    return [VESDE(), VPSDE(), SubVPSDE(), OUSDE()]


IDS = ["ve", "vp", "subvp", "ou"]


def mixture64():
    """A rotated, unequal-weight 2-D mixture (full covariances exercise the eigen-form)."""
    c1 = torch.tensor([[1.0, 0.6], [0.6, 0.8]])
    c2 = torch.tensor([[0.3, -0.1], [-0.1, 0.5]])
    return GaussianMixture([[-2.0, 1.0], [1.5, -0.5]], torch.stack([c1, c2]), [0.3, 0.7], dtype=D64)


def autograd_score(law, x):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(law.log_prob(x).sum(), x)
    return grad


@pytest.mark.parametrize("sde", all_sdes(), ids=IDS)
def test_marginal_matches_euler_maruyama_simulation(sde, gen):
    n, steps, x0 = 20000, 2000, 1.5
    t_end = 1.0
    dt = t_end / steps
    x = torch.full((n, 1), x0, dtype=D64)
    checks = {round(0.5 / dt): 0.5, steps: 1.0}
    for k in range(1, steps + 1):
        t = torch.full((n,), (k - 1) * dt, dtype=D64)
        f_d, g_d = sde.discretize(x, t, dt)
        x = x + f_d + g_d[:, None] * torch.randn(x.shape, generator=gen, dtype=D64)
        if k in checks:
            a, s = sde.marginal(torch.tensor([checks[k]], dtype=D64))
            mean, std = float(a) * x0, float(s)
            # 5 standard errors (false alarm ~1e-6) + 1% for the Euler–Maruyama bias: the worst
            # case is VP's mean, Σ(βΔt)²/8 ≈ Δt∫β²/8 ≈ 0.8%; VE's variance sum is off ~0.4%.
            tol_mean = 5 * std / math.sqrt(n) + 0.01 * (abs(mean) + std)
            tol_std = 5 * std / math.sqrt(2 * n) + 0.01 * std
            assert abs(float(x.mean()) - mean) < tol_mean
            assert abs(float(x.std()) - std) < tol_std


@pytest.mark.parametrize("sde", all_sdes(), ids=IDS)
def test_exact_transition_reproduces_marginal_in_coarse_steps(sde, gen):
    # Ten exact Gaussian steps from x0 must land on the marginal at t = 1 with no bias.
    n, x0 = 20000, torch.full((20000, 1), 1.5, dtype=D64)
    x, dt = x0.clone(), 0.1
    for k in range(10):
        f_d, g_d = sde.transition(x, torch.full((n,), k * dt, dtype=D64), dt)
        x = x + f_d + g_d[:, None] * torch.randn(x.shape, generator=gen, dtype=D64)
    a, s = sde.marginal(torch.tensor([1.0], dtype=D64))
    assert abs(float(x.mean()) - 1.5 * float(a)) < 5 * float(s) / math.sqrt(n)
    assert abs(float(x.std()) - float(s)) < 5 * float(s) / math.sqrt(2 * n)


@pytest.mark.parametrize("sde", all_sdes(), ids=IDS)
def test_marginal_solves_moment_odes(sde):
    # a' = c·a, (s²)' = 2c·s² + g², a(0) = 1, s(0) = 0 determine (a, s) uniquely.
    t = torch.linspace(0.05, 0.95, 19, dtype=D64) * sde.T
    h = 1e-5
    a_p, s_p = sde.marginal(t + h)
    a_m, s_m = sde.marginal(t - h)
    a, s = sde.marginal(t)
    x = torch.ones(t.shape[0], 1, dtype=D64)
    f, g = sde.sde(x, t)
    c = f[:, 0]
    # central differences: truncation O(h²) ~ 1e-10, round-off ~ 1e-16/h ~ 1e-11 (relative)
    torch.testing.assert_close((a_p - a_m) / (2 * h), c * a, rtol=1e-6, atol=1e-9)
    dvar = (s_p**2 - s_m**2) / (2 * h)
    torch.testing.assert_close(dvar, 2 * c * s**2 + g**2, rtol=1e-6, atol=1e-9)
    a0, s0 = sde.marginal(torch.zeros(1, dtype=D64))
    assert float(a0) == 1.0 and float(s0) == 0.0


def test_marginal_closed_forms():
    t = torch.tensor([0.3, 0.7], dtype=D64)
    a, s = OUSDE().marginal(t)
    torch.testing.assert_close(a, torch.exp(-t))
    torch.testing.assert_close(s, torch.sqrt(1 - torch.exp(-2 * t)))
    ve = VESDE(sigma_min=0.1, sigma_max=10.0)
    _, s = ve.marginal(t)
    sig = 0.1 * 100.0**t
    torch.testing.assert_close(s, torch.sqrt(sig**2 - 0.01))
    vp, svp = VPSDE(), SubVPSDE()
    b = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.marginal(t)[1] ** 2, 1 - torch.exp(-b))
    torch.testing.assert_close(svp.marginal(t)[1], 1 - torch.exp(-b))
    # sub-VP's variance is below VP's at every t > 0
    assert bool((svp.marginal(t)[1] < vp.marginal(t)[1]).all())


@pytest.mark.parametrize("sde", all_sdes(), ids=IDS)
def test_exact_score_matches_autograd_per_sample_t(sde, gen):
    gm = mixture64()
    n = 8
    x = 2.0 * torch.randn(n, 2, generator=gen, dtype=D64)
    t = torch.linspace(0.0, 1.0, n, dtype=D64) * sde.T
    got = exact_score_fn(sde, gm)(x, t)
    a, s = sde.marginal(t)
    for i in range(n):
        law = gm.noised(float(s[i]), scale=float(a[i]))
        want = autograd_score(law, x[i : i + 1])
        torch.testing.assert_close(got[i : i + 1], want, rtol=1e-8, atol=1e-10)


def test_exact_score_fallback_for_other_targets(gen):
    # NoisyCircle is no GaussianMixture: one noised(s, scale=a) law per distinct t.
    circle, sde = NoisyCircle(radius=2.0, noise=0.2), VPSDE()
    x = torch.randn(6, 2, generator=gen)
    t = torch.tensor([0.0, 0.1, 0.1, 0.5, 0.9, 1.0])
    got = exact_score_fn(sde, circle)(x, t)
    a, s = sde.marginal(t)
    for i in range(6):
        want = autograd_score(circle.noised(float(s[i]), scale=float(a[i])), x[i : i + 1])
        torch.testing.assert_close(got[i : i + 1], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sde", [VPSDE(), OUSDE(), SubVPSDE()], ids=["vp", "ou", "subvp"])
def test_exact_score_tends_to_target_score_as_t_to_0(sde, gen):
    gm = mixture64()
    x = gm.sample(64, generator=gen)
    score = exact_score_fn(sde, gm)
    errs = []
    for tv in [1e-2, 1e-3, 1e-4, 0.0]:
        got = score(x, torch.full((64,), tv, dtype=D64))
        errs.append(float((got - gm.score(x)).abs().max()))
    assert errs[0] > errs[1] > errs[2] > errs[3]
    assert errs[3] < 1e-12 and errs[2] < 0.05


def test_reverse_drifts_on_values(gen):
    sde = VPSDE(beta_min=0.5, beta_max=10.0)
    x = torch.randn(5, 3, generator=gen, dtype=D64)
    t = torch.tensor([0.0, 0.2, 0.4, 0.6, 1.0], dtype=D64)
    seen = []

    def score_fn(x_, t_):
        seen.append(t_)
        return torch.sin(x_) * (1.0 + t_[:, None])

    s = torch.sin(x) * (1.0 + t[:, None])
    beta = (0.5 + 9.5 * t)[:, None]
    f, g2 = -0.5 * beta * x, beta
    drift, diff = sde.reverse(score_fn).sde(x, t)
    torch.testing.assert_close(drift, f - g2 * s)
    torch.testing.assert_close(diff, beta[:, 0].sqrt())
    drift, diff = sde.reverse(score_fn, probability_flow=True).sde(x, t)
    torch.testing.assert_close(drift, f - 0.5 * g2 * s)
    assert bool((diff == 0).all()) and diff.shape == (5,)
    torch.testing.assert_close(seen[0], t)  # score_fn got the per-sample time

    dt = 0.01
    rev_f, rev_g = sde.reverse(score_fn).discretize(x, t, dt)
    torch.testing.assert_close(rev_f, f * dt - g2 * dt * s)
    torch.testing.assert_close(rev_g, (beta[:, 0] * dt).sqrt())
    rev_f, rev_g = sde.reverse(score_fn, probability_flow=True).discretize(x, t, dt)
    torch.testing.assert_close(rev_f, f * dt - 0.5 * g2 * dt * s)
    assert bool((rev_g == 0).all())


def test_ou_reverse_is_seed_002_form(gen):
    # Seed 002: the reverse of dX = −X dt + √2 dB runs dX̄ = (X̄ + 2∇log q) dt + √2 dB in reversed
    # time, i.e. forward-time drift −(x + 2s).  For q = N(0, I) (stationary), s = −x: the reverse
    # drift is x and the probability-flow ODE stands still.
    sde = OUSDE()
    gm = GaussianMixture([[0.0, 0.0]], 1.0, dtype=D64)
    x = torch.randn(7, 2, generator=gen, dtype=D64)
    t = torch.rand(7, generator=gen, dtype=D64) * sde.T
    score = exact_score_fn(sde, gm)
    torch.testing.assert_close(score(x, t), -x)
    drift, diff = sde.reverse(score).sde(x, t)
    torch.testing.assert_close(-drift, x + 2 * score(x, t))
    torch.testing.assert_close(drift, x)
    torch.testing.assert_close(diff, torch.full((7,), math.sqrt(2.0), dtype=D64))
    drift, _ = sde.reverse(score, probability_flow=True).sde(x, t)
    torch.testing.assert_close(drift, torch.zeros_like(x))


@pytest.mark.parametrize("sde", all_sdes(), ids=IDS)
def test_prior_log_prob_and_sample(sde, gen):
    z = sde.prior_sample((4000, 3, 2), generator=gen, dtype=D64)
    want = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z).sum(dim=(1, 2))
    torch.testing.assert_close(sde.prior_log_prob(z), want)
    # std of 24000 draws within 5 standard errors (σ/√(2n))
    assert abs(float(z.std()) / sde.prior_std - 1.0) < 5 / math.sqrt(2 * z.numel())
    # the prior is (close to) the marginal at T from x0 = 0
    _, s_t = sde.marginal(torch.tensor([sde.T], dtype=D64))
    assert abs(float(s_t) / sde.prior_std - 1.0) < 1e-3


def test_sde_is_shape_agnostic(gen):
    sde = VPSDE()
    x = torch.randn(3, 2, 4, 4, generator=gen)
    t = torch.tensor([0.1, 0.5, 0.9])
    f, g = sde.sde(x, t)
    assert f.shape == x.shape and g.shape == (3,)
    torch.testing.assert_close(f[1], -0.5 * sde.beta(t[1:2]) * x[1])
    xt, z = sde.perturb(x, t, generator=gen)
    a, s = sde.marginal(t)
    torch.testing.assert_close(xt, a[:, None, None, None] * x + s[:, None, None, None] * z)


def test_registry():
    assert set(SDES) == {"ve", "vp", "subvp", "ou"}
    assert isinstance(SDES.build("ou", T=3.0), OUSDE) and SDES.build("ou", T=3.0).T == 3.0
    assert SDES.build("ve", sigma_max=10.0).prior_std == 10.0
    with pytest.raises(ScorelabError, match="known: ou, subvp, ve, vp"):
        SDES.get("edm")


def test_bad_arguments_raise():
    with pytest.raises(ScorelabError, match="sigma_min < sigma_max"):
        VESDE(sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(ScorelabError, match="beta_min < beta_max"):
        VPSDE(beta_min=20.0, beta_max=0.1)
    with pytest.raises(ScorelabError):
        SubVPSDE(beta_min=-1.0)
    with pytest.raises(ScorelabError):
        OUSDE(T=0.0)
    sde, x = VPSDE(), torch.zeros(2, 2)
    for bad in [torch.tensor([-0.1, 0.5]), torch.tensor([0.5, 1.1])]:
        with pytest.raises(ScorelabError, match="t must lie in"):
            sde.marginal(bad)
        with pytest.raises(ScorelabError, match="t must lie in"):
            sde.sde(x, bad)
    with pytest.raises(ScorelabError, match="shape"):
        sde.sde(x, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ScorelabError, match="dt must be positive"):
        sde.discretize(x, torch.tensor([0.1, 0.2]), 0.0)
    with pytest.raises(ScorelabError, match="t must lie in"):
        sde.transition(x, torch.tensor([0.95, 0.2]), 0.1)  # 0.95 + 0.1 > T
    with pytest.raises(ScorelabError, match="needs a per-sample time"):
        exact_score_fn(sde, mixture64())(x.double(), None)
