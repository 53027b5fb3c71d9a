"""The one way a model becomes what samplers consume."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scorelab._types import LogProbFn, ScoreFn
from scorelab._utils import ScorelabError


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
