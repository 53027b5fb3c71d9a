"""The Bernoulli–Bernoulli RBM (seed 002): densities and conditionals against brute force over all
(x, z) of tiny RBMs, exact log Z and marginals, the Gibbs chain's stationary law, CD/PCD updates
against the exact log-likelihood gradient and against scikit-learn's BernoulliRBM step for step,
training on binarised digits, errors, determinism and the "ebm-rbm" experiment at size small.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

import scorelab.ebm.rbm as rbm_mod
from scorelab._utils import ScorelabError
from scorelab.ebm.rbm import (
    RBM,
    binarized_digits,
    fit_rbm,
    independent_bernoulli_log_prob,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tiny(d: int = 5, h: int = 4, scale: float = 1.0, seed: int = 0) -> RBM:
    """A float64 RBM with N(0, scale²) weights and biases: far from the W = 0 independent case."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(d, h, init_std=scale, generator=g, dtype=torch.float64)
    with torch.no_grad():
        rbm.b.copy_(scale * torch.randn(d, generator=g, dtype=torch.float64))
        rbm.c.copy_(scale * torch.randn(h, generator=g, dtype=torch.float64))
    return rbm


def _all_bits(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _joint_log_weights(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xs (2^D, D), zs (2^H, H), −E(x, z) as a (2^D, 2^H) table) from rbm.energy pair by pair."""
    xs, zs = _all_bits(rbm.n_visible), _all_bits(rbm.n_hidden)
    xx = xs.repeat_interleave(zs.shape[0], 0)
    zz = zs.repeat(xs.shape[0], 1)
    return xs, zs, -rbm.energy(xx, zz).reshape(xs.shape[0], zs.shape[0])


@torch.no_grad()
def test_conditionals_and_free_energy_match_brute_force():
    """p(zⱼ = 1 | x), p(xᵢ = 1 | z) and F(x) = −log Σ_z exp(−E(x, z)) from the 2^5 × 2^4 joint
    table: all three are exact identities, so float64 rounding (1e-12) is the tolerance."""
    rbm = _tiny()
    xs, zs, lw = _joint_log_weights(rbm)
    p_z_given_x = torch.softmax(lw, 1)  # rows: x
    p_x_given_z = torch.softmax(lw, 0)  # columns: z
    torch.testing.assert_close(rbm.hidden_prob(xs), p_z_given_x @ zs, rtol=0, atol=1e-12)
    torch.testing.assert_close(rbm.visible_prob(zs), p_x_given_z.T @ xs, rtol=0, atol=1e-12)
    torch.testing.assert_close(rbm.free_energy(xs), -torch.logsumexp(lw, 1), rtol=0, atol=1e-12)


@torch.no_grad()
@pytest.mark.parametrize("chunk", [rbm_mod._CHUNK, 20])
def test_log_partition_marginals_and_log_prob_are_exact(monkeypatch, chunk):
    """log Z by enumerating hidden states only equals logsumexp over all (x, z); p(x) sums to
    1; the exact marginals equal the joint table's. chunk = 20 numbers per temporary forces the
    many-chunk path (4 hidden states per chunk), which must agree to rounding."""
    monkeypatch.setattr(rbm_mod, "_CHUNK", chunk)
    rbm = _tiny()
    xs, zs, lw = _joint_log_weights(rbm)
    log_z = torch.logsumexp(lw.reshape(-1), 0)
    torch.testing.assert_close(rbm.log_partition(), log_z, rtol=0, atol=1e-12)
    lp = rbm.log_prob(xs)
    torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros((), dtype=torch.float64))
    p = torch.exp(lw - log_z)
    px, pz = rbm.exact_marginals()
    torch.testing.assert_close(px, p.sum(1) @ xs, rtol=0, atol=1e-12)
    torch.testing.assert_close(pz, p.sum(0) @ zs, rtol=0, atol=1e-12)


@torch.no_grad()
def test_pseudo_log_likelihood_exact_and_stochastic():
    """PL(x) = Σᵢ log p(xᵢ | x₋ᵢ) from the brute-force p(x) over all 2^6 x (exact identity).
    The one-bit estimate (scikit-learn's score_samples) takes the value D·log p(xᵢ | x₋ᵢ) for
    one i and averages to PL: 20 000 draws, so 5 s.e. of the mean (s.e. from the draws) bounds
    the error with room to spare."""
    rbm = _tiny(6, 3, seed=1)
    xs = _all_bits(6)
    lp = rbm.log_prob(xs)
    index = {tuple(r.tolist()): i for i, r in enumerate(xs)}
    cond = torch.empty(xs.shape, dtype=torch.float64)  # log p(xᵢ | x₋ᵢ)
    for n, x in enumerate(xs):  # brute force over 64 × 6 states is fine in a test
        for i in range(6):
            y = x.clone()
            y[i] = 1 - y[i]
            other = lp[index[tuple(y.tolist())]]
            cond[n, i] = lp[n] - torch.logaddexp(lp[n], other)
    torch.testing.assert_close(rbm.pseudo_log_likelihood(xs), cond.sum(1), rtol=0, atol=1e-12)

    x = xs[37].expand(20_000, 6)
    est = rbm.stochastic_pseudo_log_likelihood(x, generator=torch.Generator().manual_seed(0))
    values = 6 * cond[37]
    assert torch.isclose(est[:, None], values[None, :], atol=1e-12).any(1).all()
    se = float(est.std()) / math.sqrt(est.numel())
    assert abs(float(est.mean()) - float(cond[37].sum())) < 5 * se


@torch.no_grad()
def test_gibbs_chain_reaches_the_exact_law():
    """20 000 independent chains, 60 sweeps of block Gibbs from all-zeros on a tiny RBM with
    N(0, 1) parameters, against the exact law. Pixel and hidden means: s.e. ≤ 0.5/√20000 =
    0.0035, so 0.018 is 5 s.e. Joint law of x over 2^6 states: the TV of the empirical histogram
    of exact draws has mean ≈ ½Σₖ√(2pₖ(1−pₖ)/(πN)); 2× that is ≈ 6 s.d. of it above its mean."""
    rbm = _tiny(6, 4, seed=2)
    n = 20_000
    out = rbm.gibbs(
        torch.zeros(n, 6, dtype=torch.float64),
        60,
        generator=torch.Generator().manual_seed(3),
        keep_every=20,
    )
    assert out.nfe == 60 and out.trajectory is not None and out.trajectory.shape == (3, n, 6)
    px, pz = rbm.exact_marginals()
    assert float((out.samples.mean(0) - px).abs().max()) < 0.018
    assert float((out.info["hidden"].mean(0) - pz).abs().max()) < 0.018
    xs = _all_bits(6)
    p = rbm.log_prob(xs).exp()
    codes = (out.samples * (2 ** torch.arange(5, -1, -1, dtype=torch.float64))).sum(1).long()
    emp = torch.bincount(codes, minlength=64).double() / n
    tv = 0.5 * float((emp - p).abs().sum())
    expected = 0.5 * float(torch.sqrt(2 * p * (1 - p) / (math.pi * n)).sum())
    assert tv < 2 * expected


def _exact_gradient(rbm: RBM, x: torch.Tensor) -> torch.Tensor:
    """∇ mean log p(x) for (W, b, c), stacked as scorelab's augmented (D+1, H+1) matrix, by
    autograd through −F(x) − log Z with log Z over all (x, z) pairs."""
    xs, zs, _ = _joint_log_weights(rbm)
    with torch.enable_grad():
        xx, zz = xs.repeat_interleave(zs.shape[0], 0), zs.repeat(xs.shape[0], 1)
        log_z = torch.logsumexp(-rbm.energy(xx, zz), 0)
        ll = (-rbm.free_energy(x)).mean() - log_z
        gw, gb, gc = torch.autograd.grad(ll, [rbm.W, rbm.b, rbm.c])
    d, h = gw.shape
    out = torch.zeros(d + 1, h + 1, dtype=torch.float64)
    out[:d, :h], out[:d, h], out[d, :h] = gw, gb, gc
    return out


def _augmented(rbm: RBM) -> torch.Tensor:
    d, h = rbm.n_visible, rbm.n_hidden
    out = torch.zeros(d + 1, h + 1, dtype=torch.float64)
    out[:d, :h], out[:d, h], out[d, :h] = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
    return out


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_cd_and_pcd_updates_estimate_the_exact_gradient(method):
    """One SGD step with lr = 1 on one minibatch moves θ by the update estimate itself. With
    k = 40 sweeps on a tiny RBM (it mixes in a few) and 8000 chains, CD-k and PCD-k estimate the
    exact ∇log p: each entry is a difference of means of [0, 1] quantities over 8000 chains
    (s.e. ≤ 0.5/√8000 ≈ 0.0056), so 0.03 is > 5 s.e.; measured 0.003–0.011 (data seeds 5–7).
    Short chains miss by far more (measured: CD-1 0.094, PCD-1 from z = 0 0.35).  CD and PCD
    give the same numbers here: with shared uniforms, 40 sweeps from two starts coalesce."""
    rbm = _tiny(4, 3, scale=0.7, seed=4)
    g = torch.Generator().manual_seed(5)
    data = torch.bernoulli(torch.full((8000, 4), 0.3), generator=g).double()
    exact = _exact_gradient(rbm, data)
    before = _augmented(rbm)
    kw = {"n_chains": 8000} if method == "pcd" else {}
    fit_rbm(rbm, data, epochs=1, generator=g, method=method, k=40, lr=1.0, batch_size=8000,
            shuffle=False, monitor={}, **kw)  # fmt: skip
    step = _augmented(rbm) - before
    step[-1, -1] = 0.0  # the corner of the augmented matrix is not a parameter
    assert float((step - exact).abs().max()) < 0.03
    assert float(exact.abs().max()) > 0.3  # the gradient is far from zero: not a vacuous check


def test_pcd_matches_sklearn_bernoulli_rbm_step_for_step():
    """method="pcd", k=1, shuffle=False, momentum 0 is scikit-learn's BernoulliRBM._fit: fed the
    same uniforms (ours come from one torch draw per epoch: (batches, C, D) for the visible
    samples, then (batches, C, H) for the hidden ones), both give the same parameters and
    persistent chains after 2 epochs of 6 minibatches, to float64 rounding."""
    sk = pytest.importorskip("sklearn.neural_network")
    x = binarized_digits("train")[:60].double()
    rbm = RBM(64, 7, init_std=0.05, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    est = sk.BernoulliRBM(n_components=7, learning_rate=0.2, batch_size=10)
    w0 = rbm.W.detach().clone()
    est.components_ = w0.numpy().T.copy()
    est.intercept_visible_ = np.zeros(64)
    est.intercept_hidden_ = np.zeros(7)
    est.h_samples_ = np.zeros((10, 7))

    g_ref = torch.Generator().manual_seed(9)
    draws = []
    for _ in range(2):
        u_v = torch.rand(6, 10, 64, generator=g_ref, dtype=torch.float64).numpy()
        u_h = torch.rand(6, 10, 7, generator=g_ref, dtype=torch.float64).numpy()
        for j in range(6):
            draws += [u_v[j], u_h[j]]

    class FedRNG:
        """Returns the prepared uniforms in the order sklearn asks for them."""

        def __init__(self) -> None:
            self.i = 0

        def uniform(self, size):
            u = draws[self.i]
            assert u.shape == tuple(size)
            self.i += 1
            return u

    rng = FedRNG()
    xn = x.numpy()
    for _ in range(2):
        for j in range(6):
            est._fit(xn[10 * j : 10 * (j + 1)], rng)
    res = fit_rbm(rbm, x, epochs=2, generator=torch.Generator().manual_seed(9), method="pcd",
                  lr=0.2, batch_size=10, shuffle=False, monitor={})  # fmt: skip
    assert rng.i == len(draws)
    torch.testing.assert_close(rbm.W.detach(), torch.from_numpy(est.components_.T))
    torch.testing.assert_close(rbm.b.detach(), torch.from_numpy(est.intercept_visible_))
    torch.testing.assert_close(rbm.c.detach(), torch.from_numpy(est.intercept_hidden_))
    torch.testing.assert_close(res.chains, torch.from_numpy(est.h_samples_))
    assert float((rbm.W.detach() - w0).abs().max()) > 0.05  # training moved W: not vacuous
    m = RBM.from_sklearn(est)
    torch.testing.assert_close(m.free_energy(x), rbm.free_energy(x).detach())


@pytest.mark.parametrize("method,k", [("cd", 1), ("cd", 3), ("pcd", 1)])
def test_training_on_digits_beats_the_independent_bernoulli_baseline(method, k):
    """RBM(64, 12), 15 epochs, lr 0.05, batch 10 on the 1438 binarised training digits. Exact
    test log-likelihood (359 held-out digits): the W = 0 baseline is −24.53 nats, the untrained
    RBM (b = c = 0) −44.3; measured after training −20.68 … −20.36 over the three methods and
    seeds 0–3 (s.d. ≈ 0.1), i.e. ≥ 3.8 nats above the baseline, so a 2-nat margin is > 15 s.d.
    inside. Test PL: −44.4 → −18.6 (measured), asserted to gain > 10."""
    train, test = binarized_digits("train"), binarized_digits("test")
    base = float(independent_bernoulli_log_prob(train, test).mean())
    g = torch.Generator().manual_seed(0)
    rbm = RBM(64, 12, generator=g)
    res = fit_rbm(rbm, train, epochs=15, generator=g, method=method, k=k, lr=0.05,
                  monitor={"test": test}, exact_ll=True, eval_every=15)  # fmt: skip
    ll = res.history["test_ll"]
    assert res.history["epoch"] == [0, 15]
    assert ll[0] < base - 10 and ll[-1] > base + 2.0
    assert res.history["test_pl"][-1] > res.history["test_pl"][0] + 10
    assert abs(float(rbm.log_prob(test).mean()) - ll[-1]) < 1e-9
    assert res.seconds > 0 and (res.chains is None) == (method == "cd")


def test_same_seed_same_bits_and_different_seed_differs():
    x = binarized_digits("train")[:200]

    def once(seed: int, method: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        rbm = RBM(64, 6, generator=g)
        fit_rbm(rbm, x, epochs=2, generator=g, method=method, k=2, momentum=0.5,
                weight_decay=1e-3, monitor={})  # fmt: skip
        return rbm.W.detach().clone(), rbm.gibbs(x[:20], 5, generator=g).samples

    for method in ("cd", "pcd"):
        a, b, c = once(1, method), once(1, method), once(2, method)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])
    assert torch.equal(RBM(64, 6).W, RBM(64, 6).W)  # no generator: seed 0, always the same model


def test_bad_input_raises_scorelab_error():
    rbm = RBM(4, 3)
    x = torch.zeros(5, 4)
    g = torch.Generator().manual_seed(0)
    bad = [
        lambda: RBM(0, 3),
        lambda: RBM(4, 2.5),
        lambda: RBM(4, True),
        lambda: RBM(4, 3, init_std=-1.0),
        lambda: rbm.free_energy(torch.zeros(5, 3)),
        lambda: rbm.free_energy(torch.zeros(4)),
        lambda: rbm.visible_prob(torch.zeros(5, 4)),
        lambda: rbm.log_prob(torch.full((5, 4), 0.5)),
        lambda: rbm.pseudo_log_likelihood(x + 2),
        lambda: rbm.gibbs(x, -1, generator=g),
        lambda: rbm.gibbs(x, 3, generator=g, keep_every=0),
        lambda: RBM(4, 21).log_partition(),
        lambda: RBM(4, 21).exact_marginals(),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, method="sgld"),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, k=0),
        lambda: fit_rbm(rbm, x, epochs=-1, generator=g),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, lr=0.0),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, lr="fast"),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, momentum=1.0),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, weight_decay=-1.0),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, method="cd", n_chains=5),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, n_chains=0),
        lambda: fit_rbm(rbm, x[:0], epochs=1, generator=g),
        lambda: fit_rbm(rbm, x, epochs=1, generator=g, monitor={"v": torch.ones(2, 5)}),
        lambda: fit_rbm(RBM(4, 21), x, epochs=1, generator=g, exact_ll=True),
        lambda: binarized_digits(threshold=1.0),
    ]
    for i, call in enumerate(bad):
        with pytest.raises(ScorelabError):
            call()
            pytest.fail(f"bad-input case {i} did not raise")  # Failed is no ScorelabError


def test_independent_bernoulli_baseline_is_an_rbm_with_zero_weights():
    """log p under the smoothed pixel frequencies q equals the exact log-likelihood of the RBM
    with W = 0, b = logit q (any c: the hidden units decouple), to rounding."""
    x = binarized_digits("train")[:300]
    q = (x.double().sum(0) + 1) / (x.shape[0] + 2)
    rbm = RBM(64, 3, init_std=0.0, dtype=torch.float64)
    with torch.no_grad():
        rbm.b.copy_(torch.log(q) - torch.log1p(-q))
        rbm.c.fill_(0.7)
    torch.testing.assert_close(rbm.log_prob(x), independent_bernoulli_log_prob(x, x))


def test_experiment_small_runs_and_beats_the_baseline(tmp_path):
    """The "ebm-rbm" experiment at size small: RBM(64, 8), 10 epochs. Every trained RBM must beat
    the independent-Bernoulli baseline on exact test LL: measured +1.13 … +1.83 nats over the
    five models and seeds 0–2 (s.d. ≈ 0.25), so > +0.5 is ≈ 2.5 s.d. below the worst seen."""
    from scorelab.experiments import get_experiment
    from scorelab.runs import read_json, write_json

    exp = get_experiment("ebm-rbm")
    res = exp.run(tmp_path, size="small", seed=0)
    assert res["title"] == exp.title and res["seed_ref"] == "seed 002: RBMs"
    assert res["summary"] and all(isinstance(s, str) for s in res["summary"])
    for tab in res["tables"].values():
        assert tab["rows"] and all(len(r) == len(tab["columns"]) for r in tab["rows"])
    json.dumps(res, allow_nan=False)
    assert read_json(write_json(tmp_path / "r.json", res))["tables"].keys() == res["tables"].keys()
    names = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert names == {"ebm-rbm_ll_curves.png", "ebm-rbm_samples.png", "ebm-rbm_filters.png"}
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in (tmp_path / "figures").glob("*.png"))
    for label, ll in res["test_ll"].items():
        assert ll > res["baseline_test_ll"] + 0.5, label
