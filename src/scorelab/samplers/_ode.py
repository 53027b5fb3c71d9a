"""A torch-native adaptive ODE solver: Dormand–Prince 5(4) with PI step-size control.

`dopri5` integrates dy/dt = f(y, t) from t0 to t1 (either direction) on a tensor state, in the
state's dtype and on its device; times are Python floats (float64).  It is the scheme of Hairer,
Nørsett & Wanner's DOPRI5 (Solving ODEs I, II.4–II.5):

- the 7-stage Dormand–Prince tableau, first-same-as-last (6 new evaluations per step);
- local error err = h·Σ eᵢkᵢ with eᵢ = bᵢ − b̂ᵢ (5th minus embedded 4th order), measured as
  ‖err‖ = RMS over every element of err / (atol + rtol·max(|y|, |y_new|));
- a step is accepted when ‖err‖ ≤ 1; the next step is h·min(10, max(0.2,
  0.9·‖err‖^−(0.2−0.75β)·‖err_prev‖^β)) with β = 0.04 (the PI "Lund stabilisation" of DOPRI5;
  β = 0 is the classical I controller of scipy's RK45), and never grows right after a rejection;
- the first step by Hairer's starting-step rule (two evaluations, the first reused as k₁).

Why here and not scipy or torchdiffeq: scipy's `solve_ivp` round-trips the state through float64
NumPy on every evaluation and cannot run on a GPU; torchdiffeq would be a dependency for one
solver.  This is ~80 lines of tensor adds around the caller's function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from scorelab._utils import ScorelabError

# Dormand & Prince (1980), the tableau of DOPRI5: nodes c, stages a, 5th-order weights b (= a₇),
# and e = b − b̂ (b̂ the embedded 4th-order weights).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

_SAFETY, _MIN_FACTOR, _MAX_FACTOR, _BETA = 0.9, 0.2, 10.0, 0.04
_EXPO = 0.2 - 0.75 * _BETA


@dataclass
class OdeSolution:
    y: Tensor
    nfe: int
    n_accepted: int
    n_rejected: int


def _rms(v: Tensor) -> float:
    return math.sqrt(float(v.square().mean()))


def _combine(y: Tensor | None, h: float, coefs: tuple[float, ...], ks: list[Tensor]) -> Tensor:
    """y + h·Σ aⱼkⱼ (y = None: h·Σ aⱼkⱼ), skipping zero coefficients: one fused op per term
    (cheaper on the CPU than one addmm on stacked stages, which needs a copy per stage)."""
    out = ks[0] * (h * coefs[0]) if y is None else torch.add(y, ks[0], alpha=h * coefs[0])
    for a, k in zip(coefs[1:], ks[1:], strict=False):
        if a != 0.0:
            out.add_(k, alpha=h * a)
    return out


def dopri5(
    f: Callable[[Tensor, float], Tensor],
    y0: Tensor,
    t0: float,
    t1: float,
    *,
    rtol: float,
    atol: float,
    max_steps: int = 100_000,
    on_step: Callable[[list[float]], None] | None = None,
) -> OdeSolution:
    """y(t1) for dy/dt = f(y, t), y(t0) = y0, by adaptive Dormand–Prince 5(4) (module docstring).

    on_step(times), if given, is called before each attempted step with the six times at which
    f is about to be evaluated (so f can prepare per-time coefficients in one batch).

    Raises ScorelabError when the step size underflows (a stiff or exploding f) or max_steps
    accepted-plus-rejected steps do not reach t1.
    """
    span = t1 - t0
    if span == 0.0:
        return OdeSolution(y0.clone(), 0, 0, 0)
    direction = 1.0 if span > 0 else -1.0
    y = y0
    k1 = f(y, t0)
    nfe = 1

    def scale(a: Tensor, b: Tensor | None = None) -> Tensor:
        m = a.abs() if b is None else torch.maximum(a.abs(), b.abs())
        return m.mul_(rtol).add_(atol)

    # Hairer's starting step (II.4): a first guess from |y|/|f|, refined by one Euler probe.
    sc = scale(y)
    d0, d1 = _rms(y / sc), _rms(k1 / sc)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, abs(span))
    k_probe = f(torch.add(y, k1, alpha=direction * h0), t0 + direction * h0)
    nfe += 1
    d2 = _rms((k_probe - k1) / sc) / h0
    dm = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if dm <= 1e-15 else (0.01 / dm) ** 0.2
    h = direction * min(100 * h0, h1)

    t, err_prev, rejected_last = t0, 1e-4, False
    n_acc = n_rej = 0
    while direction * (t1 - t) > 0:
        if n_acc + n_rej >= max_steps:
            raise ScorelabError(f"dopri5: {max_steps} steps did not reach t = {t1} (now {t:.6g})")
        if not abs(h) >= 1e-12 * max(1.0, abs(t)):  # also catches a NaN step from a NaN f
            raise ScorelabError(
                f"dopri5: the step size underflowed at t = {t:.6g} (the ODE function is "
                "non-finite or explodes there)"
            )
        if direction * (t + h - t1) > 0:
            h = t1 - t
        if on_step is not None:
            on_step([t + c * h for c in _C[1:6]] + [t + h])
        ks = [k1]
        for i in range(1, 6):
            ks.append(f(_combine(y, h, _A[i], ks), t + _C[i] * h))
        y_new = _combine(y, h, _A[6], ks)
        ks.append(f(y_new, t + h))  # FSAL: k₇ = f(y_new) is the next step's k₁
        nfe += 6
        err = _rms(_combine(None, h, _E, ks).div_(scale(y, y_new)))
        if not math.isfinite(err):
            err = math.inf
        if err <= 1.0:
            fac = _SAFETY * max(err, 1e-10) ** -_EXPO * err_prev**_BETA
            fac = min(_MAX_FACTOR, max(_MIN_FACTOR, fac))
            if rejected_last:
                fac = min(fac, 1.0)
            t = t1 if h == t1 - t else t + h
            y, k1 = y_new, ks[6]
            err_prev, rejected_last = max(err, 1e-4), False
            n_acc += 1
        else:
            fac = _MIN_FACTOR if err == math.inf else max(_MIN_FACTOR, _SAFETY * err**-_EXPO)
            rejected_last = True
            n_rej += 1
        h *= fac
    return OdeSolution(y, nfe, n_acc, n_rej)
