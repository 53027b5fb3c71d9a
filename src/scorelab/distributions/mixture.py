"""Gaussian mixtures with exact scores at every noise level.

Each component covariance is kept in eigen-form Σₖ = Uₖ diag(λₖ) Uₖᵀ.  Then
scale²Σₖ + σ²I = Uₖ diag(scale²λₖ + σ²) Uₖᵀ, so the law of scale·X + σZ is again a mixture
with the same eigenvectors, and the score at a per-sample σ costs one batched rotation:
∇ log p(x) = −Σₖ rₖ(x) Uₖ diag(1/vₖ) Uₖᵀ (x − mₖ), rₖ the posterior over components.
Axis-aligned (diagonal / isotropic) mixtures skip the rotation (U = None).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from scorelab._utils import ScorelabError, as_sigma
from scorelab.distributions.base import (
    FiniteMixture,
    as_param,
    check_noise_args,
    normalised_weights,
)

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixture(FiniteMixture):
    """p(x) = Σₖ wₖ N(x; μₖ, Σₖ) with full, diagonal or isotropic Σₖ.

    covariances: (K, d, d) full, (K, d) diagonal, (K,) isotropic variances, or a scalar
    variance shared by all components.  `stds=` is the isotropic alternative (σₖ, not σₖ²).
    """

    name = "gaussian_mixture"

    def __init__(
        self,
        means: Tensor | Sequence,
        covariances: Tensor | Sequence | float | None = None,
        weights: Tensor | Sequence | None = None,
        *,
        stds: Tensor | Sequence | float | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        dtype = dtype or torch.get_default_dtype()
        means = as_param(means, dtype)
        if means.ndim != 2 or means.shape[0] == 0:
            raise ScorelabError(f"means must have shape (K, d), got {tuple(means.shape)}")
        k, d = means.shape
        if (covariances is None) == (stds is None):
            raise ScorelabError("give exactly one of covariances= or stds=")
        if stds is not None:
            s = as_param(stds, dtype)
            if bool((s <= 0).any()):
                raise ScorelabError("stds must be positive")
            covariances = s**2
        cov = as_param(covariances, dtype)
        eigvecs: Tensor | None = None
        if cov.ndim == 0:
            lam = cov.expand(k, d).clone()
        elif cov.ndim == 1 and cov.shape == (k,):
            lam = cov[:, None].expand(k, d).clone()
        elif cov.ndim == 2 and cov.shape == (k, d):
            lam = cov
        elif cov.ndim == 3 and cov.shape == (k, d, d):
            if not torch.allclose(cov, cov.transpose(1, 2), atol=1e-10, rtol=1e-8):
                raise ScorelabError("covariance matrices must be symmetric")
            lam, eigvecs = torch.linalg.eigh(cov)
        else:
            raise ScorelabError(
                f"covariances must be a scalar, ({k},), ({k}, {d}) or ({k}, {d}, {d}); "
                f"got {tuple(cov.shape)}"
            )
        if not bool(torch.isfinite(lam).all()) or bool((lam <= 0).any()):
            raise ScorelabError("covariances must be finite and positive definite")
        w = normalised_weights(weights, k, dtype)
        if not bool(torch.isfinite(means).all()):
            raise ScorelabError("means must be finite")
        self.means = means
        self.eigvals = lam
        self.eigvecs = eigvecs
        self.weights = w
        self.dim = d

    # -- structure -------------------------------------------------------------------------
    @property
    def covariances(self) -> Tensor:
        """Full (K, d, d) covariance matrices Uₖ diag(λₖ) Uₖᵀ."""
        if self.eigvecs is None:
            return torch.diag_embed(self.eigvals)
        return self.eigvecs @ torch.diag_embed(self.eigvals) @ self.eigvecs.transpose(1, 2)

    def noised(self, sigma: float, scale: float = 1.0) -> GaussianMixture:
        """Law of scale·X + σZ: means scale·μₖ, covariances scale²Σₖ + σ²I, same weights."""
        check_noise_args(sigma, scale)
        out = copy.copy(self)
        out.means = self.means * scale
        out.eigvals = self.eigvals * scale**2 + sigma**2
        return out

    # -- batched core ----------------------------------------------------------------------
    def _rotate_in(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        """y = Uₖᵀ (x − aμₖ), shape (N, K, d), a a per-sample scale (1 when None)."""
        means = self.means.to(x)[None]
        if scale is not None:
            means = scale[:, None, None] * means
        diff = x[:, None, :] - means
        if self.eigvecs is None:
            return diff
        return torch.einsum("nkd,kde->nke", diff, self.eigvecs.to(x))

    def _rotate_out(self, y: Tensor) -> Tensor:
        """Uₖ y, shape (N, K, d)."""
        if self.eigvecs is None:
            return y
        return torch.einsum("nke,kde->nkd", y, self.eigvecs.to(y))

    def _component_terms(
        self, x: Tensor, sigma: Tensor | None, scale: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(log N(x; aμₖ, a²Σₖ + σ²I) of shape (N, K), whitened y (N, K, d), variances v)."""
        self._check_x(x)
        y = self._rotate_in(x, scale)
        v = self.eigvals.to(x)[None]  # (1, K, d)
        if scale is not None:
            v = v * (scale**2)[:, None, None]
        if sigma is not None:
            v = v + (sigma**2)[:, None, None]
        log_n = -0.5 * ((y * y) / v + v.log()).sum(-1) - 0.5 * self.dim * _LOG_2PI
        return log_n, y, v

    def _component_log_prob(self, x: Tensor) -> Tensor:
        return self._component_terms(x, None)[0]

    def _score(self, x: Tensor, sigma: Tensor | None, scale: Tensor | None = None) -> Tensor:
        log_n, y, v = self._component_terms(x, sigma, scale)
        r = self.posterior(log_n)  # (N, K)
        return -(r[..., None] * self._rotate_out(y / v)).sum(1)

    # -- Target API ------------------------------------------------------------------------
    def score(self, x: Tensor) -> Tensor:
        """∇ log p(x) = −Σₖ rₖ(x) Σₖ⁻¹ (x − μₖ)."""
        return self._score(x, None)

    def noised_score(
        self, x: Tensor, sigma: Tensor | float, scale: Tensor | float | None = None
    ) -> Tensor:
        """∇ log law(aᵢX + σᵢZ)(xᵢ) with per-sample σ and scale a (1 when None), one pass.

        With per-sample a this is the exact score of the mixture pushed through a linear SDE
        at per-sample times (scorelab.sde.exact_score_fn).
        """
        a = None if scale is None else as_sigma(scale, x)
        return self._score(x, as_sigma(sigma, x), a)

    def _draw(self, labels: Tensor, generator: torch.Generator | None) -> Tensor:
        z = torch.randn((labels.shape[0], self.dim), generator=generator, dtype=self.means.dtype)
        y = z * self.eigvals[labels].sqrt()
        if self.eigvecs is not None:
            y = torch.einsum("nkd,nd->nk", self.eigvecs[labels], y)
        return self.means[labels] + y


class Gaussian(GaussianMixture):
    """N(μ, Σ) with full covariance: a one-component mixture, so `noised` stays Gaussian."""

    name = "gaussian"

    def __init__(
        self,
        mean: Tensor | Sequence,
        covariance: Tensor | Sequence | float,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        dtype = dtype or torch.get_default_dtype()
        mean = as_param(mean, dtype)
        cov = as_param(covariance, dtype)
        if mean.ndim != 1:
            raise ScorelabError(f"mean must have shape (d,), got {tuple(mean.shape)}")
        d = mean.shape[0]
        if cov.ndim == 2:
            if cov.shape != (d, d):
                raise ScorelabError(f"covariance must be ({d}, {d}), got {tuple(cov.shape)}")
            cov = cov[None]
        elif cov.ndim == 1:
            cov = cov[None]  # diagonal
        super().__init__(mean[None], cov, dtype=dtype)

    @property
    def mean(self) -> Tensor:
        return self.means[0]

    @property
    def covariance(self) -> Tensor:
        return self.covariances[0]
