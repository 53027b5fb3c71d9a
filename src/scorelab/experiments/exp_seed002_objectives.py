"""Seed 002 (lecture, "score matching"): ISM vs SSM vs SSM-VR vs DSM, and DSM's variance as σ → 0.

Part A — accuracy and cost as the dimension D grows. One ScoreMLP per (objective, D), the same
steps, batch, learning rate and EMA for all, trained on a two-component Gaussian mixture in D
dimensions (modes ±1.5·e₁, std 0.6, weights 0.4 / 0.6 — overlapping, so vanilla score matching
has no empty gap to fail in). Accuracy: relative Fisher divergence E‖s − ∇log p‖²/E‖∇log p‖²
to the clean score (DSM also against the σ-noised law it estimates). Cost: seconds per training
step (objective + backward + Adam) taken from the same runs; benchmarks/objectives.py measures
the cost alone more carefully (docs/benchmarks.md).

Part B — "the loss variance would also increase drastically as σ → 0" (seed 002). At σ from 1
to 1e-3: the per-sample DSM loss ℓ = ½‖s(x + σz, σ) + z/σ‖² at the exact noised score (its
variance → D/(2σ⁴): ½‖z‖²/σ² dominates), the σ²-weighted NCSN loss (variance → D/2), and the
total variance of the per-sample parameter gradient tr Cov(∇_θ ℓ) for a trained σ-conditional
network (∝ 1/σ² unweighted, ∝ σ² weighted).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from scorelab.distributions import GaussianMixture, target_score_fn
from scorelab.experiments import experiment
from scorelab.experiments._common2 import (
    generator,
    line_plot,
    loglog_slope,
    relative_fisher,
    table,
    train,
)
from scorelab.models import ScoreMLP, model_score_fn
from scorelab.objectives import DSM, ISM, NCSN, SSM
from scorelab.plots import save
from scorelab.runs import figures_dir
from scorelab.schedules import geometric_sigmas

NAME = "seed002-objectives"
TITLE = "ISM vs SSM vs SSM-VR vs DSM: accuracy and cost against D; DSM's variance as σ → 0"
SEED_REF = "seed 002 (score matching: Hyvärinen, sliced, denoising)"


@dataclass(frozen=True)
class Settings:
    dims: tuple[int, ...] = (2, 8, 32, 64)
    m: int = 50_000  # fresh-enough data: ≤ 3 passes, so no objective overfits
    steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    ema: float = 0.99
    hidden: int = 128
    depth: int = 3
    dsm_sigma: float = 0.1
    n_fisher: int = 4000
    var_dim: int = 8
    var_sigmas: tuple[float, float, int] = (1.0, 1e-3, 7)
    n_var: int = 20_000  # samples for the loss variance
    n_grad: int = 512  # samples for the per-sample gradient variance
    grad_net_steps: int = 1500


FULL = Settings()
SMALL = replace(
    FULL,
    dims=(2, 8),
    m=5000,
    steps=150,
    hidden=64,
    depth=2,
    n_fisher=1000,
    var_sigmas=(1.0, 1e-3, 4),
    n_var=4000,
    n_grad=128,
    grad_net_steps=100,
)


def mixture(dim: int) -> GaussianMixture:
    means = torch.zeros(2, dim)
    means[0, 0], means[1, 0] = -1.5, 1.5
    return GaussianMixture(means, stds=0.6, weights=[0.4, 0.6])


def objectives(s: Settings) -> dict[str, Any]:
    return {
        "ISM": ISM(),
        "SSM": SSM(),
        "SSM-VR": SSM(variance_reduced=True),
        f"DSM (σ={s.dsm_sigma:g})": DSM(s.dsm_sigma),
    }


def per_sample_grad_variance(
    model: nn.Module, loss_fn, x: Tensor, sigma: float, generator: torch.Generator
) -> float:
    """tr Cov(∇_θ ℓᵢ) over the rows of x: E‖gᵢ − ḡ‖², gᵢ the gradient of one sample's loss."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    z = torch.randn(x.shape, generator=generator)
    sig = torch.full((x.shape[0],), sigma)

    def one(p, xi, zi, si):
        s = torch.func.functional_call(model, p, (xi[None] + si * zi[None], si[None]))
        return loss_fn(s[0], zi, si)

    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0, 0))(params, x, z, sig)
    flat = torch.cat([g.reshape(x.shape[0], -1) for g in grads.values()], dim=1).double()
    return float((flat - flat.mean(0)).square().sum(1).mean())


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run_all(Path(out_dir), s, size, seed)


