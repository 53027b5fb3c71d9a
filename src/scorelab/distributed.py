"""Several processes through torch.distributed: who am I, and the few collectives scorelab uses.

`scorelab train` and `scorelab sample` run unchanged under ``torchrun --nproc_per_node=N``
(docs/scaling.md).  torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `from_env` joins the process
group (gloo on the CPU, nccl on CUDA) and returns a `Dist`; without them it returns the single
process `Dist()` and nothing else changes.

Randomness.  One process draws from one generator, as before.  With W > 1 processes, rank r
draws its share of step k from a generator seeded with `stream_seed(seed, r, k)` (a splitmix64
mix): the streams are independent, a run is a function of (seed, W), and a resumed run needs no
generator state, so it may resume with another W.  Sampling splits n into W contiguous shares,
rank r seeded with `stream_seed(seed, r)`, gathered in rank order on rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn

from scorelab._utils import ScorelabError

__all__ = [
    "Dist",
    "average_gradients",
    "broadcast_parameters",
    "from_env",
    "gather_rows",
    "shares",
    "stream_seed",
]

_MASK = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def stream_seed(seed: int, rank: int, step: int = 0) -> int:
    """A 63-bit seed for (seed, rank, step): splitmix64 applied to each in turn (distinct inputs
    give unrelated seeds; torch generators take seeds < 2⁶³ without a sign problem)."""
    z = _splitmix64(int(seed) & _MASK)
    z = _splitmix64(z ^ (int(rank) & _MASK))
    z = _splitmix64(z ^ (int(step) & _MASK))
    return z >> 1


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank in 0..world_size−1 (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """rank 0's `obj` on every rank (any picklable object; torch pickles it between the
        job's own processes, never from a file)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self, *, wait: bool = True) -> None:
        """Leave the process group, after every rank got here when `wait` (a process that exits
        while gloo's threads run aborts with "terminate called without an active exception").
        After an error, wait=False: the other ranks may be inside another collective."""
        if self.enabled and tdist.is_initialized():
            if wait:
                tdist.barrier()
            tdist.destroy_process_group()


def from_env(device: torch.device | str = "cpu") -> Dist:
    """The job torchrun started (joining its process group), or the single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not tdist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(local)
        try:
            tdist.init_process_group(backend=backend)
        except Exception as e:  # a missing rendezvous or a dead peer: one line, not a trace
            raise ScorelabError(f"could not join the torch.distributed job ({backend}): {e}") from e
    return Dist(rank=rank, world_size=world, local_rank=local, backend=backend)


def shares(n: int, world_size: int) -> list[int]:
    """n split into world_size contiguous shares, the first n mod W one larger."""
    q, r = divmod(n, world_size)
    return [q + (i < r) for i in range(world_size)]


def gather_rows(x: Tensor, dist: Dist) -> Tensor | None:
    """Every rank's rows of x (on the CPU), concatenated in rank order, on rank 0; None on the
    others.  Shares may differ in length (gather_object carries each as it is)."""
    x = x.detach().cpu()
    if not dist.enabled:
        return x
    out: list[Any] | None = [None] * dist.world_size if dist.is_main else None
    tdist.gather_object(x, out, dst=0)
    return torch.cat(out) if out is not None else None


def broadcast_parameters(model: nn.Module, dist: Dist) -> None:
    """rank 0's parameters and buffers on every rank (one broadcast per tensor, at start)."""
    if dist.enabled:
        for t in [*model.parameters(), *model.buffers()]:
            tdist.broadcast(t.data, src=0)


def average_gradients(params: list[Tensor], dist: Dist, loss: float) -> float:
    """Each parameter's .grad ← its mean over the ranks, and the mean of the ranks' `loss`
    returned, by one all_reduce of the flattened gradients with the loss appended.  A missing
    gradient counts as zeros (a rank whose loss was not finite skipped backward; the mean loss
    is then not finite either, and every rank skips the step alike).

    This is DistributedDataParallel's arithmetic without its hooks: DDP's forward hooks do not
    compose with torch.func (ISM's vmap(jacrev) fails under DDP with "Cannot access data
    pointer of Tensor that doesn't have storage"), and one flat all_reduce after backward
    serves every objective alike (docs/scaling.md)."""
    if not dist.enabled:
        return loss
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif p.grad.is_sparse:
            raise ScorelabError("sparse gradients are not supported with several processes")
        grads.append(p.grad)
    flat = torch._utils._flatten_dense_tensors([*grads, grads[0].new_tensor([loss])])
    tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
    flat /= dist.world_size
    for g, v in zip(grads, torch._utils._unflatten_dense_tensors(flat[:-1], grads), strict=True):
        g.copy_(v)
    return float(flat[-1])
