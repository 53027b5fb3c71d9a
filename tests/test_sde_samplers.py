"""Reverse-SDE, ancestral, predictor–corrector and probability-flow samplers (Song et al. 2021).

With the exact score (sde.exact_score_fn) the only error left is the sampler's own, so the
tests check statistics against known answers: mixture weights and MMD on seed 001's Fig. 3
mixture, convergence orders on a Gaussian whose probability-flow map is known in closed form,
and the closed-form steps of seed 002 (OU exponential integrator) and SMLD.
"""

import math

import numpy as np
import pytest
import torch

from scorelab._utils import ScorelabError
from scorelab.distributions import seed001_fig3
from scorelab.distributions.mixture import Gaussian
from scorelab.metrics import mixture_weights, mmd
from scorelab.samplers.sde_samplers import (
    ancestral,
    predictor_corrector,
    probability_flow,
    reverse_sde,
)
from scorelab.sde import OUSDE, VESDE, VPSDE, SubVPSDE, exact_score_fn

N_CHAINS = 4000
N_MMD = 2000

SDES = {
    "ve": lambda: VESDE(sigma_min=0.01, sigma_max=25.0),
    "vp": lambda: VPSDE(),
    "ou": lambda: OUSDE(T=5.0),
    "subvp": lambda: SubVPSDE(),
}

# Step counts from a sweep (exact start, 4000 chains): every weight error ≤ 0.013, well
# inside 0.03.  Ancestral (DDPM posterior variance β̃) is under-dispersed by O(h·log(T/eps))
# within a mode on a uniform grid (OU: within-mode var 0.78 at 100 steps, 0.90 at 400), so it
# gets more steps; the Langevin corrector removes most of that bias.
SAMPLERS = {
    "em": lambda sf, x, sde, g: reverse_sde(sf, x, sde=sde, n_steps=200, generator=g),
    "exponential": lambda sf, x, sde, g: reverse_sde(
        sf, x, sde=sde, n_steps=400, method="exponential", generator=g
    ),
    "ancestral": lambda sf, x, sde, g: ancestral(sf, x, sde=sde, n_steps=400, generator=g),
    "pc": lambda sf, x, sde, g: predictor_corrector(sf, x, sde=sde, n_steps=200, generator=g),
    "pc_ancestral": lambda sf, x, sde, g: predictor_corrector(
        sf, x, sde=sde, n_steps=200, predictor="ancestral", generator=g
    ),
    "pc_em": lambda sf, x, sde, g: predictor_corrector(
        sf, x, sde=sde, n_steps=200, predictor="euler_maruyama", generator=g
    ),
    "pf_heun": lambda sf, x, sde, g: probability_flow(sf, x, sde=sde, n_steps=50, method="heun"),
    "pf_adaptive": lambda sf, x, sde, g: probability_flow(sf, x, sde=sde, method="adaptive"),
    "pf_dopri5": lambda sf, x, sde, g: probability_flow(sf, x, sde=sde, method="dopri5"),
    "pf_heun_sigma": lambda sf, x, sde, g: probability_flow(
        sf, x, sde=sde, n_steps=50, method="heun_sigma"
    ),
}


@pytest.fixture(scope="module")
def mixture_ref():
    """Fresh exact samples and the two-sample MMD noise floor (RMS of 8 null pairs)."""
    target = seed001_fig3()
    g = torch.Generator().manual_seed(7)
    ref = target.sample(N_MMD, generator=g)
    null = [
        mmd(target.sample(N_MMD, generator=g), target.sample(N_MMD, generator=g)) for _ in range(8)
    ]
    floor = math.sqrt(sum(v * v for v in null) / len(null))
    return target, ref, floor


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_exact_score_recovers_mixture(sde_name, sampler, mixture_ref):
    target, ref, floor = mixture_ref
    sde = SDES[sde_name]()
    g = torch.Generator().manual_seed(11)
    # Start from the exact law at T, not the prior: with σ_max = 25 the VE prior N(0, 25²I)
    # misses the mixture's mean (3, 5) and the deterministic PF-ODE carries that bias into the
    # weights (≈ 0.035 off); the exact start isolates the sampler's discretisation error.
    x_T, _ = sde.perturb(target.sample(N_CHAINS, generator=g), sde.T, generator=g)
    res = SAMPLERS[sampler](exact_score_fn(sde, target), x_T, sde, g)
    assert res.samples.shape == (N_CHAINS, 2)
    w = mixture_weights(res.samples, target)
    # binomial sd of a weight with 4000 chains: √(0.16/4000) = 0.0063, so 0.03 is ~5 sd
    assert max(abs(a - b) for a, b in zip(w.estimated, w.true, strict=True)) < 0.03, w
    # U-statistic MMD against fresh exact samples: < 4× the RMS of 8 null pairs (floor here
    # 6.8e-4; the samplers measure −9.5e-4 … 8.8e-4; the 200-step exponential VE run, a
    # first-order bias with weight 0.2065, gave 2.1e-3 ≈ 3×: MMD is a coarse check at n = 2000)
    m = mmd(res.samples[:N_MMD], ref)
    assert m < 4.0 * floor, (m, floor)


