"""Work for a process pool, importable by name in the pool's (spawned) processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence


def double_with_pid(_: None, chunk: Sequence[int]) -> list[tuple[int, int]]:
    """Each number doubled, with the id of the process that did it."""
    return [(n * 2, os.getpid()) for n in chunk]


def die_in_a_child(_: None, chunk: Sequence[int]) -> list[int]:
    """Each number doubled here; a pool's process dies at once instead."""
    if multiprocessing.parent_process() is not None:
        os._exit(3)  # as a crash in an extension would
    return [n * 2 for n in chunk]
