"""Networks for vectors: a score MLP and an energy MLP, unconditional or noise-conditional."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scorelab._utils import ScorelabError, append_dims

CONDITIONING = ("none", "sigma", "time")
_ACTIVATIONS = {"silu": nn.SiLU, "softplus": nn.Softplus, "elu": nn.ELU, "tanh": nn.Tanh}


class FourierEmbedding(nn.Module):
    """Random Fourier features [sin 2πfc, cos 2πfc] of a scalar c (log σ or t), f ~ N(0, s²).

    The frequencies are a fixed buffer (Tancik et al. 2020; Song et al. 2021 use them for t).
    """

    def __init__(self, dim: int = 32, scale: float = 1.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ScorelabError(f"embedding dim must be an even number >= 2, got {dim}")
        g = torch.Generator().manual_seed(0)  # the same features for every model of this size
        self.register_buffer("freqs", torch.randn(dim // 2, generator=g) * scale)

    def forward(self, c: Tensor) -> Tensor:
        angles = 2 * math.pi * c[:, None] * self.freqs.to(c)[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Trunk(nn.Module):
    """x ↦ h: `depth` hidden layers; the condition is added to every layer's pre-activation."""

    def __init__(
        self, dim: int, hidden: int, depth: int, conditioning: str, embed_dim: int, activation: str
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONING:
            raise ScorelabError(f"conditioning must be one of {CONDITIONING}, got '{conditioning}'")
        if activation not in _ACTIVATIONS:
            known = ", ".join(_ACTIVATIONS)
            raise ScorelabError(f"activation must be one of {known}, got '{activation}'")
        if dim < 1 or hidden < 1 or depth < 1:
            raise ScorelabError("dim, hidden and depth must be positive integers")
        self.dim = dim
        self.conditioning = conditioning
        self.layers = nn.ModuleList(
            [nn.Linear(dim if i == 0 else hidden, hidden) for i in range(depth)]
        )
        self.act = _ACTIVATIONS[activation]()
        if conditioning != "none":
            self.embed = FourierEmbedding(embed_dim)
            self.cond = nn.ModuleList([nn.Linear(embed_dim, hidden) for _ in range(depth)])

    def condition(self, sigma: Tensor | None, n: int) -> Tensor | None:
        if self.conditioning == "none":
            return None
        if sigma is None:
            raise ScorelabError(
                f"this model is {self.conditioning}-conditional: pass a {self.conditioning}"
            )
        c = sigma.reshape(-1)
        if c.shape[0] != n:
            raise ScorelabError(f"need one {self.conditioning} per sample ({n}), got {c.shape[0]}")
        # log σ spreads a geometric ladder evenly; t ∈ [0, 1] is used as it is
        return self.embed(c.log() if self.conditioning == "sigma" else c)

    def forward(self, x: Tensor, sigma: Tensor | None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ScorelabError(f"expected inputs of shape (N, {self.dim}), got {tuple(x.shape)}")
        emb = self.condition(sigma, x.shape[0])
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if emb is not None:
                h = h + self.cond[i](emb)
            h = self.act(h)
        return h


class ScoreMLP(nn.Module):
    """s_θ(x[, σ or t]) ∈ R^d: an MLP score network for vectors.

    conditioning="sigma" embeds log σ (NCSN), "time" embeds t (score SDEs); with
    scale_by_sigma=True the output is divided by σ (NCSNv2, Song & Ermon 2020, technique 3), so
    the network only has to learn σ·s, whose norm is O(1) at every level (seed 001 Fig. 5).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        depth: int = 3,
        *,
        conditioning: str = "none",
        scale_by_sigma: bool = False,
        embed_dim: int = 32,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if scale_by_sigma and conditioning != "sigma":
            raise ScorelabError("scale_by_sigma needs conditioning='sigma'")
        self.trunk = _Trunk(dim, hidden, depth, conditioning, embed_dim, activation)
        self.head = nn.Linear(hidden, dim)
        self.scale_by_sigma = scale_by_sigma

    @property
    def conditioning(self) -> str:
        return self.trunk.conditioning

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        out = self.head(self.trunk(x, sigma))
        if self.scale_by_sigma:
            out = out / append_dims(sigma, out.ndim)
        return out


class EnergyMLP(nn.Module):
    """E_θ(x[, σ or t]) ∈ R: a scalar energy; p_θ ∝ exp(−E_θ) (seed 002: f_θ = −E_θ).

    Smooth activations only (softplus by default): score matching differentiates E twice.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        depth: int = 3,
        *,
        conditioning: str = "none",
        embed_dim: int = 32,
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.trunk = _Trunk(dim, hidden, depth, conditioning, embed_dim, activation)
        self.head = nn.Linear(hidden, 1)

    @property
    def conditioning(self) -> str:
        return self.trunk.conditioning

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return self.head(self.trunk(x, sigma)).squeeze(-1)