def _gaussian_pf_map(sde, x_T, mu, var0):
    """Exact PF-ODE map T → eps for N(μ, var0) in 1-D: the quantile (affine) map."""

    def mean_sd(t):
        a, s = sde.marginal(torch.tensor([t], dtype=torch.float64))
        return float(a) * mu, math.sqrt(float(a) ** 2 * var0 + float(s) ** 2)

    m_T, sd_T = mean_sd(sde.T)
    m_e, sd_e = mean_sd(sde.eps)
    return m_e + sd_e * (x_T - m_T) / sd_T


def _slopes(ns, errs):
    return -np.diff(np.log(errs)) / np.diff(np.log(ns))


@pytest.mark.parametrize(
    "sde", [OUSDE(T=3.0), VPSDE(), VESDE(sigma_min=0.01, sigma_max=20.0)], ids=["ou", "vp", "ve"]
)
def test_probability_flow_orders(sde):
    mu, var0 = 2.0, 0.25
    target = Gaussian([mu], [[var0]], dtype=torch.float64)
    sf = exact_score_fn(sde, target)
    x_T = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)[:, None]
    exact = _gaussian_pf_map(sde, x_T, mu, var0)
    ns = [20, 40, 80, 160]
    for method, lo, hi in [
        ("euler", 0.8, 1.3),
        ("heun", 1.6, 2.4),
        ("euler_sigma", 0.8, 1.3),
        ("heun_sigma", 1.6, 2.4),
    ]:
        if method.endswith("_sigma") and isinstance(sde, OUSDE):
            # σ̃ = √(e^{2t} − 1) ≈ √(2t) near eps: the last uniform-t step spans σ̃ 0.57 → 0.005,
            # pre-asymptotic up to n = 160 (slopes 0.66–0.83 and 1.55–1.72, rising towards 1, 2)
            continue
        errs = [
            float(
                (probability_flow(sf, x_T, sde=sde, n_steps=n, method=method).samples - exact)
                .abs()
                .max()
            )
            for n in ns
        ]
        slopes = _slopes(ns, errs)
        # Euler is first order, Heun second (measured slopes 0.84–1.02 and 1.92–2.21)
        assert lo <= slopes.mean() <= hi, (method, errs, slopes)
        assert all(s > lo - 0.1 for s in slopes), (method, slopes)
    for method in ("adaptive", "dopri5"):
        res = probability_flow(sf, x_T, sde=sde, method=method, rtol=1e-8, atol=1e-8)
        assert float((res.samples - exact).abs().max()) < 1e-6, method
        assert res.nfe > 6 and res.trajectory is None


@pytest.mark.parametrize("sde", [VESDE(sigma_min=0.01, sigma_max=20.0), VPSDE(), OUSDE(T=3.0)])
def test_sigma_steps_are_exact_for_a_point_mass(sde):
    """Data at μ: the noised score is −(x − aμ)/s², and in y = x/a, σ̃ = s/a the flow is
    y − μ ∝ σ̃, a straight line that Euler in σ̃ follows exactly with any number of steps (DDIM's
    and EDM's point).  Euler in t is off by its first-order error."""
    mu = 1.5

    def score(x, t):
        a, s = sde.marginal(t)
        return -(x - a[:, None] * mu) / s[:, None] ** 2

    x_T = torch.linspace(-40.0, 40.0, 9, dtype=torch.float64)[:, None]
    a, s = sde.marginal(torch.tensor([sde.T, sde.eps], dtype=torch.float64))
    sig = s / a
    exact = a[1] * (mu + (x_T / a[0] - mu) * sig[1] / sig[0])
    for method in ("euler_sigma", "heun_sigma"):
        out = probability_flow(score, x_T, sde=sde, n_steps=3, method=method).samples
        assert float((out - exact).abs().max()) < 1e-10 * float(1 + exact.abs().max()), method
    t_steps = probability_flow(score, x_T, sde=sde, n_steps=3, method="euler").samples
    assert float((t_steps - exact).abs().max()) > 1e-3


