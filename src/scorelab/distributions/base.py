"""The interface every target with an exact score implements, and its two adapters.

A target knows its normalised log-density, its score ∇ₓ log p (closed form, batched, no
autograd), how to draw exact samples, and, where it exists, the exact law of scale·X + σZ
(``noised``), which gives the exact noise-conditional score that annealed samplers consume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from scorelab._types import LogProbFn, ScoreFn
from scorelab._utils import ScorelabError, as_sigma


class Target(ABC):
    """A distribution on R^dim with exact sample / log_prob / score."""

    dim: int
    name: str = "target"

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact samples, shape (n, dim)."""

    @abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """Normalised log-density, (N, dim) → (N,)."""

    @abstractmethod
    def score(self, x: Tensor) -> Tensor:
        """∇ₓ log p(x) in closed form, (N, dim) → (N, dim)."""

    def noised(self, sigma: float, scale: float = 1.0) -> Target:
        """The exact law of scale·X + sigma·Z, Z ~ N(0, I); not every target has one."""
        raise ScorelabError(
            f"{type(self).__name__} has no closed-form noised law; use a target whose family is "
            "closed under Gaussian convolution (Gaussian, GaussianMixture, NoisyCircle, ...)"
        )

    def noised_score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Score of the law of X + σZ at x with a per-sample σ (N,): ∇ log (p ∗ N(0, σ²I))(x).

        Generic version: one closed-form noised law per distinct σ (a noise ladder has few);
        families with a batched formula override it.
        """
        s = as_sigma(sigma, x)
        levels = torch.unique(s)
        if levels.numel() == 1:
            return self._noised_or_self(float(levels[0])).score(x)
        out = torch.empty_like(x)
        for level in levels:
            rows = s == level
            out[rows] = self._noised_or_self(float(level)).score(x[rows])
        return out

    def _noised_or_self(self, sigma: float) -> Target:
        return self if sigma == 0.0 else self.noised(sigma)

    def _check_x(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ScorelabError(
                f"{type(self).__name__} expects points of shape (N, {self.dim}), "
                f"got {tuple(x.shape)}"
            )


def normalised_weights(weights, k: int, dtype: torch.dtype) -> Tensor:
    """Mixture weights w / Σw as a (k,) tensor (uniform when None); rejects NaN, inf, w < 0."""
    if weights is None:
        return torch.full((k,), 1.0 / k, dtype=dtype)
    w = torch.as_tensor(weights, dtype=dtype).clone()
    ok = w.shape == (k,) and bool(torch.isfinite(w).all()) and bool((w >= 0).all())
    if not ok or not float(w.sum()) > 0:
        raise ScorelabError(f"weights must be {k} finite non-negative numbers with a positive sum")
    return w / w.sum()


def target_score_fn(target: Target) -> ScoreFn:
    """The exact ScoreFn of a target: ∇ log p at sigma=None, ∇ log (p ∗ N(0,σ²I)) otherwise."""

    def score_fn(x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return target.score(x) if sigma is None else target.noised_score(x, sigma)

    return score_fn


def target_log_prob_fn(target: Target) -> LogProbFn:
    """The target's normalised log-density as a LogProbFn (for MALA/HMC)."""
    return target.log_prob
