"""Data-parallel training over several processes, GPUs or machines (torchrun + DDP).

Launch any training command with ``torchrun`` instead of ``python``/``invkit``::

    torchrun --nproc-per-node 4 -m invkit.cli.main run kinematics --device cuda

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and the rendezvous address) in each
process; :func:`init_from_env` reads them and joins the process group: ``nccl`` on CUDA (one
GPU per process, ``cuda:LOCAL_RANK``), ``gloo`` on CPU. Without those variables (or with
``WORLD_SIZE=1``) nothing here does anything and training runs in one process as usual.

How a step is split, so that N processes compute what one process computes (same loss curve
within float rounding, same checkpoints):

* every rank builds the same training set and draws the same *global* batch of
  ``train.batch_size`` rows and the same noise from the shared, identically seeded generator;
  each then keeps its own contiguous slice of ``batch_size / N`` rows (:meth:`Shard.rows`).
  The batch size must therefore be divisible by N;
* per-sample losses (MSE terms) are means over the slice; DDP averages the gradients over
  ranks, which is the mean over the global batch;
* the MMD terms are not per-sample: they compare the whole batch with the whole target set.
  :func:`sharded_mmd2` all-gathers the slices (one collective per MMD, no gradient through it),
  and each rank computes the rows of the blocked MMD that belong to its own samples (the value
  part and the exact gradient of the *global* MMD with respect to its own samples). The work
  of the O(B^2) kernel is thus split N ways and the estimator is exactly the one-process one;
* the logged losses are averaged over ranks once per log interval (the trainer's one sync).

Only rank 0 writes the run directory, checkpoints and metrics, shows progress and evaluates.

The ABC baseline (``invkit baseline abc`` under torchrun, or ``baseline.run`` on every rank of a
joined group) splits its simulation budget over the same ranks and gathers one result that is
identical to one process's (the ``abc`` plugin).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from invkit.errors import ConfigError
from invkit.training.losses import imq_mmd_rows


@dataclass(frozen=True)
class Shard:
    """This process's place in the process group, and the helpers a sharded step needs (it is
    the :class:`invkit.training.batch.BatchPart` of this rank)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, t: Tensor) -> Tensor:
        """This rank's contiguous slice of a global batch (along dimension 0)."""
        b = t.shape[0] // self.world_size
        return t[self.rank * b:(self.rank + 1) * b]

    def all_gather(self, t: Tensor) -> list[Tensor]:
        """Every rank's ``t`` (same shape on all ranks), in rank order; no autograd."""
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t.contiguous())
        return out

    def sum_(self, t: Tensor) -> Tensor:
        """Sum ``t`` over ranks, in place (same shape on all ranks); returns ``t``."""
        dist.all_reduce(t)
        return t

    def all_gather_object(self, obj: object) -> list:
        """Every rank's picklable ``obj``, in rank order (for small or ragged results)."""
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (every rank must call this at the same point)."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def mean(self, t: Tensor) -> Tensor:
        """The mean of ``t`` over ranks (a new tensor)."""
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.world_size

    def mmd2(self, x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor:
        return sharded_mmd2(x, y, widths, self)


_current: Shard | None = None
_alone = 0  # depth of one_rank() blocks


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True in a single process and on rank 0 (usable before the process group exists)."""
    return _current.is_main if _current is not None else env_rank() == 0


def current() -> Shard | None:
    """The joined process group, or None in one process and inside :func:`one_rank`."""
    return None if _alone else _current


@contextlib.contextmanager
def one_rank() -> Iterator[None]:
    """A block that this rank runs by itself (rank 0's evaluation after training).

    Inside it :func:`current` is None, so code that splits its work over the process group
    when there is one (the ABC baseline) computes everything here instead of waiting for
    ranks that never come. :func:`is_main` still tells rank 0 apart.
    """
    global _alone
    _alone += 1
    try:
        yield
    finally:
        _alone -= 1


def init_from_env(device: torch.device) -> Shard | None:
    """Join the process group torchrun describes in the environment; None for one process.

    ``device`` is the resolved ``--device``: CUDA ranks use ``cuda:LOCAL_RANK`` with ``nccl``,
    CPU ranks use ``gloo``. Calling it again returns the same shard.
    """
    global _current
    if _current is not None:
        return _current
    world = env_world_size()
    if world <= 1:
        return None
    rank = env_rank()
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(
            f"Distributed training (WORLD_SIZE={world}) runs on CUDA GPUs (nccl) or CPUs (gloo), "
            f"not on {device.type!r}. Use --device cuda or --device cpu, or run one process."
        )
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get("INVKIT_DIST_TIMEOUT", 300)))
        if device.type == "cuda":
            dist.init_process_group(backend, rank=rank, world_size=world, device_id=device,
                                    timeout=timeout)
        else:
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
        atexit.register(shutdown)
    _current = Shard(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local,
                     backend=backend, device=device)
    return _current


def shutdown() -> None:
    """Leave the process group (registered at exit by :func:`init_from_env`).

    The ranks leave together: a rank that tore down its gloo connections while another still
    held them (rank 0 evaluating or writing alone) could abort at exit ("terminate called
    without an active exception", about 1 exit in 8 of the 2-rank CLI test).
    """
    global _current
    _current = None
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # a rank that died must not hang the others
            dist.barrier()
        dist.destroy_process_group()


class _ShardedObjective(nn.Module):
    """An objective computing this rank's rows of each global batch (``part=shard``)."""

    def __init__(self, objective: nn.Module, shard: Shard) -> None:
        super().__init__()
        self.objective = objective
        self._shard = shard

    def forward(self, x: Tensor, y: Tensor, gen: torch.Generator, x_weight: float = 1.0
                ) -> dict[str, Tensor]:
        return self.objective(x, y, gen, x_weight, part=self._shard)


def wrap_objective(objective: nn.Module, shard: Shard, batch_size: int) -> nn.Module:
    """The objective in DistributedDataParallel, computing this rank's slice of each batch.

    The objective receives the global batch and ``part=shard`` (see
    :mod:`invkit.training.batch`): it draws the global noise, keeps its rows and computes the
    MMD terms over all ranks' rows.
    """
    from torch.nn.parallel import DistributedDataParallel

    if batch_size % shard.world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} must be divisible by the number of processes "
            f"({shard.world_size}): each trains on an equal slice of the global batch. Try "
            f"--set train.batch_size={batch_size // shard.world_size * shard.world_size}."
        )
    kwargs = {"device_ids": [shard.device.index]} if shard.device.type == "cuda" else {}
    return DistributedDataParallel(_ShardedObjective(objective, shard), **kwargs)


def unwrap(objective: nn.Module) -> nn.Module:
    """The objective inside :func:`wrap_objective`'s wrappers (itself when not wrapped)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(objective, DistributedDataParallel):
        objective = objective.module
    if isinstance(objective, _ShardedObjective):
        objective = objective.objective
    return objective


class _ShardedIMQMMD(torch.autograd.Function):
    """This rank's share of the global fused MMD (see ``invkit.training.losses``).

    Forward returns N times the rows' part of w^T K w, so the mean over ranks is the global
    MMD^2; backward returns N times d MMD^2 / d(own rows), so DDP's gradient average is the
    global gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, widths: tuple[float, ...],  # type: ignore[override]
                shard: Shard) -> Tensor:
        bx, by, world, r = x.shape[0], y.shape[0], shard.world_size, shard.rank
        parts = shard.all_gather(torch.cat([x, y]).detach())
        p = torch.cat([q[:bx] for q in parts] + [q[bx:] for q in parts])
        n, m = world * bx, world * by
        w = torch.cat([p.new_full((n,), 1.0 / n), p.new_full((m,), -1.0 / m)])
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        rows = [(r * bx, (r + 1) * bx), (n + r * by, n + (r + 1) * by)]
        total, grad = imq_mmd_rows(p, w, widths, rows, need)
        ctx.bx = bx
        ctx.save_for_backward(grad.mul_(world) if grad is not None else p.new_zeros(0))
        return (total * world).to(p.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        gx = g * grad[:ctx.bx] if ctx.needs_input_grad[0] else None
        gy = g * grad[ctx.bx:] if ctx.needs_input_grad[1] else None
        return gx, gy, None, None


def sharded_mmd2(x: Tensor, y: Tensor, widths: Sequence[float], shard: Shard) -> Tensor:
    """The global batch's MMD^2 (as :func:`invkit.training.losses.mmd2`) from local slices.

    ``x`` and ``y`` are this rank's slices (equal sizes on every rank). The value is N times
    this rank's share (mean over ranks = global MMD^2); see :class:`_ShardedIMQMMD`.
    """
    return _ShardedIMQMMD.apply(x, y, tuple(float(a) for a in widths), shard)
