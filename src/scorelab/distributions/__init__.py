"""Targets with exact sample / log_prob / score (and, where it exists, the exact noised law)."""

from scorelab.distributions.base import Target, target_log_prob_fn, target_score_fn
from scorelab.distributions.mixture import Gaussian, GaussianMixture
from scorelab.distributions.presets import ncsn_toy, seed000_mixture, seed001_fig3, seed001_fig10

__all__ = [
    "Gaussian",
    "GaussianMixture",
    "Target",
    "ncsn_toy",
    "seed000_mixture",
    "seed001_fig10",
    "seed001_fig3",
    "target_log_prob_fn",
    "target_score_fn",
]
