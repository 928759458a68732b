"""Which rows of a global batch this process computes: all of them in one process
(:data:`WHOLE`), a rank's slice under torchrun (:class:`invkit.distributed.Shard`).

Objectives draw their noise for the whole global batch and then keep ``part.rows(...)``, and
compute batch statistics such as the MMD through ``part.mmd2``, so N processes compute
exactly what one computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import Tensor

from invkit.training.losses import mmd2


class BatchPart(Protocol):
    """The rows of a global batch that this process computes."""

    def rows(self, t: Tensor) -> Tensor: ...

    def mmd2(self, x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor: ...


class _Whole:
    """All rows: one process."""

    def rows(self, t: Tensor) -> Tensor:
        return t

    def mmd2(self, x: Tensor, y: Tensor, widths: Sequence[float]) -> Tensor:
        return mmd2(x, y, widths)


WHOLE: BatchPart = _Whole()
