"""Counts per UTC quarter hour ("slot"), sorted, bounded by the horizon (`events.policy`).

A tally is two parallel lists, slots ascending and their non-zero counts: plain JSON for
snapshots and read-model rows (a dict's integer keys would come back as strings), cheap to
copy (lists of ints), a period's sum is two bisections and a slice.
"""

from __future__ import annotations

from bisect import bisect_left

Tally = list[list[int]]  # [slots, counts]


def empty() -> Tally:
    return [[], []]


def copy(tally: Tally) -> Tally:
    return [list(tally[0]), list(tally[1])]


def add(tally: Tally, slot: int, n: int) -> None:
    """Add n (a credit may be negative) at slot; a count that reaches zero is dropped."""
    slots, counts = tally
    i = bisect_left(slots, slot)
    if i < len(slots) and slots[i] == slot:
        counts[i] += n
        if counts[i] == 0:
            del slots[i], counts[i]
    elif n:
        slots.insert(i, slot)
        counts.insert(i, n)


def take(tally: Tally, slot: int) -> None:
    """Take back one meeting counted at slot; one already folded away (older than the
    horizon) or never counted there changes nothing, so counts never go below zero."""
    slots, counts = tally
    i = bisect_left(slots, slot)
    if i < len(slots) and slots[i] == slot:
        counts[i] -= 1
        if counts[i] <= 0:
            del slots[i], counts[i]


def total(tally: Tally, lo: int, hi: int) -> int:
    """The sum over slots [lo, hi)."""
    slots, counts = tally
    return sum(counts[bisect_left(slots, lo) : bisect_left(slots, hi)])


def prune(tally: Tally, below: int) -> None:
    """Fold away every slot before `below`."""
    slots, counts = tally
    cut = bisect_left(slots, below)
    if cut:
        del slots[:cut], counts[:cut]
