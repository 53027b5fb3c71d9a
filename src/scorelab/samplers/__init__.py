"""Samplers: plain functions `sampler(score_fn, x0, *, ...) -> SampleResult`.

Langevin family (score_fn(x, σ)): langevin, annealed_langevin, mala, hmc.  Score-SDE family
(score_fn(x, t), an `sde=` from scorelab.sde): reverse_sde, ancestral, predictor_corrector,
probability_flow, and log_likelihood through the probability-flow ODE.

They see only a score function (and, for the Metropolis-adjusted kernels, a log-density);
they never import models or objectives.
"""

from scorelab.registry import Registry
from scorelab.samplers.hmc import hmc, leapfrog
from scorelab.samplers.init import from_data, gaussian_prior, uniform_box
from scorelab.samplers.langevin import annealed_langevin, langevin, steps_for_time, tweedie_denoise
from scorelab.samplers.likelihood import log_likelihood
from scorelab.samplers.mala import mala
from scorelab.samplers.sde_samplers import (
    ancestral,
    predictor_corrector,
    probability_flow,
    reverse_sde,
)

SAMPLERS: Registry = Registry("sampler")
SAMPLERS.register("langevin")(langevin)
SAMPLERS.register("annealed_langevin")(annealed_langevin)
SAMPLERS.register("mala")(mala)
SAMPLERS.register("hmc")(hmc)
SAMPLERS.register("reverse_sde")(reverse_sde)
SAMPLERS.register("ancestral")(ancestral)
SAMPLERS.register("predictor_corrector")(predictor_corrector)
SAMPLERS.register("probability_flow")(probability_flow)

__all__ = [
    "SAMPLERS",
    "ancestral",
    "annealed_langevin",
    "from_data",
    "gaussian_prior",
    "hmc",
    "langevin",
    "leapfrog",
    "log_likelihood",
    "mala",
    "predictor_corrector",
    "probability_flow",
    "reverse_sde",
    "steps_for_time",
    "tweedie_denoise",
    "uniform_box",
]
