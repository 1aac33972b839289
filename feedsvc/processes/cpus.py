"""Big batches of independent work spread over every core, in processes started for them.

A cold start parses every file and renders every article's entries: work that shares
no state and would otherwise run on one core while the others idle. A batch goes to
the processes only when it is big enough to pay for starting them (about half a second,
spent once per reload that needs them); smaller batches, such as the few files an
ordinary reload finds changed, run right here. The processes are started with `spawn`
(not `fork`: the caller has threads) and stopped after each reload, so they hold no
memory between reloads. What they run must be a module-level function and picklable
arguments; the results are the same as running it here (a test checks it).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from feedsvc.model import read_only

logger = logging.getLogger(__name__)

Shared = TypeVar("Shared")
Item = TypeVar("Item")
Result = TypeVar("Result")

# Below this many items the work runs in this process: starting processes costs more than
# they save on smaller batches (docs/performance.md, "Figures behind the code's constants").
MIN_BATCH = 2000
CHUNK = 200  # items per task: small enough to balance, big enough to pickle in bulk
PARENT_CHECK_SECONDS = 0.2


def _reduce_view(view: MappingProxyType[Any, Any]) -> tuple[Callable[..., Any], tuple[Any]]:
    return read_only, (dict(view),)


# Configs hold read-only views of dicts, which pickle does not know; only
# multiprocessing's own pickler (here and in the processes, which import this too) learns.
ForkingPickler.register(MappingProxyType, _reduce_view)


def available_cores(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: its CPU affinity (`taskset`, cpusets), capped by a
    cgroup v2 CPU quota (`docker --cpus`, systemd CPUQuota=) rounded up; at least 1."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max" or not quota.isdigit() or not period.isdigit() or not int(period):
        return cores
    return max(1, min(cores, -(-int(quota) // int(period))))


def run_on_idle_cpu() -> None:
    """Run this process only on CPU time the workers leave idle (Linux SCHED_IDLE).

    A waking worker preempts it at once, so requests see the latency they see when
    nothing reloads; even nice 19 does not give that (docs/performance.md, "Latency
    while reloading"). The cost: while the workers keep every core busy, it waits
    (SCHED_IDLE still gets a sliver).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux: the lowest priority is the next best
        os.nice(19)


class Cores:
    """Runs `function(shared, chunk)` over chunks of a batch, on every core when it pays."""

    def __init__(
        self, min_batch: int = MIN_BATCH, processes: int | None = None, chunk: int = CHUNK
    ) -> None:
        self.min_batch = min_batch
        self.chunk = chunk
        self.processes = processes if processes is not None else available_cores()
        self._pool: ProcessPoolExecutor | None = None

    def map(
        self,
        function: Callable[[Shared, Sequence[Item]], list[Result]],
        shared: Shared,
        items: Sequence[Item],
    ) -> Iterator[Result]:
        """The results of `function` for every item, in order, chunk by chunk."""
        if self.processes < 2 or len(items) < self.min_batch:  # not worth starting processes
            yield from function(shared, items)
            return
        size = self.chunk
        chunks = [items[start : start + size] for start in range(0, len(items), size)]
        try:
            pool = self._start()
            futures = [pool.submit(function, shared, chunk) for chunk in chunks]
        except OSError as exc:  # out of processes or memory: slower, but the reload runs
            logger.error("cannot start processes for the reload (%s); running it here", exc)
            self.release()
            yield from function(shared, items)
            return
        broken = False
        for chunk, future in zip(chunks, futures, strict=True):
            if not broken:
                try:
                    yield from future.result()
                    continue
                except BrokenProcessPool:
                    # A process died (killed, or crashed in an extension): the rest of
                    # the batch runs here.
                    logger.error("a process of the reload died; finishing its work here")
                    self.release()
                    broken = True
            yield from function(shared, chunk)

    def release(self) -> None:
        """Stop the processes, if any were started; the next big batch starts new ones."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=end_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool


def end_with_parent(parent: int) -> None:
    """In a process started by `parent`: exit as soon as `parent` is gone.

    The pool's processes hold both ends of their task queue, so a parent killed mid-batch
    (SIGKILL, OOM) would otherwise leave them waiting for work forever; the listing
    process (feedsvc.processes.resume) holds the state directory's lock it inherited.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
