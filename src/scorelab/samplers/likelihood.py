"""Exact log-likelihoods from a score via the probability-flow ODE (Song et al. 2021, App. D.2).

The probability-flow ODE dx/dt = f̃(x, t) = f(x, t) − ½g(t)²·s(x, t) (Song et al. 2021,
eq. 13) carries p_t to p_t for every t when s = ∇log p_t. Along a solution x(t) of any ODE the
density obeys the instantaneous change of variables (Chen et al. 2018, Theorem 1):

    d/dt log p_t(x(t)) = ∂_t log p_t + ∇log p_t · f̃ = −∇·f̃(x(t), t),

which follows from the continuity equation ∂_t p = −∇·(p f̃) = −p ∇·f̃ − ∇p · f̃. Integrating
from t = eps to T and rearranging,

    log p_eps(x(eps)) = log p_T(x(T)) + ∫_eps^T ∇·f̃(x(t), t) dt,

so we integrate the augmented state [x, ℓ] with dx/dt = f̃ and dℓ/dt = ∇·f̃ from ℓ(eps) = 0,
and return log p_T(x(T)) + ℓ(T), with log p_T replaced by the SDE's prior N(0, prior_std²I).
Note the result is the log-density of the eps-marginal p_eps (the law of a(eps)X + s(eps)Z),
not of p_0; set eps → 0 (or compare with ``target.noised(s(eps), scale=a(eps))``) as needed.
With a learned score it is the exact log-density of the model defined by the ODE.

Divergence: "exact" sums D diagonal entries ∂f̃ᵢ/∂xᵢ by D backward passes (fine for D ≲ 10);
"hutchinson" uses vᵀ(∇f̃)v with one probe v per sample fixed for the whole solve (FFJORD,
Grathwohl et al. 2019), an unbiased estimate of the same integral at one backward pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from scorelab._types import ScoreFn
from scorelab._utils import DivergenceError, ScorelabError, append_dims, randn_like
from scorelab.sde import SDE

TRACES = ("exact", "hutchinson")
METHODS = ("adaptive", "heun")
PROBES = ("rademacher", "gaussian")


def _check_args(
    trace: str, n_probes: int, method: str, n_steps: int, rtol: float, atol: float, probe: str
) -> None:
    if trace not in TRACES:
        raise ScorelabError(f"log_likelihood: trace must be one of {TRACES}, got {trace!r}")
    if method not in METHODS:
        raise ScorelabError(f"log_likelihood: method must be one of {METHODS}, got {method!r}")
    if probe not in PROBES:
        raise ScorelabError(f"log_likelihood: probe must be one of {PROBES}, got {probe!r}")
    for name, v in (("n_probes", n_probes), ("n_steps", n_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ScorelabError(f"log_likelihood: {name} must be an integer >= 1, got {v!r}")
    if trace == "exact" and n_probes != 1:
        raise ScorelabError("log_likelihood: n_probes applies only to trace='hutchinson'")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ScorelabError(f"log_likelihood: {name} must be finite and positive, got {v!r}")


def log_likelihood(
    score_fn: ScoreFn,
    x: Tensor,
    *,
    sde: Any,
    trace: str = "exact",
    n_probes: int = 1,
    probe: str = "rademacher",
    method: str = "adaptive",
    n_steps: int = 200,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """log p_eps(x) (N,) by the probability-flow ODE from eps to T (see the module docstring).

    score_fn(x, t) takes a per-sample time t (N,); it is differentiated with respect to x, so
    it must be differentiable (a network, or ``scorelab.sde.exact_score_fn``). The ODE is
    solved for all rows at once, in x's dtype (use float64 for tight tolerances):
    method="adaptive" is scipy's RK45 with rtol/atol on the flattened state [x, ℓ];
    method="heun" takes n_steps fixed Heun (explicit trapezoid) steps, 2 evaluations each.

    trace="hutchinson" draws n_probes probes per point (Rademacher or Gaussian, from
    `generator`: (n_probes·N, ...) in one draw) and solves the n_probes·N rows jointly;
    log_p is the average over probes, and info carries "log_p_probes" (n_probes, N) and, for
    n_probes > 1, "stderr" (N,), the standard error of that average.

    info: nfe (drift evaluations; each is one score call plus D backward passes for the
    exact trace or one for Hutchinson), prior_log_p (N,) = log p_T(x(T)), delta_log_p (N,) =
    ∫ ∇·f̃ dt, x_T (N, ...), eps, T, method, trace.
    """
    if not isinstance(sde, SDE):
        raise ScorelabError(f"log_likelihood needs a scorelab.sde.SDE, got {sde!r}")
    if not callable(score_fn):
        raise ScorelabError(f"log_likelihood: score_fn must be callable, got {score_fn!r}")
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ScorelabError(f"log_likelihood expects a batch x of shape (N, ...), got {shape}")
    if not x.dtype.is_floating_point or not bool(torch.isfinite(x).all()):
        raise ScorelabError("log_likelihood: x must be a finite floating-point tensor")
    _check_args(trace, n_probes, method, n_steps, rtol, atol, probe)
    t0 = sde.eps if eps is None else float(eps)
    if not (math.isfinite(t0) and 0 <= t0 < sde.T):
        raise ScorelabError(f"log_likelihood: eps must lie in [0, T={sde.T}), got {eps}")
    T = float(sde.T)

    n = x.shape[0]
    xr = x.detach()
    v: Tensor | None = None
    if trace == "hutchinson":
        xr = xr.repeat(n_probes, *([1] * (x.ndim - 1)))
        if probe == "gaussian":
            v = randn_like(xr, generator)
        else:
            bits = torch.randint(0, 2, xr.shape, generator=generator, device=x.device)
            v = (2 * bits - 1).to(x.dtype)
    m = xr.shape[0]
    shape, d = xr.shape, xr[0].numel()
    nfe = 0

    def drift_div(xs: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """(f̃(x, t), ∇·f̃(x, t)) for the (m, ...) batch xs at the scalar time t."""
        nonlocal nfe
        nfe += 1
        tt = torch.full((m,), t, dtype=xs.dtype, device=xs.device)
        with torch.enable_grad():
            xg = xs.detach().requires_grad_(True)
            f, g = sde.sde(xg, tt)
            drift = f - 0.5 * append_dims(g**2, xg.ndim) * score_fn(xg, tt)
            if v is not None:
                (jv,) = torch.autograd.grad((drift * v).sum(), xg)
                div = (jv * v).flatten(1).sum(1)
            else:
                flat = drift.flatten(1)
                div = torch.zeros(m, dtype=xs.dtype, device=xs.device)
                for i in range(d):
                    (gi,) = torch.autograd.grad(flat[:, i].sum(), xg, retain_graph=i < d - 1)
                    div = div + gi.flatten(1)[:, i]
        return drift.detach(), div.detach()

    if method == "adaptive":

        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            xs = torch.as_tensor(y[: m * d], dtype=x.dtype, device=x.device).reshape(shape)
            drift, div = drift_div(xs, float(t))
            return np.concatenate(
                [drift.cpu().double().reshape(-1).numpy(), div.cpu().double().numpy()]
            )

        y0 = np.concatenate([xr.cpu().double().reshape(-1).numpy(), np.zeros(m)])
        sol = solve_ivp(rhs, (t0, T), y0, method="RK45", rtol=rtol, atol=atol)
        if not sol.success:
            raise DivergenceError(f"log_likelihood: the ODE solver failed: {sol.message}")
        yT = torch.as_tensor(sol.y[:, -1], dtype=x.dtype, device=x.device)
        xT, delta = yT[: m * d].reshape(shape), yT[m * d :]
    else:
        ts = torch.linspace(t0, T, n_steps + 1, dtype=torch.float64)
        xT, delta = xr.clone(), torch.zeros(m, dtype=x.dtype, device=x.device)
        for k in range(n_steps):
            h = float(ts[k + 1] - ts[k])
            d1, l1 = drift_div(xT, float(ts[k]))
            x_pred = xT + h * d1
            d2, l2 = drift_div(x_pred, float(ts[k + 1]))
            xT = xT + 0.5 * h * (d1 + d2)
            delta = delta + 0.5 * h * (l1 + l2)

    prior = sde.prior_log_prob(xT)
    log_p_rows = prior + delta
    if not bool(torch.isfinite(log_p_rows).all()):
        raise DivergenceError(
            "log_likelihood produced non-finite values; check the score near t = eps "
            "(raise eps) or tighten the tolerances"
        )
    info: dict[str, Any] = {
        "nfe": nfe,
        "eps": t0,
        "T": T,
        "method": method,
        "trace": trace,
    }
    if trace == "hutchinson":
        per_probe = log_p_rows.reshape(n_probes, n)
        log_p = per_probe.mean(0)
        info["log_p_probes"] = per_probe
        if n_probes > 1:
            info["stderr"] = per_probe.std(0) / math.sqrt(n_probes)
        info["prior_log_p"] = prior.reshape(n_probes, n).mean(0)
        info["delta_log_p"] = delta.reshape(n_probes, n).mean(0)
        info["x_T"] = xT[:n]
    else:
        log_p = log_p_rows
        info["prior_log_p"] = prior
        info["delta_log_p"] = delta
        info["x_T"] = xT
    return log_p, info


__all__ = ["METHODS", "PROBES", "TRACES", "log_likelihood"]