def test_euler_sigma_is_karras_euler_for_ve():
    """VE (a = 1): x ← x + σᵢ(σᵢ − σᵢ₊₁)·s, k-diffusion's `sample_euler` step
    x + (σᵢ₊₁ − σᵢ)(x − D)/σᵢ with D = x + σᵢ²s, written out on our grid."""
    sde = VESDE(sigma_min=0.01, sigma_max=10.0)
    target = seed001_fig3()
    sf = exact_score_fn(sde, target)
    x = sde.prior_sample((64, 2), generator=torch.Generator().manual_seed(1)).double()
    ours = probability_flow(sf, x, sde=sde, n_steps=8, method="euler_sigma").samples
    ts = torch.linspace(sde.T, sde.eps, 9, dtype=torch.float64)
    sig = sde.marginal(ts)[1]
    y = x.clone()
    for i in range(8):
        d = -sig[i] * sf(y, ts[i].expand(64))  # (y − D)/σ
        y = y + (sig[i + 1] - sig[i]) * d
    torch.testing.assert_close(ours, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["euler_maruyama", "exponential"])
def test_reverse_sde_weak_order_one_on_variance(method):
    """Var of the output vs the exact 0.25; 10⁵ chains: MC sd of the variance ≈ 0.0011."""
    sde = OUSDE(T=3.0)
    target = Gaussian([2.0], [[0.25]], dtype=torch.float64)
    sf = exact_score_fn(sde, target)
    g = torch.Generator().manual_seed(3)
    ns, errs = [20, 40, 80], []
    for n in ns:
        x_T, _ = sde.perturb(target.sample(100_000, generator=g), sde.T, generator=g)
        out = reverse_sde(sf, x_T, sde=sde, n_steps=n, method=method, generator=g).samples
        errs.append(abs(float(out.var()) - 0.25))
    # smallest error (≈ 0.04) is ~40 MC sd, so the fitted slope is the discretisation order
    assert errs[-1] > 20 * 0.25 * math.sqrt(2 / 100_000)
    slopes = _slopes(ns, errs)
    assert 0.8 <= slopes.mean() <= 1.5, (errs, slopes)


def test_exponential_step_is_seed002_ou_formula():
    """One step with a constant score: x ← eʰx + 2(eʰ − 1)s + √(e^{2h} − 1)·z (seed 002)."""
    sde = OUSDE(T=1.0, eps=0.25)
    h = 0.75
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def score(x, t):
        return torch.full_like(x, 0.3)

    out = reverse_sde(
        score, x0, sde=sde, n_steps=1, method="exponential",
        generator=torch.Generator().manual_seed(5),
    ).samples  # fmt: skip
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    e = math.exp(h)
    expected = e * x0 + 2 * (e - 1) * 0.3 + math.sqrt(e**2 - 1) * z
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("sde", [VESDE(), VPSDE(), OUSDE(), SubVPSDE()], ids=str)
def test_exponential_coefs_closed_forms_and_quadrature(sde):
    """κ = a(t_next)∫g²/a against scipy.quad, and the VE / VP / OU closed forms."""
    from scipy.integrate import quad

    for t, t_next in [(sde.T, 0.9 * sde.T), (0.5 * sde.T, 0.1 * sde.T), (0.02 * sde.T, 0.0)]:
        rho, kappa, nu = sde.exponential_coefs(t, t_next)

        def m(u):
            a, s = sde.marginal(torch.tensor([u], dtype=torch.float64))
            return float(a[0]), float(s[0])

        def integrand(u):
            g = float(sde.diffusion(torch.tensor([u], dtype=torch.float64))[0])
            return g**2 / m(u)[0]

        (a1, s1), (a0, s0) = m(t), m(t_next)
        assert rho == pytest.approx(a0 / a1, rel=1e-12)
        assert kappa == pytest.approx(a0 * quad(integrand, t_next, t, epsabs=0, epsrel=1e-12)[0],
                                      rel=1e-9)  # fmt: skip
        assert nu == pytest.approx(a0**2 * (s1**2 / a1**2 - s0**2 / a0**2), rel=1e-12, abs=1e-15)
        if isinstance(sde, VESDE):
            assert kappa == pytest.approx(s1**2 - s0**2, rel=1e-10)
            assert nu == pytest.approx(s1**2 - s0**2, rel=1e-10)
        elif not isinstance(sde, SubVPSDE):  # VP and OU: g² = −2c
            assert kappa == pytest.approx(2 * (rho - 1), rel=1e-10)
            assert nu == pytest.approx(rho**2 - 1, rel=1e-10)
        else:  # sub-VP's g² < −2c, so κ is below VP's 2(ρ − 1)
            assert kappa < 2 * (rho - 1)
    with pytest.raises(ScorelabError):
        sde.exponential_coefs(0.1 * sde.T, 0.5 * sde.T)


