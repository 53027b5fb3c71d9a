"""Helpers shared by the seed 000–002 reproductions (exp_seed000, exp_seed001_*, exp_seed002_*).

Small and boring on purpose: seeded training, relative Fisher divergence, nearest-neighbour
distances, log–log slopes, a line plot for axes the library's plots do not cover, and tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scorelab.metrics import fisher_divergence, mixture_weights
from scorelab.train import fit

# The seed 000 / 002 / Fig. 5 / HMC experiments seed their parts with `generator` below; the
# seed 001 figure experiments use `_common.gen`. Both layouts stay: the numbers in
# docs/reproductions.md were produced with them.


def part_seed(seed: int, part: int) -> int:
    """One integer seed per part of an experiment, so that resizing one part moves no other."""
    return 1_000_003 * int(seed) + 7919 * int(part)


def generator(seed: int, part: int) -> torch.Generator:
    """A generator seeded with `part_seed(seed, part)`."""
    return torch.Generator().manual_seed(part_seed(seed, part))


def train(
    build: Callable[[], nn.Module],
    objective: Any,
    data: Tensor,
    *,
    steps: int,
    seed: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    ema_decay: float | None = 0.99,
) -> tuple[nn.Module, float, float]:
    """(best model, seconds, mean loss of the last 10% of steps): init and batches both seeded."""
    torch.manual_seed(seed)
    model = build()
    res = fit(
        model,
        objective,
        data,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        ema_decay=ema_decay,
    )
    tail = [v for v in res.losses[-max(1, steps // 10) :] if math.isfinite(v)]
    return res.best_model(), res.seconds, float(np.mean(tail)) if tail else math.nan


def held_out_loss(model: nn.Module, objective: Any, x: Tensor, seed: int) -> float:
    """Mean objective on held-out points (ISM/SSM differentiate in x, so no torch.no_grad)."""
    g = torch.Generator().manual_seed(seed)
    return float(objective(model, x, generator=g).detach().mean())


def train_early_stopped(
    build: Callable[[], nn.Module],
    objective: Any,
    data: Tensor,
    *,
    steps: int,
    seed: int,
    check_every: int = 100,
    val_fraction: float = 0.2,
    patience: int = 5,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> tuple[nn.Module, dict[str, Any]]:
    """Vanilla score matching with early stopping on a held-out split of the data.

    ISM / SSM on M points is unbounded below for a flexible network: it can dig a sink of
    ever more negative divergence at every training point, and the training loss falls past
    the population minimum −½E‖∇log p‖² while the score gets worse. Held-out loss catches that
    with no access to the true score. fit() is resumed bit for bit every `check_every` steps
    (same Adam state and batches as one uninterrupted run); the best held-out state is kept,
    and training stops after `patience` checks without improvement.
    Returns (model, info: best_step, held-out and training loss there, seconds).
    """
    import copy
    import tempfile

    n_val = max(1, int(round(val_fraction * data.shape[0])))
    perm = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed))
    val, fit_data = data[perm[:n_val]], data[perm[n_val:]]
    torch.manual_seed(seed)
    model = build()
    best = (math.inf, 0, copy.deepcopy(model.state_dict()), math.nan)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scorelab-es-") as tmp:
        for done in range(check_every, steps + check_every, check_every):
            done = min(done, steps)
            res = fit(
                model,
                objective,
                fit_data,
                steps=done,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                run_dir=tmp,
                resume=done > check_every,
                log_every=check_every,
            )
            v = held_out_loss(model, objective, val, seed + 1)
            if v < best[0]:
                train_loss = float(np.mean(res.losses[-check_every:]))
                best = (v, done, copy.deepcopy(model.state_dict()), train_loss)
            if done >= steps or done - best[1] >= patience * check_every:
                break
    model.load_state_dict(best[2])
    model.eval()
    info = {
        "best_step": best[1],
        "held_out_loss": best[0],
        "train_loss": best[3],
        "steps_run": done,
        "last_train_loss": float(np.mean(res.losses[-check_every:])),
        "seconds": time.perf_counter() - t0,
    }
    return model, info


def zero_score(x: Tensor, sigma: Tensor | None = None) -> Tensor:
    return torch.zeros_like(x)


def relative_fisher(
    score_fn: Callable,
    target: Any,
    *,
    generator: torch.Generator,
    n: int | None = None,
    x: Tensor | None = None,
    sigma: float | None = None,
) -> float:
    """E‖s − ∇log p_σ‖² / E‖∇log p_σ‖² on the same points: 0 is exact, 1 is the zero score."""
    state = generator.get_state()
    err = fisher_divergence(score_fn, target, n=n, x=x, sigma=sigma, generator=generator)
    generator.set_state(state)  # the same points for the baseline
    base = fisher_divergence(zero_score, target, n=n, x=x, sigma=sigma, generator=generator)
    return float(err / base)


def robust_weights(x: Tensor, mixture: Any) -> tuple[list[float], float]:
    """(ŵ, TV) as metrics.mixture_weights, except that chains so far out that every component's
    density underflows (a learned score can push chains away) belong to no component and count
    in the TV as missing mass: TV = ½(Σₖ|ŵₖ − wₖ| + escaped)."""
    resp = mixture.responsibilities(x)
    ok = torch.isfinite(resp).all(dim=1) & torch.isfinite(x).all(dim=1)
    if bool(ok.all()):
        w = mixture_weights(x, mixture)
        return w.estimated, w.tv
    k = mixture.n_components
    counts = torch.bincount(resp[ok].argmax(dim=1), minlength=k)
    est = (counts.double() / x.shape[0]).tolist()
    escaped = 1.0 - float(ok.double().mean())
    true = [float(w) for w in mixture.weights]
    return est, 0.5 * (sum(abs(a - b) for a, b in zip(est, true, strict=True)) + escaped)


def nn_distance(x: Tensor, ref: Tensor, block: int = 2048) -> float:
    """Mean over the rows of x of the distance to the nearest row of ref."""
    x, ref = x.double(), ref.double()
    out = [torch.cdist(x[i : i + block], ref).min(dim=1).values for i in range(0, len(x), block)]
    return float(torch.cat(out).mean())


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(lx, ly, 1)[0])


def sig(v: Any, digits: int = 4) -> Any:
    """A number rounded to `digits` significant digits for tables (ints, None, text unchanged;
    NaN and inf become None)."""
    if isinstance(v, Tensor):
        v = v.item()
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [sig(u, digits) for u in v]
    v = float(v)
    if not math.isfinite(v):
        return None  # JSON has no NaN: a diverged or undefined cell is null
    if v == 0.0:
        return v
    return round(v, digits - 1 - int(math.floor(math.log10(abs(v)))))


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A results table as the experiment contract wants it, numbers rounded by sig()."""
    return {"columns": list(columns), "rows": [[sig(v) for v in row] for row in rows]}


class Timer:
    """with Timer() as t: ...; t.seconds."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0


def line_plot(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    hline: float | None = None,
    hline_label: str = "",
):
    """One line per label over a shared axis (for axes plots.py has no function for)."""
    import matplotlib.pyplot as plt

    from scorelab import plots  # noqa: F401  (selects the Agg backend)

    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for label, (xs, ys) in curves.items():
        ax.plot(np.asarray(xs, float), np.asarray(ys, float), marker="o", ms=3, label=label)
    if hline is not None:
        ax.axhline(hline, ls="--", c="gray", lw=1, label=hline_label or None)
    if logx:
        ax.set_xscale("log")
        xs_all = sorted({float(x) for xs, _ in curves.values() for x in xs})
        if len(xs_all) <= 8:  # a short sweep: label its points, not the log decades' minors
            from matplotlib.ticker import NullFormatter

            ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
            ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
