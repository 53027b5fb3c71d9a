"""RBM training against scikit-learn's BernoulliRBM: time, exact log-likelihood, pseudo-likelihood.

Equal work: both train a Bernoulli–Bernoulli RBM(64, H) on the 1438 binarised training digits
(`binarized_digits`, pixel v/16 > 0.5) by PCD-1 with 10 persistent chains, minibatches of 10 in
data order (no shuffling), plain SGD at the same learning rate for the same epochs, in the same
float dtype — scikit-learn's `BernoulliRBM.fit` and `fit_rbm(method="pcd", k=1, shuffle=False)`
(the tests check they are the same update step for step when fed the same uniforms). Each timed
call is the whole fit, init included: `BernoulliRBM(...).fit(X)` against `RBM(...)` +
`fit_rbm(...)`. Every repeat visits every (H, dtype) cell once, scikit-learn then ours
(interleaved), with seed = repeat index; cells report the median over repeats and the ratio
ours/peer of the medians. Quality is scored on the 359 held-out digits with the same code for
both models (sklearn's parameters are copied into an `RBM`): the exact log-likelihood for
H ≤ 20 (log Z by enumerating 2^H hidden states) and the exact pseudo-log-likelihood
Σᵢ log p(xᵢ | x₋ᵢ), mean ± s.d. over the repeats' seeds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rbm.py            # full (~1 min)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rbm.py --quick    # ~10 s
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import sklearn
import torch
from _machine import cpu_name, load  # noqa: E402  (benchmarks/ is the script dir)
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_limits

from scorelab.ebm.rbm import MAX_EXACT_HIDDEN, RBM, binarized_digits, fit_rbm

DTYPES = {"float64": (torch.float64, np.float64), "float32": (torch.float32, np.float32)}


def fit_sklearn(x: np.ndarray, h: int, args: argparse.Namespace, seed: int) -> tuple[float, RBM]:
    t0 = time.perf_counter()
    est = BernoulliRBM(
        n_components=h,
        learning_rate=args.lr,
        batch_size=args.batch,
        n_iter=args.epochs,
        random_state=seed,
    )
    est.fit(x)
    return time.perf_counter() - t0, RBM.from_sklearn(est)


def fit_ours(x: torch.Tensor, h: int, args: argparse.Namespace, seed: int) -> tuple[float, RBM]:
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(x.shape[1], h, generator=g, dtype=x.dtype)
    fit_rbm(rbm, x, epochs=args.epochs, generator=g, method="pcd", k=1, lr=args.lr,
            batch_size=args.batch, shuffle=False, monitor={})  # fmt: skip
    return time.perf_counter() - t0, rbm


def quality(rbm: RBM, test: torch.Tensor) -> dict[str, float]:
    out = {"pl": float(rbm.pseudo_log_likelihood(test).mean())}
    if rbm.n_hidden <= MAX_EXACT_HIDDEN:
        out["ll"] = float(rbm.log_prob(test).mean())
    return out


def mean_sd(v: list[float]) -> str:
    if not v:
        return "—"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.fmean(v):.2f} ± {sd:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["float64", "float32"])
    p.add_argument("--epochs", type=int, default=10, help="sklearn's default n_iter")
    p.add_argument("--lr", type=float, default=0.1, help="sklearn's default learning_rate")
    p.add_argument("--batch", type=int, default=10, help="sklearn's default batch_size")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="H = 16, 3 epochs, 3 repeats")
    args = p.parse_args()
    if args.quick:
        args.hidden, args.epochs, args.repeats = [16], 3, 3
    torch.set_num_threads(args.threads)
    train, test = binarized_digits("train"), binarized_digits("test").double()
    n_batches = -(-train.shape[0] // args.batch) * args.epochs
    print(
        f"# {datetime.datetime.now().isoformat(timespec='seconds')}  {cpu_name()}, "
        f"{os.cpu_count()} cores; {args.threads} thread(s) (torch and BLAS); Python "
        f"{platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}; {load()} at start"
    )
    print(
        f"# RBM(64, H) on {train.shape[0]} binarised digits, PCD-1, 10 chains, batch "
        f"{args.batch}, lr {args.lr:g}, {args.epochs} epochs ({n_batches} minibatches), no "
        f"shuffling; median of {args.repeats} interleaved repeats (seeds 0..{args.repeats - 1})"
    )
    cells = [(h, d) for h in args.hidden for d in args.dtypes]
    times: dict = {(c, who): [] for c in cells for who in ("sk", "ours")}
    scores: dict = {(c, who): [] for c in cells for who in ("sk", "ours")}
    warm = argparse.Namespace(**{**vars(args), "epochs": 1})
    with threadpool_limits(args.threads):
        for h, d in cells:  # warm-up: first-call costs (allocator, BLAS init) out of the timings
            fit_sklearn(train.numpy().astype(DTYPES[d][1]), h, warm, 0)
            fit_ours(train.to(DTYPES[d][0]), h, warm, 0)
        for r in range(args.repeats):
            for c in cells:
                h, d = c
                t_sk, m_sk = fit_sklearn(train.numpy().astype(DTYPES[d][1]), h, args, r)
                t_us, m_us = fit_ours(train.to(DTYPES[d][0]), h, args, r)
                times[c, "sk"].append(t_sk)
                times[c, "ours"].append(t_us)
                scores[c, "sk"].append(quality(m_sk, test))
                scores[c, "ours"].append(quality(m_us, test))
            print(f"repeat {r + 1}/{args.repeats} done ({load()})", file=sys.stderr)
    print()
    print(
        "| H | dtype | sklearn s | ours s | ours/sklearn | µs per minibatch (sklearn / ours) "
        "| test LL sklearn | test LL ours | test PL sklearn | test PL ours |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        h, d = c
        sk, us = statistics.median(times[c, "sk"]), statistics.median(times[c, "ours"])
        q = {
            (who, key): [s[key] for s in scores[c, who] if key in s]
            for who in ("sk", "ours")
            for key in ("ll", "pl")
        }
        print(
            f"| {h} | {d} | {sk:.3f} | {us:.3f} | {us / sk:.2f} | "
            f"{1e6 * sk / n_batches:.0f} / {1e6 * us / n_batches:.0f} | "
            f"{mean_sd(q['sk', 'll'])} | {mean_sd(q['ours', 'll'])} | "
            f"{mean_sd(q['sk', 'pl'])} | {mean_sd(q['ours', 'pl'])} |"
        )
    print()
    print(f"# {load()} at end")


if __name__ == "__main__":
    main()
