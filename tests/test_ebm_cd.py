"""Continuous EBMs (seed 002): SGLD on energies, contrastive divergence (noise / data / PCD),
score matching on the same EnergyScore, grid normalisation and long-run samples, the "ebm-cd"
experiment.  Library convention p ∝ exp(−E); seed 002's f = −E.

Gaussian energies make every answer closed-form: the unadjusted Langevin step h on
E = ½λ(x − μ)² has stationary law N(μ, 1/(λ(1 − hλ/4))) (the AR(1) x ← (1 − hλ/2)x + √h z),
so CD's fixed point for the GaussianEnergy family is the model variance s with
s²/(s − h/4) = v_data, i.e. s = (v + √(v² − vh))/2 ≈ v − h/4: the SGLD bias is predicted, not
hidden in a tolerance.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from scorelab._utils import ScorelabError
from scorelab.distributions import Gaussian, GaussianMixture
from scorelab.ebm.cd import CD, ReplayBuffer, contrastive_divergence, sgld
from scorelab.ebm.evaluate import ebm_samples, grid_density
from scorelab.experiments import get_experiment
from scorelab.models import MODELS, EnergyConvNet, EnergyMLP, EnergyScore, GaussianEnergy, ScoreMLP
from scorelab.models.wrap import model_score_fn
from scorelab.objectives import DSM
from scorelab.samplers import langevin
from scorelab.train import fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MU, VAR = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])


def _data(n: int = 4096, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + VAR.sqrt() * torch.randn(n, 2, generator=g)


def _ula_fixed_point(v: torch.Tensor, h: float) -> torch.Tensor:
    """Model variance s whose ULA chain (step h) has stationary variance v: s²/(s − h/4) = v."""
    return (v + (v * v - v * h).sqrt()) / 2


def _gaussian_energy(mean, precision) -> GaussianEnergy:
    return GaussianEnergy(
        len(mean), torch.tensor(mean), torch.tensor(precision, dtype=torch.float32).log()
    )


# -- SGLD --------------------------------------------------------------------------------------
def test_sgld_is_the_library_langevin_step_on_minus_grad_e():
    """Seed 002's x + ε∇f + √(2ε)η with h = 2ε is samplers.langevin on s = −∇E: same draws,
    same states (float64, so only rounding could differ)."""
    torch.manual_seed(0)
    net = EnergyMLP(2, 16, 2).double()
    x0 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = sgld(net, x0, step_size=0.05, n_steps=25, generator=torch.Generator().manual_seed(2))
    b = langevin(
        model_score_fn(EnergyScore(net)),
        x0,
        step_size=0.05,
        n_steps=25,
        generator=torch.Generator().manual_seed(2),
    )
    assert a.nfe == 25
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=1e-12)


def test_sgld_stationary_moments_match_the_exact_ula_law(gen):
    """20 000 chains, h = 0.2, λ = (4, 0.25): stationary N(μ, 1/(λ(1 − hλ/4))) = variances
    (0.3125, 4.051), 25 % and 1.3 % above 1/λ.  300 steps leave (1 − hλ/2)^300 ≤ 5e-4 of the
    start.  Tolerances: 4 s.e. (variance: √(2/n) = 1 %; mean: √(v/n))."""
    e = _gaussian_energy([1.0, -1.0], [4.0, 0.25])
    h, n = 0.2, 20_000
    x = sgld(e, torch.zeros(n, 2), step_size=h, n_steps=300, generator=gen).samples
    lam = torch.tensor([4.0, 0.25])
    var_ula = 1.0 / (lam * (1.0 - h * lam / 4.0))
    assert torch.all((x.mean(0) - e.mean.detach()).abs() < 4 * (var_ula / n).sqrt())
    assert torch.all((x.var(0) / var_ula - 1.0).abs() < 4 * math.sqrt(2 / n))
    assert x.var(0)[0] > 1.15 / lam[0]  # the discretisation bias is there, and measured


def test_mala_removes_the_bias_that_sgld_has(gen):
    """Same energy and step: MALA's stationary law is exactly N(μ, 1/λ) (variance 0.25 in the
    stiff coordinate); unadjusted Langevin gives 0.3125.  4000 chains: s.e. of a variance ≈ 2.2 %,
    tolerance 10 % (≈ 4.5 s.e.) is far from the 25 % bias."""
    e = _gaussian_energy([1.0, -1.0], [4.0, 0.25])
    x0 = torch.zeros(4000, 2)
    mala = ebm_samples(EnergyScore(e), x0, step_size=0.2, n_steps=300, generator=gen)
    ula = ebm_samples(e, x0, step_size=0.2, n_steps=300, method="langevin", generator=gen)
    assert abs(float(mala.samples[:, 0].var()) / 0.25 - 1) < 0.10
    assert abs(float(ula.samples[:, 0].var()) / 0.3125 - 1) < 0.10
    assert 0.5 < mala.info["acceptance_rate"] < 1.0


def test_sgld_box_and_grad_clip_bound_each_step(gen):
    """box clamps every state; grad_clip caps the drift (h/2)‖∇E‖ at (h/2)·clip even for a
    precision of 1e6 (whose raw drift would be 5e3 here)."""
    e = _gaussian_energy([0.0, 0.0], [1e6, 1e6])
    x0 = torch.ones(8, 2)
    state = gen.get_state()
    out = sgld(e, x0, step_size=0.01, n_steps=1, generator=gen, grad_clip=1.0).samples
    gen.set_state(state)
    z = torch.randn(8, 2, generator=gen)
    drift = out - x0 - 0.1 * z
    assert torch.all(drift.norm(dim=1) <= 0.005 * (1 + 1e-5))
    boxed = sgld(e, 3 * x0, step_size=0.5, n_steps=5, generator=gen, box=(-0.5, 0.5)).samples
    assert boxed.abs().max() <= 0.5


# -- contrastive divergence ----------------------------------------------------------------------
def test_cd_k_from_the_data_recovers_mean_and_variance():
    """CD-10 (h = 0.1) on 4096 points of N((1, −2), diag(0.5, 2)), α = 0.  Targets are the
    sample moments (so data noise cancels) with the predicted SGLD shrinkage s ≈ v − h/4 (−5 % in
    the first coordinate).  Over seeds 0–3 the optimiser's jitter was ≤ 0.02 in the mean and
    ≤ 1.5 % in the variance; tolerances are 0.06 and 3 %, so the uncorrected v fails."""
    data = _data()
    v = data.var(0, unbiased=False)
    torch.manual_seed(0)
    rec = contrastive_divergence(
        GaussianEnergy(2), data, steps=500, k=10, step_size=0.1, init="data", alpha=0.0,
        lr=0.03, ema_decay=0.98, batch_size=1024, seed=0,
    )  # fmt: skip
    e = rec.model
    assert torch.all((e.mean.detach() - data.mean(0)).abs() < 0.06)
    ratio = (1 / e.precision.detach()) / _ula_fixed_point(v, 0.1)
    assert torch.all((ratio - 1).abs() < 0.03)
    assert not rec.diverging and rec.messages == []
    assert len(rec.steps) == len(rec.e_pos) == len(rec.e_neg) == 500 // 50


def test_pcd_and_dsm_train_the_same_energy_score():
    """One EnergyScore(GaussianEnergy) class, two objectives from the same start.  PCD (buffer,
    no restarts, h = 0.1) → the ULA fixed point as above; DSM(σ = 0.3) → the noised law
    N(x̄, v + σ²) (+0.09: +18 % in the first coordinate).  Jitter over seeds 0–3: ≤ 0.025 in
    the means, ≤ 1.5 % (PCD) and ≤ 1.5 % (DSM) in the variances; tolerances 0.06 and 4 %."""
    data = _data()
    v = data.var(0, unbiased=False)
    torch.manual_seed(0)
    cd_model = EnergyScore(GaussianEnergy(2))
    dsm_model = EnergyScore(GaussianEnergy(2))
    dsm_model.load_state_dict(cd_model.state_dict())

    rec = contrastive_divergence(
        cd_model, data, steps=500, k=10, step_size=0.1, init="buffer", alpha=0.0,
        noise="gaussian", noise_scale=2.0, restart_prob=0.0, buffer_size=4096,
        lr=0.03, ema_decay=0.98, batch_size=1024, seed=0,
    )  # fmt: skip
    res = fit(dsm_model, DSM(0.3), data, steps=500, batch_size=1024, lr=0.03, ema_decay=0.98)
    assert isinstance(rec.model, EnergyScore) and rec.objective.buffer is not None
    for model, var in ((rec.model, _ula_fixed_point(v, 0.1)), (res.best_model(), v + 0.09)):
        e = model.energy
        assert torch.all((e.mean.detach() - data.mean(0)).abs() < 0.06)
        assert torch.all(((1 / e.precision.detach()) / var - 1).abs() < 0.04)


def test_replay_buffer_restarts_at_the_stated_rate(gen):
    """restart_prob = 0.25 over 50 draws of 200: 10 000 Bernoulli trials, s.e. 0.0043; 4 s.e."""
    buf = ReplayBuffer(size=1000, restart_prob=0.25)

    def noise(m, g):
        return torch.randn(m, 2, generator=g)

    for _ in range(50):
        x0, idx = buf.draw(200, noise, gen)
        assert idx.unique().numel() == 200  # distinct chains per batch
        buf.update(idx, x0 + 100.0)
    assert abs(buf.restart_fraction - 0.25) < 4 * 0.0043


def test_cd_is_deterministic_given_the_seed():
    def one(seed: int):
        torch.manual_seed(0)
        rec = contrastive_divergence(
            EnergyScore(EnergyMLP(2, 16, 2)), _data(256), steps=12, k=3, step_size=0.05,
            init="buffer", buffer_size=256, batch_size=32, log_every=4, seed=seed,
        )  # fmt: skip
        return torch.cat([p.detach().flatten() for p in rec.model.parameters()]), rec.e_neg

    (a, ea), (b, eb), (c, _) = one(3), one(3), one(4)
    assert torch.equal(a, b) and ea == eb
    assert not torch.equal(a, c)


def test_cd_warns_while_training_when_energies_run_away():
    """A threshold the run must cross (|E| > 1e-3 at once) warns during training, once per kind,
    and marks the record; a healthy run (above) does neither."""
    torch.manual_seed(0)
    with pytest.warns(RuntimeWarning, match="contrastive divergence may be diverging") as ws:
        rec = contrastive_divergence(
            GaussianEnergy(2), _data(256), steps=20, k=2, step_size=0.05, init="noise",
            batch_size=32, log_every=5, max_energy=1e-3, max_gap=1e9,
        )  # fmt: skip
    assert rec.diverging and len(rec.messages) == 1 and "alpha" in rec.messages[0]
    assert sum("diverging" in str(w.message) for w in ws) == 1


def test_cd_trains_a_conv_energy_on_digits():
    """Images: EnergyConvNet on the 8×8 digits in [0, 1] with box-clamped SGLD.  After 40 PCD
    steps the data sit lower than uniform noise: mean E(noise) − mean E(data) measured 0.77–0.81
    over seeds 0–2 (untrained: |gap| < 0.002); > 0.2 leaves room for a different seed."""
    from scorelab.images import load_digits

    x = load_digits("train").images[:512]
    torch.manual_seed(0)
    rec = contrastive_divergence(
        EnergyConvNet(1, 8, 8), x, steps=40, k=5, step_size=0.01, init="buffer", box=(0.0, 1.0),
        sgld_grad_clip=10.0, buffer_size=256, batch_size=32, lr=3e-3, log_every=10,
    )  # fmt: skip
    noise = torch.rand(512, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        gap = float(rec.model(noise).mean() - rec.model(x).mean())
    assert gap > 0.2
    neg = rec.objective.last_negatives
    assert neg is not None and neg.shape == (32, 1, 8, 8) and 0 <= neg.min() and neg.max() <= 1


# -- models --------------------------------------------------------------------------------------
def test_gaussian_and_conv_energies():
    e = _gaussian_energy([1.0, -1.0], [4.0, 0.25])
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    exact = Gaussian([1.0, -1.0], [0.25, 4.0]).log_prob(x)
    torch.testing.assert_close(-e(x) - e.log_partition(), exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(EnergyScore(e)(x), -(x - e.mean) * e.precision)

    net = EnergyConvNet(1, 8, 4)
    imgs = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert net(imgs).shape == (3,)
    torch.testing.assert_close(net(imgs.flatten(1)), net(imgs))
    s = EnergyScore(net)(imgs)
    assert s.shape == imgs.shape and torch.isfinite(s).all()
    built = MODELS.build("energy_conv", dim=64)
    assert isinstance(built, EnergyScore) and built.energy.shape == (1, 8, 8)


# -- evaluation ----------------------------------------------------------------------------------
def test_grid_normalisation_is_exact_for_gaussian_energies():
    """The model equals the target: TV ≈ 0 and log Z = log_partition (midpoint rule, box ±8 s.d.).
    Model mean shifted by δ (Mahalanobis): TV = 2Φ(δ/2) − 1, KL = δ²/2 exactly."""
    e = _gaussian_energy([0.5, -0.5], [1.0, 4.0])
    target = Gaussian([0.5, -0.5], [1.0, 0.25])
    box = dict(xlim=(-7.5, 8.5), ylim=(-4.5, 3.5), n=300)
    gd = grid_density(e, target, **box)
    assert gd.tv < 1e-4 and abs(gd.kl) < 1e-5 and abs(gd.true_mass - 1) < 1e-6
    assert abs(gd.log_z - float(e.log_partition().detach())) < 1e-3
    assert gd.mode_weights is not None and abs(gd.mode_weights[0] - 1) < 1e-9

    shifted = _gaussian_energy([1.5, -0.5], [1.0, 4.0])  # δ = 1
    gs = grid_density(EnergyScore(shifted), target, **box)
    tv_exact = 2 * 0.5 * (1 + math.erf(0.5 / math.sqrt(2))) - 1
    assert abs(gs.tv - tv_exact) < 2e-3 and abs(gs.kl - 0.5) < 2e-3
    json.dumps(gs.as_dict(), allow_nan=False)


def test_grid_mode_weights_of_the_exact_mixture_energy():
    """E = −log p of a well-separated mixture (modes 6 s.d. apart): each argmax region holds its
    component's weight up to the tail mass across the boundary (Φ(−3) ≈ 1e-3)."""
    target = GaussianMixture([[-3.0, 0.0], [3.0, 0.0]], stds=[1.0, 1.0], weights=[0.3, 0.7])

    class Exact(torch.nn.Module):
        def forward(self, x, sigma=None):
            return -target.log_prob(x)

    gd = grid_density(Exact(), target, xlim=(-9, 9), ylim=(-6, 6), n=240)
    assert gd.tv < 1e-6
    assert all(abs(a - b) < 3e-3 for a, b in zip(gd.mode_weights, [0.3, 0.7], strict=True))


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sgld(GaussianEnergy(2), torch.zeros(3, 2), step_size=0.0, n_steps=1), "step_size"),
        (lambda: sgld(GaussianEnergy(2), torch.zeros(3, 2), step_size=0.1, n_steps=0), "n_steps"),
        (lambda: sgld(GaussianEnergy(2), torch.zeros(2), step_size=0.1, n_steps=1), "shape"),
        (
            lambda: sgld(
                GaussianEnergy(2), torch.zeros(3, 2), step_size=0.1, n_steps=1, box=(1, 0)
            ),
            "box",
        ),
        (lambda: CD(init="replay"), "init must be one of"),
        (lambda: CD(noise="laplace"), "noise must be one of"),
        (lambda: CD(alpha=-1.0), "alpha"),
        (lambda: CD(k=0), "k"),
        (lambda: ReplayBuffer(10, restart_prob=2.0), "restart_prob"),
        (lambda: ReplayBuffer(4).draw(8, lambda m, g: torch.zeros(m, 2), None), "larger than"),
        (
            lambda: CD(init="data")(ScoreMLP(2, 16, 2), torch.zeros(4, 2)),
            "one energy per sample",
        ),
        (
            lambda: CD()(EnergyMLP(2, 16, 2, conditioning="sigma"), torch.zeros(4, 2)),
            "unconditional",
        ),
        (
            lambda: contrastive_divergence(GaussianEnergy(2), torch.zeros(8, 2), steps=0),
            "steps",
        ),
        (
            lambda: grid_density(
                GaussianEnergy(2), Gaussian([0.0, 0.0], 1.0), xlim=(1, 0), ylim=(0, 1)
            ),
            "xlim",
        ),  # fmt: skip
        (
            lambda: grid_density(
                GaussianEnergy(2), Gaussian([0.0, 0.0], 1.0), xlim=(0, 1), ylim=(0, 1), n=1
            ),
            "grid size",
        ),  # fmt: skip
        (
            lambda: ebm_samples(
                GaussianEnergy(2), torch.zeros(3, 2), step_size=0.1, n_steps=1, method="hmc"
            ),
            "method",
        ),  # fmt: skip
        (lambda: GaussianEnergy(0), "dim"),
        (lambda: GaussianEnergy(2, mean=torch.zeros(3)), "shape"),
        (lambda: EnergyConvNet(1, 8, 4)(torch.zeros(2, 1, 7, 7)), "expects images"),
        (lambda: MODELS.build("energy_conv", dim=65, image_size=8), "data dim"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ScorelabError, match=match):
        call()


