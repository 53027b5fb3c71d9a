"""Training speed with 2 processes against 1: `scorelab train` under torchrun (gloo, CPU).

Each contestant trains a config for `--steps` steps at the same total batch: `1 process` (one
torch thread), `1 process, 2 threads` (`scorelab --threads 2`), and `2 processes` (torchrun
--nproc_per_node=2, one thread each, batch/2 per rank and one gradient all_reduce per step).
The time per step comes from the run's metrics.jsonl ("seconds" since the start of fit at each
log line): (seconds at the last line − seconds at the first) / the steps between them, so
interpreter start-up, data loading and the first step are left out.  The contestants run in
turn, `--repeats` rounds, and the table gives medians and the speed-up t(1 process)/t(other)
as the median of the per-round ratios.  Configs: the digits NCSN U-Net (compute-bound: 124k
parameters, batch 128 of 8×8 images) and the 2-D toy NCSN MLP of the README (3k parameters,
batch 256, where the all_reduce and the process overhead weigh most).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py            # ~6 min, markdown
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_name, load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOY = """
name = "toy"
seed = 0
out = "{out}"

[data]
target = "seed001_fig3"
n = 2000

[model]
name = "score_mlp"
hidden = 64
depth = 3
conditioning = "sigma"
scale_by_sigma = true

[objective]
name = "ncsn"

[noise]
sigma_min = 0.1
n_levels = 10

[train]
steps = 1000
batch_size = 256
log_every = 50
"""


def torchrun() -> str:
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
        "torchrun"
    )
    if exe is None:
        sys.exit("torchrun is not installed (it comes with torch)")
    return exe


def seconds_per_step(run: Path) -> float:
    lines = [json.loads(v) for v in (run / "metrics.jsonl").read_text().splitlines()]
    first, last = lines[0], lines[-1]
    return (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])


def train(kind: str, config: Path, steps: int, log_every: int, out: Path) -> float:
    sets = ["--set", f"train.steps={steps}", "--set", f"train.log_every={log_every}"]
    sets += ["--set", f"out={out}"]
    if kind == "2 processes":
        cmd = [torchrun(), "--standalone", "--nproc_per_node=2", "-m", "scorelab.cli"]
    else:
        cmd = [sys.executable, "-m", "scorelab.cli"]
        if kind == "1 process, 2 threads":
            cmd += ["--threads", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1" if kind != "1 process, 2 threads" else "2"}
    before = set(out.iterdir()) if out.is_dir() else set()
    res = subprocess.run(
        [*cmd, "train", str(config), *sets], env=env, capture_output=True, text=True, cwd=ROOT
    )
    if res.returncode != 0:
        sys.exit(f"{kind} failed:\n{res.stderr[-2000:]}")
    (run,) = set(out.iterdir()) - before
    t = seconds_per_step(run)
    shutil.rmtree(run)
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--digits-steps", type=int, default=300)
    p.add_argument("--toy-steps", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="1 repeat, a third of the steps")
    a = p.parse_args()
    if a.quick:
        a.repeats, a.digits_steps, a.toy_steps = 1, 100, 300
    load0, t0 = load(), time.perf_counter()
    kinds = ["1 process", "1 process, 2 threads", "2 processes"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        toy = Path(tmp) / "toy.toml"
        toy.write_text(TOY.format(out=out))
        configs = [
            ("digits NCSN U-Net, batch 128", ROOT / "configs" / "digits_ncsn.toml", a.digits_steps),
            ("2-D toy NCSN MLP, batch 256", toy, a.toy_steps),
        ]
        for name, config, steps in configs:
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for r in range(a.repeats):
                for k in kinds[r % 3 :] + kinds[: r % 3]:
                    times[k].append(train(k, config, steps, steps // 5, out))
                    print(f"{name} / {k}: {times[k][-1] * 1e3:.1f} ms/step", file=sys.stderr)
            rows.append((name, steps, times))
    print(
        f"`scorelab train`, seconds per step from metrics.jsonl, median of {a.repeats} rounds; "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}, {cpu_name()}, "
        f"{os.cpu_count()} cores; {datetime.date.today()}; {load0} at start, {load()} at end; "
        f"{time.perf_counter() - t0:.0f} s in all."
    )
    print()
    print("| config | steps | contestant | ms per step | speed-up over 1 process |")
    print("|---|---|---|---|---|")
    for name, steps, times in rows:
        for k in kinds:
            ratio = statistics.median(
                b / t for b, t in zip(times["1 process"], times[k], strict=True)
            )
            ms = 1e3 * statistics.median(times[k])
            print(f"| {name} | {steps} | {k} | {ms:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
