"""Mixtures of smooth, strongly log-concave, non-Gaussian components (the setting of seed 000).

Component k is X = μₖ + sₖ·U, U with i.i.d. coordinates of density
q(u) = exp(−u²/2)·sech(u)ᶜ / Z_c, c = tilt ≥ 0. Since (−log q)'' = 1 + c·sech²(u) ∈ [1, 1 + c],
each component is α-strongly log-concave with α = 1/sₖ² and β-smooth with β = (1 + c)/sₖ²
(Koehler & Vuong, arXiv 2310.01762), and non-Gaussian for c > 0. The family is not closed under
Gaussian convolution, so `noised` is unavailable; q ∝ N(0, 1)·sechᶜ ≤ N(0, 1) gives exact
rejection sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from scorelab._utils import ScorelabError
from scorelab.distributions.base import FiniteMixture, as_param, normalised_weights

_LOG_2 = math.log(2.0)


def log_sech(u: Tensor) -> Tensor:
    """log sech(u) = −|u| − log1p(e^{−2|u|}) + log 2 (no overflow of cosh for large |u|)."""
    a = u.abs()
    return -a - torch.log1p(torch.exp(-2.0 * a)) + _LOG_2


def log_normaliser(tilt: float, n_nodes: int = 200) -> float:
    """log Z_c = log √(2π) + log E_{u~N(0,1)}[sech(u)ᶜ], by Gauss–Hermite quadrature.

    Rescaled to the Gaussian N(0, 1/(1+c)) that matches q's curvature at 0: with u = ξ/√(1+c),
    Z_c = (1+c)^{−1/2} ∫ e^{−ξ²/2} e^{c(u²/2 + log sech u)} dξ, whose second factor is flat
    (≈ e^{cu⁴/12}) over the mass, so 200 probabilists' nodes give round-off accuracy for every
    c ≥ 0 (unscaled nodes lose 1e-7 at c = 20 as sechᶜ narrows).
    """
    xi, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    u = xi / math.sqrt(1.0 + tilt)
    h = tilt * (0.5 * u**2 + log_sech(torch.as_tensor(u, dtype=torch.float64)).numpy())
    logs = np.log(w) + h
    m = logs.max()
    return float(m + np.log(np.exp(logs - m).sum())) - 0.5 * math.log1p(tilt)


class LogConcaveMixture(FiniteMixture):
    """p(x) = Σₖ wₖ Πᵢ q((xᵢ − μₖᵢ)/sₖ)/sₖ, q(u) = e^{−u²/2} sech(u)ᶜ / Z_c (c = tilt).

    weights are normalised to sum to one; tilt = 0 is an isotropic Gaussian mixture.
    """

    name = "logconcave_mixture"

    def __init__(
        self,
        means: Tensor | Sequence,
        scales: Tensor | Sequence | float,
        weights: Tensor | Sequence | None = None,
        tilt: float = 1.0,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        dtype = dtype or torch.get_default_dtype()
        means = as_param(means, dtype)
        if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
            raise ScorelabError(f"means must have shape (K, d), got {tuple(means.shape)}")
        if not bool(torch.isfinite(means).all()):
            raise ScorelabError("means must be finite")
        k, d = means.shape
        scales = as_param(scales, dtype)
        if scales.ndim == 0:
            scales = scales.expand(k).clone()
        if scales.shape != (k,):
            raise ScorelabError(
                f"scales must be a scalar or shape ({k},), got {tuple(scales.shape)}"
            )
        if not bool(torch.isfinite(scales).all()) or bool((scales <= 0).any()):
            raise ScorelabError("scales must be finite and positive")
        w = normalised_weights(weights, k, dtype)
        tilt = float(tilt)
        if not (math.isfinite(tilt) and tilt >= 0):
            raise ScorelabError(f"tilt must be finite and non-negative, got {tilt}")
        self.means = means
        self.scales = scales
        self.weights = w
        self.tilt = tilt
        self.dim = d
        self.log_z = log_normaliser(tilt)

    # -- structure -------------------------------------------------------------------------
    @property
    def strong_convexity(self) -> Tensor:
        """αₖ = 1/sₖ², the lower bound on the Hessian of −log pₖ (as (−log q)'' ≥ 1)."""
        return self.scales**-2

    @property
    def smoothness(self) -> Tensor:
        """βₖ = (1 + c)/sₖ², the upper bound on the Hessian of −log pₖ (as (−log q)'' ≤ 1 + c)."""
        return (1.0 + self.tilt) * self.scales**-2

    # -- batched core ----------------------------------------------------------------------
    def _standardise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """u = (x − μₖ)/sₖ of shape (N, K, d), and sₖ as (1, K, 1) in x's dtype."""
        s = self.scales.to(x)[None, :, None]
        return (x[:, None, :] - self.means.to(x)[None]) / s, s

    def _component_terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log pₖ(x) = Σᵢ [−uᵢ²/2 + c log sech uᵢ] − d(log Z_c + log sₖ), (N, K); u; s."""
        self._check_x(x)
        u, s = self._standardise(x)
        log_q = (-0.5 * u**2 + self.tilt * log_sech(u)).sum(2)
        return log_q - self.dim * (self.log_z + torch.log(s[:, :, 0])), u, s

    def _component_log_prob(self, x: Tensor) -> Tensor:
        return self._component_terms(x)[0]

    # -- Target API ------------------------------------------------------------------------
    def score(self, x: Tensor) -> Tensor:
        """∇ log p(x) = Σₖ rₖ(x)·(−(u + c·tanh u)/sₖ), u = (x − μₖ)/sₖ, r the posterior.

        d/du log q = −u + c·(log sech)'(u) = −u − c·tanh u, and du/dx = 1/sₖ.
        """
        log_pk, u, s = self._component_terms(x)
        r = self.posterior(log_pk)
        return -(r[..., None] * (u + self.tilt * torch.tanh(u)) / s).sum(1)

    def sample_u(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, d) i.i.d. draws of q: propose u ~ N(0, 1), accept with probability sech(u)ᶜ ≤ 1.

        Valid because q ∝ N(0, 1)·sechᶜ; the acceptance rate is Z_c/√(2π) (0.74 at c = 1, 0.22
        at c = 20, → 1/√(1 + c)), so the number of vectorised rounds grows like log(n·d).
        """
        dtype = self.means.dtype
        u = torch.empty(n * self.dim, dtype=dtype)
        pending = torch.arange(n * self.dim)
        while pending.numel():
            z = torch.randn(pending.numel(), generator=generator, dtype=dtype)
            # log U < c·log sech z is U < sech(z)ᶜ without underflow for large c|z|.
            accept = torch.log(torch.rand(pending.numel(), generator=generator, dtype=dtype))
            accept = accept < self.tilt * log_sech(z)
            u[pending[accept]] = z[accept]
            pending = pending[~accept]
        return u.reshape(n, self.dim)

    def _draw(self, labels: Tensor, generator: torch.Generator | None) -> Tensor:
        u = self.sample_u(labels.shape[0], generator)
        return self.means[labels] + self.scales[labels, None] * u
