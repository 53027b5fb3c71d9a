"""Helpers shared by the seed 001 reproductions: sizes, one-thread runs, NCSN fitting, metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from scorelab._types import SampleResult, ScoreFn
from scorelab._utils import DivergenceError, ScorelabError
from scorelab.experiments import SIZES
from scorelab.metrics import mixture_weights, mmd
from scorelab.models import ScoreMLP, model_score_fn
from scorelab.objectives import NCSN
from scorelab.train import fit


def check_size(size: str) -> None:
    """Unknown sizes are a clear error."""
    if size not in SIZES:
        raise ScorelabError(f"size must be one of {SIZES}, got {size!r}")


def pick(size: str, small: Any, full: Any) -> Any:
    """The small- or full-size value of a parameter."""
    check_size(size)
    return small if size == "small" else full


def gen(seed: int, stream: int = 0) -> torch.Generator:
    """An independent, reproducible generator per (seed, stream)."""
    return torch.Generator().manual_seed(1_000_003 * int(seed) + stream)


def fit_ncsn(
    data: Tensor,
    sigmas: Tensor,
    *,
    steps: int,
    seed: int,
    hidden: int = 128,
) -> tuple[ScoreFn, float]:
    """NCSN (seed 001 eq. 9): σ-conditional ScoreMLP, output/σ, EMA 0.999. (score_fn, seconds)."""
    torch.manual_seed(seed)
    model = ScoreMLP(2, hidden=hidden, depth=3, conditioning="sigma", scale_by_sigma=True)
    res = fit(
        model, NCSN(sigmas), data, steps=steps, batch_size=256, lr=1e-3, seed=seed, ema_decay=0.999
    )
    return model_score_fn(res.best_model()), res.seconds


def fit_unconditional(
    data: Tensor, objective: Callable, *, steps: int, seed: int, hidden: int = 128
) -> tuple[ScoreFn, float]:
    """A score with no noise conditioning (the "naive" score of seed 001 §2.2), EMA 0.999."""
    torch.manual_seed(seed)
    model = ScoreMLP(2, hidden=hidden, depth=3)
    res = fit(
        model, objective, data, steps=steps, batch_size=256, lr=1e-3, seed=seed, ema_decay=0.999
    )
    return model_score_fn(res.best_model()), res.seconds


# Chains beyond this have escaped: an unstable learned field can push them to 1e19 and still
# finite, where float32 mixture responsibilities overflow; they count as diverged.
ESCAPED = 1e6


def timed(run: Callable[[], SampleResult]) -> tuple[SampleResult | None, float]:
    """(result, seconds); None when the chains diverge (DivergenceError) or escape (|x| > 1e6)."""
    t0 = time.perf_counter()
    try:
        res = run()
    except DivergenceError:
        res = None
    if res is not None and not bool((res.samples.abs() < ESCAPED).all()):
        res = None
    return res, time.perf_counter() - t0


def mmd_floor(
    target, reference: Tensor, n: int, g: torch.Generator, repeats: int = 5
) -> tuple[float, float]:
    """(mean, s.d.) of MMD² between fresh exact samples and the reference: a perfect sampler."""
    v = torch.tensor([mmd(target.sample(n, generator=g), reference) for _ in range(repeats)])
    return float(v.mean()), float(v.std())


def mixture_row(samples: Tensor, target, reference: Tensor) -> list[float]:
    """[weight of each component..., weight TV, MMD² vs exact reference]."""
    w = mixture_weights(samples, target)
    return [*(r3(v) for v in w.estimated), r3(w.tv), sig3(mmd(samples, reference))]


def angle_tv(x: Tensor, bins: int = 18) -> float:
    """TV between the histogram of atan2 angles and the uniform law on the circle."""
    theta = torch.atan2(x[:, 1], x[:, 0])
    counts = torch.histc(theta, bins=bins, min=-math.pi, max=math.pi)
    return 0.5 * float((counts / counts.sum() - 1.0 / bins).abs().sum())


def r3(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 3)


def sig3(v: float | None) -> float | None:
    """Three significant digits (MMD² values span decades)."""
    return None if v is None or not math.isfinite(v) else float(f"{float(v):.3g}")


def table(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"columns": columns, "rows": rows}
