"""Targets with exact sample / log_prob / score (and, where it exists, the exact noised law).

`TARGETS` maps the names used in configs and on the command line to builders.
"""

from scorelab.distributions.base import Target, target_log_prob_fn, target_score_fn
from scorelab.distributions.logconcave import LogConcaveMixture
from scorelab.distributions.mixture import Gaussian, GaussianMixture
from scorelab.distributions.presets import (
    ncsn_toy,
    seed000_logconcave,
    seed000_mixture,
    seed001_fig3,
    seed001_fig10,
)
from scorelab.distributions.toy import Checkerboard, NoisedCheckerboard, NoisyCircle, TwoMoons
from scorelab.registry import Registry

TARGETS: Registry[Target] = Registry("target")
for _name, _builder in [
    ("seed001_fig3", seed001_fig3),
    ("seed001_fig10", seed001_fig10),
    ("ncsn_toy", ncsn_toy),
    ("seed000_mixture", seed000_mixture),
    ("seed000_logconcave", seed000_logconcave),
    ("gaussian", Gaussian),
    ("gaussian_mixture", GaussianMixture),
    ("logconcave_mixture", LogConcaveMixture),
    ("circle", NoisyCircle),
    ("two_moons", TwoMoons),
    ("checkerboard", Checkerboard),
]:
    TARGETS.register(_name)(_builder)

__all__ = [
    "TARGETS",
    "Checkerboard",
    "Gaussian",
    "GaussianMixture",
    "LogConcaveMixture",
    "NoisedCheckerboard",
    "NoisyCircle",
    "Target",
    "TwoMoons",
    "ncsn_toy",
    "seed000_logconcave",
    "seed000_mixture",
    "seed001_fig10",
    "seed001_fig3",
    "target_log_prob_fn",
    "target_score_fn",
]
