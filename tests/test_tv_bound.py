"""Seed 002's TV bound (Chen et al. 2023): `analysis.reverse_sde_tv_bound`, its KL and Lipschitz
helpers, and the bound against TV measured from the exponential-integrator reverse OU SDE.

Sampling tests use 20 000 chains (200 000 for the order test) on a 1-D mixture and a fixed
seed; their margins are stated in units of the histogram-TV noise floor (the same TV for as
many exact samples: ≈ 0.014 for 20 000).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from scorelab._utils import ScorelabError
from scorelab.analysis import (
    TVBound,
    kl_to_standard_normal,
    reverse_sde_tv_bound,
    score_lipschitz_1d,
)
from scorelab.distributions import Gaussian, GaussianMixture
from scorelab.metrics import histogram_tv_to_density
from scorelab.samplers import reverse_sde
from scorelab.sde import OUSDE, exact_score_fn

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_CHAINS = 20_000
BINS, RANGE = 40, (-5.0, 6.0)
# A mild mixture (L ≈ 1.56): the bound with C = 1 is below 1 at h = 0.02, T = 3, so checking
# the measured TV against it is not vacuous.
MILD = dict(means=(-1.0, 1.0), stds=(0.8, 1.0), weights=(0.3, 0.7))


def _mixture(means, stds, weights) -> GaussianMixture:
    return GaussianMixture([[m] for m in means], stds=list(stds), weights=list(weights))


def _m2(means, stds, weights) -> float:
    return math.sqrt(sum(w * (m * m + s * s) for m, s, w in zip(means, stds, weights, strict=True)))


def _sampler_tv(
    target, *, T: float, n_steps: int, seed: int, eps: float = 0.0, n: int = N_CHAINS
) -> float:
    sde = OUSDE(T=T, eps=0.0)
    g = torch.Generator().manual_seed(seed)
    exact = exact_score_fn(sde, target)

    def score(x, t):
        return exact(x, t) + eps  # constant shift: E|s − ∇log q_t|² = ε² exactly

    x0 = sde.prior_sample((n, 1), generator=g)
    out = reverse_sde(score, x0, sde=sde, n_steps=n_steps, method="exponential", generator=g)
    return histogram_tv_to_density(out.samples, target.log_prob, BINS, RANGE)


def _floor(target, seed: int = 99, n: int = N_CHAINS) -> float:
    x = target.sample(n, generator=torch.Generator().manual_seed(seed))
    return histogram_tv_to_density(x, target.log_prob, BINS, RANGE)


# ---- the bound ------------------------------------------------------------------------------
def test_bound_terms_match_hand_computation():
    b = reverse_sde_tv_bound(
        kl=2.0, lipschitz=3.0, dim=4, m2=1.5, h=0.01, T=2.0, eps_score=0.1, constant=2.5
    )
    init = 2.5 * math.sqrt(2.0) * math.exp(-2.0)
    disc = 2.5 * (3.0 * math.sqrt(4 * 0.01) + 3.0 * 1.5 * 0.01) * math.sqrt(2.0)
    score = 2.5 * 0.1 * math.sqrt(2.0)
    assert isinstance(b, TVBound)
    assert b.initialisation == pytest.approx(init, rel=1e-12)
    assert b.discretisation == pytest.approx(disc, rel=1e-12)
    assert b.score_error == pytest.approx(score, rel=1e-12)
    assert b.total == pytest.approx(init + disc + score, rel=1e-12)
    assert b.constant == 2.5 and b.step_condition_holds
    assert b.as_dict()["total"] == b.total


def test_step_condition_is_flagged_not_rejected():
    b = reverse_sde_tv_bound(kl=1.0, lipschitz=4.0, dim=1, m2=1.0, h=0.3, T=1.0)
    assert not b.step_condition_holds and math.isfinite(b.total)
    assert reverse_sde_tv_bound(
        kl=1.0, lipschitz=4.0, dim=1, m2=1.0, h=0.25, T=1.0
    ).step_condition_holds


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kl", -0.1),
        ("kl", math.nan),
        ("lipschitz", math.inf),
        ("lipschitz", 0.5),
        ("dim", 0),
        ("dim", 1.5),
        ("dim", math.nan),
        ("dim", "2"),
        ("m2", -1.0),
        ("h", 0.0),
        ("h", math.nan),
        ("T", -1.0),
        ("eps_score", -0.01),
        ("constant", 0.0),
    ],
)
def test_bound_rejects_bad_inputs_with_one_line(field, value):
    args = dict(kl=1.0, lipschitz=2.0, dim=1, m2=1.0, h=0.01, T=1.0, eps_score=0.0, constant=1.0)
    args[field] = value
    with pytest.raises(ScorelabError, match=field) as err:
        reverse_sde_tv_bound(**args)
    assert "\n" not in str(err.value)


# ---- helpers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("mu", "s"), [(0.0, 1.0), (0.5, 0.8), (1.0, 0.5), (-2.0, 3.0)])
def test_kl_to_standard_normal_matches_closed_form(mu, s):
    """KL(N(μ, s²)‖N(0, 1)) = ½(s² + μ² − 1 − log s²); quad is accurate to ~1e-9."""
    expected = 0.5 * (s * s + mu * mu - 1.0 - math.log(s * s))
    got = kl_to_standard_normal(Gaussian([mu], [[s * s]], dtype=torch.float64))
    assert got == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("s", "T"), [(0.5, 3.0), (0.8, 3.0), (2.0, 3.0)])
def test_score_lipschitz_of_a_gaussian_through_ou(s, T):
    """N(μ, s²) through OU: ∂ₓ s_t = −1/(e^{−2t}s² + 1 − e^{−2t}), constant in x, so the sup over
    [0, T] is at t = 0 (1/s²) when s < 1 and at t = T when s > 1; the grid holds both ends."""
    expected = max(1.0 / (math.exp(-2 * t) * s * s + 1 - math.exp(-2 * t)) for t in (0.0, T))
    target = Gaussian([0.7], [[s * s]], dtype=torch.float64)
    got = score_lipschitz_1d(target, OUSDE(T=T), n_x=101, n_t=21)
    assert got == pytest.approx(expected, rel=1e-9)


def test_helpers_reject_non_1d_targets():
    g2 = GaussianMixture([[0.0, 0.0]], stds=1.0)
    with pytest.raises(ScorelabError, match="1-D"):
        kl_to_standard_normal(g2)
    with pytest.raises(ScorelabError, match="1-D"):
        score_lipschitz_1d(g2, OUSDE(T=1.0))


# ---- the bound against the sampler -----------------------------------------------------------
def test_measured_tv_at_exact_score_is_below_the_bound_with_c_1():
    target = _mixture(**MILD)
    T, n = 3.0, 150
    lip = score_lipschitz_1d(target, OUSDE(T=T), n_x=401, n_t=41)
    b = reverse_sde_tv_bound(
        kl=kl_to_standard_normal(target), lipschitz=max(lip, 1.0), dim=1, m2=_m2(**MILD),
        h=T / n, T=T,
    )  # fmt: skip
    assert b.step_condition_holds and b.total < 1.0  # not vacuous
    tv = _sampler_tv(target, T=T, n_steps=n, seed=0)
    assert tv < b.total
    # and much below it: within 2 noise floors of exact sampling (the bound is loose)
    assert tv < 2.0 * _floor(target)


def test_tv_is_first_order_in_h_not_half_order():
    """TV at h = 0.6, 0.3, 0.15 (T = 2.4, all h ≤ 1/L = 0.64, exact score, 200 000 chains)
    falls with log–log slope ≈ 0.91 (seeds 1 and 2 agree to 0.001): the exponential
    integrator is first order in TV on a smooth target, faster than the bound, whose
    discretisation term has slope 0.72 over these h (½ as h → 0). The TVs (0.10–0.03) are
    9–30× the noise floor (0.0033), so the floor moves the slope by < 0.01. We accept 0.8–1.2."""
    target = _mixture(**MILD)
    hs = [0.6, 0.3, 0.15]
    tvs = [_sampler_tv(target, T=2.4, n_steps=round(2.4 / h), seed=1, n=200_000) for h in hs]
    slope = math.log(tvs[0] / tvs[-1]) / math.log(hs[0] / hs[-1])
    lip = score_lipschitz_1d(target, OUSDE(T=2.4), n_x=401, n_t=41)
    disc = [
        reverse_sde_tv_bound(
            kl=1.0, lipschitz=lip, dim=1, m2=_m2(**MILD), h=h, T=2.4
        ).discretisation
        for h in hs
    ]
    bound_slope = math.log(disc[0] / disc[-1]) / math.log(hs[0] / hs[-1])
    assert bound_slope < 0.75
    assert 0.8 < slope < 1.2, (tvs, slope)


def test_score_error_raises_tv_beyond_noise():
    """ε = 0.2 (a constant shift) moves the output by ≈ 2ε = 0.4: TV grows by 0.14 (0.014 →
    0.157), ten noise floors; we ask for five. The growth stays below the bound's score term
    ε√T ≈ 0.35, as the theorem (with C = 1) says it should."""
    target = _mixture(**MILD)
    tv0 = _sampler_tv(target, T=3.0, n_steps=60, seed=2)
    tv_eps = _sampler_tv(target, T=3.0, n_steps=60, seed=2, eps=0.2)
    assert tv_eps > tv0 + 5.0 * _floor(target)
    assert tv_eps - tv0 < 0.2 * math.sqrt(3.0)


# ---- the experiment --------------------------------------------------------------------------
def test_experiment_small_writes_tables_and_figures(tmp_path):
    from scorelab.experiments import get_experiment

    exp = get_experiment("seed002-tv-bound")
    res = exp.run(tmp_path, size="small", seed=0)
    assert res["title"] == exp.title and res["seed_ref"] == exp.seed_ref
    assert res["summary"] and all(isinstance(line, str) for line in res["summary"])
    assert {"setup", "h_sweep", "T_sweep", "eps_sweep", "slopes"} <= set(res["tables"])
    for tab in res["tables"].values():
        assert tab["rows"] and all(len(r) == len(tab["columns"]) for r in tab["rows"])
    json.dumps(res, allow_nan=False)
    names = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert names == {f"seed002-tv-bound_{k}.png" for k in ("h", "T", "eps")}
    assert all((tmp_path / "figures" / n).read_bytes()[:8] == PNG_MAGIC for n in names)
    h_tab = res["tables"]["h_sweep"]
    i_tv, i_tot = h_tab["columns"].index("measured TV"), h_tab["columns"].index("bound total (C=1)")
    assert all(r[i_tv] < r[i_tot] for r in h_tab["rows"])
    e_tab = res["tables"]["eps_sweep"]
    tvs = [r[e_tab["columns"].index("measured TV")] for r in e_tab["rows"]]
    assert tvs == sorted(tvs) and tvs[0] > e_tab["rows"][0][2]  # grows with ε, above ε = 0


def test_experiment_unknown_size_is_a_clear_error(tmp_path):
    from scorelab.experiments import get_experiment

    with pytest.raises(ScorelabError, match="size must be one of"):
        get_experiment("seed002-tv-bound").run(tmp_path, size="huge", seed=0)
