"""Energy networks and the wrapper that makes one a score model: s(x, σ) = −∇ₓE(x, σ) (seed 002).

EnergyScore turns any energy network into a score model (Z is never needed); GaussianEnergy is
the quadratic family with a closed-form answer; EnergyConvNet is a small image energy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorelab._utils import ScorelabError, as_image_batch


class EnergyScore(nn.Module):
    """s_θ(x, σ) = −∇ₓE_θ(x, σ) by autograd, and log p̃_θ(x) = −E_θ(x) for MALA/HMC.

    The score of an EBM does not depend on the partition function: ∇ log(e^{−E}/Z) = −∇E.
    The gradient is taken with torch.func.grad, so it composes with vmap/jacrev (exact ISM
    trace) and with ordinary backpropagation to θ (every objective trains it), and it works
    under torch.no_grad() (sampling).
    """

    def __init__(self, energy: nn.Module) -> None:
        super().__init__()
        self.energy = energy

    @property
    def conditioning(self) -> str:
        return getattr(self.energy, "conditioning", "none")

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return -torch.func.grad(lambda z: self.energy(z, sigma).sum())(x)

    def log_prob(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        """Unnormalised log-density −E_θ(x, σ), shape (N,)."""
        return -self.energy(x, sigma)


class GaussianEnergy(nn.Module):
    """E_θ(x) = ½Σᵢ λᵢ(xᵢ − μᵢ)², λ = exp(log_precision): p_θ = N(μ, diag(1/λ)) exactly.

    The smallest energy family with a known answer (seed 002's exponential-family example):
    maximum likelihood sets μ to the data mean and 1/λ to the data variance, so contrastive
    divergence and score matching can be checked against closed forms.  log Z = ½Σ log(2π/λ).
    """

    def __init__(
        self, dim: int, mean: Tensor | None = None, log_precision: Tensor | None = None
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ScorelabError(f"GaussianEnergy needs dim >= 1, got {dim}")
        mu = torch.zeros(dim) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        lp = (
            torch.zeros(dim)
            if log_precision is None
            else torch.as_tensor(log_precision, dtype=torch.float32)
        )
        if mu.shape != (dim,) or lp.shape != (dim,):
            raise ScorelabError(f"mean and log_precision must have shape ({dim},)")
        self.mean = nn.Parameter(mu.clone())
        self.log_precision = nn.Parameter(lp.clone())

    @property
    def conditioning(self) -> str:
        return "none"

    @property
    def precision(self) -> Tensor:
        return self.log_precision.exp()

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return 0.5 * (self.precision * (x - self.mean).square()).sum(-1)

    def log_partition(self) -> Tensor:
        """log Z_θ = ½Σᵢ log(2π/λᵢ)."""
        return 0.5 * (math.log(2 * math.pi) - self.log_precision).sum()


class EnergyConvNet(nn.Module):
    """E_θ(x) ∈ R for small images: three 3×3 convolutions (stride 1, 2, 2) with SiLU, a global
    mean pool and a linear head; p_θ ∝ exp(−E_θ) (seed 002; the conv EBM of Du & Mordatch 2019,
    shrunk for 8×8 digits / 28×28 MNIST on a CPU).

    Layout (F = ``n_features``): conv C→F at H×W, conv F→2F at ⌈H/2⌉, conv 2F→4F at ⌈H/4⌉,
    mean over space, linear 4F→1.  SiLU is smooth, so score matching can differentiate E
    twice.  Takes images (N, C, H, W) or flat rows (N, C·H·W), as models/ncsn.py does, and
    returns E (N,).  Unconditional: ``sigma`` is accepted and ignored, as in EnergyMLP.
    """

    def __init__(self, channels: int = 1, image_size: int = 8, n_features: int = 16) -> None:
        super().__init__()
        if channels < 1 or image_size < 2 or n_features < 1:
            raise ScorelabError(
                "EnergyConvNet needs channels >= 1, image_size >= 2 and n_features >= 1, got "
                f"{channels}, {image_size}, {n_features}"
            )
        f = n_features
        self.shape = (channels, image_size, image_size)
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(channels, f, 3, padding=1),
                nn.Conv2d(f, 2 * f, 3, stride=2, padding=1),
                nn.Conv2d(2 * f, 4 * f, 3, stride=2, padding=1),
            ]
        )
        self.head = nn.Linear(4 * f, 1)

    @property
    def conditioning(self) -> str:
        return "none"

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        h = as_image_batch(x, self.shape, "EnergyConvNet")
        for conv in self.convs:
            h = F.silu(conv(h))
        return self.head(h.mean((2, 3))).squeeze(-1)
