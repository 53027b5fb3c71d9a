"""Run under torchrun by tests/test_distributed.py: fit() on a toy problem with W processes;
each rank writes its final parameters and the losses to OUT/rank{r}.pt."""

from __future__ import annotations

import sys

import torch

from scorelab.distributed import from_env
from scorelab.models.mlp import ScoreMLP
from scorelab.objectives import ISM, NCSN
from scorelab.train import fit


def problem(objective: str):
    """(model, objective, data) — the same on every rank and in the single-process emulation."""
    torch.manual_seed(0)
    data = torch.randn(256, 2, generator=torch.Generator().manual_seed(1)) * 2.0
    if objective == "ncsn":
        model = ScoreMLP(2, hidden=32, depth=2, conditioning="sigma")
        return model, NCSN(sigmas=[1.0, 0.5, 0.1]), data
    return ScoreMLP(2, hidden=32, depth=2), ISM(), data


def main() -> None:
    out, objective, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    dist = from_env("cpu")
    model, obj, data = problem(objective)
    res = fit(model, obj, data, steps=steps, batch_size=64, lr=1e-2, seed=7, dist=dist)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"state": state, "losses": res.losses}, f"{out}/rank{dist.rank}.pt")
    dist.close()


if __name__ == "__main__":
    main()
