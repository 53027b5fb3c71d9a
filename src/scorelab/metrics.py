"""Sample-quality metrics: two-sample distances, mixture-weight recovery, Fisher divergence.

Every two-sample metric takes point sets of shape (N, d) (torch tensors or numpy arrays) and
returns a Python float. Distances are computed in float64: the estimators subtract nearly equal
averages, and float32 round-off is of the same order as the sampling noise at N ≈ 10⁴.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import ot
import torch
from torch import Tensor

from scorelab._types import LogProbFn, ScoreFn
from scorelab._utils import ScorelabError, as_sigma

__all__ = [
    "WeightReport",
    "energy_distance",
    "fisher_divergence",
    "frechet_distance",
    "frechet_distance_from_moments",
    "histogram_kl",
    "histogram_tv",
    "histogram_tv_to_density",
    "median_heuristic",
    "mixture_weights",
    "mmd",
    "sliced_wasserstein",
    "wasserstein2",
    "weights_from_labels",
]

Range = Sequence[float] | Sequence[Sequence[float]] | None


# ---------------------------------------------------------------------------------------------
# input checks


def _points(x: Any, name: str, *, min_n: int = 1) -> Tensor:
    """x as a finite floating (N, d) tensor with N ≥ min_n; ScorelabError otherwise."""
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.ndim != 2:
        raise ScorelabError(f"{name} must have shape (N, d), got {tuple(t.shape)}")
    if t.shape[0] < min_n or t.shape[1] == 0:
        raise ScorelabError(
            f"{name} needs at least {min_n} point(s) of dimension ≥ 1, got shape {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ScorelabError(f"{name} contains NaN or inf values")
    return t


def _pair(x: Any, y: Any, *, min_n: int = 1) -> tuple[Tensor, Tensor]:
    """Both sets checked by _points, in float64, with a common dimension d."""
    xt, yt = _points(x, "x", min_n=min_n), _points(y, "y", min_n=min_n)
    if xt.shape[1] != yt.shape[1]:
        raise ScorelabError(f"x and y differ in dimension: {xt.shape[1]} vs {yt.shape[1]}")
    return xt.double(), yt.double()


# ---------------------------------------------------------------------------------------------
# mixture weights


@dataclass(frozen=True)
class WeightReport:
    """Estimated vs true mixture weights and tv = ½ Σₖ |ŵₖ − wₖ|."""

    estimated: list[float]
    true: list[float]
    tv: float

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain JSON-serialisable dict."""
        return asdict(self)


def weights_from_labels(labels: Any, n_components: int) -> Tensor:
    """Empirical weights ŵₖ = #{i : labelᵢ = k} / N as a float64 (K,) tensor."""
    lab = torch.as_tensor(labels)
    if lab.ndim != 1 or lab.numel() == 0:
        raise ScorelabError(f"labels must be a non-empty 1-d tensor, got shape {tuple(lab.shape)}")
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        raise ScorelabError(f"labels must be integers, got dtype {lab.dtype}")
    if n_components < 1:
        raise ScorelabError(f"n_components must be ≥ 1, got {n_components}")
    if int(lab.min()) < 0 or int(lab.max()) >= n_components:
        raise ScorelabError(
            f"labels must lie in [0, {n_components}), "
            f"got values from {int(lab.min())} to {int(lab.max())}"
        )
    counts = torch.bincount(lab.long(), minlength=n_components)
    return counts.double() / lab.numel()


def mixture_weights(samples: Any, mixture: Any) -> WeightReport:
    """Assign xᵢ to argmaxₖ p(k | xᵢ); report ŵₖ = counts/N, w, and tv = ½ Σ |ŵ − w|."""
    # float64: a chain far out (|x| ~ 1e19, finite) overflows ‖x − μ‖² in float32
    x = _points(samples, "samples").double()
    k = int(mixture.n_components)
    resp = torch.as_tensor(mixture.responsibilities(x))
    if resp.shape != (x.shape[0], k):
        raise ScorelabError(
            f"mixture.responsibilities returned shape {tuple(resp.shape)}, "
            f"expected ({x.shape[0]}, {k})"
        )
    if not bool(torch.isfinite(resp).all()):
        raise ScorelabError("mixture.responsibilities returned NaN or inf values")
    estimated = weights_from_labels(resp.argmax(dim=1), k)
    true = torch.as_tensor(mixture.weights).detach().double().cpu().reshape(-1)
    if true.numel() != k:
        raise ScorelabError(f"mixture.weights has {true.numel()} entries, expected {k}")
    tv = 0.5 * float((estimated - true).abs().sum())
    return WeightReport(estimated=estimated.tolist(), true=true.tolist(), tv=tv)


