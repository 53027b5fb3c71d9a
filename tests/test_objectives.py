"""Score-matching objectives against closed forms on a Gaussian target with a linear score.

Target p = N(μ, Σ) in D = 3 (float64), model s(x) = Ax + b, P = Σ⁻¹, ∇log p = −P(x − μ):
  ESM = ½ tr((A+P)Σ(A+P)ᵀ) + ½‖Aμ + b‖²         (s − ∇log p = (A+P)x + b − Pμ)
  ISM = ½ tr(AΣAᵀ) + ½‖Aμ + b‖² + tr A            (= E SSM = E SSM-VR when E vvᵀ = I)
  ESM − ISM = ½ tr P,  ∂ISM/∂A = AΣ + (Aμ + b)μᵀ + I,  ∂ISM/∂b = Aμ + b
  DSM(σ) = ½ tr(AΣAᵀ) + ½‖Aμ + b‖² + ½‖σA + I/σ‖²_F = ESM(q_σ) + D/(2σ²) − ½ tr P_σ,
with q_σ = N(μ, Σ + σ²I) and P_σ = (Σ + σ²I)⁻¹.

Tolerances. Monte-Carlo means are compared with K_SE = 4.5 standard errors computed from the
per-sample losses (n = 20000, so the CLT is accurate: the losses are quadratics of Gaussians);
a fixed seed makes each check deterministic, and 4.5 s.e. is about 1e-5 two-sided per check.
Where a check could pass vacuously we also assert that the nearest wrong answer (e.g. a missing
trace term) lies outside the band. Gradients use the s.e. across 40 independent batches
(Student t with 39 dof: P(|t| > 5) ≈ 1e-5 per coordinate, 12 coordinates per check).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from scorelab._utils import ScorelabError
from scorelab.distributions import Gaussian, target_score_fn
from scorelab.models import EnergyMLP, EnergyScore, ScoreMLP
from scorelab.objectives import DSM, ESM, ISM, NCSN, OBJECTIVES, SSM, ssm_vr

D = 3
N = 20000
K_SE = 4.5  # MC means: standard errors allowed (see module docstring)
K_T = 5.0  # batch-gradient means: t(39) quantile with ~1e-5 tail per coordinate
N_BATCHES = 40
DT = torch.float64

MU = torch.tensor([0.5, -1.0, 0.3], dtype=DT)
SIGMA = torch.tensor([[1.0, 0.3, -0.2], [0.3, 0.8, 0.1], [-0.2, 0.1, 0.6]], dtype=DT)
EYE = torch.eye(D, dtype=DT)


class Linear(nn.Module):
    """s(x) = Ax + b, an unconditional score model with closed-form objectives."""

    conditioning = "none"

    def __init__(self, A: Tensor, b: Tensor) -> None:
        super().__init__()
        self.A = nn.Parameter(A.clone())
        self.b = nn.Parameter(b.clone())

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return x @ self.A.T + self.b


def params(seed: int) -> tuple[Tensor, Tensor]:
    # contractive on average (like a Gaussian score −P), tr A ≈ −1.5: a dropped trace shows
    g = torch.Generator().manual_seed(seed)
    A = 0.4 * torch.randn(D, D, generator=g, dtype=DT) - 0.5 * EYE
    return A, 0.5 * torch.randn(D, generator=g, dtype=DT)


def cov(sigma: float = 0.0) -> Tensor:
    return SIGMA + sigma**2 * EYE


def esm_cf(A: Tensor, b: Tensor, S: Tensor) -> float:
    M = A + torch.linalg.inv(S)
    return float(0.5 * torch.trace(M @ S @ M.T) + 0.5 * (A @ MU + b).pow(2).sum())


def ism_cf(A: Tensor, b: Tensor, S: Tensor) -> float:
    return float(0.5 * torch.trace(A @ S @ A.T) + 0.5 * (A @ MU + b).pow(2).sum() + torch.trace(A))


def ism_grad_cf(A: Tensor, b: Tensor, S: Tensor) -> Tensor:
    r = A @ MU + b
    return torch.cat([(A @ S + torch.outer(r, MU) + EYE).flatten(), r])


def samples(seed: int, n: int = N) -> Tensor:
    return Gaussian(MU, SIGMA, dtype=DT).sample(n, torch.Generator().manual_seed(seed))


def se(v: Tensor) -> float:
    return float(v.std() / math.sqrt(v.numel()))


def assert_mean(losses: Tensor, expected: float, wrong: float | None = None) -> None:
    """|mean − expected| < K_SE s.e.; and `wrong` (a plausible bug's value) is rejected."""
    m, s = float(losses.mean()), se(losses)
    assert abs(m - expected) < K_SE * s, f"mean {m:.5f} vs {expected:.5f} (s.e. {s:.2e})"
    if wrong is not None:
        assert abs(m - wrong) > K_SE * s, f"cannot tell {expected:.4f} from {wrong:.4f}"


def batch_grads(objective, model: Linear, x: Tensor, seed: int) -> Tensor:
    """(N_BATCHES, D² + D): gradient of the batch-mean loss w.r.t. (A, b) on each batch."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for xb in x.chunk(N_BATCHES):
        model.zero_grad()
        objective(model, xb, generator=g).mean().backward()
        rows.append(torch.cat([model.A.grad.flatten(), model.b.grad.flatten()]))
    return torch.stack(rows)


def assert_grad(G: Tensor, expected: Tensor) -> None:
    mean, s = G.mean(0), G.std(0) / math.sqrt(G.shape[0])
    t = ((mean - expected) / s).abs()
    assert float(t.max()) < K_T, f"max |t| = {float(t.max()):.2f}\n{mean}\n{expected}"


# -- closed forms and Monte-Carlo means ------------------------------------------------------
def test_closed_forms_differ_by_half_trace_of_precision():
    P = torch.linalg.inv(SIGMA)
    for seed in (0, 1, 2):
        A, b = params(seed)
        assert esm_cf(A, b, SIGMA) - ism_cf(A, b, SIGMA) == pytest.approx(
            0.5 * float(torch.trace(P)), rel=1e-12
        )


@pytest.mark.parametrize(
    "objective",
    [
        ISM(),
        SSM(),
        SSM(variance_reduced=True),
        SSM(projection="rademacher"),
        SSM(projection="rademacher", variance_reduced=True),
        SSM(n_projections=4),
    ],
    ids=["ism", "ssm", "ssm_vr", "ssm_rad", "ssm_vr_rad", "ssm_m4"],
)
def test_ism_family_mean_matches_closed_form(objective):
    # E_v of the sliced loss is ISM's loss when E vvᵀ = I, Gaussian or Rademacher (f).
    A, b = params(0)
    x = samples(1)
    with torch.no_grad():
        losses = objective(Linear(A, b), x, generator=torch.Generator().manual_seed(2))
    assert losses.shape == (N,)
    # a dropped trace term is the bug this must catch (|tr A| ≈ 1.6 ≫ 4.5 s.e. ≈ 0.08)
    assert_mean(losses, ism_cf(A, b, SIGMA), wrong=ism_cf(A, b, SIGMA) - float(torch.trace(A)))


def test_esm_mean_matches_closed_form():
    A, b = params(0)
    x = samples(1)
    with torch.no_grad():
        losses = ESM(target_score_fn(Gaussian(MU, SIGMA, dtype=DT)))(Linear(A, b), x)
    assert_mean(losses, esm_cf(A, b, SIGMA), wrong=ism_cf(A, b, SIGMA))


def test_esm_minus_ism_is_a_parameter_independent_constant():
    # (b): the same x for both objectives, so the per-sample difference has a small s.e.
    x = samples(3)
    esm = ESM(Gaussian(MU, SIGMA, dtype=DT))  # a Target is accepted directly
    half_tr_p = 0.5 * float(torch.trace(torch.linalg.inv(SIGMA)))
    for seed in (10, 11):
        model = Linear(*params(seed))
        with torch.no_grad():
            diff = esm(model, x) - ISM()(model, x)
        assert_mean(diff, half_tr_p, wrong=0.0)


# -- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ism", "ssm", "ssm_vr"])
def test_gradients_match_closed_form_ism_gradient(name):
    # (c): ∇_θ of mean ESM and of mean ISM / SSM / SSM-VR all equal ∂ISM in expectation.
    A, b = params(4)
    x = samples(5)
    expected = ism_grad_cf(A, b, SIGMA)
    G = batch_grads(OBJECTIVES.build(name), Linear(A, b), x, seed=6)
    assert_grad(G, expected)
    # common random sample: ESM − (this objective) has zero-mean gradient difference
    G_esm = batch_grads(ESM(Gaussian(MU, SIGMA, dtype=DT)), Linear(A, b), x, seed=6)
    assert_grad(G_esm - G, torch.zeros_like(expected))
    assert_grad(G_esm, expected)
    # power: dropping the trace's gradient (the identity in ∂/∂A) must be detected
    with pytest.raises(AssertionError):
        assert_grad(G, expected - torch.cat([EYE.flatten(), torch.zeros(D, dtype=DT)]))


# -- denoising score matching vs ESM on the noised law -----------------------------------------
@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_dsm_equals_esm_on_noised_target_up_to_a_constant(sigma):
    # (d) same seed → the same z in DSM and ESM(σ) → the same x̃ (common random numbers)
    target = Gaussian(MU, SIGMA, dtype=DT)
    S = cov(sigma)
    const = D / (2 * sigma**2) - 0.5 * float(torch.trace(torch.linalg.inv(S)))
    x = samples(7)
    for seed in (20, 21):
        A, b = params(seed)
        model = Linear(A, b)
        with torch.no_grad():
            dsm = DSM(sigma)(model, x, generator=torch.Generator().manual_seed(8))
            esm = ESM(target_score_fn(target), sigma)(
                model, x, generator=torch.Generator().manual_seed(8)
            )
        dsm_cf = (
            ism_cf(A, b, SIGMA)
            + 0.5 * float((sigma * A + EYE / sigma).pow(2).sum())
            - float(torch.trace(A))
        )
        assert_mean(dsm, dsm_cf)
        assert_mean(esm, esm_cf(A, b, S))
        assert_mean(dsm - esm, const, wrong=0.0)
        # expected gradients agree with ∂ISM on the noised law (Σ → Σ + σ²I)
        expected = ism_grad_cf(A, b, S)
        G_dsm = batch_grads(DSM(sigma), Linear(A, b), x, seed=9)
        G_esm = batch_grads(ESM(target, sigma), Linear(A, b), x, seed=9)
        assert_grad(G_dsm, expected)
        assert_grad(G_esm, expected)
        assert_grad(G_dsm - G_esm, torch.zeros_like(expected))


def test_noised_ism_and_ssm_target_the_noised_law():
    # with sigma set, ISM and SSM estimate the Fisher divergence to q_σ (same gradient as DSM)
    sigma = 0.7
    A, b = params(30)
    x = samples(31)
    for objective in (ISM(sigma=sigma), SSM(sigma=sigma, variance_reduced=True)):
        with torch.no_grad():
            losses = objective(Linear(A, b), x, generator=torch.Generator().manual_seed(32))
        assert_mean(losses, ism_cf(A, b, cov(sigma)), wrong=ism_cf(A, b, SIGMA))


# -- variance ----------------------------------------------------------------------------------
def test_variance_reduction_and_more_projections():
    # (e) the same seed draws the same v for SSM and SSM-VR; x is shared throughout
    A, b = params(40)
    model = Linear(A, b)
    x = samples(41)
    with torch.no_grad():
        var_ism = float(ISM()(model, x).var())
        var = {}
        for m in (1, 4, 16):
            var[m] = float(
                SSM(n_projections=m)(model, x, generator=torch.Generator().manual_seed(42)).var()
            )
        var_vr = float(
            SSM(variance_reduced=True)(model, x, generator=torch.Generator().manual_seed(42)).var()
        )
    assert var_vr < 0.7 * var[1]  # measured ratio ≈ 0.6; 0.7 leaves room for sampling noise
    assert var[1] > var[4] > var[16] > var_ism
    # E_v[SSM | x] is ISM's per-sample loss (linear s), so var_M = var_ISM + c/M: the excess
    # shrinks ∝ 1/M. Variance estimates from 20000 draws of heavy-ish tails are good to ~10%,
    # the ratios to ~20%, hence the [0.6, 1.6] band around 1.
    for m in (4, 16):
        ratio = m * (var[m] - var_ism) / (var[1] - var_ism)
        assert 0.6 < ratio < 1.6, (m, ratio)


def test_rademacher_projections_are_signs():
    g = torch.Generator().manual_seed(0)
    v = SSM(projection="rademacher")._draw(torch.empty(5000, D, dtype=DT), g)
    assert set(v.unique().tolist()) == {-1.0, 1.0}
    # E vvᵀ = I: off-diagonal means within 4.5 s.e. (s.e. = 1/√5000)
    outer = (v[:, :, None] * v[:, None, :]).mean(0)
    assert (outer - EYE).abs().max() < K_SE / math.sqrt(5000)


# -- nonlinear models: exact trace, energy models, slicing ---------------------------------------
def loop_trace(s: Tensor, x: Tensor) -> Tensor:
    """tr ∇ₓs by D ordinary backward passes (the reference for vmap(jacrev))."""
    return sum(
        torch.autograd.grad(s[:, d].sum(), x, create_graph=True)[0][:, d] for d in range(x.shape[1])
    )


def nonlinear_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "score_mlp": ScoreMLP(D, hidden=32, depth=2).double(),
        "energy": EnergyScore(EnergyMLP(D, hidden=32, depth=2)).double(),
    }


@pytest.mark.parametrize("name", ["score_mlp", "energy"])
def test_ism_exact_trace_matches_autograd_loop(name):
    # (g) values and parameter gradients; float64, so agreement to ~1e-10 is the bar
    model = nonlinear_models()[name]
    x = samples(50, n=64).requires_grad_(True)
    ism = ISM()(model, x)
    s = model(x)
    ref = 0.5 * s.pow(2).sum(1) + loop_trace(s, x)
    torch.testing.assert_close(ism, ref, rtol=1e-10, atol=1e-10)
    ps = list(model.parameters())  # the energy's output bias does not reach the score
    g_ism = torch.autograd.grad(ism.mean(), ps, allow_unused=True, materialize_grads=True)
    g_ref = torch.autograd.grad(ref.mean(), ps, allow_unused=True, materialize_grads=True)
    for a, r in zip(g_ism, g_ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-12)


def test_ism_on_energy_model_is_half_grad_norm_minus_laplacian():
    model = nonlinear_models()["energy"]
    x = samples(51, n=64).requires_grad_(True)
    (grad_e,) = torch.autograd.grad(model.energy(x).sum(), x, create_graph=True)
    laplacian = loop_trace(grad_e, x)
    expected = 0.5 * grad_e.pow(2).sum(1) - laplacian
    torch.testing.assert_close(ISM()(model, x), expected, rtol=1e-10, atol=1e-10)
    assert float(laplacian.detach().abs().mean()) > 1e-3  # the trace term is really exercised


def test_ism_with_sigma_feeds_the_noised_point_and_level():
    torch.manual_seed(1)
    model = ScoreMLP(D, hidden=32, depth=2, conditioning="sigma").double()
    x = samples(52, n=32)
    loss = ISM(sigma=0.3)(model, x, generator=torch.Generator().manual_seed(5))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=DT)
    xt = (x + 0.3 * z).requires_grad_(True)
    s = model(xt, torch.full((32,), 0.3, dtype=DT))
    torch.testing.assert_close(loss, 0.5 * s.pow(2).sum(1) + loop_trace(s, xt))


@pytest.mark.parametrize("name", ["score_mlp", "energy"])
def test_sliced_loss_averages_to_ism_per_point_for_nonlinear_models(name):
    # E_v[SSM(x)] = ISM(x) pointwise (Hutchinson), not just for linear s: K projections of 4
    # points, per-point mean within K_SE s.e. of the exact ISM loss
    model = nonlinear_models()[name]
    x = samples(53, n=4)
    k = 4000
    ism = ISM()(model, x).detach()
    for objective in (SSM(), ssm_vr(projection="rademacher")):
        per = objective(model, x.repeat(k, 1), generator=torch.Generator().manual_seed(54))
        per = per.detach().reshape(k, 4)
        s = per.std(0) / math.sqrt(k)
        assert bool(((per.mean(0) - ism).abs() < K_SE * s).all()), (per.mean(0), ism, s)


# -- NCSN ---------------------------------------------------------------------------------------
def test_ncsn_indices_uniform_and_loss_is_sigma_squared_dsm():
    # (h) draws documented as: indices (N,), then z; recompute both from the same seed
    sigmas = [2.0, 1.0, 0.5, 0.25, 0.125]
    L, n = len(sigmas), 20000
    torch.manual_seed(2)
    model = ScoreMLP(D, hidden=16, depth=1, conditioning="sigma").double()
    x = samples(60, n=n)
    loss = NCSN(sigmas)(model, x, generator=torch.Generator().manual_seed(61))
    g = torch.Generator().manual_seed(61)
    idx = torch.randint(0, L, (n,), generator=g)
    z = torch.randn(x.shape, generator=g, dtype=DT)
    counts = torch.bincount(idx, minlength=L).double()
    sd = math.sqrt(n * (1 / L) * (1 - 1 / L))  # binomial s.d. of one count
    assert float((counts - n / L).abs().max()) < K_SE * sd, counts
    sig = torch.tensor(sigmas, dtype=DT)[idx]
    with torch.no_grad():
        s = model(x + sig[:, None] * z, sig)
    dsm = 0.5 * (s + z / sig[:, None]).pow(2).sum(1)
    torch.testing.assert_close(loss.detach(), sig**2 * dsm, rtol=1e-12, atol=1e-12)


def test_ncsn_with_unconditional_model_passes_none():
    model = Linear(*params(70))
    x = samples(71, n=100)
    loss = NCSN([1.0, 0.1])(model, x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    sig = torch.tensor([1.0, 0.1], dtype=DT)[torch.randint(0, 2, (100,), generator=g)]
    z = torch.randn(x.shape, generator=g, dtype=DT)
    expected = 0.5 * (sig[:, None] * model(x + sig[:, None] * z) + z).pow(2).sum(1)
    torch.testing.assert_close(loss, expected)


# -- errors, registry, determinism ----------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        lambda: DSM(0.0),
        lambda: DSM(-1.0),
        lambda: DSM(float("nan")),
        lambda: DSM(None),
        lambda: ESM(lambda x, s: x, sigma=0.0),
        lambda: ESM(42),
        lambda: ISM(sigma=-0.1),
        lambda: SSM(n_projections=0),
        lambda: SSM(n_projections=1.5),
        lambda: SSM(projection="uniform"),
        lambda: SSM(sigma=0.0),
        lambda: NCSN([]),
        lambda: NCSN([0.5, 1.0]),  # increasing
        lambda: NCSN([1.0, 1.0]),  # not strictly decreasing
        lambda: NCSN([1.0, -0.1]),
        lambda: NCSN([[1.0, 0.5]]),
        lambda: NCSN("abc"),
        lambda: OBJECTIVES.build("nope"),
    ],
)
def test_bad_arguments_raise(build):
    with pytest.raises(ScorelabError):
        build()


@pytest.mark.parametrize("name", ["esm", "ism", "ssm", "ssm_vr", "dsm", "ncsn"])
def test_wrong_shapes_and_conditioning_raise(name):
    kwargs = {
        "esm": {"score_fn": lambda x, s: -x},
        "dsm": {"sigma": 0.1},
        "ncsn": {"sigmas": [1.0]},
    }
    objective = OBJECTIVES.build(name, **kwargs.get(name, {}))
    model = Linear(*params(0))
    for bad in (torch.zeros(D, dtype=DT), torch.zeros(2, D, 1, dtype=DT)):
        with pytest.raises(ScorelabError):
            objective(model, bad)
    time_model = ScoreMLP(D, hidden=8, depth=1, conditioning="time").double()
    with pytest.raises(ScorelabError):
        objective(time_model, torch.zeros(2, D, dtype=DT))


def test_sigma_conditional_model_needs_a_level():
    model = ScoreMLP(D, hidden=8, depth=1, conditioning="sigma").double()
    for objective in (ISM(), SSM(), ESM(lambda x, s: -x)):
        with pytest.raises(ScorelabError, match="sigma"):
            objective(model, torch.zeros(2, D, dtype=DT))


def test_registry():
    assert set(OBJECTIVES) == {"esm", "ism", "ssm", "ssm_vr", "dsm", "ncsn", "sde_dsm"}
    assert OBJECTIVES.build("ssm_vr", n_projections=2) == SSM(2, variance_reduced=True)
    assert OBJECTIVES.build("ncsn", sigmas=torch.tensor([1.0, 0.5])).sigmas == (1.0, 0.5)
    with pytest.raises(ScorelabError, match="known: dsm, esm, ism, ncsn, sde_dsm, ssm, ssm_vr"):
        OBJECTIVES.get("cd")
    for cls in (ESM, ISM, SSM, DSM, NCSN):
        assert cls.__doc__ and cls.cost


@pytest.mark.parametrize("name", ["esm", "ism", "ssm", "ssm_vr", "dsm", "ncsn"])
def test_same_seed_same_losses(name):
    # (j) same seed → identical bits; a different seed changes every random objective
    kwargs = {
        "esm": {"score_fn": Gaussian(MU, SIGMA, dtype=DT), "sigma": 0.5},
        "ism": {"sigma": 0.5},
        "dsm": {"sigma": 0.5},
        "ncsn": {"sigmas": [1.0, 0.5, 0.25]},
    }
    objective = OBJECTIVES.build(name, **kwargs.get(name, {}))
    model = nonlinear_models()["score_mlp"]
    x = samples(80, n=50)

    def run(seed: int) -> Tensor:
        return objective(model, x, generator=torch.Generator().manual_seed(seed)).detach()

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
