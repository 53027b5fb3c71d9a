"""Determinism: the same config and seed give byte-identical checkpoint files and identical
samples on the CPU, run after run (the SDE and the noise-ladder paths)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from test_cli import TINY

from scorelab.checkpoint import checkpoint_dir
from scorelab.cli import main
from scorelab.runs import load_samples

SDE = """
name = "tiny-sde"
seed = 3
out = "{out}"

[data]
target = "seed001_fig3"
n = 400

[model]
name = "score_mlp"
hidden = 32
depth = 2
conditioning = "time"

[objective]
name = "sde_dsm"

[sde]
name = "vp"

[train]
steps = 60
batch_size = 64
checkpoint_every = 30
log_every = 20

[sample]
sampler = "predictor_corrector"
n = 100
n_steps = 20
"""


def _train_and_sample(tmp_path, text: str, k: int) -> tuple[dict[str, str], np.ndarray]:
    cfg = tmp_path / f"c{k}.toml"
    out = tmp_path / f"runs{k}"
    cfg.write_text(text.format(out=out, data='target = "seed001_fig3"\nn = 500'))
    assert main(["train", str(cfg)]) == 0
    (run,) = out.iterdir()
    digests = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in checkpoint_dir(run).glob("*.safetensors")
    }
    assert main(["sample", str(run), "-n", "100", "--seed", "9"]) == 0
    (path,) = (run / "samples").glob("*.npz")
    return digests, load_samples(path)[0]


@pytest.mark.parametrize("text", [TINY, SDE], ids=["ncsn", "sde"])
def test_same_config_and_seed_give_the_same_bytes(tmp_path, text):
    (d1, x1), (d2, x2) = (_train_and_sample(tmp_path, text, k) for k in (1, 2))
    assert set(d1) == {"weights-000060.safetensors", "state-000060.safetensors"}
    assert d1 == d2  # weights, EMA, Adam state and generator states, byte for byte
    assert x1.shape == (100, 2) and np.array_equal(x1, x2)