# ---------------------------------------------------------------------------------------------
# kernel and distance-based two-sample statistics


def median_heuristic(x: Any, y: Any, max_points: int = 2000) -> float:
    """h₀ = median_{i<j} ‖zᵢ − zⱼ‖ over the pooled z = (x, y), on ≤ max_points evenly strided z."""
    xt, yt = _pair(x, y)
    z = torch.cat([xt, yt])
    if z.shape[0] > max_points:
        # A deterministic stride keeps mmd() free of randomness and keeps both sets represented.
        z = z[torch.linspace(0, z.shape[0] - 1, max_points).long()]
    if z.shape[0] < 2:
        return 1.0
    i, j = torch.triu_indices(z.shape[0], z.shape[0], offset=1)
    dist = torch.cdist(z, z)[i, j]
    h0 = float(dist.median())  # lower median for an even count
    if h0 > 0.0:
        return h0
    # More than half the pairs coincide (e.g. a collapsed sampler): fall back to the typical
    # non-zero distance so the kernel still separates the distinct points.
    positive = dist[dist > 0]
    return float(positive.mean()) if positive.numel() else 1.0


def _blocked_total(a: Tensor, b: Tensor, f, block: int = 1024) -> float:
    """Σᵢⱼ f(‖aᵢ − bⱼ‖) in row blocks, so memory stays O(block·m) for large sets."""
    total = 0.0
    for start in range(0, a.shape[0], block):
        total += float(f(torch.cdist(a[start : start + block], b)))
    return total


def _rbf_total(a: Tensor, b: Tensor, bandwidths: Tensor) -> float:
    """Σᵢⱼ Σₕ exp(−‖aᵢ − bⱼ‖² / (2h²))."""
    hs = bandwidths.tolist()

    def rbf_sum(dist: Tensor) -> Tensor:
        sq = dist.square_()
        return sum(torch.exp(sq * (-0.5 / h**2)).sum() for h in hs)

    return _blocked_total(a, b, rbf_sum)


def mmd(
    x: Any, y: Any, bandwidths: Sequence[float] | None = None, *, unbiased: bool = True
) -> float:
    """Squared MMD = E k(X,X') + E k(Y,Y') − 2 E k(X,Y), k = Σₕ RBF_h (U- or V-statistic).

    Default bandwidths are h₀·(0.5, 1, 2) with h₀ the median heuristic (`median_heuristic`).
    The unbiased U-statistic drops the i = j terms of the within-sample means (each equals
    k(x, x) = H, the number of bandwidths), so it can be slightly negative when the laws agree;
    the biased V-statistic keeps them and is ≥ 0.
    """
    xt, yt = _pair(x, y, min_n=2 if unbiased else 1)
    if bandwidths is None:
        h0 = median_heuristic(xt, yt)
        bandwidths = [0.5 * h0, h0, 2.0 * h0]
    h = torch.as_tensor(list(bandwidths), dtype=torch.float64)
    if h.ndim != 1 or h.numel() == 0 or not bool((torch.isfinite(h) & (h > 0)).all()):
        raise ScorelabError(
            f"bandwidths must be a non-empty list of positive finite numbers, got {h.tolist()}"
        )
    n, m, n_h = xt.shape[0], yt.shape[0], h.numel()
    sxx, syy, sxy = _rbf_total(xt, xt, h), _rbf_total(yt, yt, h), _rbf_total(xt, yt, h)
    if unbiased:
        exx = (sxx - n * n_h) / (n * (n - 1))
        eyy = (syy - m * n_h) / (m * (m - 1))
    else:
        exx, eyy = sxx / n**2, syy / m**2
    return float(exx + eyy - 2.0 * sxy / (n * m))


