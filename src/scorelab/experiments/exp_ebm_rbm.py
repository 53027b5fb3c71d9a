"""Seed 002 ("RBM"): a Bernoulli–Bernoulli RBM on binarised digits, trained by CD-1, CD-k, PCD.

Data: scikit-learn's 8×8 digits (`binarized_digits`: pixel v/16 > 0.5), the library's stratified
split (1438 train / 359 test).  Every method trains the same RBM(64, H) (H ≤ 20, so log Z, the
log-likelihood and the marginals are exact by enumerating 2^H hidden states) with the same SGD
(lr, batch 10, epochs) from the same init per seed; they differ only in the negative phase.
scikit-learn's BernoulliRBM (PCD-1, 10 persistent chains, unshuffled batches) is trained with the
same H, lr, batch size and epochs beside them.  Reported: exact train/test log-likelihood (mean
± s.d. over seeds), exact test pseudo-log-likelihood, training seconds, the exact pixel marginals
p(xᵢ = 1) against the data's pixel means and against long Gibbs chains started from uniform noise
(a mixing check), and the independent-Bernoulli baseline (the RBM with W = 0).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scorelab.ebm.rbm import (
    RBM,
    binarized_digits,
    fit_rbm,
    independent_bernoulli_log_prob,
)
from scorelab.experiments import experiment
from scorelab.experiments._common2 import generator, line_plot, table
from scorelab.plots import image_grid, save
from scorelab.runs import figures_dir

NAME = "ebm-rbm"
TITLE = "Bernoulli RBM on binarised digits: CD-1, CD-k and PCD with exact log-likelihood"
SEED_REF = "seed 002: RBMs"

# (label, method, k, n_chains); n_chains None = the minibatch size
METHODS: tuple[tuple[str, str, int, int | None], ...] = (
    ("CD-1", "cd", 1, None),
    ("CD-10", "cd", 10, None),
    ("PCD-1, 10 chains", "pcd", 1, None),
    ("PCD-1, 100 chains", "pcd", 1, 100),
)
SKLEARN = "sklearn BernoulliRBM (PCD-1, 10 chains)"
SHORT = {SKLEARN: "sklearn PCD-1"}  # figure panel titles


@dataclass(frozen=True)
class Settings:
    n_hidden: int = 16
    epochs: int = 100
    lr: float = 0.05
    batch_size: int = 10
    seeds: int = 3
    eval_every: int = 5
    gibbs_chains: int = 2000
    gibbs_sweeps: int = 1000
    n_show: int = 30


FULL = Settings()
SMALL = replace(
    FULL,
    n_hidden=8,
    epochs=10,
    seeds=1,
    eval_every=5,
    gibbs_chains=400,
    gibbs_sweeps=100,
    n_show=10,
)


def _sklearn_rbm(x: Tensor, s: Settings, seed: int) -> tuple[RBM, float]:
    from sklearn.neural_network import BernoulliRBM

    est = BernoulliRBM(
        n_components=s.n_hidden,
        learning_rate=s.lr,
        batch_size=s.batch_size,
        n_iter=s.epochs,
        random_state=seed,
    )
    t0 = time.perf_counter()
    est.fit(x.double().numpy())
    return RBM.from_sklearn(est), time.perf_counter() - t0


def _scores(rbm: RBM, train: Tensor, test: Tensor) -> dict[str, float]:
    lz = rbm.log_partition()
    return {
        "train_ll": float(rbm.log_prob(train, lz).mean()),
        "test_ll": float(rbm.log_prob(test, lz).mean()),
        "test_pl": float(rbm.pseudo_log_likelihood(test).mean()),
    }


def _gibbs_check(rbm: RBM, s: Settings, data_mean: Tensor, g: torch.Generator) -> dict[str, Any]:
    """Chains from uniform noise: pixel means after gibbs_sweeps against the exact p(xᵢ = 1)."""
    px, _ = rbm.exact_marginals()
    x0 = torch.bernoulli(torch.full((s.gibbs_chains, rbm.n_visible), 0.5), generator=g)
    out = rbm.gibbs(x0, s.gibbs_sweeps, generator=g)
    gibbs_mean = out.samples.double().mean(0)
    return {
        "gibbs_err": float((gibbs_mean - px).abs().max()),
        "data_err": float((data_mean - px).abs().mean()),
        "show": out.info["visible_prob"][: s.n_show].float(),
    }


def _mean_sd(v: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else None)


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    figs = figures_dir(Path(out_dir))
    train, test = binarized_digits("train"), binarized_digits("test")
    data_mean = train.double().mean(0)
    labels = [m[0] for m in METHODS] + [SKLEARN]
    runs: dict[str, list[dict[str, Any]]] = {lab: [] for lab in labels}
    curves: dict[str, tuple[list[float], list[float]]] = {}
    models: dict[str, RBM] = {}
    for r in range(s.seeds):
        sd = seed * 1000 + r
        for i, (label, method, k, n_chains) in enumerate(METHODS):
            g = generator(sd, 10 + i)
            rbm = RBM(train.shape[1], s.n_hidden, generator=generator(sd, 1))
            res = fit_rbm(
                rbm,
                train,
                epochs=s.epochs,
                generator=g,
                method=method,
                k=k,
                lr=s.lr,
                batch_size=s.batch_size,
                n_chains=n_chains,
                monitor={"test": test},
                exact_ll=True,
                eval_every=s.eval_every,
            )
            row = _scores(rbm, train, test) | {"seconds": res.seconds}
            if r == 0:
                curves[label] = (res.history["epoch"], res.history["test_ll"])
                row |= _gibbs_check(rbm, s, data_mean, generator(sd, 20 + i))
                models[label] = rbm
            runs[label].append(row)
        rbm, secs = _sklearn_rbm(train, s, sd)
        row = _scores(rbm, train, test) | {"seconds": secs}
        if r == 0:
            row |= _gibbs_check(rbm, s, data_mean, generator(sd, 30))
            models[SKLEARN] = rbm
        runs[SKLEARN].append(row)

    base_test = float(independent_bernoulli_log_prob(train, test).mean())
    base_train = float(independent_bernoulli_log_prob(train, train).mean())
    rows, summary_ll = [], {}
    for label in labels:
        rs = runs[label]
        te, te_sd = _mean_sd([x["test_ll"] for x in rs])
        tr, _ = _mean_sd([x["train_ll"] for x in rs])
        pl, _ = _mean_sd([x["test_pl"] for x in rs])
        secs = statistics.median(x["seconds"] for x in rs)
        summary_ll[label] = te
        rows.append([label, te, te_sd, tr, pl, te - base_test, secs,
                     rs[0]["gibbs_err"], rs[0]["data_err"]])  # fmt: skip
    rows.append(["independent Bernoulli (W = 0)", base_test, None, base_train, base_test, 0.0,
                 None, None, None])  # fmt: skip
    tables = {
        "results": table(
            [
                "model",
                "test LL (nats)",
                "test LL s.d.",
                "train LL",
                "test PL",
                "test LL − baseline",
                "train s (median)",
                "Gibbs max|x̄ᵢ − p(xᵢ)| (seed 0)",
                "mean|data x̄ᵢ − p(xᵢ)| (seed 0)",
            ],
            rows,
        )  # fmt: skip
    }

    save(
        line_plot(  # from the first evaluation after epoch 0 (−44 nats) so the scale shows detail
            {lab: (ep[1:], ll[1:]) for lab, (ep, ll) in curves.items()},
            xlabel="epoch",
            ylabel="exact test log-likelihood (nats / digit)",
            title=f"RBM(64, {s.n_hidden}), lr {s.lr:g}, batch {s.batch_size}, seed 0 "
            f"(epoch 0: {curves[labels[0]][1][0]:.1f})",
            hline=base_test,
            hline_label="independent Bernoulli",
        ),
        figs / "ebm-rbm_ll_curves.png",
    )
    save(_samples_figure(runs, labels, test[: s.n_show], s), figs / "ebm-rbm_samples.png")
    best = max(summary_ll, key=summary_ll.__getitem__)
    save(_filters_figure(models[best], best), figs / "ebm-rbm_filters.png")

    se = 0.5 / np.sqrt(s.gibbs_chains)
    summary = [
        f"RBM(64, {s.n_hidden}) on {train.shape[0]} binarised digits, {s.epochs} epochs, lr "
        f"{s.lr:g}, batch {s.batch_size}, {s.seeds} seed(s); exact test LL (nats/digit): "
        + ", ".join(f"{lab} {summary_ll[lab]:.2f}" for lab in labels)
        + f"; independent Bernoulli {base_test:.2f}",
        f"best: {best}, {summary_ll[best] - base_test:+.2f} nats over the baseline",
        f"Gibbs check ({s.gibbs_chains} chains × {s.gibbs_sweeps} sweeps from noise, s.e. ≤ "
        f"{se:.3f}): max pixel error vs exact marginals "
        + ", ".join(f"{lab} {runs[lab][0]['gibbs_err']:.3f}" for lab in labels),
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
        "test_ll": summary_ll,
        "baseline_test_ll": base_test,
        "gibbs_err": {lab: runs[lab][0]["gibbs_err"] for lab in labels},
        "curves": {lab: {"epoch": c[0], "test_ll": c[1]} for lab, c in curves.items()},
    }


def _samples_figure(runs, labels, data: Tensor, s: Settings):
    import matplotlib.pyplot as plt

    panels = [("test digits", data)] + [
        (SHORT.get(lab, lab), runs[lab][0]["show"]) for lab in labels
    ]  # noise-free p(x = 1 | z) of the last sweep
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.9))
    for ax, (title, imgs) in zip(axes, panels, strict=True):
        image_grid(imgs.reshape(-1, 1, 8, 8), nrow=5, ax=ax, title=title)
    fig.suptitle(f"Gibbs samples after {s.gibbs_sweeps} sweeps from uniform noise", fontsize=9)
    fig.tight_layout()
    return fig


def _filters_figure(rbm: RBM, label: str):
    w = rbm.W.detach().double().T  # (H, 64): one filter per hidden unit
    scale = w.abs().amax(1, keepdim=True).clamp_min(1e-12)
    imgs = (0.5 + 0.5 * w / scale).reshape(-1, 1, 8, 8)  # grey = 0, per-filter symmetric scale
    n = imgs.shape[0]
    return image_grid(imgs, nrow=int(np.ceil(np.sqrt(n))), title=f"filters Wⱼ of {label}")
