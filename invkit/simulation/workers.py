"""Blocks run in worker processes, for simulators too slow for one core.

A slow simulator (numpy, one sample at a time, an external program) keeps one core busy per
call, so blocks of its stream (:mod:`invkit.simulation.blocks`) run in a
``concurrent.futures.ProcessPoolExecutor``. Results do not depend on the number of workers:
every block is fixed by its own seed.

* **Start method.** On Linux (and other POSIX systems but macOS) workers are forked: they
  inherit the problem object as it is, closures and all (plugins' callables are often not
  picklable). Where fork is unavailable or unsafe (Windows, macOS) workers are spawned and
  rebuild the problem by name from invkit's registry, which works for any registered
  problem; one built in code is refused with a message saying to run without workers.
* **Threads.** Each worker sets torch to 1 thread: the parallelism is the workers, and more
  threads than cores only add contention.
* **Interruption.** Workers write each finished block to the cache themselves, so nothing
  finished is lost whatever happens to the parent. On Ctrl-C (or any other
  ``BaseException``) the parent kills the workers at once, each with its process group, so
  an external program a worker started does not outlive it either. When a block fails, the
  blocks already running are allowed to finish (and reach the cache) before the error is
  raised.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

import torch
from torch import Tensor

from invkit.errors import InvkitError
from invkit.simulation.blocks import BlockFailed, BlockRunner, as_numpy

WAIT_S = 0.25
"""Longest wait for a worker's block before the main thread looks at signals again."""

_RUNNER: BlockRunner | None = None
"""The worker's runner, set by :func:`_init_worker` (one per worker process)."""


def default_start_method() -> str:
    """'fork' where it is available and safe (Linux and other POSIX but macOS), else 'spawn'."""
    if sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def _init_worker(runner: BlockRunner) -> None:
    global _RUNNER
    if hasattr(os, "setpgrp"):
        # Its own process group: Ctrl-C at the terminal reaches the parent only (which ends
        # the workers), and killing the group also ends any program the worker started.
        os.setpgrp()
    else:  # pragma: no cover - Windows
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _RUNNER = runner


def _ping() -> int:
    return os.getpid()


def _work(k: int, rows: int) -> tuple[Any, ...]:
    """One block in a worker: ('ok', k, x, y) as numpy arrays, or ('failed', k, message)
    (a message, not the exception: a plugin's exception may not survive pickling)."""
    assert _RUNNER is not None
    try:
        x, y = _RUNNER.run(k, rows)
    except BlockFailed as exc:
        return ("failed", k, str(exc))
    except Exception as exc:  # e.g. the cache could not be written
        return ("failed", k, f"Block {k} failed: {type(exc).__name__}: {exc}")
    return ("ok", k, *as_numpy(x, y))


class Pool:
    """Runs blocks in this process (``workers=0``) or in worker processes.

    ``with Pool(runner, workers) as pool: for k, x, y in pool.run(tasks): ...``: workers
    start when the block is entered (before any progress bar starts its thread, since
    forking a threaded process is fragile), and are shut down or killed when it is left.
    """

    def __init__(self, runner: BlockRunner, workers: int, start_method: str | None = None
                 ) -> None:
        self.runner, self.workers = runner, int(workers)
        self.start_method = start_method or default_start_method()
        self._executor: ProcessPoolExecutor | None = None

    @property
    def in_process(self) -> bool:
        # an accelerator is the parallelism of a batched torch process; workers are CPU-only
        return self.workers == 0 or self.runner.device.type != "cpu"

    def __enter__(self) -> Pool:
        if self.in_process:
            return self
        if self.start_method != "fork":
            self._check_rebuildable()
        ctx = multiprocessing.get_context(self.start_method)
        self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                             initializer=_init_worker,
                                             initargs=(self.runner,))
        try:
            started = self._executor.submit(_ping)  # starts every worker now
            while not started.done():
                wait([started], timeout=WAIT_S)  # timed: see run()
            started.result()
        except BaseException as exc:
            self._kill()
            if isinstance(exc, BrokenProcessPool):
                raise InvkitError(f"The simulation worker processes failed to start "
                                  f"({self.start_method}). Run with workers=0 to simulate "
                                  f"in this process.") from None
            raise
        return self

    def run(self, tasks: Sequence[tuple[int, int]]) -> Iterator[tuple[int, Tensor, Tensor]]:
        """(k, x, y) for each task (k, rows), in the order blocks finish."""
        if self._executor is None:
            for k, rows in tasks:
                try:
                    x, y = self.runner.run(k, rows)
                except BlockFailed as exc:
                    raise InvkitError(str(exc)) from exc.__cause__
                yield k, x, y
            return
        pending: set[Future[Any]] = {self._executor.submit(_work, k, rows) for k, rows in tasks}
        while pending:
            # a timed wait: Ctrl-C may be delivered to any thread of the process, and only the
            # main thread's return to Python runs its handler; an untimed wait on workers
            # that never finish would never return to it
            done, pending = wait(pending, timeout=WAIT_S, return_when=FIRST_COMPLETED)
            failed = None
            for fut in done:
                try:
                    status, k, *rest = fut.result()
                except BrokenProcessPool:
                    raise InvkitError(
                        f"A simulation worker process died while running the "
                        f"{self.runner.source} (killed by the system, out of memory, or a "
                        f"crash inside the simulator). Finished blocks are cached; run with "
                        f"workers=0 to see the simulator's own error.") from None
                if status == "ok":
                    yield k, torch.from_numpy(rest[0]), torch.from_numpy(rest[1])
                elif failed is None or k < failed[0]:
                    failed = (k, rest[0])
            if failed is not None:
                raise InvkitError(failed[1])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._executor is None:
            return
        if exc_type is not None and not issubclass(exc_type, Exception):
            self._kill()  # Ctrl-C: stop now; finished blocks are already in the cache
            return
        try:
            # normal end, or a block failed: blocks already running finish and are cached
            self._executor.shutdown(wait=True, cancel_futures=True)
        except BaseException:
            self._kill()
            raise
        self._executor = None

    def _kill(self) -> None:
        """End every worker and what it started, at once, and forget the executor."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        procs = list((getattr(executor, "_processes", None) or {}).values())
        for p in procs:
            if not p.is_alive():
                continue
            try:
                if hasattr(os, "killpg") and os.getpgid(p.pid) == p.pid:
                    os.killpg(p.pid, signal.SIGKILL)
                else:
                    p.kill()
            except (ProcessLookupError, PermissionError, OSError):
                pass
        for p in procs:
            p.join(timeout=10)
        executor.shutdown(wait=False, cancel_futures=True)

    def _check_rebuildable(self) -> None:
        from invkit.registry import get_registry

        name = self.runner.problem.name
        try:
            get_registry().entry("problem", name)
        except InvkitError:
            raise InvkitError(
                f"Simulating in worker processes needs the 'fork' start method, which this "
                f"platform lacks, or a problem that workers can rebuild from invkit's "
                f"registry; problem {name!r} is not registered (it was built in code). Run "
                f"with workers=0, or register the problem through a plugin.") from None