def _run_all(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    tables: dict[str, Any] = {}
    summary: list[str] = []

    # ---- Part A: accuracy and cost against D ------------------------------------------------
    rows = []
    acc: dict[str, tuple[list[int], list[float]]] = {}
    cost: dict[str, tuple[list[int], list[float]]] = {}
    for dim in s.dims:
        target = mixture(dim)
        data = target.sample(s.m, generator=generator(seed, dim))
        for name, obj in objectives(s).items():
            model, seconds, _ = train(
                lambda dim=dim: ScoreMLP(dim, hidden=s.hidden, depth=s.depth),
                obj,
                data,
                steps=s.steps,
                seed=seed,
                batch_size=s.batch_size,
                lr=s.lr,
                ema_decay=s.ema,
            )
            fn = model_score_fn(model)
            gf = generator(seed, 1000 + dim)
            clean = relative_fisher(fn, target, n=s.n_fisher, generator=gf)
            noised = (
                relative_fisher(fn, target, n=s.n_fisher, sigma=s.dsm_sigma, generator=gf)
                if name.startswith("DSM")
                else None
            )
            per_step = seconds / s.steps
            rows.append([dim, name, clean, noised, per_step])
            acc.setdefault(name, ([], []))
            cost.setdefault(name, ([], []))
            acc[name][0].append(dim)
            acc[name][1].append(clean)
            cost[name][0].append(dim)
            cost[name][1].append(per_step)
    tables["accuracy_and_cost"] = table(
        [
            "D",
            "objective",
            "rel. Fisher to ∇log p",
            f"rel. Fisher to ∇log q_σ (σ={s.dsm_sigma:g})",
            "s / step",
        ],
        rows,
    )
    save(
        line_plot(
            acc,
            xlabel="dimension D",
            ylabel="E‖s − ∇log p‖² / E‖∇log p‖²",
            title=f"{s.steps} steps each, batch {s.batch_size}",
            logx=True,
            logy=True,
        ),
        figs / "seed002_accuracy_vs_dim.png",
    )
    save(
        line_plot(
            cost,
            xlabel="dimension D",
            ylabel="seconds per training step",
            title="objective + backward + Adam (from the same runs)",
            logx=True,
            logy=True,
        ),
        figs / "seed002_cost_vs_dim.png",
    )
    by = {(r[0], r[1]): r for r in tables["accuracy_and_cost"]["rows"]}
    d_hi = s.dims[-1]
    dsm = f"DSM (σ={s.dsm_sigma:g})"
    summary.append(
        f"D={d_hi}: rel. Fisher "
        + ", ".join(f"{n} {by[(d_hi, n)][2]:.3g}" for n in objectives(s))
        + f"; s/step ISM {by[(d_hi, 'ISM')][4]:.3g} vs DSM {by[(d_hi, dsm)][4]:.3g} "
        f"({by[(d_hi, 'ISM')][4] / by[(d_hi, dsm)][4]:.1f}×)"
    )

    # ---- Part B: DSM variance as σ → 0 -------------------------------------------------------
    target = mixture(s.var_dim)
    exact = target_score_fn(target)
    sigmas = geometric_sigmas(*s.var_sigmas)
    gv = generator(seed, 7)
    x = target.sample(s.n_var, generator=gv)
    data = target.sample(s.m, generator=gv)
    net, _, _ = train(
        lambda: ScoreMLP(s.var_dim, hidden=64, depth=2, conditioning="sigma"),
        NCSN(sigmas),
        data,
        steps=s.grad_net_steps,
        seed=seed,
        lr=s.lr,
        ema_decay=s.ema,
    )
    net.requires_grad_(True)

    def dsm_loss(out, z, sg):
        return 0.5 * (out + z / sg).square().sum()

    def ncsn_loss(out, z, sg):
        return 0.5 * (sg * out + z).square().sum()

    vrows = []
    curves: dict[str, list[float]] = {
        "Var ℓ_DSM (exact score)": [],
        "Var σ²ℓ_DSM (exact score)": [],
        "tr Cov ∇θ ℓ_DSM (network)": [],
        "tr Cov ∇θ σ²ℓ_DSM (network)": [],
    }
    for sg in sigmas.tolist():
        z = torch.randn(x.shape, generator=gv)
        xt = x + sg * z
        with torch.no_grad():
            ell = 0.5 * (exact(xt, torch.full((x.shape[0],), sg)) + z / sg).square().sum(1)
        ell = ell.double()
        var_l, var_w, mean_l = float(ell.var()), float((sg**2 * ell).var()), float(ell.mean())
        xg = x[: s.n_grad]
        gvar = per_sample_grad_variance(net, dsm_loss, xg, sg, gv)
        gvar_w = per_sample_grad_variance(net, ncsn_loss, xg, sg, gv)
        vrows.append([sg, mean_l, var_l, s.var_dim / (2 * sg**4), var_w, gvar, gvar_w])
        for key, v in zip(curves, [var_l, var_w, gvar, gvar_w], strict=True):
            curves[key].append(v)
    tables["dsm_variance"] = table(
        [
            "σ",
            "E ℓ_DSM",
            "Var ℓ_DSM (exact score)",
            "D/(2σ⁴)",
            "Var σ²ℓ (NCSN weighting)",
            "tr Cov ∇θ ℓ_DSM",
            "tr Cov ∇θ σ²ℓ",
        ],
        vrows,
    )
    sig_list = sigmas.tolist()
    small = [i for i, v in enumerate(sig_list) if v <= 0.1 + 1e-12]
    slopes = {
        k: loglog_slope([sig_list[i] for i in small], [v[i] for i in small])
        for k, v in curves.items()
    }
    tables["dsm_variance_slopes"] = table(
        ["quantity", "log–log slope in σ (σ ≤ 0.1)", "expected"],
        [[k, slopes[k], e] for k, e in zip(curves, ["−4", "0", "−2", "+2"], strict=True)],
    )
    save(
        line_plot(
            {k: (sig_list, v) for k, v in curves.items()},
            xlabel="σ",
            ylabel="variance over samples",
            title=f"DSM in D = {s.var_dim}: per-sample loss and gradient variance",
            logx=True,
            logy=True,
        ),
        figs / "seed002_dsm_variance.png",
    )
    i01 = min(range(len(sig_list)), key=lambda i: abs(math.log(sig_list[i] / 0.1)))
    i001 = min(range(len(sig_list)), key=lambda i: abs(math.log(sig_list[i] / 0.01)))
    growth = curves["Var ℓ_DSM (exact score)"][i001] / curves["Var ℓ_DSM (exact score)"][i01]
    ggrowth = curves["tr Cov ∇θ ℓ_DSM (network)"][i001] / curves["tr Cov ∇θ ℓ_DSM (network)"][i01]
    summary += [
        f"DSM per-sample loss variance (exact score, D={s.var_dim}): slope "
        f"{slopes['Var ℓ_DSM (exact score)']:.2f} in σ (σ ≤ 0.1); ×{growth:.3g} from "
        f"σ={sig_list[i01]:.3g} to σ={sig_list[i001]:.3g}; the σ²-weighted loss: slope "
        f"{slopes['Var σ²ℓ_DSM (exact score)']:.2f}",
        f"per-sample gradient variance (network): slope "
        f"{slopes['tr Cov ∇θ ℓ_DSM (network)']:.2f} (×{ggrowth:.3g} from σ="
        f"{sig_list[i01]:.3g} to {sig_list[i001]:.3g}); σ²-weighted: "
        f"{slopes['tr Cov ∇θ σ²ℓ_DSM (network)']:.2f}",
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "summary": summary,
        "tables": tables,
        "variance_growth_0.1_to_0.01": growth,
        "grad_variance_growth_0.1_to_0.01": ggrowth,
        "variance_slopes": slopes,
        "sigmas": sig_list,
        "variance_curves": curves,
    }
