"""Score models: shapes, conditioning, the energy score, and the sampler wrapper."""

import pytest
import torch

from scorelab import ScorelabError
from scorelab.models import (
    MODELS,
    EnergyMLP,
    EnergyScore,
    ScoreMLP,
    model_log_prob_fn,
    model_score_fn,
)
from scorelab.samplers import langevin, mala


def test_score_mlp_shapes_and_conditioning(gen):
    x = torch.randn(7, 3, generator=gen)
    sigma = torch.rand(7, generator=gen) + 0.1
    assert ScoreMLP(3)(x).shape == (7, 3)
    cond = ScoreMLP(3, conditioning="sigma")
    out = cond(x, sigma)
    assert out.shape == (7, 3)
    # the condition matters: another σ gives another output
    assert not torch.allclose(out, cond(x, 2 * sigma))
    with pytest.raises(ScorelabError, match="sigma-conditional: pass a sigma"):
        cond(x)
    with pytest.raises(ScorelabError, match="one sigma per sample"):
        cond(x, sigma[:3])
    with pytest.raises(ScorelabError, match=r"shape \(N, 3\)"):
        cond(torch.randn(7, 2), sigma)


def test_scale_by_sigma_divides_the_output_by_sigma(gen):
    torch.manual_seed(0)
    plain = ScoreMLP(2, conditioning="sigma")
    torch.manual_seed(0)
    scaled = ScoreMLP(2, conditioning="sigma", scale_by_sigma=True)
    x = torch.randn(5, 2, generator=gen)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 10.0])
    torch.testing.assert_close(scaled(x, sigma), plain(x, sigma) / sigma[:, None])
    with pytest.raises(ScorelabError, match="needs conditioning='sigma'"):
        ScoreMLP(2, scale_by_sigma=True)


def test_bad_model_arguments():
    with pytest.raises(ScorelabError, match="conditioning must be one of"):
        ScoreMLP(2, conditioning="noise")
    with pytest.raises(ScorelabError, match="activation must be one of"):
        ScoreMLP(2, activation="relu6")
    with pytest.raises(ScorelabError, match="positive"):
        ScoreMLP(0)


def test_energy_score_is_minus_the_energy_gradient(gen):
    e = EnergyMLP(3, hidden=32, conditioning="sigma").double()
    model = EnergyScore(e)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    sigma = torch.rand(6, generator=gen, dtype=torch.float64) + 0.1
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(e(xr, sigma).sum(), xr)
    torch.testing.assert_close(model(x, sigma), -g)
    torch.testing.assert_close(model.log_prob(x, sigma), -e(x, sigma))
    # the score works under no_grad (sampling) and trains under grad (objectives)
    with torch.no_grad():
        torch.testing.assert_close(model(x, sigma), -g)
    model(x, sigma).square().sum().backward()
    # every weight moves the score except the output bias: a constant shift of E (log Z)
    for name, p in e.named_parameters():
        if name == "head.bias":
            assert p.grad is None or p.grad.abs().max() == 0
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_energy_score_does_not_depend_on_a_constant_energy_shift(gen):
    """Seed 002: ∇log(e^{−E}/Z) = −∇E, so shifting E (i.e. changing Z) leaves the score alone."""
    e = EnergyMLP(2, hidden=16)
    model = EnergyScore(e)
    x = torch.randn(5, 2, generator=gen)
    before = model(x)
    with torch.no_grad():
        e.head.bias += 123.0
    torch.testing.assert_close(model(x), before)
    assert not torch.allclose(model.log_prob(x), -e(x) + 123.0)


def test_model_score_fn_builds_no_graph_and_ignores_sigma_for_vanilla_models(gen):
    m = ScoreMLP(2)
    sf = model_score_fn(m)
    x = torch.randn(4, 2, generator=gen)
    out = sf(x, torch.ones(4))  # an annealed sampler passes σ; a vanilla model ignores it
    assert not out.requires_grad
    torch.testing.assert_close(out, m(x).detach())


def test_models_plug_into_samplers(gen):
    """A model is a score function for every sampler, and an energy model a log-density too."""
    torch.manual_seed(0)
    model = MODELS.build("energy_mlp", dim=2, hidden=16)
    x0 = torch.randn(64, 2, generator=gen)
    res = langevin(model_score_fn(model), x0, step_size=1e-3, n_steps=5, generator=gen)
    assert res.samples.shape == (64, 2) and torch.isfinite(res.samples).all()
    res = mala(
        model_score_fn(model),
        x0,
        log_prob_fn=model_log_prob_fn(model),
        step_size=1e-3,
        n_steps=5,
        generator=gen,
    )
    assert res.info["acceptance_rate"] > 0.5
    with pytest.raises(ScorelabError, match="has no log-density"):
        model_log_prob_fn(ScoreMLP(2))
    with pytest.raises(ScorelabError, match="unknown model"):
        MODELS.get("unet")
