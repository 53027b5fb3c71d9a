"""The interface every target with an exact score implements, and its two adapters.

A target knows its normalised log-density, its score ∇ₓ log p (closed form, batched, no
autograd), how to draw exact samples, and, where it exists, the exact law of scale·X + σZ
(``noised``), which gives the exact noise-conditional score that annealed samplers consume.
"""

from __future__ import annotations

import math
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


class FiniteMixture(Target):
    """p(x) = Σₖ wₖ pₖ(x): the posterior, log-density and exact sampling every mixture shares.

    A subclass supplies `weights` (K,), `_component_log_prob(x)` → log pₖ(x) of shape (N, K)
    on already-checked points, and `_draw(labels, generator)` → one draw per label.
    """

    weights: Tensor

    @abstractmethod
    def _component_log_prob(self, x: Tensor) -> Tensor:
        """log pₖ(x) for every component, (N, K); x is already checked."""

    @abstractmethod
    def _draw(self, labels: Tensor, generator: torch.Generator | None) -> Tensor:
        """One draw of component labels[i] per row."""

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    def posterior(self, log_components: Tensor) -> Tensor:
        """rₖ = wₖ pₖ / Σⱼ wⱼ pⱼ from log pₖ of shape (N, K) (a stable softmax)."""
        return torch.softmax(log_components + self.weights.to(log_components).log()[None], dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_k [log wₖ + log pₖ(x)]."""
        self._check_x(x)
        joint = self._component_log_prob(x) + self.weights.to(x).log()[None]
        return torch.logsumexp(joint, dim=1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior over components rₖ(x) = wₖ pₖ(x) / p(x), shape (N, K)."""
        self._check_x(x)
        return self.posterior(self._component_log_prob(x))

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log pₖ(x) for every component, shape (N, K)."""
        self._check_x(x)
        return self._component_log_prob(x)

    def sample(
        self, n: int, generator: torch.Generator | None = None, return_labels: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Exact draws: label ~ Categorical(w), then a draw of that component."""
        check_sample_count(n)
        if n == 0:  # torch.multinomial refuses n = 0
            labels = torch.zeros(0, dtype=torch.long)
        else:
            labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        x = self._draw(labels, generator)
        return (x, labels) if return_labels else x

    def sample_component(self, k: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples of component k alone."""
        check_sample_count(n)
        if not 0 <= k < self.n_components:
            raise ScorelabError(f"component index must be in [0, {self.n_components}), got {k}")
        return self._draw(torch.full((n,), k, dtype=torch.long), generator)


def as_param(v, dtype: torch.dtype) -> Tensor:
    """A constructor argument as an owned tensor of the target's dtype."""
    return torch.as_tensor(v, dtype=dtype).clone()


def check_sample_count(n: int) -> None:
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ScorelabError(f"number of samples must be a non-negative integer, got {n}")


def check_noise_args(sigma: float, scale: float) -> None:
    """Arguments of `noised`: σ ≥ 0 and scale > 0, both finite."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ScorelabError(f"sigma must be finite and non-negative, got {sigma}")
    if not (math.isfinite(scale) and scale > 0):
        raise ScorelabError(f"scale must be finite and positive, got {scale}")


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