def energy_distance(x: Any, y: Any) -> float:
    """Energy distance 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖, within-sample terms as U-statistics.

    This is the squared form (Székely & Rizzo); scipy.stats.energy_distance returns the square
    root of the V-statistic version, which includes the zero i = j terms.
    """
    xt, yt = _pair(x, y, min_n=2)
    n, m = xt.shape[0], yt.shape[0]
    dxy = _blocked_total(xt, yt, torch.sum) / (n * m)
    # a set against itself: the diagonal is 0 (up to cdist round-off, ~1e-7), so the
    # U-statistic divides by n(n − 1)
    dxx = _blocked_total(xt, xt, torch.sum) / (n * (n - 1))
    dyy = _blocked_total(yt, yt, torch.sum) / (m * (m - 1))
    return float(2.0 * dxy - dxx - dyy)


# ---------------------------------------------------------------------------------------------
# optimal transport


def sliced_wasserstein(
    x: Any,
    y: Any,
    n_projections: int = 128,
    p: float = 2,
    *,
    generator: torch.Generator | None = None,
) -> float:
    """SW_p = (E_θ W_pᵖ(θ·X, θ·Y))^{1/p}, θ uniform on the sphere (Monte Carlo over projections).

    Directions are normalised Gaussians drawn from `generator`, so a seed fixes the value.
    Unequal sample sizes are fine: each 1-D W_p is computed between the two empirical quantile
    functions (POT's `wasserstein_1d`).
    """
    xt, yt = _pair(x, y)
    if n_projections < 1:
        raise ScorelabError(f"n_projections must be ≥ 1, got {n_projections}")
    if not p >= 1:
        raise ScorelabError(f"p must be ≥ 1, got {p}")
    theta = torch.randn(xt.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    # Numpy in, float out: with torch inputs POT would return a 0-d tensor and pick its backend.
    value = ot.sliced_wasserstein_distance(xt.numpy(), yt.numpy(), projections=theta.numpy(), p=p)
    return float(value)


def wasserstein2(x: Any, y: Any, max_points: int = 2000) -> float:
    """W₂ = (min_π Σᵢⱼ πᵢⱼ ‖xᵢ − yⱼ‖²)^{1/2} between the uniform empirical laws (exact LP, POT)."""
    xt, yt = _pair(x, y)
    n, m = xt.shape[0], yt.shape[0]
    if max(n, m) > max_points:
        raise ScorelabError(
            f"wasserstein2 solves an exact O(n³) transport problem and is limited to "
            f"max_points={max_points} points per set, got {n} and {m}; subsample, raise "
            f"max_points, or use sliced_wasserstein"
        )
    a = np.full(n, 1.0 / n)
    b = np.full(m, 1.0 / m)
    cost_matrix = ot.dist(xt.numpy(), yt.numpy(), metric="sqeuclidean")
    cost, log = ot.emd2(a, b, cost_matrix, numItermax=max(100_000, 50 * n * m), log=True)
    if log.get("warning"):
        raise ScorelabError(f"exact transport did not converge: {log['warning']}")
    # Round-off can push an optimal cost of ~0 slightly below zero.
    return float(np.sqrt(max(float(cost), 0.0)))


# ---------------------------------------------------------------------------------------------
# histograms (d ∈ {1, 2})


def _hist_range(data: Sequence[np.ndarray], d: int, range: Range) -> list[tuple[float, float]]:
    """Per-dimension (lo, hi): the given range, or the pooled min/max (widened if degenerate)."""
    if range is None:
        pooled = np.concatenate(data)
        lo, hi = pooled.min(axis=0), pooled.max(axis=0)
        # numpy needs hi > lo; a constant coordinate gets a unit-width window around it.
        return [
            (float(a), float(b)) if b > a else (float(a) - 0.5, float(a) + 0.5)
            for a, b in zip(lo, hi, strict=True)
        ]
    arr = np.asarray(range, dtype=np.float64)
    if d == 1 and arr.shape == (2,):
        arr = arr[None]
    if arr.shape != (d, 2) or not np.isfinite(arr).all() or not (arr[:, 1] > arr[:, 0]).all():
        raise ScorelabError(
            f"range must be (lo, hi) per dimension with lo < hi, shape ({d}, 2), got {range!r}"
        )
    return [(float(a), float(b)) for a, b in arr]


def _histogram(x: np.ndarray, bins: int, rng: list[tuple[float, float]], name: str) -> np.ndarray:
    """Bin probabilities pᵦ = countᵦ / Σ counts over the points inside the range."""
    counts, _ = np.histogramdd(x, bins=bins, range=rng)
    total = counts.sum()
    if total == 0:
        raise ScorelabError(f"no point of {name} falls inside the histogram range {rng}")
    return (counts / total).ravel()


def _histogram_pair(x: Any, y: Any, bins: int, range: Range) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of x and y on one shared grid (bins per dimension, d ∈ {1, 2})."""
    xt, yt = _pair(x, y)
    d = xt.shape[1]
    if d not in (1, 2):
        raise ScorelabError(f"histogram metrics need 1-d or 2-d samples, got d={d}")
    if bins < 1:
        raise ScorelabError(f"bins must be ≥ 1, got {bins}")
    xn, yn = xt.numpy(), yt.numpy()
    rng = _hist_range([xn, yn], d, range)
    return _histogram(xn, bins, rng, "x"), _histogram(yn, bins, rng, "y")


def histogram_tv(x: Any, y: Any, bins: int = 50, range: Range = None) -> float:
    """TV = ½ Σᵦ |pᵦ − qᵦ| between histograms on shared bins (range: pooled min/max).

    Each histogram is normalised over its points inside `range`; points outside are dropped.
    """
    p, q = _histogram_pair(x, y, bins, range)
    return 0.5 * float(np.abs(p - q).sum())


def histogram_kl(x: Any, y: Any, bins: int = 50, range: Range = None, eps: float = 1e-10) -> float:
    """KL(p‖q) = Σᵦ p̃ᵦ log(p̃ᵦ / q̃ᵦ) with p̃ = (p + eps) / Σ(p + eps), q̃ likewise, on shared bins.

    The eps smoothing keeps the value finite when y leaves a bin empty that x fills (an empty
    bin then costs about pᵦ·log(pᵦ/eps)); it biases the value by O(bins·eps).
    """
    if not eps > 0:
        raise ScorelabError(f"eps must be > 0, got {eps}")
    p, q = _histogram_pair(x, y, bins, range)
    ps = (p + eps) / (p + eps).sum()
    qs = (q + eps) / (q + eps).sum()
    return float(np.sum(ps * np.log(ps / qs)))


def histogram_tv_to_density(
    x: Any, log_prob_fn: LogProbFn, bins: int = 50, range: Range = None
) -> float:
    """TV = ½ Σᵦ |pᵦ − πᵦ|, πᵦ ∝ exp(log p(cᵦ))·|Bᵦ| (midpoint rule), normalised over the grid.

    The target's bin masses use the density at each bin centre times the bin area, so they are a
    midpoint-rule approximation; renormalising over the grid ignores target mass outside `range`
    (default: the sample's min/max) and makes an unnormalised log_prob_fn acceptable.
    """
    xt = _points(x, "x")
    d = xt.shape[1]
    if d not in (1, 2):
        raise ScorelabError(f"histogram metrics need 1-d or 2-d samples, got d={d}")
    if bins < 1:
        raise ScorelabError(f"bins must be ≥ 1, got {bins}")
    xn = xt.double().numpy()
    rng = _hist_range([xn], d, range)
    p = _histogram(xn, bins, rng, "x")
    edges = [np.linspace(lo, hi, bins + 1) for lo, hi in rng]
    mids = [0.5 * (e[1:] + e[:-1]) for e in edges]
    # indexing="ij" matches histogramdd's C-order flattening of the (bins, bins) count array.
    centres = np.stack([g.ravel() for g in np.meshgrid(*mids, indexing="ij")], axis=1)
    logp = torch.as_tensor(log_prob_fn(torch.as_tensor(centres, dtype=xt.dtype)))
    logp = logp.detach().double().cpu().reshape(-1)
    if logp.numel() != centres.shape[0]:
        raise ScorelabError(
            f"log_prob_fn returned {logp.numel()} values for {centres.shape[0]} bin centres"
        )
    if torch.isnan(logp).any() or not bool(torch.isfinite(logp).any()):
        raise ScorelabError("log_prob_fn returned NaN, or -inf at every bin centre")
    area = float(np.prod([(hi - lo) / bins for lo, hi in rng]))
    mass = torch.softmax(logp + np.log(area), dim=0).numpy()
    return 0.5 * float(np.abs(p - mass).sum())


# ---------------------------------------------------------------------------------------------
# score error


def fisher_divergence(
    score_fn: ScoreFn,
    target: Any,
    n: int | None = None,
    x: Any = None,
    *,
    sigma: float | Tensor | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> float | list[float]:
    """Fisher divergence E_{x∼p_σ} ‖s(x, σ) − ∇ₓ log p_σ(x)‖², p_σ = p ∗ N(0, σ²I).

    sigma=None: the clean law, E_{x∼p} ‖s(x, None) − target.score(x)‖², over n target samples
    or the given points x.  A scalar sigma: the exact noised law at σ — x ~ target.noised(σ)
    when n is given, reference target.noised_score(x, σ) — returning a float.  A list or 1-D
    tensor of levels: one such value per level, as a list of floats (n samples drawn afresh
    per level; x must be None, since points of one law cannot serve every level).

    `target` is the CLEAN law: passing `target.noised(σ)` together with sigma=σ would noise it
    twice.  A noise level needs a target with an exact noised law (`noised`, `noised_score`).
    """
    levels = _fisher_levels(sigma)
    if levels is None:
        return _fisher_at(score_fn, target, n, x, sigma, generator)
    if x is not None:
        raise ScorelabError(
            "fisher_divergence at several noise levels draws fresh samples per level: give n, "
            "not x (or call it once per level with a scalar sigma)"
        )
    if not hasattr(target, "noised_score"):
        raise ScorelabError(
            f"fisher_divergence at several noise levels needs a target with noised/noised_score, "
            f"got {type(target).__name__}"
        )
    return [_fisher_at(score_fn, target, n, None, level, generator) for level in levels]


def _fisher_levels(sigma: Any) -> list[float] | None:
    """A list/tuple/1-D array of levels as floats; None for a scalar or sigma=None."""
    if sigma is None:
        return None
    if isinstance(sigma, (list, tuple)):
        values = torch.as_tensor([float(v) for v in sigma], dtype=torch.float64)
    else:
        values = torch.as_tensor(sigma, dtype=torch.float64)
        if values.ndim == 0:
            return None
    if values.ndim != 1 or values.numel() == 0:
        raise ScorelabError(
            f"sigma must be a scalar or a non-empty 1-D list of levels, got shape "
            f"{tuple(values.shape)}"
        )
    return values.tolist()


def _fisher_at(
    score_fn: ScoreFn,
    target: Any,
    n: int | None,
    x: Any,
    sigma: float | Tensor | None,
    generator: torch.Generator | None,
) -> float:
    """One Fisher divergence at the clean law (sigma=None) or at one scalar noise level."""
    if (n is None) == (x is None):
        raise ScorelabError("fisher_divergence needs exactly one of n (samples to draw) or x")
    level = None if sigma is None else float(sigma)
    if level is not None and not (bool(np.isfinite(level)) and level >= 0):
        raise ScorelabError(f"sigma must be finite and ≥ 0, got {level}")
    noised = level is not None
    if noised and not hasattr(target, "noised_score"):
        raise ScorelabError(
            f"fisher_divergence at a noise level needs a target with an exact noised law "
            f"(noised/noised_score), got {type(target).__name__}"
        )
    if x is None:
        if n is None or n < 1:
            raise ScorelabError(f"n must be ≥ 1, got {n}")
        law = target.noised(level) if noised and level > 0 else target
        pts = law.sample(n, generator=generator)
    else:
        pts = x
    pts = _points(pts, "x")
    if pts.shape[1] != int(target.dim):
        raise ScorelabError(f"x has dimension {pts.shape[1]}, target has dimension {target.dim}")
    s = as_sigma(level, pts)
    est = torch.as_tensor(score_fn(pts, s))
    ref = torch.as_tensor(target.noised_score(pts, s) if noised else target.score(pts))
    if est.shape != pts.shape or ref.shape != pts.shape:
        raise ScorelabError(
            f"scores must have the points' shape {tuple(pts.shape)}, got score_fn "
            f"{tuple(est.shape)} and target.{'noised_score' if noised else 'score'} "
            f"{tuple(ref.shape)}"
        )
    if not bool(torch.isfinite(est).all()):
        raise ScorelabError("score_fn returned NaN or inf values")
    if not bool(torch.isfinite(ref).all()):
        raise ScorelabError("the target's exact score is not finite at these points")
    diff = est.detach().double() - ref.detach().double()
    return float(diff.square().sum(dim=1).mean())


# ---------------------------------------------------------------------------------------------
# Fréchet distance between Gaussian fits (FID-style)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Σ^{1/2} of a symmetric PSD matrix by eigh, eigenvalues clipped at 0 (round-off)."""
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_moments(mu_a: Any, cov_a: Any, mu_b: Any, cov_b: Any) -> float:
    """‖μa − μb‖² + tr Σa + tr Σb − 2‖Σa^{1/2} Σb^{1/2}‖_*, in float64 (‖·‖_* nuclear norm).

    The FID papers write the last term tr (ΣaΣb)^{1/2} and evaluate it with scipy's sqrtm,
    which returns complex round-off and fails on a singular product (the reference code then
    adds eps·I). Here the same number is the sum of singular values of Σa^{1/2}Σb^{1/2}
    (their squares are the eigenvalues of Σa^{1/2}ΣbΣa^{1/2}, similar to ΣaΣb): PSD square
    roots by eigh, then one SVD — real, no eps, fine for singular Σ (N < d, dead features).
    Taking singular values of the product, rather than square roots of eigenvalues of
    Σa^{1/2}ΣbΣa^{1/2}, keeps round-off at ε‖Σ‖ instead of √ε‖Σ‖ on the near-zero directions:
    a set against itself gives 0 to ~1e-13 relative. The result can be a round-off amount < 0.
    """
    ma, mb = np.asarray(mu_a, dtype=np.float64), np.asarray(mu_b, dtype=np.float64)
    ca, cb = np.asarray(cov_a, dtype=np.float64), np.asarray(cov_b, dtype=np.float64)
    d = ma.shape[0] if ma.ndim == 1 else -1
    if d < 1 or mb.shape != (d,) or ca.shape != (d, d) or cb.shape != (d, d):
        raise ScorelabError(
            f"moments must be means (d,) and covariances (d, d) of one d, got {ma.shape}, "
            f"{ca.shape}, {mb.shape}, {cb.shape}"
        )
    if not all(np.isfinite(a).all() for a in (ma, mb, ca, cb)):
        raise ScorelabError("moments contain NaN or inf values")
    ca, cb = 0.5 * (ca + ca.T), 0.5 * (cb + cb.T)
    tr_cross = float(np.linalg.svd(_psd_sqrt(ca) @ _psd_sqrt(cb), compute_uv=False).sum())
    diff = ma - mb
    return float(diff @ diff + np.trace(ca) + np.trace(cb) - 2.0 * tr_cross)


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (Heusel et al. 2017, FID).

    Means and unbiased (N − 1) covariances of the (N, d) sets, as in the reference FID code,
    then `frechet_distance_from_moments` (symmetric eigenvalue form: see there for why). The
    estimate is biased upwards by O(d/N): compare values computed at equal set sizes.
    """
    a, b = _pair(feats_a, feats_b, min_n=2)
    an, bn = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    return frechet_distance_from_moments(
        an.mean(axis=0),
        np.cov(an, rowvar=False, ddof=1).reshape(a.shape[1], a.shape[1]),
        bn.mean(axis=0),
        np.cov(bn, rowvar=False, ddof=1).reshape(b.shape[1], b.shape[1]),
    )
