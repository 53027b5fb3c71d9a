"""Seed 001 Fig. 11: how fast an NCSN's digits become recognisable, and how long sharpening takes.

Seed 001 §4.2.2: "when running the method on MNIST, [...] the images' fidelity improves very
fast at first — so that after only half of the iterations, one can easily recognize the sampled
digits — but [...] as many iterations are then needed to improve over very slight details and
make images sharp". Here that is measured instead of looked at, on the 8×8 digits
(docs/images.md; no MNIST offline):

- noise ladder, step size: `heuristics.suggest_schedule` on the training images (σ₁ = the
  largest pairwise distance, σ_L = 0.01, L from C(γ) = ½, ε from technique 4 for T);
- model: `models.NCSN(variant="ncsn")` on flat (N, 64) rows, NCSN objective, Adam, EMA, every
  batch uniformly dequantised (`images.dequantize_scaled`); the EMA weights sample;
- sampler: annealed Langevin from U(0, 1)^64 (as NCSN does), snapshots every `record_every`
  steps, then Tweedie denoising;
- metric: `classifier.image_quality` of every snapshot against the held-out split with a digits
  classifier trained on the same training split (digits-FD, size-matched fd_ratio, mean
  confidence, label entropy, classes present), samples mapped back to the stored scale by
  `images.discretize(x, 17)/16` (the model works on the dequantised scale (v + u)/17).

Milestones: the first step from which FD stays within 2× and within 1.1× of its value at the
last Langevin step, and from which the mean confidence stays at ≥ 90% of its final value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scorelab import images
from scorelab.classifier import cached_classifier, image_quality
from scorelab.experiments import experiment
from scorelab.experiments._common2 import Timer, generator, sig, table
from scorelab.heuristics import suggest_schedule
from scorelab.models import NCSN, model_score_fn
from scorelab.objectives import NCSN as NCSNLoss
from scorelab.plots import image_grid, save
from scorelab.runs import figures_dir
from scorelab.samplers.langevin import annealed_langevin, tweedie_denoise
from scorelab.train import fit

NAME = "digits"
TITLE = "NCSN on 8×8 digits: digits-FD and classifier confidence along annealed Langevin"
SEED_REF = "seed 001 §4.2.2 / Fig. 11 (MNIST: fidelity arrives fast, sharpening takes long)"

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Settings:
    n_train: int | None = None  # training images (None: the whole train split, 1438)
    steps: int = 8000  # 56–91 ms per step (batch 128, one thread; quiet vs busy machine)
    batch_size: int = 128
    lr: float = 2e-3  # at 2000 steps (a trial run) the raw weights reached fd_ratio 6.5
    ema: float = 0.999
    n_features: int = 16
    sigma_min: float = 0.01
    n_steps_each: int = 20  # T per level; L comes from the heuristic (21 for the digits)
    n_samples: int = 1438  # = n_train: fd_floor_matched is the full floor
    n_snapshots: int = 70  # about this many trajectory snapshots (record_every = L·T / this)
    classifier_steps: int = 600
    n_chains_shown: int = 16
    grid_fractions: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


FULL = Settings()
SMALL = replace(
    FULL,
    n_train=400,
    steps=300,
    batch_size=64,
    lr=3e-3,
    ema=0.95,  # 0.999 over 300 steps would leave the EMA at ≈ 74% of the initial weights
    n_features=8,
    n_steps_each=4,
    n_samples=200,
    n_snapshots=21,
    classifier_steps=150,
    n_chains_shown=10,
)


@experiment(NAME, TITLE, SEED_REF)
def run(out_dir: Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
    s = FULL if size == "full" else SMALL
    return _run(Path(out_dir), s, size, seed)


def _stored(x: Tensor, levels: int) -> Tensor:
    """Model-scale samples (N, 64) → stored-scale images (N, 1, 8, 8): ⌊17x⌋/16, clamped."""
    return (images.discretize(x, levels).float() / (levels - 1)).reshape(-1, 1, 8, 8)


def _stays_from(steps: list[int], ok: list[bool]) -> int | None:
    """The first step from which `ok` holds at every later snapshot (None if not at the end)."""
    first = None
    for st, good in zip(steps, ok, strict=True):
        if good and first is None:
            first = st
        elif not good:
            first = None
    return first


def _first(steps: list[int], ok: list[bool]) -> int | None:
    return next((st for st, good in zip(steps, ok, strict=True) if good), None)


def _run(out_dir: Path, s: Settings, size: str, seed: int) -> dict[str, Any]:
    figs = figures_dir(out_dir)
    tr, te = images.load_digits("train"), images.load_digits("test")
    levels = int(tr.levels)
    train = tr
    if s.n_train is not None and s.n_train < len(tr):
        idx = torch.randperm(len(tr), generator=generator(seed, 0))[: s.n_train].sort().values
        train = tr.subset(idx, f"[{s.n_train}]")
    x_train = train.images.flatten(1)

    # ---- classifier (held-out accuracy, FD floor) -------------------------------------------
    with Timer() as t_clf:
        clf, record = cached_classifier(
            out_dir / "classifier",
            tr.images,
            tr.labels,
            te.images,
            te.labels,
            seed=seed,
            steps=s.classifier_steps,
        )

    # ---- noise ladder and step size ---------------------------------------------------------
    sch = suggest_schedule(x_train, n_steps_each=s.n_steps_each, sigma_min=s.sigma_min)
    sigmas = sch.sigmas

    # ---- training -----------------------------------------------------------------------------
    torch.manual_seed(seed)
    model = NCSN(channels=1, image_size=8, n_features=s.n_features, sigmas=sigmas, variant="ncsn")
    res = fit(
        model,
        NCSNLoss(sigmas),
        x_train,
        steps=s.steps,
        batch_size=s.batch_size,
        lr=s.lr,
        seed=seed,
        ema_decay=s.ema,
        batch_transform=lambda b, g: images.dequantize_scaled(b, levels, g),
    )
    net = res.best_model()
    n_params = sum(p.numel() for p in model.parameters())
    tail = [v for v in res.losses[-max(1, s.steps // 10) :] if math.isfinite(v)]
    loss_tail = float(np.mean(tail))

    # ---- sampling -----------------------------------------------------------------------------
    n_total = sch.n_levels * s.n_steps_each
    record_every = max(1, round(n_total / s.n_snapshots))
    gs = generator(seed, 1)
    x0 = torch.rand(s.n_samples, x_train.shape[1], generator=gs)
    score = model_score_fn(net)
    out = annealed_langevin(
        score,
        x0,
        sigmas=sigmas,
        step_size=sch.step_size,
        n_steps_each=s.n_steps_each,
        generator=gs,
        record_every=record_every,
    )
    traj = out.trajectory
    snap_steps = list(range(0, record_every * traj.shape[0], record_every))
    if snap_steps[-1] != n_total:  # the last step is always a snapshot
        traj = torch.cat([traj, out.samples[None]])
        snap_steps.append(n_total)
    sigma_l = float(sigmas[-1])
    denoised = tweedie_denoise(score, out.samples, sigma_l)

    # ---- measuring ----------------------------------------------------------------------------
    def quality(x: Tensor):
        return image_quality(
            _stored(x, levels), classifier=clf, train_images=tr.images, reference_images=te.images
        )

    with Timer() as t_meas:
        q_snap = [quality(x) for x in traj]
        q_den = quality(denoised)
    fd = [q.fd for q in q_snap]
    ratio = [q.fd_ratio for q in q_snap]
    conf = [q.mean_confidence for q in q_snap]
    fd_end, conf_end = fd[-1], conf[-1]

    def level_of(step: int) -> int:
        """The ladder level (1-based) a step ran at; step 0 is the start."""
        return 0 if step == 0 else min(sch.n_levels, (step - 1) // s.n_steps_each + 1)

    def sigma_at(step: int) -> float | None:
        lv = level_of(step)
        return None if lv == 0 else float(sigmas[lv - 1])

    rows = []
    for f in (0.0, *FRACTIONS):
        k = min(range(len(snap_steps)), key=lambda i: abs(snap_steps[i] - f * n_total))
        q = q_snap[k]
        rows.append(
            _row(f"{snap_steps[k] / n_total:.2f}", snap_steps[k], sigma_at(snap_steps[k]), q)
        )
    rows.append(_row("1.00 + denoise", n_total, sigma_l, q_den))
    cols = [
        "fraction of steps",
        "step",
        "σ at that step",
        "digits-FD",
        "fd_ratio",
        "mean confidence",
        "label entropy (nats)",
        "classes present",
    ]
    tables: dict[str, Any] = {"trajectory": table(cols, rows)}

    milestones = []
    for what, ok in (
        ("FD within 2× of its last-step value", [v <= 2.0 * fd_end for v in fd]),
        ("FD within 1.1× of its last-step value", [v <= 1.1 * fd_end for v in fd]),
        ("fd_ratio ≤ 3 (the goal)", [r is not None and r <= 3.0 for r in ratio]),
        ("confidence ≥ 90% of its last-step value", [c >= 0.9 * conf_end for c in conf]),
        ("confidence ≥ 99% of its last-step value", [c >= 0.99 * conf_end for c in conf]),
    ):
        first, stays = _first(snap_steps, ok), _stays_from(snap_steps, ok)
        milestones.append(
            [
                what,
                first,
                None if first is None else first / n_total,
                stays,
                None if stays is None else stays / n_total,
                None if stays is None else sigma_at(stays),
            ]
        )
    tables["milestones"] = table(
        [
            "milestone",
            "first step",
            "fraction",
            "step from which it holds to the end",
            "fraction",
            "σ there",
        ],
        milestones,
    )
    q_end = q_snap[-1]
    final_rows = [
        [
            name,
            q.n_samples,
            q.fd,
            q.fd_floor,
            q.fd_floor_matched,
            q.fd_ratio,
            q.mean_confidence,
            q.label_entropy,
            q.classes_present,
            q.nn_median,
            q.nn_ratio,
            q.memorised_fraction,
        ]
        for name, q in (("last Langevin step", q_end), ("denoised", q_den))
    ]
    tables["final_samples"] = table(
        [
            "samples",
            "n",
            "digits-FD",
            "floor",
            "matched floor",
            "fd_ratio",
            "mean confidence",
            "label entropy",
            "classes present",
            "NN median",
            "NN ratio",
            "memorised fraction",
        ],
        final_rows,
    )
    tables["setup"] = table(
        ["quantity", "value"],
        [
            ["training images", len(train)],
            ["training steps", s.steps],
            ["training seconds", res.seconds],
            ["seconds per training step", res.seconds / s.steps],
            ["mean loss, last 10% of steps", loss_tail],
            ["NCSN parameters", n_params],
            ["σ₁ (max pairwise distance)", sch.sigma_max],
            ["σ_L", sch.sigma_min],
            ["levels L", sch.n_levels],
            ["ratio γ", sch.gamma],
            ["steps per level T", s.n_steps_each],
            ["step size ε (scorelab's h)", sch.step_size],
            ["predicted Var_T/σ²", sch.variance_ratio],
            ["Langevin steps L·T", n_total],
            ["record_every", record_every],
            ["samples", s.n_samples],
            ["sampling seconds", out.info["seconds"]],
            ["measuring seconds", t_meas.seconds],
            ["classifier steps", s.classifier_steps],
            ["classifier held-out accuracy", record["accuracy"]],
            ["classifier seconds (training + floor)", t_clf.seconds],
            ["FD floor (test vs train)", record["fd_floor"]],
        ],
    )

    # ---- figures ------------------------------------------------------------------------------
    _plot_curves(
        snap_steps,
        ratio,
        conf,
        q_den,
        n_total,
        s.n_steps_each,
        sigmas.tolist(),
        figs / "digits_fidelity.png",
    )
    grid_idx = [
        min(range(len(snap_steps)), key=lambda i: abs(snap_steps[i] - f * n_total))
        for f in s.grid_fractions
    ]
    chains = [
        (
            f"step {snap_steps[i]} (σ = {sigma_at(snap_steps[i]) or 0:.3g})"
            if snap_steps[i]
            else "step 0 (uniform start)",
            _stored(traj[i][: s.n_chains_shown], levels),
        )
        for i in grid_idx
    ]
    chains.append(("denoised (x + σ_L² s(x, σ_L))", _stored(denoised[: s.n_chains_shown], levels)))
    _plot_chains(chains, figs / "digits_chains.png")
    fig = image_grid(
        _stored(denoised[:100], levels),
        nrow=10,
        title=f"{min(100, s.n_samples)} of {s.n_samples} samples after {n_total} steps + denoise; "
        f"fd_ratio {q_den.fd_ratio:.2f}",
        size=5.0,
    )
    save(fig, figs / "digits_samples.png")

    # ---- summary ------------------------------------------------------------------------------
    ms = {m[0]: m for m in tables["milestones"]["rows"]}
    half = min(range(len(snap_steps)), key=lambda i: abs(snap_steps[i] - 0.5 * n_total))

    def at(name: str) -> str:
        m = ms[name]
        return "never" if m[3] is None else f"step {m[3]} ({m[4]:.0%} of the steps)"

    summary = [
        f"classifier: held-out accuracy {record['accuracy']:.1%}, FD floor "
        f"{record['fd_floor']:.3g}; NCSN ({n_params:,} parameters) trained "
        f"{s.steps} steps in {res.seconds:.0f} s on {len(train)} images",
        f"ladder σ {sch.sigma_max:.3g} → {sch.sigma_min:g}, L = {sch.n_levels}, T = "
        f"{s.n_steps_each}, ε = {sch.step_size:.3g}: {n_total} Langevin steps, "
        f"{s.n_samples} samples in {out.info['seconds']:.0f} s",
        f"fd_ratio: start {ratio[0]:.3g}, half-way (step {snap_steps[half]}) "
        f"{ratio[half]:.3g}, last step {ratio[-1]:.3g}, denoised {q_den.fd_ratio:.3g} "
        f"(goal ≤ 3: {'met' if q_den.fd_ratio is not None and q_den.fd_ratio <= 3 else 'not met'})",
        f"mean confidence: half-way {conf[half]:.3f}, last step {conf[-1]:.3f}, denoised "
        f"{q_den.mean_confidence:.3f}",
        "FD stays within 2× of its last-step value from "
        f"{at('FD within 2× of its last-step value')}, within 1.1× from "
        f"{at('FD within 1.1× of its last-step value')}; confidence ≥ 90% of "
        f"final from {at('confidence ≥ 90% of its last-step value')}",
        f"memorisation (denoised): NN ratio {q_den.nn_ratio:.3g}, memorised fraction "
        f"{q_den.memorised_fraction:.3g}",
    ]
    return {
        "title": TITLE,
        "seed_ref": SEED_REF,
        "size": size,
        "seed": seed,
        "settings": asdict(s),
        "schedule": sch.as_dict(),
        "summary": summary,
        "tables": tables,
        "classifier": {k: record[k] for k in ("accuracy", "fd_floor", "steps", "seconds")},
        "train_seconds": res.seconds,
        "curves": {
            "step": snap_steps,
            "fd": [sig(v) for v in fd],
            "fd_ratio": [sig(v) for v in ratio],
            "mean_confidence": [sig(v) for v in conf],
            "label_entropy": [sig(q.label_entropy) for q in q_snap],
        },
        "final": q_end.as_dict(),
        "denoised": q_den.as_dict(),
    }


def _row(label: str, step: int, sigma: float | None, q) -> list[Any]:
    return [
        label,
        step,
        sigma,
        q.fd,
        q.fd_ratio,
        q.mean_confidence,
        q.label_entropy,
        q.classes_present,
    ]


def _plot_curves(
    steps: list[int],
    ratio: list[float | None],
    conf: list[float],
    q_den,
    n_total: int,
    t_each: int,
    sigmas: list[float],
    path: Path,
) -> None:
    """fd_ratio (log, left) and mean confidence (right) against the step; σᵢ on the top axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    r = np.array([np.nan if v is None else v for v in ratio], float)
    ax.plot(steps, r, "o-", ms=2.5, c="tab:blue", label="fd_ratio (digits-FD / floor)")
    if q_den.fd_ratio is not None:
        ax.plot(
            [n_total],
            [q_den.fd_ratio],
            "D",
            c="tab:blue",
            ms=6,
            mfc="none",
            label="fd_ratio after denoising",
        )
    ax.axhline(3.0, ls="--", c="tab:blue", lw=0.8, alpha=0.6, label="goal: 3× the floor")
    ax.axhline(1.0, ls=":", c="gray", lw=0.8, label="floor (held-out digits)")
    ax.set_yscale("log")
    ax.set_xlabel("annealed Langevin step")
    ax.set_ylabel("fd_ratio (log)", color="tab:blue")
    for i in range(1, len(sigmas)):
        ax.axvline(i * t_each, c="gray", lw=0.4, alpha=0.35)
    ax.set_xlim(0, n_total * 1.02)
    ax2 = ax.twinx()
    ax2.plot(steps, conf, "s-", ms=2.5, c="tab:orange", label="mean classifier confidence")
    ax2.plot([n_total], [q_den.mean_confidence], "D", c="tab:orange", ms=6, mfc="none")
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("mean max-softmax confidence", color="tab:orange")
    top = ax.secondary_xaxis("top")
    every = max(1, len(sigmas) // 7)
    ticks = [(i + 0.5) * t_each for i in range(0, len(sigmas), every)]
    top.set_xticks(ticks, [f"{sigmas[i]:.2g}" for i in range(0, len(sigmas), every)])
    top.set_xlabel("σᵢ of the level (grey lines: level boundaries)", fontsize=8)
    top.tick_params(labelsize=7)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center left")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    save(fig, path)


def _plot_chains(rows: list[tuple[str, Tensor]], path: Path) -> None:
    """The same chains at several steps: one labelled row of images per step."""
    import matplotlib.pyplot as plt

    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.5 * n + 0.4, 0.72 * len(rows) + 0.2))
    for ax, (title, x) in zip(np.atleast_1d(axes), rows, strict=True):
        image_grid(x, nrow=n, ax=ax)
        ax.set_title(title, fontsize=7, loc="left", pad=2)
    fig.tight_layout(h_pad=0.3)
    save(fig, path)
