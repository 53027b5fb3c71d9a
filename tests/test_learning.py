"""End to end: fit a score model with each objective and measure it against the exact score."""

import pytest
import torch

from scorelab.distributions import GaussianMixture, seed001_fig3
from scorelab.metrics import fisher_divergence, mixture_weights
from scorelab.models import EnergyMLP, EnergyScore, ScoreMLP, model_score_fn
from scorelab.objectives import DSM, ISM, NCSN, SSM
from scorelab.samplers import annealed_langevin, gaussian_prior
from scorelab.schedules import geometric_sigmas
from scorelab.train import fit

# Two overlapping modes: vanilla score matching can learn this without noise (no empty gap).
TARGET = GaussianMixture([[-1.5, 0.0], [1.5, 0.0]], stds=[0.6, 0.6], weights=[0.4, 0.6])


@pytest.fixture(scope="module")
def data():
    return TARGET.sample(4000, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def baseline():
    """E‖∇log p‖²: the Fisher divergence of the zero score, the scale errors are measured on."""
    g = torch.Generator().manual_seed(1)
    return fisher_divergence(lambda x, s: torch.zeros_like(x), TARGET, n=4000, generator=g)


# name, model builder, objective, steps, lr, EMA decay, noise level the objective estimates
CASES = [
    ("ism", lambda: ScoreMLP(2, hidden=64, depth=2), ISM(), 800, 3e-3, None, None),
    ("ssm", lambda: ScoreMLP(2, hidden=64, depth=2), SSM(), 800, 3e-3, None, None),
    (
        "ssm_vr",
        lambda: ScoreMLP(2, hidden=64, depth=2),
        SSM(variance_reduced=True),
        800,
        3e-3,
        None,
        None,
    ),
    # DSM's loss variance grows like 1/σ²: EMA of the weights averages that noise away
    ("dsm", lambda: ScoreMLP(2, hidden=64, depth=2), DSM(0.1), 1500, 3e-3, 0.99, 0.1),
    (
        "dsm (energy model)",
        lambda: EnergyScore(EnergyMLP(2, hidden=64, depth=2)),
        DSM(0.1),
        1500,
        3e-3,
        0.99,
        0.1,
    ),
]


@pytest.mark.parametrize(
    "name, build, objective, steps, lr, ema, sigma", CASES, ids=[c[0] for c in CASES]
)
def test_each_objective_learns_the_score(
    data, baseline, name, build, objective, steps, lr, ema, sigma
):
    """Threshold: Fisher divergence < 6% of E‖∇log p‖². Measured at seed 0 (this machine):
    ISM 2.0%, SSM 3.0%, SSM-VR 2.6%, DSM 3.2% (against the σ-noised law DSM estimates), so
    the bound leaves about a factor 2; an untrained network sits near 100%."""
    torch.manual_seed(0)
    model = build()
    untrained = fisher_divergence(
        model_score_fn(model),
        TARGET,
        n=4000,
        sigma=sigma,
        generator=torch.Generator().manual_seed(2),
    )
    res = fit(model, objective, data, steps=steps, batch_size=256, lr=lr, seed=0, ema_decay=ema)
    score_fn = model_score_fn(res.best_model())
    err = fisher_divergence(
        score_fn, TARGET, n=4000, sigma=sigma, generator=torch.Generator().manual_seed(2)
    )
    assert untrained > 0.3 * baseline
    assert err < 0.06 * baseline, (name, err / baseline)


def test_ncsn_model_samples_the_fig3_weights_with_annealed_langevin():
    """Seed 001's pipeline with a learned score: NCSN loss over a geometric ladder, then
    annealed Langevin with the network (no exact score anywhere). Weights within 0.05 (the
    binomial s.e. with 2000 chains is 0.009); measured 0.19 for the light mode at seed 0."""
    target = seed001_fig3()
    g = torch.Generator().manual_seed(0)
    data = target.sample(5000, generator=g)
    sigmas = geometric_sigmas(10.0, 0.1, 10)
    torch.manual_seed(0)
    model = ScoreMLP(2, hidden=128, depth=3, conditioning="sigma", scale_by_sigma=True)
    res = fit(
        model, NCSN(sigmas), data, steps=2000, batch_size=256, lr=1e-3, seed=0, ema_decay=0.999
    )
    score_fn = model_score_fn(res.best_model())
    out = annealed_langevin(
        score_fn,
        gaussian_prior(2000, 2, 10.0, generator=g),
        sigmas=sigmas,
        step_size=0.5 * 0.1**2,
        n_steps_each=100,
        denoise=True,
        generator=g,
    )
    assert mixture_weights(out.samples, target).tv < 0.05
    # the learned score is accurate where annealing starts (σ = 10) and where it ends (0.1),
    # relative to E‖∇log p_σ‖² ≈ d/(1 + σ²) for unit-variance modes: measured 0.2% and 5%
    fd = fisher_divergence(score_fn, target, n=2000, sigma=[10.0, 0.1], generator=g)
    assert fd[0] < 0.02 * 2 / (1 + 10.0**2)
    assert fd[1] < 0.15 * 2 / (1 + 0.1**2)
