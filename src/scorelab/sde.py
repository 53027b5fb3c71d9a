"""Forward SDEs dx = f(x, t) dt + g(t) dB and their reverse-time SDE / probability-flow ODE.

Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential Equations"
(score_sde ``sde_lib.py`` style): the SDE object owns its drift/diffusion, the marginal
x_t | x_0 ~ N(a(t)·x_0, s(t)²I), the prior, the Euler–Maruyama discretisation and `reverse`;
nothing else switches on SDE type.  All methods are batched over a per-sample time t (N,) and
never mention shapes: per-sample scalars broadcast with `append_dims`.

Every SDE here is linear, f(x, t) = c(t)·x, so its marginal is Gaussian with
a' = c·a and (s²)' = 2c·s² + g² (the moment ODEs the tests check).  The lecture's OU process
(seed 002) dX = −X dt + √2 dB is `OUSDE`; its reverse is dX̄ = (X̄ + 2∇log q_{T−t}) dt + √2 dB.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor

from scorelab._types import ScoreFn
from scorelab._utils import ScorelabError, append_dims, randn_like
from scorelab.distributions.base import Target
from scorelab.distributions.mixture import GaussianMixture
from scorelab.registry import Registry

_LOG_2PI = math.log(2.0 * math.pi)


def _positive(name: str, v: float) -> float:
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ScorelabError(f"{name} must be finite and positive, got {v}")
    return v


@functools.cache
def _gauss_legendre(n: int = 32) -> tuple[Tensor, Tensor]:
    """Nodes and weights on [−1, 1] (float64): exact for polynomials of degree < 2n."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy(nodes), torch.from_numpy(weights)


