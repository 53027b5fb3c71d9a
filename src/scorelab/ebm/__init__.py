"""Energy-based models (seed 002): contrastive divergence with SGLD, RBMs, a binary MRF.

p(x) = exp(−E(x))/Z.  The library writes energies E (low = likely); seed 002 writes
f = −E.  Submodules: `cd` (continuous EBMs trained by contrastive divergence), `evaluate`
(a learned 2-D density normalised on a grid against an exact target), `rbm`
(Bernoulli–Bernoulli RBM), `mrf` (the binary denoising Markov random field).  docs/ebm.md.
"""

from scorelab.ebm.cd import CD, CDRecord, ReplayBuffer, contrastive_divergence, sgld
from scorelab.ebm.evaluate import GridDensity, ebm_samples, grid_density, grid_sample
from scorelab.ebm.mrf import (
    DenoiseResult,
    denoise_binary,
    eta_from_flip_rate,
    flip_pixels,
    geometric_temperatures,
    local_field,
    mrf_energy,
    pixel_accuracy,
)
from scorelab.ebm.rbm import (
    MAX_EXACT_HIDDEN,
    RBM,
    RBMFitResult,
    binarized_digits,
    fit_rbm,
    independent_bernoulli_log_prob,
)

__all__ = [
    "CD",
    "CDRecord",
    "DenoiseResult",
    "GridDensity",
    "MAX_EXACT_HIDDEN",
    "RBM",
    "RBMFitResult",
    "ReplayBuffer",
    "binarized_digits",
    "contrastive_divergence",
    "denoise_binary",
    "ebm_samples",
    "eta_from_flip_rate",
    "fit_rbm",
    "flip_pixels",
    "geometric_temperatures",
    "grid_density",
    "grid_sample",
    "independent_bernoulli_log_prob",
    "local_field",
    "mrf_energy",
    "pixel_accuracy",
    "sgld",
]
