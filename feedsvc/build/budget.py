"""The byte budget of a feed document (`feeds.max_bytes`): how many entries fit."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate


def document_size(head: int, sizes: Sequence[int], separator: int, tail: int) -> int:
    """Bytes of a document of a head, entries joined by `separator` bytes, and a tail."""
    return head + sum(sizes) + separator * max(len(sizes) - 1, 0) + tail


def fit_count(head: int, sizes: Sequence[int], separator: int, tail: int, budget: int) -> int:
    """The most leading entries (newest first) that fit in `budget` bytes with this head
    and tail, but at least one: the feed keeps its newest entry even when that alone is
    over. From the entries' sizes alone, by binary search over their running sums."""
    # totals[k - 1]: bytes of the first k entries, each with a separator after it.
    totals = list(accumulate(size + separator for size in sizes))
    room = budget - head - tail + separator  # the last entry has no separator after it
    return max(1, bisect_right(totals, room))
