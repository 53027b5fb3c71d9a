"""Per-sample score-matching losses: ESM, ISM, SSM, SSM-VR, DSM and the NCSN mixture.

One signature (DESIGN, "a loss is a short callable"): ``objective(model, x, *, generator=None)``
returns the per-sample losses, shape (N,); training minimises their mean. x must be (N, D).
The model is called as ``model(x, sigma)``: sigma is a per-sample (N,) noise level for a
σ-conditional model (``model.conditioning == "sigma"``) and None for an unconditional one.
Every draw (noise z, projections v, noise indices) comes from the explicit generator, in the
order the docstrings state, so the same seed gives the same bits.

Noise levels. ESM, ISM and SSM take an optional ``sigma``: with it, x is first noised,
x̃ = x + σz, the model receives σ, and the loss targets the σ-noised law q_σ = p ∗ N(0, σ²I)
instead of p. Then ESM(σ), ISM(σ), SSM(σ) and DSM(σ) all estimate the same Fisher divergence
½E_{q_σ}‖s_θ(x̃, σ) − ∇log q_σ(x̃)‖² up to θ-independent constants: their gradients agree in
expectation (seed 002, "denoising score matching"; seed 001 §3.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from scorelab._types import ScoreFn
from scorelab._utils import ScorelabError, append_dims, randn_like
from scorelab.registry import Registry

Objective = Callable[..., Tensor]
"""objective(model, x, *, generator=None) -> per-sample losses (N,)."""

PROJECTIONS = ("gaussian", "rademacher")


# -- shared pieces ---------------------------------------------------------------------------
def _check_x(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ScorelabError(f"{name} expects a batch of vectors of shape (N, D), got {shape}")


def _check_sigma(sigma: float | None, name: str, *, optional: bool) -> float | None:
    if sigma is None and optional:
        return None
    try:
        s = float(sigma)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ScorelabError(f"{name}: sigma must be a positive number, got {sigma!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise ScorelabError(f"{name}: sigma must be finite and positive, got {sigma}")
    return s


def _model_sigma(model: nn.Module, sigma: Tensor | None, name: str) -> Tensor | None:
    """What the model receives as its second argument: σ (N,) if σ-conditional, else None."""
    conditioning = getattr(model, "conditioning", "none")
    if conditioning == "none":
        return None
    if conditioning == "sigma":
        if sigma is None:
            raise ScorelabError(
                f"{name}: the model is sigma-conditional; give the objective a noise level "
                "(sigma=...) so the model knows which noised law it scores"
            )
        return sigma
    raise ScorelabError(
        f"{name} trains noise-level (sigma) or unconditional models; a {conditioning}-"
        "conditional model needs a time-indexed (SDE) objective"
    )


def _noise(
    x: Tensor, sigma: float | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor | None]:
    """(x̃ = x + σz, σ as (N,)) when sigma is set, else (x, None). Draws z first."""
    if sigma is None:
        return x, None
    z = randn_like(x, generator)
    return x + sigma * z, torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


def _half_sq(v: Tensor) -> Tensor:
    """½‖v‖² per sample, summed over every non-batch dimension."""
    return 0.5 * v.pow(2).flatten(1).sum(1)


# -- the objectives ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ESM:
    """ℓ(x) = ½‖s_θ(x̃, σ) − ∇log q(x̃)‖², q = p (sigma None) or p ∗ N(0, σ²I), x̃ = x + σz.

    Explicit score matching (seed 001 eq. 3): with a known score it is the Fisher divergence
    ½E_q‖s_θ − ∇log q‖² itself, no constant dropped, so it is the reference every other
    objective is checked against. ``score_fn(x, sigma)`` is the known score (a Target is turned
    into one with ``target_score_fn``); with ``sigma`` set the batch is noised first, so x̃ is
    a draw of q_σ and the known score is called at σ. Draws: z (only when sigma is set).
    """

    score_fn: ScoreFn | Any
    sigma: float | None = None

    cost: ClassVar[str] = "1 forward + 1 backward per step; O(1) in D (needs the true score)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_sigma(self.sigma, "ESM", optional=True))
        fn = self.score_fn
        if hasattr(fn, "noised_score") and hasattr(fn, "score"):  # a Target
            from scorelab.distributions import target_score_fn

            fn = target_score_fn(fn)
        if not callable(fn):
            raise ScorelabError(f"ESM needs a score function score_fn(x, sigma), got {fn!r}")
        object.__setattr__(self, "score_fn", fn)

    def __call__(
        self, model: nn.Module, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_x(x, "ESM")
        xt, sig = _noise(x, self.sigma, generator)
        s = model(xt, _model_sigma(model, sig, "ESM"))
        with torch.no_grad():
            target = self.score_fn(xt, sig)
        return _half_sq(s - target)


@dataclass(frozen=True)
class ISM:
    """ℓ(x) = ½‖s_θ(x)‖² + tr ∇ₓs_θ(x): Hyvärinen's integration by parts of ESM.

    Implicit score matching (Hyvärinen 2005; seed 002): E_p ℓ = ½E_p‖s_θ − ∇log p‖² − ½E_p‖∇log
    p‖², i.e. the Fisher divergence minus a θ-independent constant, with no access to ∇log p.
    The trace is exact: the per-sample Jacobian by ``vmap(jacrev(·))``; it composes with
    EnergyScore's ``torch.func.grad`` (s = −∇E, trace = −ΔE). With ``sigma`` set, x is noised
    first and the model gets σ: the constant is then −½E‖∇log q_σ‖². Draws: z (if sigma).
    """

    sigma: float | None = None

    cost: ClassVar[str] = (
        "O(D): a D×D Jacobian per sample = D vector-Jacobian products (vmap batches them into "
        "one N·D-row backward), then the backward to θ through it; time and memory grow ∝ D"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_sigma(self.sigma, "ISM", optional=True))

    def __call__(
        self, model: nn.Module, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_x(x, "ISM")
        xt, sig = _noise(x, self.sigma, generator)
        msig = _model_sigma(model, sig, "ISM")

        def one(xi: Tensor, si: Tensor | None) -> tuple[Tensor, Tensor]:
            out = model(xi[None], None if si is None else si[None])[0]
            return out, out  # (differentiated output, aux: the score itself — no extra forward)

        if msig is None:
            jac, s = torch.func.vmap(torch.func.jacrev(lambda xi: one(xi, None), has_aux=True))(xt)
        else:
            jac, s = torch.func.vmap(torch.func.jacrev(one, has_aux=True))(xt, msig)
        return _half_sq(s) + jac.diagonal(dim1=1, dim2=2).sum(1)


@dataclass(frozen=True)
class SSM:
    """ℓ(x) = (1/M)Σₘ vₘᵀ(∇ₓs_θ)vₘ + ½(vₘᵀs_θ)² [VR: + ½‖s_θ‖²], E vvᵀ = I (Hutchinson).

    Sliced score matching (Song et al. 2019; seed 002): integration by parts of the sliced
    Fisher divergence ½E_v E_p (vᵀ∇log p − vᵀs_θ)², which for E vvᵀ = I equals the Fisher
    divergence, so E ℓ = ISM's expectation: the Fisher divergence minus ½E_p‖∇log p‖². The
    variance-reduced form (``variance_reduced=True``, registry ``ssm_vr``) replaces ½(vᵀs)² by
    its conditional mean ½‖s‖², leaving the Hutchinson trace as the only projection noise.
    vᵀ(∇ₓs)v is one vector-Jacobian product: ∇ₓ(s·v) with create_graph, all M projections of
    all points in one batched call. Draws: z (if sigma), then the (M·N, D) projections.
    """

    n_projections: int = 1
    projection: str = "gaussian"
    variance_reduced: bool = False
    sigma: float | None = None

    cost: ClassVar[str] = (
        "O(M), independent of D: one forward on M·N rows, one vector-Jacobian product, then "
        "the backward to θ (≈ 3 backward-sized passes for M = 1)"
    )

    def __post_init__(self) -> None:
        m = self.n_projections
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ScorelabError(f"SSM: n_projections must be an integer >= 1, got {m!r}")
        if self.projection not in PROJECTIONS:
            raise ScorelabError(
                f"SSM: projection must be one of {PROJECTIONS}, got {self.projection!r}"
            )
        object.__setattr__(self, "sigma", _check_sigma(self.sigma, "SSM", optional=True))

    def _draw(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.projection == "gaussian":
            return randn_like(like, generator)
        bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
        return (2 * bits - 1).to(like.dtype)

    def __call__(
        self, model: nn.Module, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_x(x, "SSM")
        xt, sig = _noise(x, self.sigma, generator)
        msig = _model_sigma(model, sig, "SSM")
        m, n = self.n_projections, x.shape[0]
        # row k·N + i is point i under projection k; detached so ∇ₓ is taken at the leaf
        xr = xt.detach().repeat(m, 1).requires_grad_(True)
        sr = None if msig is None else msig.repeat(m)
        v = self._draw(xr, generator)
        with torch.enable_grad():  # the vJv term needs a graph even under no_grad (validation)
            s = model(xr, sr)
            sv = (s * v).sum(1)
            (jtv,) = torch.autograd.grad(sv.sum(), xr, create_graph=True)
        vjv = (jtv * v).sum(1)
        second = _half_sq(s) if self.variance_reduced else 0.5 * sv.pow(2)
        return (vjv + second).reshape(m, n).mean(0)


@dataclass(frozen=True)
class DSM:
    """ℓ(x, z) = ½‖s_θ(x + σz, σ) + z/σ‖², since ∇log q_σ(x̃|x) = (x − x̃)/σ² = −z/σ.

    Denoising score matching (Vincent 2011; seed 001 eq. 6, seed 002): E ℓ = ½E_{q_σ}‖s_θ(x̃, σ)
    − ∇log q_σ(x̃)‖² + C(σ), the Fisher divergence to the noised law q_σ = p ∗ N(0, σ²I) plus a
    θ-independent constant (for a Gaussian p: D/(2σ²) − ½tr (Σ + σ²I)⁻¹). Draws: z.
    """

    sigma: float

    cost: ClassVar[str] = "1 forward + 1 backward per step; O(1) in D"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_sigma(self.sigma, "DSM", optional=False))

    def __call__(
        self, model: nn.Module, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_x(x, "DSM")
        z = randn_like(x, generator)
        sig = torch.full((x.shape[0],), self.sigma, dtype=x.dtype, device=x.device)
        s = model(x + self.sigma * z, _model_sigma(model, sig, "DSM"))
        return _half_sq(s + z / self.sigma)


@dataclass(frozen=True)
class NCSN:
    """ℓ(x, i, z) = ½‖σᵢ s_θ(x + σᵢz, σᵢ) + z‖² = σᵢ²·DSM_σᵢ, i ~ U{0, …, L−1} per sample.

    The NCSN objective (seed 001 eq. 9 with λ(σ) = σ²; seed 002 "NCSN training"): its mean is
    (1/L)Σᵢ σᵢ²·(Fisher divergence to q_σᵢ) + const, one noise level drawn per sample, so a
    step costs what one DSM step costs. ``sigmas`` must be strictly decreasing and positive
    (σ₁ > … > σ_L). An unconditional model is called with None: that trains a single score on
    the mixture of the noised laws (σ²-weighted) — legal, but not what annealed Langevin wants.
    Draws: the L-way indices (N,), then z.
    """

    sigmas: Sequence[float] | Tensor

    cost: ClassVar[str] = "1 forward + 1 backward per step; O(1) in D and in L"

    def __post_init__(self) -> None:
        try:
            s = torch.as_tensor(self.sigmas, dtype=torch.float64).detach()
        except (TypeError, ValueError, RuntimeError):
            msg = f"NCSN: sigmas must be a sequence of numbers, got {self.sigmas!r}"
            raise ScorelabError(msg) from None
        if s.ndim != 1 or s.numel() == 0:
            raise ScorelabError(f"NCSN: sigmas must be a non-empty 1-d sequence, got {self.sigmas}")
        if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
            raise ScorelabError("NCSN: sigmas must be finite and positive")
        if s.numel() > 1 and not bool((s[1:] < s[:-1]).all()):
            raise ScorelabError("NCSN: sigmas must be strictly decreasing (σ₁ > … > σ_L)")
        object.__setattr__(self, "sigmas", tuple(float(v) for v in s))
        object.__setattr__(self, "_cache", {})

    def _levels(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """σ₁…σ_L as a tensor of x's dtype and device, built once per (dtype, device): a
        torch.tensor from a tuple costs ~35 µs, 1–2 % of a small model's step."""
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = torch.tensor(self.sigmas, dtype=dtype, device=device)
        return self._cache[key]

    def __call__(
        self, model: nn.Module, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_x(x, "NCSN")
        levels = self._levels(x.dtype, x.device)
        idx = torch.randint(
            0, len(self.sigmas), (x.shape[0],), generator=generator, device=x.device
        )
        sig = levels[idx]
        z = randn_like(x, generator)
        sb = append_dims(sig, x.ndim)
        s = model(x + sb * z, _model_sigma(model, sig, "NCSN"))
        return _half_sq(sb * s + z)


# -- registry ---------------------------------------------------------------------------------
OBJECTIVES: Registry = Registry("objective")
OBJECTIVES.register("esm")(ESM)
OBJECTIVES.register("ism")(ISM)
OBJECTIVES.register("ssm")(SSM)
OBJECTIVES.register("dsm")(DSM)
OBJECTIVES.register("ncsn")(NCSN)


@OBJECTIVES.register("ssm_vr")
def ssm_vr(n_projections: int = 1, projection: str = "gaussian", sigma: float | None = None) -> SSM:
    """Variance-reduced sliced score matching: SSM with ½‖s‖² in place of ½(vᵀs)²."""
    return SSM(
        n_projections=n_projections, projection=projection, variance_reduced=True, sigma=sigma
    )


__all__ = [
    "DSM",
    "ESM",
    "ISM",
    "NCSN",
    "OBJECTIVES",
    "PROJECTIONS",
    "SSM",
    "Objective",
    "ssm_vr",
]


# -- continuous-time (SDE) denoising score matching ------------------------------------------
SDE_WEIGHTINGS = ("sigma2", "likelihood")


@dataclass(frozen=True)
class SDEDSM:
    """ℓ(x, t, z) = λ(t)·½‖s_θ(x_t, t) + z/s(t)‖², t ~ U(eps, T), x_t = a(t)x + s(t)z.

    Continuous-time denoising score matching (Song et al. 2021, eq. 7; seed 002 "denoising
    score matching" for the OU process). For a linear SDE, x_t | x ~ N(a(t)x, s(t)²I), so
    ∇log p_t(x_t | x) = −(x_t − a(t)x)/s(t)² = −z/s(t), and Vincent's identity at each t gives
    E_{x,z} ½‖s_θ(x_t, t) + z/s(t)‖² = ½E_{p_t}‖s_θ(x_t, t) − ∇log p_t(x_t)‖² + C(t),
    C(t) = ½(E‖z‖²/s² − E_{p_t}‖∇log p_t‖²) independent of θ. Hence E ℓ = E_t λ(t)·(Fisher
    divergence to p_t) + E_t λ(t)C(t): a λ-weighted time integral of Fisher divergences, up
    to a constant; for Gaussian data N(μ, Σ), C(t) = ½(D/s² − tr (a²Σ + s²I)⁻¹).

    weighting="sigma2": λ = s(t)², ℓ = ½‖s(t)s_θ + z‖², NCSN's weighting (every t contributes
    an O(1) term). weighting="likelihood": λ = g(t)² (Song et al. 2021b), for which the
    weighted Fisher integral bounds the KL between data and model (maximum-likelihood
    training); its variance is larger at small t where g²/s² blows up. The model must be
    time-conditional (``model(x_t, t)`` with ``conditioning == "time"``). ``eps`` (default
    ``sde.eps``) keeps t away from 0, where s(t) → 0; it must lie in (0, T).
    Draws: t (N,) uniform, then z (via ``sde.perturb``).
    """

    sde: Any
    weighting: str = "sigma2"
    eps: float | None = None

    cost: ClassVar[str] = "1 forward + 1 backward per step; O(1) in D"

    def __post_init__(self) -> None:
        from scorelab.sde import SDE

        if not isinstance(self.sde, SDE):
            raise ScorelabError(f"SDEDSM needs a scorelab.sde.SDE, got {self.sde!r}")
        if self.weighting not in SDE_WEIGHTINGS:
            raise ScorelabError(
                f"SDEDSM: weighting must be one of {SDE_WEIGHTINGS}, got {self.weighting!r}"
            )
        eps = self.sde.eps if self.eps is None else self.eps
        try:
            eps = float(eps)
        except (TypeError, ValueError):
            raise ScorelabError(f"SDEDSM: eps must be a number, got {self.eps!r}") from None
        if not (math.isfinite(eps) and 0 < eps < self.sde.T):
            raise ScorelabError(f"SDEDSM: eps must lie in (0, T={self.sde.T}), got {eps}")
        object.__setattr__(self, "eps", eps)

    def __call__(
        self, model: nn.Module, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_x(x, "SDEDSM")
        conditioning = getattr(model, "conditioning", "none")
        if conditioning != "time":
            raise ScorelabError(
                f"SDEDSM trains time-conditional models (conditioning='time'), got a "
                f"{conditioning!r}-conditional one"
            )
        eps, T = float(self.eps), self.sde.T  # type: ignore[arg-type]
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
        t = eps + (T - eps) * u
        xt, z = self.sde.perturb(x, t, generator)
        _, s = self.sde.marginal(t)
        sb = append_dims(s, x.ndim)
        out = model(xt, t)
        if self.weighting == "sigma2":
            return _half_sq(sb * out + z)
        return self.sde.diffusion(t) ** 2 * _half_sq(out + z / sb)


OBJECTIVES.register("sde_dsm")(SDEDSM)
__all__ += ["SDEDSM", "SDE_WEIGHTINGS"]
