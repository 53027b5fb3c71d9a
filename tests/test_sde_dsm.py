"""SDEDSM: continuous-time denoising score matching (Song et al. 2021, eq. 7)."""

import math

import pytest
import torch
from scipy.integrate import quad
from torch import nn

from scorelab._utils import ScorelabError
from scorelab.distributions import Gaussian
from scorelab.models.mlp import ScoreMLP
from scorelab.objectives import OBJECTIVES, SDEDSM
from scorelab.sde import OUSDE, VESDE, VPSDE, exact_score_fn
from scorelab.train import fit

MU = [1.0, -0.5]
COV = [[1.0, 0.6], [0.6, 0.8]]


class ExactTimeScore(nn.Module):
    """The exact score ∇log p_t as a time-conditional model (model(x, t))."""

    conditioning = "time"

    def __init__(self, sde, target):
        super().__init__()
        self.fn = exact_score_fn(sde, target)

    def forward(self, x, t):
        return self.fn(x, t)


def dsm_constant(sde, cov, weighting, eps):
    """E_t λ(t)·½(D/s² − tr (a²Σ + s²I)⁻¹), t ~ U(eps, T): the loss of the exact score."""
    cov = torch.as_tensor(cov, dtype=torch.float64)
    d = cov.shape[0]

    def integrand(tv):
        t = torch.tensor([tv], dtype=torch.float64)
        a, s = sde.marginal(t)
        cov_t = a**2 * cov + s**2 * torch.eye(d, dtype=torch.float64)
        c = 0.5 * (d / s**2 - torch.linalg.inv(cov_t).trace())
        lam = s**2 if weighting == "sigma2" else sde.diffusion(t) ** 2
        return float(lam * c)

    val, _ = quad(integrand, eps, sde.T, limit=200, points=[2 * eps, 10 * eps, 0.1])
    return val / (sde.T - eps)


@pytest.mark.parametrize(
    "sde,weighting",
    [
        (VPSDE(), "sigma2"),
        (VPSDE(eps=1e-2), "likelihood"),
        (VESDE(sigma_max=10.0, eps=1e-3), "sigma2"),
        (OUSDE(eps=1e-2), "likelihood"),
    ],
)
def test_exact_score_attains_the_dsm_constant(sde, weighting):
    """With s_θ = ∇log p_t the Fisher term vanishes: E ℓ is the closed-form constant."""
    target = Gaussian(MU, COV, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = target.sample(100_000, g)
    obj = SDEDSM(sde, weighting=weighting)
    with torch.no_grad():
        losses = obj(ExactTimeScore(sde, target), x, generator=g)
    mean, se = losses.mean().item(), (losses.std() / math.sqrt(losses.numel())).item()
    expected = dsm_constant(sde, COV, weighting, obj.eps)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)


def test_a_wrong_score_pays_more():
    """A biased score's expected loss exceeds the constant (the Fisher term is positive)."""
    sde = VPSDE()
    target = Gaussian(MU, COV, dtype=torch.float64)
    shifted = Gaussian([1.5, 0.0], COV, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = target.sample(50_000, g)
    obj = SDEDSM(sde)
    with torch.no_grad():
        good = obj(ExactTimeScore(sde, target), x, generator=torch.Generator().manual_seed(2))
        bad = obj(ExactTimeScore(sde, shifted), x, generator=torch.Generator().manual_seed(2))
    diff = bad - good  # same t and z: a paired comparison
    assert diff.mean() > 4 * diff.std() / math.sqrt(diff.numel())


def test_training_a_time_conditional_mlp_learns_the_score():
    """A small ScoreMLP fit for 800 steps: loss drops and the score is right at several t.

    Tolerance: relative mean-squared error E‖s_θ − s‖²/E‖s‖² < 0.05 over draws from p_t (an
    untrained net is at ≈ 1; this run reaches ≈ 0.002–0.007 at t ∈ {0.1, 0.5, 0.8}).
    """
    target = Gaussian(MU, COV)
    data = target.sample(4096, torch.Generator().manual_seed(0))
    sde = VPSDE()
    torch.manual_seed(0)
    model = ScoreMLP(2, hidden=64, depth=2, conditioning="time")
    res = fit(model, SDEDSM(sde), data, steps=800, batch_size=256, lr=3e-3, seed=0)
    first, last = sum(res.losses[:50]) / 50, sum(res.losses[-50:]) / 50
    assert last < 0.85 * first
    exact = exact_score_fn(sde, target)
    g = torch.Generator().manual_seed(5)
    for tv in (0.1, 0.5, 0.8):
        t = torch.full((2000,), tv)
        xt, _ = sde.perturb(target.sample(2000, g), t, g)
        with torch.no_grad():
            s, s_true = model(xt, t), exact(xt, t)
        rel = ((s - s_true) ** 2).sum(1).mean() / (s_true**2).sum(1).mean()
        assert rel < 0.05, (tv, float(rel))


def test_draws_are_seeded():
    sde = VPSDE()
    model = ScoreMLP(2, hidden=16, depth=1, conditioning="time")
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    obj = SDEDSM(sde, weighting="likelihood")
    a = obj(model, x, generator=torch.Generator().manual_seed(3))
    b = obj(model, x, generator=torch.Generator().manual_seed(3))
    c = obj(model, x, generator=torch.Generator().manual_seed(4))
    assert a.shape == (64,)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_registry_and_cost():
    obj = OBJECTIVES.get("sde_dsm")(sde=VPSDE(), weighting="likelihood")
    assert isinstance(obj, SDEDSM) and obj.eps == VPSDE().eps
    assert "forward" in SDEDSM.cost


def test_bad_arguments_raise():
    x = torch.randn(8, 2)
    with pytest.raises(ScorelabError, match="SDE"):
        SDEDSM("vp")
    with pytest.raises(ScorelabError, match="weighting"):
        SDEDSM(VPSDE(), weighting="uniform")
    with pytest.raises(ScorelabError, match="eps"):
        SDEDSM(VPSDE(), eps=0.0)
    with pytest.raises(ScorelabError, match="eps"):
        SDEDSM(VPSDE(), eps=1.5)
    with pytest.raises(ScorelabError, match="eps"):
        SDEDSM(VPSDE(eps=0.0))
    obj = SDEDSM(VPSDE())
    for conditioning in ("none", "sigma"):
        with pytest.raises(ScorelabError, match="time"):
            obj(ScoreMLP(2, hidden=8, depth=1, conditioning=conditioning), x)
    with pytest.raises(ScorelabError, match=r"\(N, D\)"):
        obj(ScoreMLP(2, hidden=8, depth=1, conditioning="time"), torch.randn(8))
