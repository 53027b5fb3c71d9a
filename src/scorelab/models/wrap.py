"""The one way a model becomes what samplers consume."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scorelab._types import LogProbFn, ScoreFn
from scorelab._utils import ScorelabError, append_dims
from scorelab.sde import SDE


def model_score_fn(model: nn.Module) -> ScoreFn:
    """score_fn(x, σ) = model(x, σ) without building a graph for the parameters.

    Unconditional models receive σ = None whatever the sampler passes, so a vanilla score
    model also works inside annealed samplers (as the "no noise conditioning" baseline).
    """
    conditional = getattr(model, "conditioning", "none") != "none"

    def score_fn(x: Tensor, sigma: Tensor | None = None) -> Tensor:
        with torch.no_grad():
            return model(x, sigma if conditional else None)

    return score_fn


def model_log_prob_fn(model: nn.Module) -> LogProbFn:
    """The unnormalised log-density of an energy-parameterised model, for MALA and HMC."""
    if not hasattr(model, "log_prob"):
        raise ScorelabError(
            f"{type(model).__name__} has no log-density: MALA and HMC need an energy model "
            "(EnergyScore); use langevin or hmc without log_prob_fn instead"
        )

    def log_prob_fn(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model.log_prob(x)

    return log_prob_fn


class MarginalStdScaled(nn.Module):
    """s_θ(x, t) = net(x, t)/s(t), s(t) the SDE's marginal std: NCSNv2's output scaling
    (Song & Ermon 2020, technique 3) in continuous time, as score_sde divides its continuous
    models' outputs by the marginal std.  The network then learns −z, O(1) at every t, where
    the score itself runs from O(1/s(eps)) to O(1/s(T)).  `[model] scale_by_sigma = true` in an
    SDE run (the default for score_mlp)."""

    def __init__(self, net: nn.Module, sde: SDE) -> None:
        super().__init__()
        self.net = net
        self.sde = sde

    @property
    def conditioning(self) -> str:
        return "time"

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        if t is None:
            raise ScorelabError("this model is time-conditional: pass a time")
        _, std = self.sde.marginal(t)
        return self.net(x, t) / append_dims(std.to(x.dtype), x.ndim)
