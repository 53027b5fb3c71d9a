"""The loop every sampler shares: argument checks, divergence detection, trajectory, progress.

Also the two helpers that keep a sampler step a handful of tensor ops (DESIGN.md, performance
habits): `scalar` (a step coefficient as a 0-d tensor) and `Noise` (Gaussian draws into one
reused buffer).  Both give the same bits as the plain expressions they replace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelab._utils import DivergenceError, ScorelabError, check_finite

# dtypes for which a 0-d tensor of the same dtype multiplies exactly like a Python float (torch
# casts the float to the tensor's dtype, then multiplies); half types compute in float32
_EXACT_SCALAR_DTYPES = (torch.float32, torch.float64)


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
    # (N, D): the same reduction without the reshape call
    return v.sum(1) if v.ndim == 2 else v.reshape(v.shape[0], -1).sum(1)


_SCALARS: dict[tuple[float, torch.dtype], Tensor] = {}


def scalar(value: float, like: Tensor) -> Tensor | float:
    """`value` as a 0-d CPU tensor of like's dtype when that is float32/float64, else the float.

    `t * scalar(c, t)` gives the same bits as `t * c`: torch rounds the float to t's dtype and
    multiplies.  But it wraps the float into a fresh float64 tensor and converts it on every call,
    which costs about as much as the multiply itself at 10³ × 2.  The tensors are cached
    (creating one costs as much again); never modify them in place.
    """
    if like.dtype not in _EXACT_SCALAR_DTYPES:
        return value
    key = (value, like.dtype)
    t = _SCALARS.get(key)
    if t is None:
        if len(_SCALARS) >= 1024:  # a long sweep of step sizes: start over
            _SCALARS.clear()
        t = _SCALARS[key] = torch.tensor(value, dtype=like.dtype)
    return t


def same_layout(a: Tensor, b: Tensor) -> bool:
    """a and b have the same shape and dtype: in-place updates of one by the other are safe
    and give the bits of the out-of-place expression (no broadcasting, no type promotion)."""
    return a.shape == b.shape and a.dtype == b.dtype


class Noise:
    """Draws from `generator` into reused buffers: N(0, I) shaped like x, U(0, 1) like u.

    The same bits as `randn_like(x, generator)` and `torch.rand(u.shape, generator=...)`
    (torch.randn/rand are empty + normal_/uniform_), without an allocation (and keyword
    parsing) per step.  A returned tensor is overwritten by the next call: use it at once.
    """

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator
        self._normal: Tensor | None = None
        self._uniform: Tensor | None = None

    @staticmethod
    def _fit(b: Tensor | None, x: Tensor) -> Tensor:
        if b is None or b.shape != x.shape or b.dtype != x.dtype or b.device != x.device:
            # contiguous like torch.randn's output, whatever x's strides
            b = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        return b

    def __call__(self, x: Tensor) -> Tensor:
        b = self._normal = self._fit(self._normal, x)
        return b.normal_(generator=self.generator)

    def uniform(self, like: Tensor) -> Tensor:
        b = self._uniform = self._fit(self._uniform, like)
        return b.uniform_(generator=self.generator)


def all_finite(x: Tensor) -> bool:
    """Every entry of x is finite: one reduction and one host read in the usual case.

    Any inf or NaN makes the sum non-finite (inf + finite = inf, inf − inf = NaN, NaN
    propagates), so a finite sum proves x finite.  A non-finite sum of finite entries (overflow
    of the accumulator) is told apart by the full element-wise test, so the answer is exact.
    """
    if x.is_complex():
        return bool(torch.isfinite(x).all())
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else None
    return math.isfinite(float(x.sum(dtype=acc))) or bool(torch.isfinite(x).all())


def default_check_every(x: Tensor) -> int:
    """Check every step on the CPU (a reduction of the state, ~1 % of a step); every 16 steps
    elsewhere, where reading the result back stalls the device's queue."""
    return 1 if x.device.type == "cpu" else 16


def iterate(
    step: Callable[[Tensor, int], Tensor],
    x: Tensor,
    n_steps: int,
    *,
    sampler: str,
    hint: str,
    record_every: int = 0,
    progress: bool = False,
    check_every: int | None = None,
) -> tuple[Tensor, Tensor | None, float]:
    """Run x ← step(x, i) n_steps times; stop with DivergenceError once a state is non-finite.

    The state is checked every `check_every` steps (default: `default_check_every`) and after
    the last step.  With check_every = 1 the error names the first non-finite step; otherwise
    it names the range of steps since the last finite check.  Skipping checks loses nothing:
    every sampler step adds to x (x + …, or an accept/keep choice between x and a proposal
    built from x), so a non-finite entry stays non-finite until the next check.

    Returns the final x, the trajectory (x₀ and every `record_every`-th state) or None, and
    the wall-clock seconds.
    """
    record_every = check_count("record_every", record_every)
    every = (
        default_check_every(x)
        if check_every is None
        else check_count("check_every", check_every, 1)
    )
    traj = [x] if record_every else None
    steps = tqdm(range(n_steps), desc=sampler, leave=False) if progress else range(n_steps)
    last_ok = 0
    t0 = time.perf_counter()
    for i in steps:
        x = step(x, i)
        done = i + 1
        if (done % every == 0 or done == n_steps) and not all_finite(x):
            if done - last_ok == 1:
                check_finite(x, where=sampler, step=done, hint=hint)  # raises, naming the step
            bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(dim=1).sum())
            raise DivergenceError(
                f"{sampler} diverged between step {last_ok + 1} and step {done}: {bad} of "
                f"{x.shape[0]} chains became non-finite; {hint}"
            )
        if done % every == 0:
            last_ok = done
        if traj is not None and done % record_every == 0:
            traj.append(x)
    seconds = time.perf_counter() - t0
    return x, (torch.stack(traj) if traj is not None else None), seconds
