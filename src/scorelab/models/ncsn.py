"""NCSN for images: a small U-Net score network with (conditional) instance normalisation++.

Seed 001 §3.2 (Song & Ermon 2019) conditions a RefineNet on the noise-level index i through
conditional instance normalisation++ (eq. 10). This is a compact U-Net-style variant of that
network, sized for 8×8 digits and 28×28 MNIST on a CPU. It comes in three variants:

- ``"ncsn"``: noise-conditional. Each norm holds γ, β, α ∈ R^{L×C}, one row per level of the
  σ ladder. A per-sample σ is mapped to the nearest ladder level in log-space.
- ``"ncsnv2"``: unconditional norm++, output divided by σ (Song & Ermon 2020, technique 3).
  It works for any σ > 0 and needs no ladder.
- ``"time"``: time-conditional, for the SDE samplers. Random Fourier features of t (scale 16,
  as in NCSN++) pass through an MLP that gives each residual block a per-channel bias (as in
  DDPM / NCSN++); the norms are unconditional.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorelab._utils import ScorelabError, append_dims, as_image_batch, as_sigma
from scorelab.models.mlp import FourierEmbedding

VARIANTS = ("ncsn", "ncsnv2", "time")


class InstanceNormPlus(nn.Module):
    """Conditional instance normalisation++ (seed 001 eq. 10), one (γ, β, α) row per level.

    z_k = γ[i,k]·(x_k − μ_k)/s_k + β[i,k] + α[i,k]·(μ_k − m)/v

    μ_k and s_k are the spatial mean and std of feature map k: the biased variance plus
    ``eps``, as in instance norm. m and v are the mean and std over the channels of the μ_k,
    per sample: the unbiased variance plus ``eps``, as in the NCSN reference code. The α term
    puts back the relative channel means that instance norm removes; without it, colours
    shift. With ``num_levels=1`` and ``level=None`` this is the unconditional norm++.
    γ and α start at N(1, 0.02²) and β at 0.
    """

    def __init__(self, num_features: int, num_levels: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        if num_features < 2:
            raise ScorelabError(f"instance norm++ needs >= 2 channels, got {num_features}")
        self.eps = eps
        self.gamma = nn.Parameter(1 + 0.02 * torch.randn(num_levels, num_features))
        self.beta = nn.Parameter(torch.zeros(num_levels, num_features))
        self.alpha = nn.Parameter(1 + 0.02 * torch.randn(num_levels, num_features))

    def forward(self, x: Tensor, level: Tensor | None = None) -> Tensor:
        mu = x.mean((2, 3))  # (N, C)
        # group norm with one group per channel is instance norm: (x − μ_k)/s_k in one fused op
        # (torch's var over (H, W) is several times slower on CPU)
        x_hat = F.group_norm(x, x.shape[1], eps=self.eps)
        m = mu.mean(1, keepdim=True)
        v = (mu.var(1, keepdim=True) + self.eps).sqrt()
        rows = slice(0, 1) if level is None else level  # (1, C) broadcasts; (N, C) per sample
        gamma, beta, alpha = self.gamma[rows], self.beta[rows], self.alpha[rows]
        shift = beta + alpha * (mu - m) / v
        return torch.addcmul(shift[:, :, None, None], gamma[:, :, None, None], x_hat)


class _ResBlock(nn.Module):
    """x + conv3×3(ELU(norm(conv3×3(ELU(norm(x))) + time bias))), at a constant width."""

    def __init__(self, channels: int, num_levels: int, emb_dim: int | None) -> None:
        super().__init__()
        self.norm1 = InstanceNormPlus(channels, num_levels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = InstanceNormPlus(channels, num_levels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.emb = None if emb_dim is None else nn.Linear(emb_dim, channels)

    def forward(self, x: Tensor, level: Tensor | None, emb: Tensor | None) -> Tensor:
        h = self.conv1(F.elu(self.norm1(x, level)))
        if self.emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        return x + self.conv2(F.elu(self.norm2(h, level)))


class NCSN(nn.Module):
    """s_θ(x, σ or t) for images (N, C, H, W): a two-level U-Net with instance norm++ and ELU.

    Layout (F = ``n_features``): conv3×3 C→F; ResBlock(F) at H×W; a stride-2 conv F→3F down to
    ⌈H/2⌉×⌈W/2⌉; two ResBlock(3F); a conv 3F→F, upsampled (nearest) to the skip's exact size
    so odd sizes work; added to the skip; ResBlock(F); norm, ELU, conv3×3 F→C. Most weights sit
    at the half resolution, where a weight costs a quarter of the compute: on one CPU thread a
    training step is dominated by the full-resolution convolutions.
    See the module docstring for the variants. ``forward`` also accepts flat (N, C·H·W) rows,
    the form the per-sample objectives use, and returns the output in the input's shape.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 8,
        n_features: int = 16,
        sigmas: Sequence[float] | Tensor | None = None,
        variant: str = "ncsn",
        *,
        embed_dim: int = 64,
        fourier_scale: float = 16.0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ScorelabError(f"NCSN variant must be one of {VARIANTS}, got '{variant}'")
        if channels < 1 or image_size < 2 or n_features < 2:
            raise ScorelabError(
                f"NCSN needs channels >= 1, image_size >= 2 and n_features >= 2, got "
                f"{channels}, {image_size}, {n_features}"
            )
        self.variant = variant
        self.shape = (channels, image_size, image_size)
        levels = 1
        if variant == "ncsn":
            if sigmas is None:
                raise ScorelabError("NCSN variant 'ncsn' needs the noise ladder: pass sigmas=[...]")
            s = torch.as_tensor(sigmas, dtype=torch.float32).detach().reshape(-1)
            if s.numel() == 0 or not bool(torch.isfinite(s).all() & (s > 0).all()):
                raise ScorelabError(f"NCSN sigmas must be finite and positive, got {sigmas}")
            self.register_buffer("log_sigmas", s.log())
            levels = s.numel()
        f, ch = n_features, 3 * n_features
        emb = None
        if variant == "time":
            emb = embed_dim
            self.embed = nn.Sequential(
                FourierEmbedding(embed_dim, scale=fourier_scale),
                nn.Linear(embed_dim, embed_dim),
                nn.ELU(),
                nn.Linear(embed_dim, embed_dim),
                nn.ELU(),
            )
        self.head = nn.Conv2d(channels, f, 3, padding=1)
        self.enc = _ResBlock(f, levels, emb)
        self.down = nn.Conv2d(f, ch, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([_ResBlock(ch, levels, emb) for _ in range(2)])
        self.up = nn.Conv2d(ch, f, 3, padding=1)
        self.dec = _ResBlock(f, levels, emb)
        self.out_norm = InstanceNormPlus(f, levels)
        self.tail = nn.Conv2d(f, channels, 3, padding=1)

    @property
    def conditioning(self) -> str:
        return "time" if self.variant == "time" else "sigma"

    @property
    def scale_by_sigma(self) -> bool:
        return self.variant == "ncsnv2"

    def level_index(self, sigma: Tensor) -> Tensor:
        """The ladder level nearest to each σ in log-space (the 'ncsn' variant), shape (N,)."""
        dist = (sigma.log()[:, None] - self.log_sigmas[None]).abs()
        return dist.argmin(1)

    def summary(self) -> str:
        """One line: variant, input shape, widths, norm and parameter count."""
        c, h, w = self.shape
        f = self.head.out_channels
        if self.variant == "ncsn":
            norm = f"CondInstanceNorm++ over {self.log_sigmas.numel()} σ levels"
        elif self.variant == "ncsnv2":
            norm = "InstanceNorm++, output / σ"
        else:
            norm = "InstanceNorm++, Fourier(t) channel biases"
        n = sum(p.numel() for p in self.parameters())
        return (
            f"NCSN[{self.variant}] U-Net {c}×{h}×{w}, features {f}/{3 * f}, "
            f"2 resolutions, ELU, {norm}: {n:,} parameters"
        )

    def forward(self, x: Tensor, sigma: Tensor | float | None = None) -> Tensor:
        h = as_image_batch(x, self.shape, "NCSN")
        if sigma is None:
            raise ScorelabError(
                f"NCSN is {self.conditioning}-conditional: pass a {self.conditioning}"
            )
        c = as_sigma(sigma, h)
        if self.conditioning == "sigma" and not bool((c > 0).all()):
            raise ScorelabError("NCSN noise levels sigma must be positive")
        level = self.level_index(c) if self.variant == "ncsn" else None
        emb = self.embed(c) if self.variant == "time" else None

        skip = self.enc(self.head(h), level, emb)
        h = F.elu(self.down(skip))
        for block in self.mid:
            h = block(h, level, emb)
        h = F.interpolate(self.up(h), size=skip.shape[-2:], mode="nearest")
        h = self.dec(h + skip, level, emb)
        out = self.tail(F.elu(self.out_norm(h, level)))
        if self.scale_by_sigma:
            out = out / append_dims(c, out.ndim)
        return out.reshape(x.shape)


def ncsn(
    dim: int | None = None,
    *,
    channels: int = 1,
    image_size: int | None = None,
    n_features: int = 16,
    sigmas: Sequence[float] | Tensor | None = None,
    variant: str = "ncsn",
    embed_dim: int = 64,
    fourier_scale: float = 16.0,
) -> NCSN:
    """NCSN U-Net for square images; image_size defaults to √(dim/channels) for flat data."""
    if image_size is None:
        if dim is None:
            raise ScorelabError("ncsn model: give image_size (or the flat data dim)")
        side = round((dim / channels) ** 0.5)
        if side * side * channels != dim:
            raise ScorelabError(
                f"ncsn model: flat dim {dim} is not {channels} square image(s); set image_size"
            )
        image_size = side
    elif dim is not None and dim != channels * image_size**2:
        raise ScorelabError(
            f"ncsn model: data dim {dim} != channels·image_size² = {channels * image_size**2}"
        )
    return NCSN(
        channels,
        image_size,
        n_features,
        sigmas,
        variant,
        embed_dim=embed_dim,
        fourier_scale=fourier_scale,
    )
