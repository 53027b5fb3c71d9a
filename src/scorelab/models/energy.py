"""An energy network as a score model: s(x, σ) = −∇ₓE(x, σ), Z never needed (seed 002)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
