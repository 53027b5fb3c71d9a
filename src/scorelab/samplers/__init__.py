"""Samplers: plain functions `sampler(score_fn, x0, *, ...) -> SampleResult`.

They see only a score function (and, for the Metropolis-adjusted kernels, a log-density);
they never import models or objectives.
"""

from scorelab.registry import Registry
from scorelab.samplers.hmc import hmc, leapfrog
from scorelab.samplers.init import from_data, gaussian_prior, uniform_box
from scorelab.samplers.langevin import annealed_langevin, langevin, steps_for_time, tweedie_denoise
from scorelab.samplers.mala import mala

SAMPLERS: Registry = Registry("sampler")
SAMPLERS.register("langevin")(langevin)
SAMPLERS.register("annealed_langevin")(annealed_langevin)
SAMPLERS.register("mala")(mala)
SAMPLERS.register("hmc")(hmc)

__all__ = [
    "SAMPLERS",
    "annealed_langevin",
    "from_data",
    "gaussian_prior",
    "hmc",
    "langevin",
    "leapfrog",
    "mala",
    "steps_for_time",
    "tweedie_denoise",
    "uniform_box",
]
