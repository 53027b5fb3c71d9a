"""Judging a learned 2-D EBM against a target with an exact density (seed 002: Z is the hard part).

In 2-D the partition function is a sum: on an n×n grid of cell area ΔA,
p̂(x) = exp(−E(x)) / Σ_cells exp(−E)ΔA (a logsumexp), and the target's log-density is
renormalised on the same grid, so TV = ½Σ|p̂ − p|ΔA and KL(p‖p̂) = Σ p log(p/p̂)ΔA compare
two laws on the box (the target's mass outside the box is reported, not hidden).
Sample quality of the EBM itself comes from long-run MALA or Langevin on −∇E (``ebm_samples``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from scorelab._types import SampleResult
from scorelab._utils import ScorelabError
from scorelab.ebm.cd import as_energy, energies, energy_grad
from scorelab.samplers import langevin, mala

METHODS = ("mala", "langevin")

__all__ = ["GridDensity", "METHODS", "ebm_samples", "grid_density", "grid_sample"]


@dataclass(frozen=True)
class GridDensity:
    """A learned density normalised on a grid next to the true one (float64, rows = y).

    log_p / log_q: log-densities (per unit area) of the learned EBM and the target, each
    normalised on the grid; log_z: log Σ exp(−E)ΔA, the learned log-partition on the box;
    true_mass: the target's own mass inside the box before renormalising (≈ 1 when the box is
    big enough); tv, kl = KL(target‖learned), kl_reverse = KL(learned‖target);
    mode_weights: the learned mass in each cell set {x : argmaxₖ rₖ(x) = j} of a mixture target
    (its exact weights are ``true_weights``), None for other targets.
    """

    xs: Tensor
    ys: Tensor
    log_p: Tensor
    log_q: Tensor
    log_z: float
    true_mass: float
    tv: float
    kl: float
    kl_reverse: float
    mode_weights: list[float] | None
    true_weights: list[float] | None

    def as_dict(self) -> dict[str, Any]:
        """The scalar results (no grids), JSON-able."""
        keys = ("log_z", "true_mass", "tv", "kl", "kl_reverse", "mode_weights", "true_weights")
        return {k: getattr(self, k) for k in keys}


def _lims(v: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in v)
    except (TypeError, ValueError):
        raise ScorelabError(f"{name} must be a pair (low, high), got {v!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ScorelabError(f"{name} must be finite with low < high, got {v!r}")
    return lo, hi


def _target_dtype(target: Any) -> torch.dtype:
    w = getattr(target, "weights", None)
    return w.dtype if isinstance(w, Tensor) else torch.get_default_dtype()


def grid_density(
    model: nn.Module,
    target: Any,
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int = 200,
    chunk: int = 16_384,
) -> GridDensity:
    """log p̂ = −E − log Σ exp(−E)ΔA on an n×n cell-centre grid, beside the target's log p.

    `model` is an energy network or an EnergyScore; `target` anything with a 2-D
    ``log_prob`` (scorelab.distributions).  TV and both KLs are Riemann sums on the grid.
    """
    energy = as_energy(model)
    (x0, x1), (y0, y1) = _lims(xlim, "xlim"), _lims(ylim, "ylim")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ScorelabError(f"grid size n must be an integer >= 2, got {n!r}")
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    xs = torch.linspace(x0 + dx / 2, x1 - dx / 2, n, dtype=torch.float64)
    ys = torch.linspace(y0 + dy / 2, y1 - dy / 2, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    dtype = next(iter(energy.parameters()), torch.empty(0)).dtype
    with torch.no_grad():
        e = torch.cat(
            [energy(p.to(dtype), None).double() for p in pts.split(chunk)]  # chunked: O(chunk)
        )
        log_q_raw = target.log_prob(pts.to(_target_dtype(target))).double()
    if e.shape != (n * n,):
        raise ScorelabError(f"the energy must return one value per point, got {tuple(e.shape)}")
    if not bool(torch.isfinite(e).all()):
        raise ScorelabError("the energy is not finite everywhere on the grid")
    log_da = math.log(dx * dy)
    log_z = float(torch.logsumexp(-e, 0)) + log_da
    log_p = -e - log_z
    true_log_mass = float(torch.logsumexp(log_q_raw, 0)) + log_da
    log_q = log_q_raw - true_log_mass
    p, q = (log_p + log_da).exp(), (log_q + log_da).exp()  # cell masses, each summing to 1
    tv = 0.5 * float((p - q).abs().sum())
    kl = float(torch.where(q > 0, q * (log_q - log_p), 0.0).sum())
    kl_rev = float(torch.where(p > 0, p * (log_p - log_q), 0.0).sum())
    mode_w = true_w = None
    if hasattr(target, "responsibilities") and hasattr(target, "weights"):
        with torch.no_grad():
            owner = target.responsibilities(pts.to(_target_dtype(target))).argmax(1)
        k = int(target.weights.shape[0])
        mode_w = torch.zeros(k, dtype=torch.float64).index_add_(0, owner, p).tolist()
        true_w = [float(w) for w in target.weights]
    return GridDensity(
        xs=xs,
        ys=ys,
        log_p=log_p.reshape(n, n),
        log_q=log_q.reshape(n, n),
        log_z=log_z,
        true_mass=math.exp(true_log_mass),
        tv=tv,
        kl=kl,
        kl_reverse=kl_rev,
        mode_weights=mode_w,
        true_weights=true_w,
    )


def grid_sample(gd: GridDensity, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """n exact draws from the grid-normalised p̂: a cell ~ Categorical(p̂ΔA), then uniform in it.

    Samples of the learned density itself, with no Markov chain (and so no mixing problem
    between modes): their distance to exact samples measures p̂, not a sampler.
    Draws: n cell indices, then (n, 2) uniforms.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ScorelabError(f"number of samples must be an integer >= 1, got {n!r}")
    ny, nx = gd.log_p.shape
    dx, dy = float(gd.xs[1] - gd.xs[0]), float(gd.ys[1] - gd.ys[0])
    probs = gd.log_p.reshape(-1).exp()
    cell = torch.multinomial(probs, n, replacement=True, generator=generator)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
    x = gd.xs[cell % nx] + dx * u[:, 0]
    y = gd.ys[cell // nx] + dy * u[:, 1]
    return torch.stack([x, y], 1)


def ebm_samples(
    model: nn.Module,
    x0: Tensor,
    *,
    step_size: float,
    n_steps: int,
    method: str = "mala",
    generator: torch.Generator | None = None,
) -> SampleResult:
    """Long-run samples of p̂ ∝ exp(−E): MALA (exact stationary law) or unadjusted Langevin,
    the library's samplers on s = −∇E and log p̃ = −E (step x ← x − (h/2)∇E + √h z).

    The score is plain autograd on a detached x (``cd.energy_grad``), the same values as
    EnergyScore's torch.func.grad at less overhead per call.
    """
    if method not in METHODS:
        raise ScorelabError(f"method must be one of {METHODS}, got {method!r}")
    energy = as_energy(model)

    def score_fn(x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return -energy_grad(energy, x)

    if method == "langevin":
        return langevin(score_fn, x0, step_size=step_size, n_steps=n_steps, generator=generator)

    def log_prob_fn(x: Tensor) -> Tensor:
        with torch.no_grad():
            return -energies(energy, x)

    return mala(
        score_fn,
        x0,
        log_prob_fn=log_prob_fn,
        step_size=step_size,
        n_steps=n_steps,
        generator=generator,
    )
