"""The torch-native Dormand–Prince solver (`scorelab.samplers._ode.dopri5`) against exact
solutions of linear and separable ODEs."""

from __future__ import annotations

import math

import pytest
import torch

from scorelab._utils import ScorelabError
from scorelab.samplers._ode import dopri5

# a damped rotation: y(t) = y₀·exp(tA)ᵀ in closed form (matrix exponential)
A = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=torch.float64)
Y0 = torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _linear(y, t):
    return y @ A.T


def test_error_follows_the_tolerance_on_a_linear_system():
    exact = Y0 @ torch.linalg.matrix_exp(3.0 * A).T
    errs, nfes = [], []
    for tol in (1e-3, 1e-6, 1e-9):
        sol = dopri5(_linear, Y0, 0.0, 3.0, rtol=tol, atol=tol)
        errs.append(float((sol.y - exact).abs().max()))
        nfes.append(sol.nfe)
        # measured 0.73·tol, 0.88·tol, 0.82·tol: the global error tracks the local tolerance
        assert errs[-1] < 5 * tol, (tol, errs)
        assert sol.nfe == 2 + 6 * (sol.n_accepted + sol.n_rejected)
    # a 5th-order method: 10³ tighter costs about 10^(3/5) ≈ 4× more steps, not 10³
    assert nfes[0] < nfes[1] < nfes[2] < 15 * nfes[0], nfes


def test_backward_in_time_and_time_dependent():
    """y' = −t·y from t = 2 down to 0.5: y = y₀·exp((t₀² − t²)/2)."""
    sol = dopri5(lambda y, t: -t * y, Y0, 2.0, 0.5, rtol=1e-8, atol=1e-8)
    exact = Y0 * math.exp((4.0 - 0.25) / 2)
    assert float(((sol.y - exact) / exact.abs().clamp_min(1e-3)).abs().max()) < 1e-6


def test_float32_state_stays_float32_and_lands_on_t1():
    times = []

    def f(y, t):
        times.append(t)
        return -y

    sol = dopri5(f, Y0.float(), 1.0, 0.0, rtol=1e-5, atol=1e-5)
    assert sol.y.dtype == torch.float32
    torch.testing.assert_close(sol.y, (Y0 * math.e).float(), rtol=1e-4, atol=1e-4)
    assert min(times) == 0.0 and max(times) <= 1.0  # never steps past t1


def test_zero_span_and_failures():
    sol = dopri5(_linear, Y0, 1.0, 1.0, rtol=1e-5, atol=1e-5)
    assert sol.nfe == 0 and torch.equal(sol.y, Y0)
    with pytest.raises(ScorelabError, match="step size underflowed"):
        dopri5(lambda y, t: torch.full_like(y, math.nan), Y0, 0.0, 1.0, rtol=1e-5, atol=1e-5)
    with pytest.raises(ScorelabError, match="did not reach"):
        dopri5(_linear, Y0, 0.0, 100.0, rtol=1e-10, atol=1e-10, max_steps=5)


def test_cost_and_accuracy_match_scipy_rk45_on_van_der_pol():
    """Van der Pol, μ = 5, to t = 10 at rtol = atol = 1e-6: scipy's RK45 (the same tableau, an I
    controller) as the yardstick.  Measured: 728 NFE against 704, error 8.1e-7 against 9.1e-7."""
    from scipy.integrate import solve_ivp

    mu = 5.0

    def f(y, t):
        return torch.stack([y[:, 1], mu * (1 - y[:, 0] ** 2) * y[:, 1] - y[:, 0]], dim=1)

    y0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    sol = dopri5(f, y0, 0.0, 10.0, rtol=1e-6, atol=1e-6)

    def rk45(tol):
        rhs = lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
        return solve_ivp(rhs, (0.0, 10.0), [2.0, 0.0], method="RK45", rtol=tol, atol=tol)

    ref, rk = rk45(1e-10), rk45(1e-6)
    assert float((sol.y[0] - torch.from_numpy(ref.y[:, -1])).abs().max()) < 1e-5
    assert sol.nfe <= 1.1 * rk.nfev, (sol.nfe, rk.nfev)
