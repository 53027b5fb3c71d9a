"""Crash safety: a training process killed (SIGKILL) at random moments and inside checkpoint
writes, resumed each time, ends with the weights of an uninterrupted run; a full disk leaves
the previous checkpoint intact."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_cli import TINY

import scorelab.checkpoint as ck
from scorelab.checkpoint import checkpoint_dir, load_checkpoint, read_checkpoint_json
from scorelab.cli import main
from scorelab.pipeline import read_run

WORKER = Path(__file__).parent / "faults" / "crash_worker.py"
STEPS, EVERY = 3000, 100


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny.toml"
    text = TINY.format(out=tmp_path / "runs", data='target = "seed001_fig3"\nn = 500')
    text = text.replace("steps = 60", f"steps = {STEPS}")
    text = text.replace("checkpoint_every = 30", f"checkpoint_every = {EVERY}")
    cfg.write_text(text.replace("log_every = 20", "log_every = 10"))
    return cfg


def _launch(args: list[str], mode: str = "none", n: int = 0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), mode, str(n), "--", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _weights_digest(run: Path) -> str:
    record = read_checkpoint_json(run)
    path = checkpoint_dir(run) / record["files"]["weights"]["name"]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _last_metric_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass  # a line torn by the kill
    return max(steps, default=0)


def _check_after_kill(run: Path) -> int:
    """A valid committed checkpoint (or none yet), loadable; returns its step (0 if none)."""
    record = read_checkpoint_json(run)  # raises on a torn or inconsistent commit
    if record is None:
        assert _last_metric_step(run) <= EVERY
        return 0
    cfg, meta = read_run(run)
    from scorelab.pipeline import build_model, run_sde

    model = build_model(cfg, meta["dim"], run_sde(meta), sigmas=meta["noise"]["sigmas"])
    load_checkpoint(run, model, ema=True)  # every tensor present, with its shape
    lost = _last_metric_step(run) - record["step"]
    assert lost <= EVERY, (lost, record["step"])  # at most one checkpoint interval
    return record["step"]


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path):
    cfg = _config(tmp_path)
    ref = _launch(["train", str(cfg)])
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()[-2000:]
    (ref_run,) = (tmp_path / "runs").iterdir()
    reference = _weights_digest(ref_run)
    ref_run.rename(tmp_path / "reference")

    # faults inside checkpoint writes (a checkpoint = weights, state, checkpoint.json writes),
    # then kills at random moments of the training loop
    # (mode, N): the N-th checkpoint file this launch writes, 1–3 its first checkpoint
    # (weights, state, checkpoint.json), 4–6 its second: a torn tensor file, a tensor file in
    # place but not committed, a torn commit, a commit whose old files were not yet deleted
    injected = [("torn", 1), ("written", 2), ("torn", 3), ("written", 3), ("written", 6)]
    n_random = 6
    rng = random.Random(0)
    kills, steps_seen = 0, []
    proc = _launch(["train", str(cfg)], *injected[0])
    run = None
    while True:
        if len(injected) <= kills < len(injected) + n_random:
            # a kill at a random moment of the training loop: once this launch has logged a
            # random 20–250 steps of progress (in steps, not seconds, so that a fast machine
            # cannot finish the run before the kills are done), then 0–20 ms later
            target = _last_metric_step(run) + rng.randint(20, 250)
            while proc.poll() is None and _last_metric_step(run) < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.02))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=300)
        if run is None:
            (run,) = (tmp_path / "runs").iterdir()
        if code == 0:
            break
        assert code == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        kills += 1
        steps_seen.append(_check_after_kill(run))
        fault = injected[kills] if kills < len(injected) else ("none", 0)
        proc = _launch(["train", "--resume", str(run)], *fault)
    assert kills >= 10, kills
    assert read_checkpoint_json(run)["step"] == STEPS
    assert _weights_digest(run) == reference  # bit for bit the uninterrupted run
    # the interrupted cleanup's stale files went with the next checkpoint
    names = sorted(p.name for p in checkpoint_dir(run).iterdir())
    assert names == [
        "checkpoint.json",
        f"state-{STEPS:06d}.safetensors",
        f"weights-{STEPS:06d}.safetensors",
    ]
    steps = [json.loads(v)["step"] for v in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(10, STEPS + 1, 10))  # no step logged twice, none missing
    print(f"kills {kills}, checkpoint steps after each: {steps_seen}")


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    cfg = _config(tmp_path)
    original, calls = ck.atomic_write, {"n": 0}

    def full(path, data):
        calls["n"] += 1
        if calls["n"] == 4:  # the second checkpoint's first file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, data)

    monkeypatch.setattr(ck, "atomic_write", full)
    assert main(["train", str(cfg), "--set", "train.steps=300"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err[-1:]) == 1 and "No space left on device" in err[-1], err
    assert "Traceback" not in "\n".join(err)
    (run,) = (tmp_path / "runs").iterdir()
    record = read_checkpoint_json(run)
    assert record["step"] == EVERY  # the previous checkpoint, intact and loadable
    assert not [p for p in checkpoint_dir(run).iterdir() if ".tmp-" in p.name]
    cfg_, meta = read_run(run)
    from scorelab.pipeline import build_model, run_sde

    model = build_model(cfg_, meta["dim"], run_sde(meta), sigmas=meta["noise"]["sigmas"])
    load_checkpoint(run, model, ema=True)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_divergence_names_the_step_and_lr_or_is_skipped(tmp_path, capsys):
    """lr = 1e30 blows the weights up after one Adam step: train stops with one line naming the
    step and the lr, or, with [train] skip_nonfinite = true, logs the bad steps and goes on."""
    cfg = _config(tmp_path)
    text = cfg.read_text().replace(f"steps = {STEPS}", "steps = 30\nlr = 1e30")
    cfg.write_text(text)
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("scorelab: error: training diverged at step ") and "lr (now 1e+30)" in err
    cfg.write_text(text.replace("lr = 1e30", "lr = 1e30\nskip_nonfinite = true"))
    assert main(["train", str(cfg)]) == 0
    run = max((tmp_path / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    lines = [json.loads(v) for v in (run / "metrics.jsonl").read_text().splitlines()]
    skipped = [v["step"] for v in lines if v.get("skipped")]
    assert (
        skipped and skipped[-1] == 30 and all(v["loss"] is None for v in lines if v.get("skipped"))
    )


@pytest.mark.parametrize("damage", ["truncate", "flip header byte", "flip data byte"])
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, capsys, damage):
    cfg = _config(tmp_path)
    assert main(["train", str(cfg), "--set", "train.steps=20", "--set", "train.log_every=10"]) == 0
    capsys.readouterr()
    (run,) = (tmp_path / "runs").iterdir()
    path = checkpoint_dir(run) / read_checkpoint_json(run)["files"]["weights"]["name"]
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip header byte":
        data[12] ^= 0xFF  # inside the JSON header that follows the 8-byte length
    else:
        data[-5] ^= 0x01  # a weight's low byte: same size, a valid file with other values
    path.write_bytes(bytes(data))
    code = main(["sample", str(run), "-n", "10"])
    err = capsys.readouterr().err
    if damage == "flip data byte":
        # safetensors carries no checksum, so a flipped weight bit loads (as the value it now
        # is); what is promised is that a file which cannot be parsed or sized is refused
        assert code == 0
        return
    assert code == 2 and "Traceback" not in err
    assert path.name in err.strip().splitlines()[-1], err


def test_nothing_unpickles():
    """No loader in scorelab can execute code from a file: no torch.load, pickle or
    allow_pickle=True anywhere in the package (checkpoints are safetensors + JSON)."""
    src = Path(__file__).parent.parent / "src" / "scorelab"
    offenders = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        for needle in ("torch.load(", "pickle.load", "allow_pickle=True", "import pickle"):
            if needle in text:
                offenders.append(f"{path.relative_to(src)}: {needle}")
    assert not offenders, offenders
