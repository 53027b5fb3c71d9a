"""Reproductions of the seeds' figures and tables: `scorelab experiment NAME`.

An experiment is a function run(out_dir, *, size, seed) -> dict that writes its figures into
out_dir/figures and returns JSON-able results: {"title", "seed_ref", "summary": [lines],
"tables": {name: {"columns": [...], "rows": [[...], ...]}}, ...}.  size is "small" (seconds,
used by the tests) or "full" (the documented run; shrunk from the seed's size where 2 CPU cores
cannot reach it, and the results section says so).  The CLI writes results.json and the report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scorelab._utils import ScorelabError
from scorelab.registry import Registry

SIZES = ("small", "full")


@dataclass(frozen=True)
class Experiment:
    """A named reproduction: what it reproduces and the function that runs it."""

    name: str
    title: str
    seed_ref: str
    run: Callable[..., dict[str, Any]]


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def experiment(name: str, title: str, seed_ref: str):
    """Register run(out_dir: Path, *, size: str, seed: int) -> dict under `name`.

    The registered function checks `size` and runs on one torch thread (the experiments'
    tensors are small: two threads on two busy cores only fight), restoring the count after.
    """

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(fn)
        def run(out_dir: str | Path, *, size: str = "full", seed: int = 0) -> dict[str, Any]:
            if size not in SIZES:
                raise ScorelabError(f"size must be one of {SIZES}, got {size!r}")
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return fn(Path(out_dir), size=size, seed=seed)
            finally:
                torch.set_num_threads(threads)

        exp = Experiment(name, title, seed_ref, run)
        EXPERIMENTS.register(name, doc=f"{title} ({seed_ref})")(lambda: exp)
        return run

    return deco


def get_experiment(name: str) -> Experiment:
    _load_all()
    return EXPERIMENTS.get(name)()


def list_experiments() -> dict[str, str]:
    _load_all()
    return EXPERIMENTS.describe()


def _load_all() -> None:
    """Import every experiment module so that its @experiment registrations run."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if mod.name.startswith("exp_"):
            importlib.import_module(f"{__name__}.{mod.name}")
