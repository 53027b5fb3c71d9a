"""Several processes (torch.distributed, gloo) through torchrun in a subprocess.

A W-process step averages the ranks' gradients, so it is the step one process takes on the W
shares together: that is what the first test checks against a single-process emulation."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scorelab.distributed import Dist, gather_rows, shares, stream_seed

HERE = Path(__file__).parent
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun"
)
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")


def _torchrun(args: list[str], tmp_path: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", *args]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _worker():
    spec = importlib.util.spec_from_file_location("fit_worker", HERE / "dist" / "fit_worker.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("objective", ["ncsn", "ism"])
def test_two_processes_take_the_step_of_one_process_on_both_shares(objective, tmp_path):
    steps = 5
    worker = str(HERE / "dist" / "fit_worker.py")
    _torchrun([worker, str(tmp_path), objective, str(steps)], tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    # identical replicas, bit for bit, and the same logged (all-reduced) losses
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == steps

    # one process, batch 64 = the two ranks' 32-row shares from their streams, concatenated
    model, obj, data = _worker().problem(objective)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-2, foreach=True)
    g = torch.Generator()
    losses = []
    for step in range(1, steps + 1):
        per = []
        for rank in (0, 1):
            g.manual_seed(stream_seed(7, rank, step))
            idx = torch.randint(0, data.shape[0], (32,), generator=g)
            per.append(obj(model, data[idx], generator=g))
        loss = torch.cat(per).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    # the same arithmetic up to summation order (float32); measured: losses within 1.1e-7
    # relative (the mean of two means against one mean), parameters equal bit for bit
    torch.testing.assert_close(torch.tensor(r0["losses"]), torch.tensor(losses), rtol=1e-5, atol=0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)
    # and the run moved: the loss of the last step differs from the first
    assert losses[-1] != losses[0]


def test_streams_and_shares():
    seeds = {stream_seed(0, r, k) for r in range(4) for k in range(1000)}
    assert len(seeds) == 4000 and all(0 <= s < 2**63 for s in seeds)
    assert stream_seed(3, 1, 2) == stream_seed(3, 1, 2) != stream_seed(3, 2, 1)
    assert shares(10, 3) == [4, 3, 3] and shares(2, 4) == [1, 1, 0, 0]
    x = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(gather_rows(x, Dist()), x)  # one process: itself


def test_cli_train_resume_and_sample_under_torchrun(tmp_path):
    """`scorelab train` / `sample` under torchrun: one run folder written once, resumable with
    another number of processes; n samples split over the ranks, reproducible, no repeated
    chains."""
    from test_cli import TINY  # the tiny NCSN config of the single-process CLI tests

    from scorelab.checkpoint import read_checkpoint_json
    from scorelab.cli import main
    from scorelab.runs import load_samples

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(out=tmp_path / "runs", data='target = "seed001_fig3"\nn = 500'))
    res = _torchrun(["-m", "scorelab.cli", "train", str(cfg), "--set", "train.steps=40"], tmp_path)
    (run,) = (tmp_path / "runs").iterdir()
    assert res.stdout.count("trained:") == 1  # rank 0 alone reports (and writes)
    assert read_checkpoint_json(run)["step"] == 40
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(v)["step"] for v in lines] == [20, 40]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2

    # one process takes it on to 60, two processes to 80
    assert main(["train", "--resume", str(run), "--steps", "60"]) == 0
    assert read_checkpoint_json(run)["step"] == 60
    _torchrun(["-m", "scorelab.cli", "train", "--resume", str(run), "--steps", "80"], tmp_path)
    assert read_checkpoint_json(run)["step"] == 80
    steps = [json.loads(v)["step"] for v in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [20, 40, 60, 80]

    args = ["-m", "scorelab.cli", "sample", str(run), "-n", "41", "--seed", "5"]
    files = []
    for _ in range(2):
        before = set((run / "samples").glob("*.npz")) if (run / "samples").is_dir() else set()
        _torchrun(args, tmp_path)
        (new,) = set((run / "samples").glob("*.npz")) - before
        files.append(new)
    (x1, m1), (x2, _) = (load_samples(f) for f in files)
    assert x1.shape == (41, 2) and np.isfinite(x1).all()
    assert np.array_equal(x1, x2)  # same seed, same number of processes: same samples
    assert len(np.unique(x1, axis=0)) == 41  # the ranks' streams do not repeat chains
    assert m1["n"] == 41 and m1["world_size"] == 2
    # one process with the same seed draws other chains (one stream, not two)
    x_one, _ = load_samples(_one_process_sample(run, main))
    assert not np.array_equal(x_one, x1)


def _one_process_sample(run, main):
    before = set((run / "samples").glob("*.npz"))
    assert main(["sample", str(run), "-n", "41", "--seed", "5"]) == 0
    (new,) = set((run / "samples").glob("*.npz")) - before
    return new
