"""The loop every sampler shares: argument checks, divergence detection, trajectory, progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelab._utils import ScorelabError, check_finite


def check_positive(name: str, value: float) -> float:
    """Reject zero, negative and non-finite step parameters before any work starts."""
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ScorelabError(f"{name} must be a positive finite number, got {value}")
    return v


def check_count(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ScorelabError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_start(x0: Tensor) -> Tensor:
    if not isinstance(x0, Tensor) or x0.ndim < 2 or x0.shape[0] == 0:
        shape = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
        raise ScorelabError(
            f"start points must be a tensor of shape (N, ...) with N > 0, got {shape}"
        )
    if not x0.is_floating_point():
        x0 = x0.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x0).all()):
        raise ScorelabError("start points contain non-finite values")
    return x0


def flat_sum(v: Tensor) -> Tensor:
    """Σ over every non-batch dim: (N, ...) → (N,)."""
    return v.reshape(v.shape[0], -1).sum(1)


def iterate(
    step: Callable[[Tensor, int], Tensor],
    x: Tensor,
    n_steps: int,
    *,
    sampler: str,
    hint: str,
    record_every: int = 0,
    progress: bool = False,
) -> tuple[Tensor, Tensor | None, float]:
    """Run x ← step(x, i) n_steps times; stop with DivergenceError at the first non-finite x.

    Returns the final x, the trajectory (x₀ and every `record_every`-th state) or None, and
    the wall-clock seconds.
    """
    record_every = check_count("record_every", record_every)
    traj = [x] if record_every else None
    steps = tqdm(range(n_steps), desc=sampler, leave=False) if progress else range(n_steps)
    t0 = time.perf_counter()
    for i in steps:
        x = step(x, i)
        check_finite(x, where=sampler, step=i + 1, hint=hint)
        if traj is not None and (i + 1) % record_every == 0:
            traj.append(x)
    seconds = time.perf_counter() - t0
    return x, (torch.stack(traj) if traj is not None else None), seconds
