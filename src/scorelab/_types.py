"""Shared call signatures and the one record every sampler returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

ScoreFn = Callable[[Tensor, Tensor | None], Tensor]
"""score_fn(x, sigma): x (N, ...) and per-sample noise level (N,) or None → score (N, ...)."""

LogProbFn = Callable[[Tensor], Tensor]
"""log_prob_fn(x): (N, ...) → (N,); unnormalised is fine for Metropolis–Hastings."""


@dataclass(frozen=True)
class SampleResult:
    """What every sampler returns.

    samples:    (N, ...) final states.
    nfe:        score (or log-density gradient) evaluations per chain.
    trajectory: (S, N, ...) recorded states when asked for, else None.
    info:       diagnostics: acceptance rate, step sizes, seconds, ...
    """

    samples: Tensor
    nfe: int
    trajectory: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
