"""Where chains start: a uniform box, a Gaussian prior, or the data (seed 000)."""

from __future__ import annotations

import torch
from torch import Tensor

from scorelab._utils import ScorelabError


def uniform_box(
    n: int,
    dim: int,
    low: float = -1.0,
    high: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """n points uniform on [low, high]^dim."""
    if not high > low:
        raise ScorelabError(f"uniform box needs low < high, got [{low}, {high}]")
    dtype = dtype or torch.get_default_dtype()
    u = torch.rand((n, dim), generator=generator, dtype=dtype, device=device)
    return low + (high - low) * u


def gaussian_prior(
    n: int,
    shape: int | tuple[int, ...],
    std: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """n points from N(0, std²I) (the annealed-Langevin start at σ₁ uses std = σ₁)."""
    if not std > 0:
        raise ScorelabError(f"prior std must be positive, got {std}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dtype = dtype or torch.get_default_dtype()
    z = torch.randn((n, *shape), generator=generator, dtype=dtype, device=device)
    return std * z


def from_data(
    data: Tensor, n: int, *, generator: torch.Generator | None = None, replace: bool = True
) -> Tensor:
    """n chain starts drawn from the empirical distribution of `data` (seed 000, Koehler–Vuong).

    With replace=True the starts are i.i.d. draws from (1/M) Σ δ_{xᵢ}, the initialisation the
    theorem analyses; replace=False takes n distinct rows (n ≤ M).
    """
    if data.ndim < 2 or data.shape[0] == 0:
        raise ScorelabError(f"data must have shape (M, ...) with M > 0, got {tuple(data.shape)}")
    m = data.shape[0]
    # indices live on the generator's device; the rows are gathered where the data lives
    device = generator.device if generator is not None else data.device
    if replace:
        idx = torch.randint(0, m, (n,), generator=generator, device=device)
    else:
        if n > m:
            raise ScorelabError(f"cannot draw {n} distinct starts from {m} data points")
        idx = torch.randperm(m, generator=generator, device=device)[:n]
    return data[idx.to(data.device)].clone()
