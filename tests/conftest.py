"""Test-wide settings: one torch thread (small ops are far slower when two threads fight)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def gen():
    """A fresh, seeded torch.Generator per test: same seed → same bits."""
    g = torch.Generator()
    g.manual_seed(1234)
    return g
