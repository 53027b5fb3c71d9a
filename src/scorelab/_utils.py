"""Small helpers shared by every layer: errors, broadcasting, generators, finiteness checks."""

from __future__ import annotations

import torch
from torch import Tensor


class ScorelabError(ValueError):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class DivergenceError(ScorelabError):
    """A sampler or training step produced non-finite values."""


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims so a per-sample (N,) tensor broadcasts against (N, ...)."""
    if v.ndim > ndim:
        raise ScorelabError(f"cannot broadcast a {v.ndim}-d tensor to {ndim} dims")
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with `seed` (a fresh nondeterministic seed when None)."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like x, drawn from `generator` (torch.randn_like takes none)."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def check_finite(x: Tensor, *, where: str, step: int, hint: str) -> None:
    """Raise DivergenceError naming the step and the parameter to change if x has inf/NaN."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad_chains = int((~finite).reshape(x.shape[0], -1).any(dim=1).sum())
        raise DivergenceError(
            f"{where} diverged at step {step}: {bad_chains} of {x.shape[0]} chains became "
            f"non-finite; {hint}"
        )


def as_sigma(sigma: float | Tensor | None, x: Tensor) -> Tensor | None:
    """A noise level as a per-sample (N,) tensor matching x's dtype and device (None stays None)."""
    if sigma is None:
        return None
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ScorelabError(
            f"sigma must be a scalar or shape ({x.shape[0]},), got {tuple(s.shape)}"
        )
    return s


def as_image_batch(x: Tensor, shape: tuple[int, int, int], who: str) -> Tensor:
    """x as (N, C, H, W): images pass through, flat rows (N, C·H·W) are reshaped, else an error."""
    c, h, w = shape
    if x.ndim == 4 and tuple(x.shape[1:]) == tuple(shape):
        return x
    if x.ndim == 2 and x.shape[1] == c * h * w:
        return x.reshape(-1, c, h, w)
    raise ScorelabError(
        f"{who} expects images of shape (N, {c}, {h}, {w}) or flat (N, {c * h * w}), "
        f"got {tuple(x.shape)}"
    )