class SDE(ABC):
    """A linear forward SDE on [0, T]; `eps` is the smallest time samplers/losses should use."""

    prior_std: float = 1.0

    def __init__(self, T: float = 1.0, eps: float = 1e-5) -> None:
        self.T = _positive("T", T)
        self.eps = float(eps)
        if not 0 <= self.eps < self.T:
            raise ScorelabError(f"eps must lie in [0, T={self.T}), got {eps}")

    # -- what a subclass supplies -----------------------------------------------------------
    @abstractmethod
    def drift_coef(self, t: Tensor) -> Tensor:
        """c(t) with f(x, t) = c(t)·x, shape (N,)."""

    @abstractmethod
    def diffusion(self, t: Tensor) -> Tensor:
        """g(t), shape (N,)."""

    @abstractmethod
    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(mean_scale a(t), std s(t)), each (N,): x_t | x_0 ~ N(a(t)·x_0, s(t)²I)."""

    # -- shared API ---------------------------------------------------------------------------
    def check_t(self, t: Tensor | float, like: Tensor | None = None) -> Tensor:
        """t as a tensor (in like's dtype/device, expanded to (N,)); ScorelabError off [0, T]."""
        if like is not None:
            t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
            if t.ndim == 0:
                t = t.expand(like.shape[0])
            if t.shape != (like.shape[0],):
                raise ScorelabError(
                    f"t must be a scalar or shape ({like.shape[0]},), got {tuple(t.shape)}"
                )
        elif not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=torch.get_default_dtype())
        if not bool(((t >= 0) & (t <= self.T)).all()):
            raise ScorelabError(f"t must lie in [0, T={self.T}]")
        return t

    def sde(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """(drift f(x, t) of shape (N, ...), diffusion g(t) of shape (N,))."""
        t = self.check_t(t, x)
        return append_dims(self.drift_coef(t), x.ndim) * x, self.diffusion(t)

    def perturb(
        self, x0: Tensor, t: Tensor | float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """A draw x_t = a(t)·x_0 + s(t)·z from the marginal, and the noise z used."""
        t = self.check_t(t, x0)
        a, s = self.marginal(t)
        z = randn_like(x0, generator)
        return append_dims(a, x0.ndim) * x0 + append_dims(s, x0.ndim) * z, z

    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draws from the prior N(0, prior_std²I) that x_T is close to."""
        return self.prior_std * torch.randn(tuple(shape), generator=generator, dtype=dtype)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, prior_std²I) summed over all but the batch dim, (N,)."""
        d = z[0].numel() if z.shape[0] else 0
        sq = (z.reshape(z.shape[0], -1) ** 2).sum(1)
        return -0.5 * sq / self.prior_std**2 - d * (math.log(self.prior_std) + 0.5 * _LOG_2PI)

    def discretize(self, x: Tensor, t: Tensor | float, dt: Tensor | float) -> tuple[Tensor, Tensor]:
        """Euler–Maruyama step t → t+dt: x_{t+dt} ≈ x + f_d + g_d·z, f_d = f·dt, g_d = g·√dt.

        dt > 0 is a scalar or per-sample (N,); g_d has shape (N,).
        """
        f, g = self.sde(x, t)
        dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
        if bool((dt <= 0).any()):
            raise ScorelabError("dt must be positive")
        dt = dt.expand(x.shape[0]) if dt.ndim == 0 else dt
        return f * append_dims(dt, x.ndim), g * dt.sqrt()

    def transition(self, x: Tensor, t: Tensor | float, dt: Tensor | float) -> tuple[Tensor, Tensor]:
        """Exact Gaussian step t → t+dt of a linear SDE, in `discretize`'s (f_d, g_d) form.

        x_{t+dt} | x_t ~ N(α·x_t, s(t+dt)² − α²s(t)²) with α = a(t+dt)/a(t): for VE this is
        SMLD's ancestral step, for VP the DDPM one (Song et al. 2021, App. E).
        """
        t = self.check_t(t, x)
        dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
        t1 = self.check_t(t + dt, x)
        a0, s0 = self.marginal(t)
        a1, s1 = self.marginal(t1)
        alpha = a1 / a0
        var = (s1**2 - alpha**2 * s0**2).clamp_min(0.0)
        return append_dims(alpha - 1.0, x.ndim) * x, var.sqrt()

    def exponential_coefs(self, t: float, t_next: float) -> tuple[float, float, float]:
        """(ρ, κ, ν) of the exponential-integrator reverse step t → t_next < t (seed 002).

        With the score frozen at (x_k, t), the reverse SDE is linear in x, so
        d(x/a) = (g²/a)·s dτ + (g/a) dB̄ integrates exactly to x_next = ρ·x + κ·s + √ν·z:
        ρ = a(t_next)/a(t), κ = a(t_next)·∫_{t_next}^{t} g²/a dτ (Gauss–Legendre, float64) and
        ν = a(t_next)²·[s(t)²/a(t)² − s(t_next)²/a(t_next)²], since d(s²/a²)/dτ = g²/a² by the
        moment ODEs.  Closed forms the tests check: VE κ = ν = s(t)² − s(t_next)²; VP and OU
        (g² = −2c) κ = 2(ρ − 1), ν = ρ² − 1.
        """
        if not 0 <= t_next < t <= self.T:
            raise ScorelabError(f"need 0 <= t_next < t <= T={self.T}, got t={t}, t_next={t_next}")
        nodes, weights = _gauss_legendre()
        mid, half = 0.5 * (t + t_next), 0.5 * (t - t_next)
        tau = mid + half * nodes
        a_tau, _ = self.marginal(tau)
        integral = half * float((weights * self.diffusion(tau) ** 2 / a_tau).sum())
        a, s = self.marginal(torch.tensor([t, t_next], dtype=torch.float64))
        a1, a0, s1, s0 = float(a[0]), float(a[1]), float(s[0]), float(s[1])
        nu = max(a0**2 * (s1**2 / a1**2 - s0**2 / a0**2), 0.0)
        return a0 / a1, a0 * integral, nu

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (or probability-flow ODE) driven by score_fn(x, t)."""
        return ReverseSDE(self, score_fn, probability_flow)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(T={self.T}, eps={self.eps})"


class ReverseSDE:
    """dx = [f − g²·s(x, t)] dt + g dB̄ run from T down to 0 (Anderson 1982; Song et al. eq. 6).

    With probability_flow=True: the ODE dx = [f − ½g²·s] dt with zero diffusion (eq. 13),
    which has the same marginals.  `sde` gives the drift in forward-time form, so an
    Euler–Maruyama step with dt < 0 is x + drift·dt + g·√|dt|·z.
    """

    def __init__(self, forward: SDE, score_fn: ScoreFn, probability_flow: bool = False) -> None:
        self.forward = forward
        self.score_fn = score_fn
        self.probability_flow = bool(probability_flow)
        self.T = forward.T
        self.eps = forward.eps

    def _coef(self) -> float:
        return 0.5 if self.probability_flow else 1.0

    def sde(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """(f − g²s (×½ for the ODE), g or 0 for the ODE)."""
        t = self.forward.check_t(t, x)
        f, g = self.forward.sde(x, t)
        g2 = append_dims(g**2, x.ndim)
        drift = f - self._coef() * g2 * self.score_fn(x, t)
        return drift, torch.zeros_like(g) if self.probability_flow else g

    def discretize(self, x: Tensor, t: Tensor | float, dt: Tensor | float) -> tuple[Tensor, Tensor]:
        """Reverse-diffusion predictor step t → t−dt: x_{t−dt} = x − rev_f + rev_g·z.

        From the forward discretisation (f_d, g_d): rev_f = f_d − g_d²·s (×½ for the ODE),
        rev_g = g_d (0 for the ODE) — score_sde's ReverseDiffusionPredictor.
        """
        t = self.forward.check_t(t, x)
        f_d, g_d = self.forward.discretize(x, t, dt)
        rev_f = f_d - self._coef() * append_dims(g_d**2, x.ndim) * self.score_fn(x, t)
        return rev_f, torch.zeros_like(g_d) if self.probability_flow else g_d


class VESDE(SDE):
    """Variance exploding: σ(t) = σ_min(σ_max/σ_min)^t, f = 0, g = σ(t)√(2 log(σ_max/σ_min)).

    marginal std is √(σ(t)² − σ_min²), the exact law from X_0 = x_0 (std 0 at t = 0), so
    the moment ODE and simulations hold exactly.  score_sde returns σ(t) instead, i.e. it
    treats the data as already blurred by σ_min; the two differ by < σ_min²/(2σ(t)).
    """

    def __init__(
        self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0, eps: float = 1e-5
    ) -> None:
        super().__init__(T, eps)
        self.sigma_min = _positive("sigma_min", sigma_min)
        self.sigma_max = _positive("sigma_max", sigma_max)
        if not self.sigma_min < self.sigma_max:
            raise ScorelabError(f"need sigma_min < sigma_max, got {sigma_min} >= {sigma_max}")
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        self.prior_std = self.sigma_max

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(t / self.T * self._log_ratio)

    def drift_coef(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2.0 * self._log_ratio / self.T)

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = self.check_t(t)
        var = (self.sigma(t) ** 2 - self.sigma_min**2).clamp_min(0.0)
        return torch.ones_like(t), var.sqrt()


class VPSDE(SDE):
    """Variance preserving: β(t) linear, f = −½β(t)x, g = √β(t) (DDPM's continuous limit)."""

    def __init__(
        self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0, eps: float = 1e-3
    ) -> None:
        super().__init__(T, eps)
        self.beta_min = _positive("beta_min", beta_min)
        self.beta_max = _positive("beta_max", beta_max)
        if not self.beta_min < self.beta_max:
            raise ScorelabError(f"need beta_min < beta_max, got {beta_min} >= {beta_max}")

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + (self.beta_max - self.beta_min) * t / self.T

    def int_beta(self, t: Tensor) -> Tensor:
        """B(t) = ∫₀ᵗ β."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2 / self.T

    def drift_coef(self, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        b = self.int_beta(self.check_t(t))
        return torch.exp(-0.5 * b), (-torch.expm1(-b)).sqrt()


class SubVPSDE(VPSDE):
    """sub-VP: VP's drift, g = √(β(t)(1 − e^{−2B(t)})), std 1 − e^{−B(t)} ≤ VP's std."""

    def diffusion(self, t: Tensor) -> Tensor:
        return (self.beta(t) * -torch.expm1(-2.0 * self.int_beta(t))).sqrt()

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        b = self.int_beta(self.check_t(t))
        return torch.exp(-0.5 * b), -torch.expm1(-b)


class OUSDE(SDE):
    """Seed 002's OU process dX = −X dt + √2 dB: X_t | X_0 ~ N(e^{−t}X_0, (1 − e^{−2t})I)."""

    def __init__(self, T: float = 5.0, eps: float = 1e-3) -> None:
        super().__init__(T, eps)

    def drift_coef(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def diffusion(self, t: Tensor) -> Tensor:
        return torch.full_like(t, math.sqrt(2.0))

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = self.check_t(t)
        return torch.exp(-t), (-torch.expm1(-2.0 * t)).sqrt()


SDES: Registry[SDE] = Registry("sde")
SDES.register("ve")(VESDE)
SDES.register("vp")(VPSDE)
SDES.register("subvp")(SubVPSDE)
SDES.register("ou")(OUSDE)


def exact_score_fn(sde: SDE, target: Target) -> ScoreFn:
    """The exact score ∇ log p_t of target pushed through sde: p_t = law of a(t)X + s(t)Z.

    For a GaussianMixture one batched pass with per-sample (a, s) (`noised_score` with a
    per-sample scale): component k has mean a·μₖ and covariance Uₖ diag(a²λₖ + s²) Uₖᵀ.
    Other targets with a closed-form `noised` law
    fall back to one `noised(s, scale=a)` per distinct t.
    """

    def score_fn(x: Tensor, t: Tensor | None) -> Tensor:
        if t is None:
            raise ScorelabError("exact_score_fn needs a per-sample time t, got None")
        t = sde.check_t(t, x)
        a, s = sde.marginal(t)
        if isinstance(target, GaussianMixture):
            return target.noised_score(x, s, scale=a)
        out = torch.empty_like(x)
        for tv in torch.unique(t):
            rows = t == tv
            law = target.noised(float(s[rows][0]), scale=float(a[rows][0]))
            out[rows] = law.score(x[rows])
        return out

    return score_fn