def test_probability_flow_denoise_is_tweedie_at_eps():
    sde = VPSDE()
    sf = exact_score_fn(sde, seed001_fig3())
    x0 = sde.prior_sample((64, 2), generator=torch.Generator().manual_seed(0))
    plain = probability_flow(sf, x0, sde=sde, n_steps=20).samples
    den = probability_flow(sf, x0, sde=sde, n_steps=20, denoise=True)
    a, s = sde.marginal(torch.full((64,), sde.eps))
    tt = torch.full((64,), sde.eps)
    expected = (plain + s[:, None] ** 2 * sf(plain, tt)) / a[:, None]
    torch.testing.assert_close(den.samples, expected)
    assert den.info["denoise"] is True and den.nfe == 21
    ada = probability_flow(sf, x0, sde=sde, method="adaptive", denoise=True)
    assert ada.info["denoise"] is True and torch.isfinite(ada.samples).all()


def test_ancestral_step_is_smld_for_ve():
    """x_{i−1} = x_i + (σᵢ² − σᵢ₋₁²)s + √(σᵢ₋₁²(σᵢ² − σᵢ₋₁²)/σᵢ²)·z, σ² = marginal variance."""
    sde = VESDE(sigma_min=0.1, sigma_max=10.0)
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def score(x, t):
        return -x / 4.0

    out = ancestral(score, x0, sde=sde, n_steps=2, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    x = x0
    for t, t_next in [(1.0, 0.5 * (1.0 + sde.eps)), (0.5 * (1.0 + sde.eps), sde.eps)]:
        v1 = float(sde.marginal(torch.tensor([t], dtype=torch.float64))[1]) ** 2
        v0 = float(sde.marginal(torch.tensor([t_next], dtype=torch.float64))[1]) ** 2
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        x = x + (v1 - v0) * score(x, None) + math.sqrt(v0 * (v1 - v0) / v1) * z
    torch.testing.assert_close(out.samples, x)
    assert out.nfe == 2


def test_determinism_and_nfe():
    sde = VPSDE()
    target = seed001_fig3()
    calls = {"n": 0}
    base = exact_score_fn(sde, target)

    def sf(x, t):
        calls["n"] += 1
        return base(x, t)

    x0 = sde.prior_sample((50, 2), generator=torch.Generator().manual_seed(0))
    cases = [
        (lambda g: reverse_sde(sf, x0, sde=sde, n_steps=7, generator=g), 7),
        (lambda g: reverse_sde(sf, x0, sde=sde, n_steps=7, method="exponential", generator=g), 7),
        (lambda g: reverse_sde(sf, x0, sde=sde, n_steps=7, denoise=True, generator=g), 8),
        (lambda g: ancestral(sf, x0, sde=sde, n_steps=7, generator=g), 7),
        (lambda g: predictor_corrector(sf, x0, sde=sde, n_steps=7, n_corrector=2, generator=g), 21),
        (lambda g: probability_flow(sf, x0, sde=sde, n_steps=7), 7),
        (lambda g: probability_flow(sf, x0, sde=sde, n_steps=7, method="heun"), 14),
        (lambda g: probability_flow(sf, x0, sde=sde, n_steps=7, method="euler_sigma"), 7),
        (lambda g: probability_flow(sf, x0, sde=sde, n_steps=7, method="heun_sigma"), 14),
        (lambda g: probability_flow(sf, x0, sde=sde, n_steps=7, denoise=True), 8),
        (lambda g: ancestral(sf, x0, sde=sde, n_steps=7, denoise=True, generator=g), 8),
    ]
    for run, nfe in cases:
        calls["n"] = 0
        a = run(torch.Generator().manual_seed(42))
        assert a.nfe == nfe == calls["n"]
        b = run(torch.Generator().manual_seed(42))
        assert torch.equal(a.samples, b.samples)
    calls["n"] = 0
    for method in ("adaptive", "dopri5"):
        calls["n"] = 0
        res = probability_flow(sf, x0, sde=sde, method=method)
        assert res.nfe == calls["n"] > 0
    # dopri5: two calls to start, then six per attempted step (first same as last)
    steps = res.info["n_accepted_steps"] + res.info["n_rejected_steps"]
    assert res.nfe == 2 + 6 * steps
    assert torch.equal(res.samples, probability_flow(sf, x0, sde=sde, method="dopri5").samples)
    # different seeds give different stochastic samples
    r1 = reverse_sde(sf, x0, sde=sde, n_steps=3, generator=torch.Generator().manual_seed(1))
    r2 = reverse_sde(sf, x0, sde=sde, n_steps=3, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(r1.samples, r2.samples)
    # trajectory: x₀ plus every 2nd of 6 states
    r = ancestral(sf, x0, sde=sde, n_steps=6, record_every=2, generator=torch.Generator())
    assert r.trajectory.shape == (4, 50, 2)
    assert torch.equal(r.trajectory[0], x0) and torch.equal(r.trajectory[-1], r.samples)


def test_bad_arguments():
    sde = VPSDE()
    sf = exact_score_fn(sde, seed001_fig3())
    x = torch.zeros(3, 2)
    bad = [
        lambda: reverse_sde(sf, x, sde=sde, n_steps=0),
        lambda: reverse_sde(sf, x, sde=sde, n_steps=2.5),
        lambda: reverse_sde(sf, x, sde=sde, n_steps=5, method="rk4"),
        lambda: reverse_sde(sf, x, sde="vp", n_steps=5),
        lambda: reverse_sde(sf, torch.zeros(3), sde=sde, n_steps=5),
        lambda: reverse_sde(None, x, sde=sde, n_steps=5),
        lambda: ancestral(sf, x, sde=sde, n_steps=-1),
        lambda: predictor_corrector(sf, x, sde=sde, n_steps=5, predictor="ode"),
        lambda: predictor_corrector(sf, x, sde=sde, n_steps=5, snr=0.0),
        lambda: predictor_corrector(sf, x, sde=sde, n_steps=5, n_corrector=-1),
        lambda: probability_flow(sf, x, sde=sde, n_steps=5, method="rk4"),
        lambda: probability_flow(sf, x, sde=sde, method="euler"),
        lambda: probability_flow(sf, x, sde=sde, n_steps=5, method="adaptive"),
        lambda: probability_flow(sf, x, sde=sde, method="adaptive", rtol=0.0),
        lambda: probability_flow(sf, x, sde=sde, n_steps=5, method="dopri5"),
        lambda: probability_flow(sf, x, sde=sde, method="dopri5", atol=-1.0),
    ]
    for call in bad:
        with pytest.raises(ScorelabError):
            call()


# -- the precomputed-coefficient steps give the bits of the generic per-chain formulas ----------
def _generic_run(kind, score_fn, x, sde, n, g, m=1, r=0.16):
    """The samplers' steps written with the SDE object's per-chain methods, as they were
    before the step coefficients were precomputed on the grid (reference for bit equality)."""
    ts = torch.linspace(sde.T, sde.eps, n + 1, dtype=torch.float64).tolist()
    h = (sde.T - sde.eps) / n

    def tt(t):
        return torch.full((x.shape[0],), t, dtype=x.dtype)

    rev = sde.reverse(score_fn, probability_flow=True)
    a_grid = sde.marginal(torch.tensor(ts, dtype=torch.float64))[0].tolist()
    for i in range(n):
        t, t_next = ts[i], ts[i + 1]
        if kind == "em":
            f, gg = sde.sde(x, tt(t))
            gg = gg[:, None]
            s = score_fn(x, tt(t))
            x = (
                x
                - (f - gg**2 * s) * h
                + gg * math.sqrt(h) * torch.randn(x.shape, generator=g, dtype=x.dtype)
            )
        elif kind == "ancestral":
            a1, s1 = (v[:, None] for v in sde.marginal(tt(t)))
            a0, s0 = (v[:, None] for v in sde.marginal(tt(t_next)))
            alpha = a1 / a0
            v = (s1**2 - alpha**2 * s0**2).clamp_min(0.0)
            mean = (x + v * score_fn(x, tt(t))) / alpha
            var = (v * s0**2 / s1**2).clamp_min(0.0)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=g, dtype=x.dtype)
        elif kind == "pc":
            f_d, g_d = sde.transition(x, tt(t_next), t - t_next)
            g_d = g_d[:, None]
            s = score_fn(x, tt(t))
            x = x - f_d + g_d**2 * s + g_d * torch.randn(x.shape, generator=g, dtype=x.dtype)
            alpha = (a_grid[i] / a_grid[i + 1]) ** 2
            for _ in range(m):
                s = score_fn(x, tt(t_next))
                z = torch.randn(x.shape, generator=g, dtype=x.dtype)
                s_norm = s.reshape(x.shape[0], -1).norm(dim=1).mean()
                z_norm = z.reshape(x.shape[0], -1).norm(dim=1).mean()
                eps = 2.0 * (2.0 * alpha * (r * z_norm / s_norm.clamp_min(1e-30)) ** 2)
                x = x + (eps / 2.0) * s + eps.sqrt() * z
        elif kind == "euler":
            x = x - h * rev.sde(x, tt(t))[0]
        else:  # heun
            d1 = rev.sde(x, tt(t))[0]
            d2 = rev.sde(x - h * d1, tt(t_next))[0]
            x = x - 0.5 * h * (d1 + d2)
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("sde_name", list(SDES))
def test_fast_steps_are_bit_identical_to_generic_formulas(sde_name, dtype):
    sde = SDES[sde_name]()
    target = seed001_fig3()
    sf = exact_score_fn(sde, target)
    g = torch.Generator().manual_seed(0)
    x = sde.perturb(target.sample(300, generator=g).to(dtype), sde.T, generator=g)[0]
    n = 23
    runs = {
        "em": lambda gen: reverse_sde(sf, x, sde=sde, n_steps=n, generator=gen),
        "ancestral": lambda gen: ancestral(sf, x, sde=sde, n_steps=n, generator=gen),
        "pc": lambda gen: predictor_corrector(
            sf, x, sde=sde, n_steps=n, n_corrector=2, generator=gen
        ),
        "euler": lambda gen: probability_flow(sf, x, sde=sde, n_steps=n),
        "heun": lambda gen: probability_flow(sf, x, sde=sde, n_steps=n, method="heun"),
    }
    for kind, run in runs.items():
        out = run(torch.Generator().manual_seed(5)).samples
        m = 2 if kind == "pc" else 1
        ref = _generic_run(kind, sf, x, sde, n, torch.Generator().manual_seed(5), m=m)
        assert out.dtype == dtype
        assert torch.equal(out, ref), (kind, float((out - ref).abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_corrector_scalar_path_matches_tensor_path(dtype):
    """The numpy-scalar step size (CPU float32/64) has the bits of the 0-d tensor formula,
    including a zero, tiny, NaN or infinite score norm (which take the tensor path)."""
    import warnings

    from scorelab.samplers import sde_samplers as mod

    g = torch.Generator().manual_seed(0)
    alphas = (0.5 + torch.rand(200, generator=g, dtype=torch.float64)).tolist()
    x = torch.zeros(40, 3, 2, dtype=dtype)
    fast = mod._corrector(x, 0.16, alphas)
    saved = dict(mod._NP_SCALAR)
    mod._NP_SCALAR.clear()
    try:
        slow = mod._corrector(x, 0.16, alphas)
    finally:
        mod._NP_SCALAR.update(saved)
    scales = [10 ** float(v) for v in torch.randn(196, generator=g) * 3]
    scales += [0.0, 1e-35, math.nan, math.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow / invalid-value warnings
        for i, scale in enumerate(scales):
            s = torch.randn(x.shape, generator=g, dtype=dtype) * scale
            z = torch.randn(x.shape, generator=g, dtype=dtype)
            got = [float(v) for v in fast(s, z, i)]
            want = [float(v) for v in slow(s, z, i)]
            assert got == want or all(map(math.isnan, got + want)), (i, scale, got, want)


def test_divergence_is_caught_at_the_step_it_happens():
    """A NaN or ±inf stops the run at the step it appears (one reduction per step on the CPU)."""
    from scorelab._utils import DivergenceError

    sde = VPSDE()
    calls = {"n": 0}

    def score(x, t):
        calls["n"] += 1
        return torch.full_like(x, math.inf) if calls["n"] == 4 else -x

    with pytest.raises(DivergenceError, match="step 4: 8 of 8 chains"):
        reverse_sde(score, torch.zeros(8, 2), sde=sde, n_steps=10, generator=torch.Generator())
    calls["n"] = 0
    with pytest.raises(DivergenceError, match="step 2: 8 of 8 chains"):
        predictor_corrector(
            score, torch.zeros(8, 2), sde=sde, n_steps=10, generator=torch.Generator()
        )
