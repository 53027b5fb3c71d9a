"""Two-dimensional toy targets: a noisy circle (seed 001 Fig. 1), two moons, a checkerboard.

All three families are closed under x ↦ scale·x + σZ, so each has an exact `noised` law and a
batched `noised_score` with a per-sample σ (the variances simply add). The circle and the
noised checkerboard have closed forms; the moons have none, so their density is a Gaussian
smoothed over two arcs, integrated over the arc parameter by Gauss–Legendre quadrature.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from scipy.special import roots_legendre
from torch import Tensor

from scorelab._utils import ScorelabError, as_sigma
from scorelab.distributions.base import Target, check_noise_args, check_sample_count

_LOG_2PI = math.log(2.0 * math.pi)
# Row block for the (rows × quadrature nodes) matrices: ≈ 32 MB of float64 per temporary.
_BLOCK_ELEMS = 1 << 22
# Beyond this many nodes per arc the node computation takes seconds and the (rows × nodes)
# blocks degrade to a few rows each; noise ≥ π²·scale/8192 ≈ 0.0012·scale stays below it.
_MAX_MOON_NODES = 8192


def _check_std(value: float, what: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ScorelabError(f"{what} must be finite and non-negative, got {value}")
    return value


def _variances(x: Tensor, base_std: float, sigma: Tensor | float | None, what: str) -> Tensor:
    """Per-row noise variance s² = base² (+ σᵢ² for the law of X + σZ), shape (N,), all > 0."""
    v = torch.full((x.shape[0],), base_std**2, dtype=x.dtype, device=x.device)
    if sigma is not None:
        v = v + as_sigma(sigma, x) ** 2
    if not bool((v > 0).all()):
        raise ScorelabError(
            f"{what} with noise=0 has no density or score; use {what}.noised(sigma), sigma > 0"
        )
    return v


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


# -- noisy circle ---------------------------------------------------------------------------------
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
        self.dtype = torch.get_default_dtype()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = r(cos θ, sin θ) + s·z, θ = 2π·U, z ~ N(0, I)."""
        check_sample_count(n)
        theta = 2.0 * math.pi * torch.rand(n, generator=generator, dtype=self.dtype)
        ring = self.radius * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
        return ring + self.noise * torch.randn(n, 2, generator=generator, dtype=self.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p = −log 2πs² − (‖x‖ − r)²/2s² + log i0e(z), z = r‖x‖/s² (as I₀(z) = i0e(z)eᶻ)."""
        self._check_x(x)
        s2 = _variances(x, self.noise, None, "NoisyCircle")
        rho = torch.linalg.vector_norm(x, dim=1)
        z = self.radius * rho / s2
        return (
            -torch.log(2.0 * math.pi * s2)
            - (rho - self.radius) ** 2 / (2.0 * s2)
            + torch.log(torch.special.i0e(z))
        )

    def _score(self, x: Tensor, s2: Tensor) -> Tensor:
        z = self.radius * torch.linalg.vector_norm(x, dim=1) / s2
        z_safe = torch.where(z > 0, z, torch.ones_like(z))
        g = torch.where(
            z > 0, torch.special.i1e(z) / (z_safe * torch.special.i0e(z)), torch.full_like(z, 0.5)
        )
        return x * (((self.radius**2 / s2) * g - 1.0) / s2)[:, None]

    def score(self, x: Tensor) -> Tensor:
        """∇ log p = (x/s²)·((r²/s²)·g(z) − 1), g(z) = I₁(z)/(z I₀(z)) → ½ at z = 0.

        From −x/s² + (r/s²)(I₁/I₀)(z)·x/‖x‖ with x/‖x‖ = (r/s²)·x/z, finite at the origin.
        """
        self._check_x(x)
        return self._score(x, _variances(x, self.noise, None, "NoisyCircle"))

    def noised_score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Score of X + σᵢZ at xᵢ: the same formula with s² → s² + σᵢ², one batched pass."""
        self._check_x(x)
        return self._score(x, _variances(x, self.noise, sigma, "NoisyCircle"))

    def noised(self, sigma: float, scale: float = 1.0) -> NoisyCircle:
        """scale·X + σZ = NoisyCircle(scale·r, √(scale²s² + σ²)): Gaussian noises add."""
        check_noise_args(sigma, scale)
        return NoisyCircle(scale * self.radius, math.sqrt((scale * self.noise) ** 2 + sigma**2))


# -- two moons ------------------------------------------------------------------------------------
def _moon_arcs(t: Tensor) -> tuple[Tensor, Tensor]:
    """Upper arc (cos t, sin t) and lower arc (1 − cos t, ½ − sin t), t ∈ [0, π] (make_moons)."""
    c, s = torch.cos(t), torch.sin(t)
    return torch.stack([c, s], dim=-1), torch.stack([1.0 - c, 0.5 - s], dim=-1)


@lru_cache(maxsize=16)
def _moon_nodes(n: int) -> tuple[Tensor, Tensor]:
    """Unit-scale node centres (2n, 2) and log weights (2n,): log(½ · w_GL/2) per arc, float64.

    (1/π)∫₀^π f dt = ½ Σ w f(t(ξ)) on [−1, 1], and each arc has mass ½. Cached: a noise ladder
    builds a TwoMoons per level. scipy's roots_legendre is numpy's leggauss rule at O(n²)
    instead of O(n³) cost. float64 throughout: float32 nodes would shift the mass by ~1e-8.
    """
    xi, w = roots_legendre(n)
    t = torch.as_tensor((xi + 1.0) * (math.pi / 2.0), dtype=torch.float64)
    upper, lower = _moon_arcs(t)
    log_w = torch.log(torch.as_tensor(w, dtype=torch.float64) / 4.0)
    return torch.cat([upper, lower]), torch.cat([log_w, log_w])


class TwoMoons(Target):
    """X = scale·c(t) + s·Z, c(t) on one of scikit-learn's two moon arcs (prob. ½ each),
    t ~ U[0, π], so p(x) = ½ Σ_arcs (1/π)∫₀^π N(x; scale·c(t), s²I) dt.

    No closed form: log_prob and score sum over Gauss–Legendre nodes in t, with at least
    `n_nodes` per arc, raised when needed to keep the largest centre spacing
    scale·π²/(2n) ≤ s/2. The error in log p is ~1e-9 at spacing s/2 (4e-4 at spacing s, 0.25
    at 2s, measured on [−1.5, 2.5]²). At the default noise 0.1 with 512 nodes (spacing s/10)
    it is ≤ 1e-12 against a 1024-node rule, and 2e-11 at noise 0.02; past ~2000 nodes the
    Legendre weights themselves carry ~1e-9 relative error, which becomes the floor. The
    score is the exact gradient of this quadrature log-density.
    """

    dim = 2
    name = "two_moons"

    def __init__(self, noise: float = 0.1, *, n_nodes: int = 512, scale: float = 1.0) -> None:
        self.noise = _check_std(noise, "noise")
        if int(n_nodes) < 2:
            raise ScorelabError(f"n_nodes must be at least 2, got {n_nodes}")
        check_noise_args(0.0, scale)
        self.n_nodes = int(n_nodes)
        self.scale = float(scale)
        self.dtype = torch.get_default_dtype()

    def n_nodes_for(self, noise: float) -> int:
        """Nodes per arc used at noise s: max(n_nodes, ⌈π²·scale/s⌉), i.e. spacing ≤ s/2."""
        n = max(self.n_nodes, math.ceil(math.pi**2 * self.scale / noise))
        if n > _MAX_MOON_NODES:
            floor = math.pi**2 * self.scale / _MAX_MOON_NODES
            raise ScorelabError(
                f"TwoMoons noise {noise:g} at scale {self.scale:g} needs {n} quadrature nodes "
                f"per arc (limit {_MAX_MOON_NODES}); use noise ≥ {floor:.2g}"
            )
        return n

    def _nodes(self, s2: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        centres, log_w = _moon_nodes(self.n_nodes_for(math.sqrt(float(s2.min()))))
        return self.scale * centres.to(x), log_w.to(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = scale·(upper or lower arc)(π·U) + s·z, arc chosen by a fair coin."""
        check_sample_count(n)
        upper_arc = torch.rand(n, generator=generator, dtype=self.dtype) < 0.5
        t = math.pi * torch.rand(n, generator=generator, dtype=self.dtype)
        upper, lower = _moon_arcs(t)
        centre = torch.where(upper_arc[:, None], upper, lower)
        noise = torch.randn(n, 2, generator=generator, dtype=self.dtype)
        return self.scale * centre + self.noise * noise

    @staticmethod
    def _logits(x: Tensor, s2: Tensor, c: Tensor, lw: Tensor) -> Tensor:
        """aⱼ = log wⱼ + (x·cⱼ − ‖cⱼ‖²/2)/s², i.e. log wⱼ N(x; cⱼ, s²I) up to an x-only term."""
        return lw + (x @ c.T - 0.5 * (c * c).sum(1)) / s2[:, None]

    def _blocks(self, x: Tensor, s2: Tensor, n_cols: int) -> zip:
        rows = max(1, _BLOCK_ELEMS // n_cols)
        return zip(torch.split(x, rows), torch.split(s2, rows), strict=True)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_j [log wⱼ + log N(x; cⱼ, s²I)] over the nodes of both arcs."""
        self._check_x(x)
        s2 = _variances(x, self.noise, None, "TwoMoons")
        if x.shape[0] == 0:
            return x.new_zeros(0)
        c, lw = self._nodes(s2, x)
        out = []
        for xb, vb in self._blocks(x, s2, c.shape[0]):
            a = self._logits(xb, vb, c, lw)
            # The x-only term −‖x‖²/2s² cancels in aⱼ − a_max, so the leading node is evaluated
            # directly: no cancellation of ‖x‖²/2s² against x·c/s² far from the arcs.
            j = a.argmax(1)
            lead = lw[j] - ((xb - c[j]) ** 2).sum(1) / (2.0 * vb)
            rest = torch.log(torch.exp(a - a.gather(1, j[:, None])).sum(1))
            out.append(lead + rest - torch.log(2.0 * math.pi * vb))
        return torch.cat(out)

    def _score(self, x: Tensor, s2: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return torch.zeros_like(x)
        c, lw = self._nodes(s2, x)
        out = [
            (torch.softmax(self._logits(xb, vb, c, lw), dim=1) @ c - xb) / vb[:, None]
            for xb, vb in self._blocks(x, s2, c.shape[0])
        ]
        return torch.cat(out)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p(x) = Σⱼ rⱼ(x)(cⱼ − x)/s², rⱼ = softmax_j of the node log-joints aⱼ."""
        self._check_x(x)
        return self._score(x, _variances(x, self.noise, None, "TwoMoons"))

    def noised_score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Score of X + σᵢZ at xᵢ: the same sum with s² → s² + σᵢ² per row, one batched pass."""
        self._check_x(x)
        return self._score(x, _variances(x, self.noise, sigma, "TwoMoons"))

    def noised(self, sigma: float, scale: float = 1.0) -> TwoMoons:
        """scale·X + σZ = TwoMoons(noise √(scale²s² + σ²)) on arcs scaled by scale."""
        check_noise_args(sigma, scale)
        return TwoMoons(
            math.sqrt((scale * self.noise) ** 2 + sigma**2),
            n_nodes=self.n_nodes,
            scale=self.scale * scale,
        )


# -- checkerboard ---------------------------------------------------------------------------------
def _check_board(n_squares: int, size: float) -> tuple[int, float]:
    if int(n_squares) != n_squares or n_squares < 1:
        raise ScorelabError(f"n_squares must be a positive integer, got {n_squares}")
    if not (math.isfinite(size) and size > 0):
        raise ScorelabError(f"size must be finite and positive, got {size}")
    return int(n_squares), float(size)


def _board_terms(lo: Tensor, hi: Tensor, x: Tensor, sig: Tensor) -> tuple[Tensor, ...]:
    """α = (a − x)/σ, β = (b − x)/σ, log D = log(Φ(β) − Φ(α)), (N, K, 2), for squares [a, b]."""
    sig = sig[:, None, None]
    alpha = (lo.to(x)[None] - x[:, None, :]) / sig
    beta = (hi.to(x)[None] - x[:, None, :]) / sig
    return alpha, beta, _log_ndtr_diff(beta, alpha)


def _board_score(lo: Tensor, hi: Tensor, x: Tensor, sig: Tensor) -> Tensor:
    """Σₖ rₖ (φ(αₖ) − φ(βₖ))/(σ Dₖ), rₖ = softmax_k Σᵢ log Dₖᵢ; ratios φ/D taken in logs."""
    alpha, beta, log_d = _board_terms(lo, hi, x, sig)
    r = torch.softmax(log_d.sum(2), dim=1)
    log_phi_a = -0.5 * alpha**2 - 0.5 * _LOG_2PI
    log_phi_b = -0.5 * beta**2 - 0.5 * _LOG_2PI
    grad = (torch.exp(log_phi_a - log_d) - torch.exp(log_phi_b - log_d)) / sig[:, None, None]
    return (r[..., None] * grad).sum(1)


class Checkerboard(Target):
    """Uniform on the dark squares ((i + j) even) of an n×n board on [−size/2, size/2]².

    p(x) = 1/|A| on the dark squares, |A| = ⌈n²/2⌉·(size/n)², and 0 elsewhere, so log_prob
    is −inf off the support. The score is 0 inside and undefined outside: use `noised`.
    """

    dim = 2
    name = "checkerboard"

    def __init__(self, n_squares: int = 4, size: float = 4.0) -> None:
        self.n_squares, self.size = _check_board(n_squares, size)
        self.width = self.size / self.n_squares
        i, j = torch.meshgrid(
            torch.arange(self.n_squares), torch.arange(self.n_squares), indexing="ij"
        )
        dark = (i + j) % 2 == 0
        ij = torch.stack([i[dark], j[dark]], dim=1).to(torch.float64)
        # Corners stay float64 so that Σₖ areaₖ = |A| for float64 inputs; samples are cast.
        self.lows = -self.size / 2.0 + self.width * ij
        self.highs = self.lows + self.width
        self.area = self.lows.shape[0] * self.width**2
        self.dtype = torch.get_default_dtype()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = low_k + width·U, k uniform over dark squares (they have equal area)."""
        check_sample_count(n)
        k = torch.randint(self.lows.shape[0], (n,), generator=generator)
        u = torch.rand(n, 2, generator=generator, dtype=self.dtype)
        return self.lows.to(self.dtype)[k] + self.width * u

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = −log |A| on a dark square, −inf elsewhere (the law has no mass there)."""
        self._check_x(x)
        idx = torch.floor((x + self.size / 2.0) / self.width)
        inside = ((idx >= 0) & (idx < self.n_squares)).all(1) & (idx.sum(1) % 2 == 0)
        out = torch.full((x.shape[0],), -math.log(self.area), dtype=x.dtype, device=x.device)
        return out.masked_fill(~inside, -math.inf)

    def score(self, x: Tensor) -> Tensor:
        """Not available: ∇ log p is 0 on the squares and undefined off them."""
        raise ScorelabError(
            "Checkerboard has no score (0 inside the squares, undefined outside); "
            "use Checkerboard.noised(sigma) for a smooth target with an exact score"
        )

    def noised_score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Score of X + σᵢZ at xᵢ (every σᵢ > 0), the noised-board formula in one pass."""
        self._check_x(x)
        sig = _variances(x, 0.0, sigma, "Checkerboard").sqrt()
        return _board_score(self.lows, self.highs, x, sig)

    def noised(self, sigma: float, scale: float = 1.0) -> NoisedCheckerboard:
        """scale·X + σZ: the board scaled by `scale`, convolved with N(0, σ²I) (σ > 0)."""
        return NoisedCheckerboard(self.n_squares, self.size, sigma=sigma, scale=scale)


class NoisedCheckerboard(Target):
    """scale·X + σZ, X ~ Checkerboard: p(x) = (1/|A|) Σₖ Πᵢ [Φ((bₖᵢ − xᵢ)/σ) − Φ((aₖᵢ − xᵢ)/σ)].

    Each dark square [aₖ, bₖ] (scaled; |A| their total area) convolved with N(0, σ²I) is a
    product of normal-CDF differences. Terms are kept in log space so that points far from the
    board do not underflow to log 0.
    """

    dim = 2
    name = "noised_checkerboard"

    def __init__(
        self, n_squares: int = 4, size: float = 4.0, sigma: float = 0.1, scale: float = 1.0
    ) -> None:
        check_noise_args(sigma, scale)
        if sigma == 0:
            raise ScorelabError("NoisedCheckerboard needs sigma > 0; sigma = 0 is Checkerboard")
        self.board = Checkerboard(n_squares, size)
        self.sigma = float(sigma)
        self.scale = float(scale)
        self.lows = self.scale * self.board.lows
        self.highs = self.scale * self.board.highs
        self.log_area = math.log(self.board.area * self.scale**2)

    def _sig(self, x: Tensor, sigma: Tensor | float | None = None) -> Tensor:
        return _variances(x, self.sigma, sigma, "NoisedCheckerboard").sqrt()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x = scale·(checkerboard draw) + σ·z."""
        x = self.board.sample(n, generator)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return self.scale * x + self.sigma * noise

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_k Σᵢ log Dₖᵢ − log |A|, Dₖᵢ = Φ(βₖᵢ) − Φ(αₖᵢ)."""
        self._check_x(x)
        log_d = _board_terms(self.lows, self.highs, x, self._sig(x))[2]
        return torch.logsumexp(log_d.sum(2), dim=1) - self.log_area

    def score(self, x: Tensor) -> Tensor:
        """∇ log p = Σₖ rₖ (φ(αₖ) − φ(βₖ))/(σ Dₖ), rₖ = softmax_k Σᵢ log Dₖᵢ.

        ∂/∂xᵢ of Φ((b − xᵢ)/σ) − Φ((a − xᵢ)/σ) is (φ(α) − φ(β))/σ; ratios φ/D taken in logs.
        """
        self._check_x(x)
        return _board_score(self.lows, self.highs, x, self._sig(x))

    def noised_score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Score of X + σᵢZ at xᵢ: the same formula at noise √(σ² + σᵢ²), one batched pass."""
        self._check_x(x)
        return _board_score(self.lows, self.highs, x, self._sig(x, sigma))

    def noised(self, sigma: float, scale: float = 1.0) -> NoisedCheckerboard:
        """scale'·(scale·X + σZ) + σ'Z' = (scale'·scale)·X + √(scale'²σ² + σ'²)·Z."""
        check_noise_args(sigma, scale)
        return NoisedCheckerboard(
            self.board.n_squares,
            self.board.size,
            sigma=math.sqrt((scale * self.sigma) ** 2 + sigma**2),
            scale=self.scale * scale,
        )
