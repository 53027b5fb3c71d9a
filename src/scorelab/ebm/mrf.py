"""Binary denoising MRF (seed 002): the MAP of p(y | x) ∝ exp(−E(y; x)) on the 4-neighbour grid.

Ising form, spins s = 2y − 1 (true image y) and t = 2x − 1 (corrupted image x):

    E(y; x) = −η Σᵢ sᵢtᵢ − β Σ_{(i,j)∈E} sᵢsⱼ − h Σᵢ sᵢ,

which is seed 002's Σψᵢ(xᵢ, yᵢ) + Σψᵢⱼ(yᵢ, yⱼ) with the library's sign (p ∝ exp(−E), the seed's
f = −E): ψᵢ = η sᵢtᵢ + h sᵢ, ψᵢⱼ = β sᵢsⱼ.  For pixels flipped independently with probability
p, log p(xᵢ | yᵢ) = ½ log((1−p)/p)·sᵢtᵢ + ½ log(p(1−p)), so η = ½ log((1−p)/p) is the exact
likelihood term (`eta_from_flip_rate`); h > 0 favours y = 1.  Only sᵢ's local field
fᵢ = η tᵢ + β Σ_{j∼i} sⱼ + h touches sᵢ (E = −sᵢfᵢ + terms free of sᵢ, `local_field`), and
same-colour sites of a checkerboard share no edge, so one colour's sites are updated at once,
exactly as a sequential sweep over them would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from scorelab._utils import ScorelabError, make_generator

METHODS = ("icm", "anneal")
DEFAULT_SWEEPS = {"icm": 100, "anneal": 200}
# (T₀, T_min): at T₀ = 3 a pixel whose field is a typical |fᵢ| ≈ 1 flips with probability
# σ(−2/3) ≈ 0.34, hot enough to leave ICM's local minima; at T_min = 0.05 a pixel with |fᵢ| ≥ 0.2
# stays against its field with probability ≤ σ(−8) ≈ 3e-4, and the ICM polish removes the rest.
DEFAULT_SCHEDULE = (3.0, 0.05)


@dataclass(frozen=True)
class DenoiseResult:
    """What `denoise_binary` returns.

    images:    (N, H, W) denoised images in {0, 1}, dtype of the input x.
    energies:  (S + 1, N) float64 E(y; x) of the image that would be returned, at the start
               (y = x) and after each of the S sweeps run (annealing sweeps, then ICM polish
               sweeps); with keep_best, annealing's is the best so far (non-increasing).
    sweeps:    (N,) int64 sweeps used per image: for ICM the sweeps that changed it before its
               fixed point; for annealing the annealing sweeps plus its polish sweeps.
    converged: (N,) bool, the final image is an ICM fixed point (no single flip lowers E);
               always False for annealing without polish.
    info:      method, parameters, seconds; annealing adds temperatures and chain_energies
               (S_anneal, N), the chain's own energy after each annealing sweep.
    """

    images: Tensor
    energies: Tensor
    sweeps: Tensor
    converged: Tensor
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- checks and helpers
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_binary(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise ScorelabError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ScorelabError(f"{name} holds NaN or inf; it must be binary (0/1)")
    if not bool(((x == 0) | (x == 1)).all()):
        raise ScorelabError(f"{name} must be binary (values 0 and 1 only)")


def _check_images(x: Tensor, name: str) -> None:
    _check_binary(x, name)
    if x.ndim != 3:
        raise ScorelabError(f"{name} must have shape (N, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ScorelabError(f"{name} is empty (shape {tuple(x.shape)})")


def _check_params(beta: float, eta: float, h: float) -> None:
    for name, v in (("beta", beta), ("eta", eta), ("h", h)):
        if not _is_number(v) or not math.isfinite(v):
            raise ScorelabError(f"{name} must be a finite number, got {v!r}")
    if beta < 0 or eta < 0:
        raise ScorelabError(f"beta and eta must be ≥ 0 (smoothing, data fit), got {beta}, {eta}")


def _check_rate(p: float) -> float:
    if not _is_number(p) or not 0.0 < float(p) < 0.5:
        raise ScorelabError(f"flip rate p must lie in (0, 1/2), got {p!r}")
    return float(p)


def eta_from_flip_rate(p: float) -> float:
    """η = ½ log((1−p)/p): the exact −E data term for independent flips at rate p (seed 002)."""
    p = _check_rate(p)
    return 0.5 * math.log((1.0 - p) / p)


def flip_pixels(y: Tensor, p: float, *, generator: torch.Generator | None) -> Tensor:
    """x = y XOR b with bᵢ ~ Bernoulli(p) independently per pixel: the noise η is exact for."""
    _check_binary(y, "y")
    p = _check_rate(p)
    flip = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.logical_xor(y != 0, flip).to(y.dtype)  # xor, not 1 − y: bool images too


def pixel_accuracy(y_hat: Tensor, y: Tensor) -> Tensor:
    """(N,) fraction of pixels of each image where y_hat equals y."""
    _check_binary(y_hat, "y_hat")
    _check_binary(y, "y")
    if y_hat.shape != y.shape or y.ndim < 2:
        raise ScorelabError(
            f"y_hat and y must share a shape (N, ...), got {tuple(y_hat.shape)}, {tuple(y.shape)}"
        )
    return (y_hat == y).reshape(y.shape[0], -1).double().mean(dim=1)


def geometric_temperatures(t0: float, t_min: float, sweeps: int) -> Tensor:
    """T_k = T₀·(T_min/T₀)^{k/(K−1)}, k = 0..K−1: a geometric cooling schedule (float64)."""
    if not (_is_number(t0) and _is_number(t_min)) or not (
        math.isfinite(t0) and math.isfinite(t_min) and t0 >= t_min > 0
    ):
        raise ScorelabError(f"schedule needs T₀ ≥ T_min > 0, got T₀={t0!r}, T_min={t_min!r}")
    if not _is_count(sweeps):
        raise ScorelabError(f"sweeps must be ≥ 0, got {sweeps}")
    if sweeps == 1:
        return torch.tensor([float(t_min)], dtype=torch.float64)
    k = torch.arange(sweeps, dtype=torch.float64)
    return t0 * (t_min / t0) ** (k / max(sweeps - 1, 1))


def _spins(x: Tensor) -> Tensor:
    return 2.0 * x.to(torch.float64) - 1.0


def _neighbour_sum(s: Tensor) -> Tensor:
    """Σ_{j∼i} sⱼ over the 4 neighbours, free boundary (zero padding = no neighbour)."""
    p = F.pad(s, (1, 1, 1, 1))
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]


def _energy(s: Tensor, t: Tensor, beta: float, eta: float, h: float) -> Tensor:
    pairs = (s[:, 1:, :] * s[:, :-1, :]).sum(dim=(1, 2)) + (s[:, :, 1:] * s[:, :, :-1]).sum(
        dim=(1, 2)
    )
    return -eta * (s * t).sum(dim=(1, 2)) - beta * pairs - h * s.sum(dim=(1, 2))


def mrf_energy(y: Tensor, x: Tensor, *, beta: float, eta: float, h: float = 0.0) -> Tensor:
    """(N,) E(y; x) = −η Σ sᵢtᵢ − β Σ_{(i,j)∈E} sᵢsⱼ − h Σ sᵢ, s = 2y−1, t = 2x−1 (seed 002)."""
    _check_images(y, "y")
    _check_images(x, "x")
    if y.shape != x.shape:
        raise ScorelabError(f"y and x must share a shape, got {tuple(y.shape)}, {tuple(x.shape)}")
    _check_params(beta, eta, h)
    return _energy(_spins(y), _spins(x), beta, eta, h)


def local_field(y: Tensor, x: Tensor, *, beta: float, eta: float, h: float = 0.0) -> Tensor:
    """(N, H, W) fᵢ = η tᵢ + β Σ_{j∼i} sⱼ + h, so E(y with sᵢ → −sᵢ) − E(y) = 2 sᵢ fᵢ (seed 002)."""
    _check_images(y, "y")
    _check_images(x, "x")
    if y.shape != x.shape:
        raise ScorelabError(f"y and x must share a shape, got {tuple(y.shape)}, {tuple(x.shape)}")
    _check_params(beta, eta, h)
    return eta * _spins(x) + beta * _neighbour_sum(_spins(y)) + h


def _colours(shape: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor]:
    hh, ww = shape[-2], shape[-1]
    ii = torch.arange(hh, device=device)[:, None] + torch.arange(ww, device=device)[None, :]
    black = (ii % 2 == 0)[None]
    return black, ~black


# --------------------------------------------------------------------------- the two solvers


def _icm(
    s: Tensor, t: Tensor, beta: float, eta: float, h: float, max_sweeps: int
) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
    """Checkerboard ICM sᵢ ← sign(fᵢ) until a sweep changes nothing (or max_sweeps).

    Returns (s, energies after each sweep, changing sweeps per image, converged per image).
    """
    # A flip must lower E by more than float64 rounding of fᵢ; ties (fᵢ = 0) keep sᵢ, so every
    # flip strictly lowers E and ICM cannot cycle.
    tol = 1e-12 * (eta + 4.0 * beta + abs(h) + 1.0)
    colours = _colours(s.shape, s.device)
    used = torch.zeros(s.shape[0], dtype=torch.int64, device=s.device)
    done = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
    history: list[Tensor] = []
    for _ in range(max_sweeps):
        changed = torch.zeros_like(done)
        for mask in colours:
            f = eta * t + beta * _neighbour_sum(s) + h
            flip = mask & (s * f < -tol)
            s = torch.where(flip, -s, s)
            changed |= flip.flatten(1).any(dim=1)
        used += changed.to(torch.int64)
        done = ~changed
        history.append(_energy(s, t, beta, eta, h))
        if bool(done.all()):
            break
    return s, history, used, done


def _heat_bath(
    s: Tensor,
    t: Tensor,
    beta: float,
    eta: float,
    h: float,
    temperatures: Tensor,
    generator: torch.Generator | None,
    keep_best: bool,
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Checkerboard Gibbs sweeps at T_k: P(sᵢ = +1 | rest) = σ(2fᵢ/T_k) (p_T ∝ exp(−E/T)).

    Returns (returned state, its energy after each sweep, the chain's energy after each sweep);
    with keep_best the returned state is the lowest-energy end-of-sweep state so far.
    """
    # float32 halves the cost of the sweeps; fᵢ only enters a probability here, so its rounding
    # is harmless (ICM, which compares fᵢ with 0, and the energies stay float64).
    colours = _colours(s.shape, s.device)
    data = (eta * t + h).float()
    s32 = s.float()
    best, best_e = s, _energy(s, t, beta, eta, h)
    history: list[Tensor] = []
    chain: list[Tensor] = []
    for temp in temperatures.tolist():
        for mask in colours:
            f = data + beta * _neighbour_sum(s32)
            u = torch.rand(s.shape, generator=generator, device=s.device)
            new = torch.where(u < torch.sigmoid(f * (2.0 / temp)), 1.0, -1.0)
            s32 = torch.where(mask, new, s32)
        e = _energy(s32.double(), t, beta, eta, h)
        chain.append(e)
        if keep_best:
            better = e < best_e
            best = torch.where(better[:, None, None], s32.double(), best)
            best_e = torch.where(better, e, best_e)
        else:
            best, best_e = s32.double(), e
        history.append(best_e)
    return best, history, chain


