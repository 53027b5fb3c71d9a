"""Two-dimensional toy targets: a noisy circle (seed 001 Fig. 1), two moons, a checkerboard.

The circle and the checkerboard have closed-form densities and scores at every noise level;
the moons have none, so their density is a Gaussian smoothed over two arcs, integrated by
Gauss–Legendre quadrature to well below float64 round-off for the node counts used.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from scorelab._utils import ScorelabError
from scorelab.distributions.base import Target

_LOG_2PI = math.log(2.0 * math.pi)
# Row block for the (rows × quadrature nodes) matrices: ≈ 32 MB of float64 per temporary.
_BLOCK_ELEMS = 1 << 22


def _check_noise_args(sigma: float, scale: float) -> None:
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ScorelabError(f"sigma must be finite and non-negative, got {sigma}")
    if not (math.isfinite(scale) and scale > 0):
        raise ScorelabError(f"scale must be finite and positive, got {scale}")


def _check_std(value: float, what: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ScorelabError(f"{what} must be finite and non-negative, got {value}")
    return value


def _log1mexp(d: Tensor) -> Tensor:
    """log(1 − eᵈ) for d < 0: expm1 near 0, log1p in the tail (Mächler 2012)."""
    return torch.where(d > -math.log(2.0), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def _log_ndtr_diff(hi: Tensor, lo: Tensor) -> Tensor:
    """log(Φ(hi) − Φ(lo)) = log Φ(b) + log(1 − Φ(a)/Φ(b)) after reflecting to the left tail.

    Φ(hi) − Φ(lo) = Φ(−lo) − Φ(−hi), so (a, b) = (lo, hi) or (−hi, −lo), whichever has
    a + b ≤ 0; then Φ(a) ≤ ½ and the ratio never rounds to 1 except for hi ≈ lo. One branch
    only, so autograd sees no inf/NaN from an unselected side.
    """
    flip = (lo + hi) > 0
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    return log_b + _log1mexp(torch.special.log_ndtr(a) - log_b)


def _row_blocks(x: Tensor, n_cols: int) -> list[Tensor]:
    rows = max(1, _BLOCK_ELEMS // max(n_cols, 1))
    return list(torch.split(x, rows)) if x.shape[0] else [x]


class NoisyCircle(Target):
    """X = r(cos θ, sin θ) + s·Z, θ ~ U[0, 2π): p(x) = e^{−(‖x‖² + r²)/2s²} I₀(r‖x‖/s²)/(2πs²).

    The density follows by integrating N(x; r(cos θ, sin θ), s²I) over θ (the angular integral
    of e^{z cos θ} is 2π I₀(z)). noise = 0 is the bare circle of seed 001 Fig. 1: it can be
    sampled, but has no density; use `noised(sigma)`.
    """

    dim = 2
    name = "noisy_circle"

    def __init__(self, radius: float = 1.0, noise: float = 0.1) -> None:
        self.radius = _check_std(radius, "radius")
        self.noise = _check_std(noise, "noise")

    def _z(self, x: Tensor) -> tuple[Tensor, Tensor, float]:
        if self.noise == 0.0:
            raise ScorelabError(
                "NoisyCircle with noise=0 lies on a curve and has no density; "
                "use NoisyCircle.noised(sigma) for one"
            )
        s2 = self.noise**2
        rho = torch.linalg.vector_norm(x, dim=1)
        return rho, self.radius * rho / s2, s2

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = r(cos θ, sin θ) + s·z, θ = 2π·U, z ~ N(0, I)."""
        dtype = torch.get_default_dtype()
        theta = 2.0 * math.pi * torch.rand(n, generator=generator, dtype=dtype)
        ring = self.radius * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
        return ring + self.noise * torch.randn(n, 2, generator=generator, dtype=dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p = −log 2πs² − (‖x‖ − r)²/2s² + log i0e(z), z = r‖x‖/s² (as I₀(z) = i0e(z)eᶻ)."""
        self._check_x(x)
        rho, z, s2 = self._z(x)
        return (
            -math.log(2.0 * math.pi * s2)
            - (rho - self.radius) ** 2 / (2.0 * s2)
            + torch.log(torch.special.i0e(z))
        )

    def score(self, x: Tensor) -> Tensor:
        """∇ log p = (x/s²)·((r²/s²)·g(z) − 1), g(z) = I₁(z)/(z I₀(z)) → ½ at z = 0.

        From −x/s² + (r/s²)(I₁/I₀)(z)·x/‖x‖ with x/‖x‖ = (r/s²)·x/z, finite at the origin.
        """
        self._check_x(x)
        _, z, s2 = self._z(x)
        z_safe = torch.where(z > 0, z, torch.ones_like(z))
        g = torch.where(
            z > 0, torch.special.i1e(z) / (z_safe * torch.special.i0e(z)), torch.full_like(z, 0.5)
        )
        return x * ((self.radius**2 / s2) * g - 1.0)[:, None] / s2

    def noised(self, sigma: float, scale: float = 1.0) -> NoisyCircle:
        """scale·X + σZ = NoisyCircle(scale·r, √(scale²s² + σ²)): Gaussian noises add."""
        _check_noise_args(sigma, scale)
        return NoisyCircle(scale * self.radius, math.sqrt((scale * self.noise) ** 2 + sigma**2))


def _moon_arcs(t: Tensor) -> tuple[Tensor, Tensor]:
    """Upper arc (cos t, sin t) and lower arc (1 − cos t, ½ − sin t), t ∈ [0, π] (make_moons)."""
    c, s = torch.cos(t), torch.sin(t)
    return torch.stack([c, s], dim=-1), torch.stack([1.0 - c, 0.5 - s], dim=-1)


class TwoMoons(Target):
    """X = scale·c(t) + s·Z: c(t) on one of scikit-learn's two moon arcs (prob. ½ each),
    t ~ U[0, π], so p(x) = ½ Σ_arcs (1/π)∫₀^π N(x; scale·c(t), s²I) dt.

    No closed form: log_prob and score integrate over t by Gauss–Legendre quadrature, with
    at least `n_nodes` nodes per arc and more when needed to keep the centre spacing
    scale·π²/(2n) ≤ noise/2. Measured against 3000 nodes, the log-density error is ≤ 1e-9
    there (at spacing = noise it is 4e-4, at 2·noise 0.25); for noise = 0.1 and 512 nodes the
    spacing is noise/10 and the quadrature error is below float64 round-off of the sum.
    """

    dim = 2
    name = "two_moons"

    def __init__(self, noise: float = 0.1, *, n_nodes: int = 512, scale: float = 1.0) -> None:
        self.noise = _check_std(noise, "noise")
        if int(n_nodes) < 2:
            raise ScorelabError(f"n_nodes must be at least 2, got {n_nodes}")
        _check_noise_args(0.0, scale)
        self.n_nodes = int(n_nodes)
        self.scale = float(scale)

    @cached_property
    def _nodes(self) -> tuple[Tensor, Tensor]:
        """Node centres (M, 2) and log weights (M,), log wⱼ = log(½·legendre weight/2)."""
        if self.noise == 0.0:
            raise ScorelabError(
                "TwoMoons with noise=0 lies on two curves and has no density; "
                "use TwoMoons.noised(sigma) for one"
            )
        n = max(self.n_nodes, math.ceil(math.pi**2 * self.scale / self.noise))
        if n > 1 << 16:
            raise ScorelabError(
                f"TwoMoons noise {self.noise:g} is too small for quadrature at scale "
                f"{self.scale:g} ({n} nodes per arc); use a larger noise"
            )
        xi, w = np.polynomial.legendre.leggauss(n)
        dtype = torch.get_default_dtype()
        t = torch.as_tensor((xi + 1.0) * (math.pi / 2.0), dtype=torch.float64)
        upper, lower = _moon_arcs(t)
        centres = (self.scale * torch.cat([upper, lower])).to(dtype)
        # (1/π)∫₀^π dt maps to Σ w/2 on [−1, 1]; each arc carries mass ½.
        log_w = torch.as_tensor(np.log(np.concatenate([w, w]) / 4.0), dtype=dtype)
        return centres, log_w

    def _logits(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
        """aⱼ = log wⱼ + (x·cⱼ − ‖cⱼ‖²/2)/s², i.e. log wⱼ N(x; cⱼ, s²I) up to an x-only term."""
        centres, log_w = self._nodes
        c, lw = centres.to(x), log_w.to(x)
        s2 = self.noise**2
        return lw + (x @ c.T - 0.5 * (c * c).sum(1)) / s2, c, lw, s2

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = scale·(upper or lower arc)(π·U) + s·z, arc chosen by a fair coin."""
        dtype = torch.get_default_dtype()
        upper_arc = torch.rand(n, generator=generator, dtype=dtype) < 0.5
        t = math.pi * torch.rand(n, generator=generator, dtype=dtype)
        upper, lower = _moon_arcs(t)
        centre = torch.where(upper_arc[:, None], upper, lower)
        return self.scale * centre + self.noise * torch.randn(
            n, 2, generator=generator, dtype=dtype
        )

    def _log_prob_block(self, x: Tensor) -> Tensor:
        a, c, lw, s2 = self._logits(x)
        # The x-only term −‖x‖²/2s² cancels in aⱼ − a_max, so the leading node is evaluated
        # directly: no cancellation between ‖x‖²/2s² and x·c/s² for points far from the arcs.
        j = a.argmax(1)
        lead = lw[j] - ((x - c[j]) ** 2).sum(1) / (2.0 * s2)
        rest = torch.log(torch.exp(a - a.gather(1, j[:, None])).sum(1))
        return lead + rest - math.log(2.0 * math.pi * s2)

    def _score_block(self, x: Tensor) -> Tensor:
        a, c, _, s2 = self._logits(x)
        return (torch.softmax(a, dim=1) @ c - x) / s2

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_j [log wⱼ + log N(x; cⱼ, s²I)] (quadrature over both arcs)."""
        self._check_x(x)
        m = self._nodes[0].shape[0]
        return torch.cat([self._log_prob_block(b) for b in _row_blocks(x, m)])

    def score(self, x: Tensor) -> Tensor:
        """∇ log p(x) = Σⱼ rⱼ(x)(cⱼ − x)/s², rⱼ = softmax_j of the node log-joints."""
        self._check_x(x)
        m = self._nodes[0].shape[0]
        return torch.cat([self._score_block(b) for b in _row_blocks(x, m)])

    def noised(self, sigma: float, scale: float = 1.0) -> TwoMoons:
        """scale·X + σZ = TwoMoons(noise √(scale²s² + σ²)) on arcs scaled by scale."""
        _check_noise_args(sigma, scale)
        return TwoMoons(
            math.sqrt((scale * self.noise) ** 2 + sigma**2),
            n_nodes=self.n_nodes,
            scale=self.scale * scale,
        )


def _dark_squares(n_squares: int, size: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Lower and upper corners (K, 2) of the squares (i, j) with i + j even."""
    i, j = torch.meshgrid(torch.arange(n_squares), torch.arange(n_squares), indexing="ij")
    dark = (i + j) % 2 == 0
    ij = torch.stack([i[dark], j[dark]], dim=1).to(torch.float64)
    width = size / n_squares
    lows = -size / 2.0 + width * ij
    return lows.to(dtype), (lows + width).to(dtype)


def _check_board(n_squares: int, size: float) -> tuple[int, float]:
    if int(n_squares) != n_squares or n_squares < 1:
        raise ScorelabError(f"n_squares must be a positive integer, got {n_squares}")
    if not (math.isfinite(size) and size > 0):
        raise ScorelabError(f"size must be finite and positive, got {size}")
    return int(n_squares), float(size)


class Checkerboard(Target):
    """Uniform on the dark squares ((i + j) even) of an n×n board on [−size/2, size/2]².

    p(x) = 1/|A| on the dark squares, |A| = ⌈n²/2⌉·(size/n)², and 0 elsewhere, so log_prob
    is −inf off the support. The score is 0 inside and undefined outside: use `noised`.
    """

    dim = 2
    name = "checkerboard"

    def __init__(self, n_squares: int = 4, size: float = 4.0) -> None:
        self.n_squares, self.size = _check_board(n_squares, size)
        self.lows, self.highs = _dark_squares(self.n_squares, self.size, torch.get_default_dtype())
        self.width = self.size / self.n_squares
        self.area = self.lows.shape[0] * self.width**2

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = low_k + width·U, k uniform over dark squares (they have equal area)."""
        k = torch.randint(self.lows.shape[0], (n,), generator=generator)
        u = torch.rand(n, 2, generator=generator, dtype=self.lows.dtype)
        return self.lows[k] + self.width * u

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = −log |A| on a dark square, −inf elsewhere (the law has no mass there)."""
        self._check_x(x)
        idx = torch.floor((x + self.size / 2.0) / self.width)
        inside = ((idx >= 0) & (idx < self.n_squares)).all(1) & (idx.sum(1) % 2 == 0)
        return torch.where(inside, -math.log(self.area), -math.inf).to(x)

    def score(self, x: Tensor) -> Tensor:
        """Not available: ∇ log p is 0 on the squares and undefined off them."""
        raise ScorelabError(
            "Checkerboard has no score (0 inside the squares, undefined outside); "
            "use Checkerboard.noised(sigma) for a smooth target with an exact score"
        )

    def noised(self, sigma: float, scale: float = 1.0) -> NoisedCheckerboard:
        """scale·X + σZ: the board scaled by `scale`, convolved with N(0, σ²I) (σ > 0)."""
        return NoisedCheckerboard(self.n_squares, self.size, sigma=sigma, scale=scale)


class NoisedCheckerboard(Target):
    """scale·X + σZ, X ~ Checkerboard: p(x) = (1/|A|) Σₖ Πᵢ [Φ((bₖᵢ − xᵢ)/σ) − Φ((aₖᵢ − xᵢ)/σ)].

    Each dark square [a_k, b_k] (scaled, |A| its total area) convolved with N(0, σ²I) gives a
    product of normal-CDF differences. Terms are kept in log space so that points far from the
    board do not underflow.
    """

    dim = 2
    name = "noised_checkerboard"

    def __init__(
        self, n_squares: int = 4, size: float = 4.0, sigma: float = 0.1, scale: float = 1.0
    ) -> None:
        _check_noise_args(sigma, scale)
        if sigma == 0:
            raise ScorelabError("NoisedCheckerboard needs sigma > 0; sigma = 0 is Checkerboard")
        self.board = Checkerboard(n_squares, size)
        self.sigma = float(sigma)
        self.scale = float(scale)
        self.log_area = math.log(self.board.area * self.scale**2)

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """α = (a − x)/σ, β = (b − x)/σ and log D = log(Φ(β) − Φ(α)), each (N, K, 2)."""
        lo = self.scale * self.board.lows.to(x)
        hi = self.scale * self.board.highs.to(x)
        alpha = (lo[None] - x[:, None, :]) / self.sigma
        beta = (hi[None] - x[:, None, :]) / self.sigma
        return alpha, beta, _log_ndtr_diff(beta, alpha)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = scale·(checkerboard draw) + σ·z."""
        x = self.board.sample(n, generator)
        return self.scale * x + self.sigma * torch.randn(
            x.shape, generator=generator, dtype=x.dtype
        )

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_k Σ_i log D_ki − log |A|."""
        self._check_x(x)
        log_d = self._terms(x)[2]
        return torch.logsumexp(log_d.sum(2), dim=1) - self.log_area

    def score(self, x: Tensor) -> Tensor:
        """∇ log p = Σ_k r_k (φ(α_k) − φ(β_k))/(σ D_k), r_k = softmax_k Σ_i log D_ki.

        ∂/∂x_i of Φ((b − x_i)/σ) − Φ((a − x_i)/σ) is (φ(α) − φ(β))/σ; ratios φ/D taken in logs.
        """
        self._check_x(x)
        alpha, beta, log_d = self._terms(x)
        r = torch.softmax(log_d.sum(2), dim=1)
        log_phi_a = -0.5 * alpha**2 - 0.5 * _LOG_2PI
        log_phi_b = -0.5 * beta**2 - 0.5 * _LOG_2PI
        grad = (torch.exp(log_phi_a - log_d) - torch.exp(log_phi_b - log_d)) / self.sigma
        return (r[..., None] * grad).sum(1)

    def noised(self, sigma: float, scale: float = 1.0) -> NoisedCheckerboard:
        """scale'·(scale·X + σZ) + σ'Z' = (scale'·scale)·X + √(scale'²σ² + σ'²)·Z."""
        _check_noise_args(sigma, scale)
        return NoisedCheckerboard(
            self.board.n_squares,
            self.board.size,
            sigma=math.sqrt((scale * self.sigma) ** 2 + sigma**2),
            scale=self.scale * scale,
        )