# -- the experiment ------------------------------------------------------------------------------
def test_experiment_small_runs_and_training_beats_the_untrained_energy(tmp_path):
    """Small size (80 steps, a 32×2 net): the contract (keys, tables, three PNGs, strict JSON);
    the grid density moves toward the target for CD from noise, PCD and SSM: measured TV 0.55–
    0.62 against 0.71–0.72 untrained (seeds 0–3), so "≥ 0.05 lower" has half that margin, and
    MMD² of grid draws 0.06–0.12 against 0.23–0.32; CD from noise and PCD put their negatives
    above the data (E⁻ − E⁺ measured 0.6–2.9 in the last window)."""
    exp = get_experiment("ebm-cd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = exp.run(tmp_path, size="small", seed=0)
    assert res["title"] == exp.title and res["seed_ref"] == exp.seed_ref
    assert res["summary"] and all(isinstance(line, str) for line in res["summary"])
    for tab in res["tables"].values():
        assert tab["rows"] and all(len(row) == len(tab["columns"]) for row in tab["rows"])
    json.dumps(res, allow_nan=False)
    figs = {p.name: p for p in (tmp_path / "figures").glob("*.png")}
    assert {"ebm-cd_densities.png", "ebm-cd_energies.png", "ebm-cd_samples.png"} <= set(figs)
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in figs.values())

    m = res["methods"]
    base = m["untrained"]["tv"]
    for label in ("CD noise", "PCD buffer", "SSM"):
        assert m[label]["tv"] < base - 0.05, label
        assert m[label]["mmd2_grid"] < m["untrained"]["mmd2_grid"], label
        assert abs(sum(m[label]["mode_weights"]) - 1) < 1e-9
    for label in ("CD noise", "PCD buffer"):
        assert m[label]["curve"]["e_neg"][-1] > m[label]["curve"]["e_pos"][-1], label
    assert set(m) == {"untrained", "CD noise", "CD-k data", "PCD buffer", "DSM", "SSM"}