def _schedule(schedule: Any, sweeps: int) -> Tensor:
    if isinstance(schedule, Tensor):
        if schedule.is_complex() or schedule.dtype == torch.bool:
            raise ScorelabError(f"schedule must hold real temperatures, got {schedule.dtype}")
        temps = schedule.detach().to(torch.float64).cpu()
        if temps.ndim != 1 or not bool(torch.isfinite(temps).all()) or not bool((temps > 0).all()):
            raise ScorelabError("schedule as a Tensor must be 1-D finite temperatures > 0")
        return temps
    if (
        not isinstance(schedule, (tuple, list))
        or len(schedule) != 2
        or not all(_is_number(v) for v in schedule)
    ):
        raise ScorelabError(f"schedule must be (T₀, T_min) or a 1-D Tensor, got {schedule!r}")
    return geometric_temperatures(float(schedule[0]), float(schedule[1]), sweeps)


def denoise_binary(
    x: Tensor,
    *,
    method: str = "icm",
    beta: float,
    eta: float,
    h: float = 0.0,
    sweeps: int | None = None,
    schedule: tuple[float, float] | Tensor = DEFAULT_SCHEDULE,
    polish: bool = True,
    polish_sweeps: int = 100,
    keep_best: bool = True,
    generator: torch.Generator | None = None,
) -> DenoiseResult:
    """MAP of p(y | x) ∝ exp(−E(y; x)) (seed 002) by ICM or simulated annealing, from y = x.

    method "icm": iterated conditional modes (Besag 1986), sᵢ ← sign(fᵢ) colour by colour,
    at most `sweeps` (default 100) sweeps, stopping at a fixed point; deterministic.
    method "anneal": simulated annealing (Geman & Geman 1984), one checkerboard heat-bath sweep
    at each temperature of `schedule`: a pair (T₀, T_min) cools geometrically over `sweeps`
    (default 200) sweeps; a 1-D Tensor lists the temperatures (then `sweeps` must be None or
    its length).  With `keep_best` the lowest-energy state seen at the end of a sweep is kept
    (a frozen chain can end in a higher minimum than it visited); with `polish`, ICM
    (≤ polish_sweeps) then removes the last thermal flips.
    x: (N, H, W) in {0, 1} (any dtype); beta, eta ≥ 0.  Batched: all images at once.
    """
    _check_images(x, "x")
    _check_params(beta, eta, h)
    if method not in METHODS:
        raise ScorelabError(f"method must be one of {METHODS}, got {method!r}")
    if sweeps is not None and not _is_count(sweeps):
        raise ScorelabError(f"sweeps must be an integer ≥ 0, got {sweeps!r}")
    if not _is_count(polish_sweeps):
        raise ScorelabError(f"polish_sweeps must be an integer ≥ 0, got {polish_sweeps!r}")
    t0 = time.perf_counter()
    t = _spins(x)
    s = t.clone()
    history = [_energy(s, t, beta, eta, h)]
    info: dict[str, Any] = {"method": method, "beta": beta, "eta": eta, "h": h}
    if method == "icm":
        n_max = DEFAULT_SWEEPS["icm"] if sweeps is None else sweeps
        s, hist, used, converged = _icm(s, t, beta, eta, h, n_max)
        history += hist
    else:
        n_anneal = DEFAULT_SWEEPS["anneal"] if sweeps is None else sweeps
        temps = _schedule(schedule, n_anneal)
        if isinstance(schedule, Tensor) and sweeps is not None and sweeps != len(temps):
            raise ScorelabError(f"sweeps={sweeps} but the schedule lists {len(temps)} temperatures")
        gen = generator if generator is not None else make_generator(None, x.device)
        s, hist, chain = _heat_bath(s, t, beta, eta, h, temps, gen, keep_best)
        history += hist
        info["chain_energies"] = (
            torch.stack(chain) if chain else torch.empty(0, x.shape[0], dtype=torch.float64)
        )
        used = torch.full((x.shape[0],), len(temps), dtype=torch.int64, device=x.device)
        converged = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if polish:
            s, hist, polished, converged = _icm(s, t, beta, eta, h, polish_sweeps)
            history += hist
            used = used + polished
        info["temperatures"] = temps
        info["anneal_sweeps"] = len(temps)
    info["sweeps_run"] = len(history) - 1
    info["seconds"] = time.perf_counter() - t0
    return DenoiseResult(
        images=(s > 0).to(x.dtype),
        energies=torch.stack(history),
        sweeps=used,
        converged=converged,
        info=info,
    )
