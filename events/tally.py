"""Counts per UTC quarter hour ("slot"), sorted, bounded by the horizon (`events.policy`).

A tally is a pair of lists, slots ascending and their non-zero counts: plain JSON for
snapshots and read-model rows (a dict's integer keys would come back as strings; lists read
back as what was written). A tally is never changed in place: every change returns a new
one, so copying a rotation (the repository does it for every command) shares its members'
tallies instead of copying them. A period's sum is two bisections and a slice.
"""

from __future__ import annotations

from bisect import bisect_left

Tally = list[list[int]]  # [slots, counts], never changed in place

EMPTY: Tally = [[], []]


def add(tally: Tally, slot: int, n: int) -> Tally:
    """n more (a credit may be negative) at slot; a count that reaches zero is dropped."""
    slots, counts = tally
    i = bisect_left(slots, slot)
    if i < len(slots) and slots[i] == slot:
        value = counts[i] + n
        if value == 0:
            return [slots[:i] + slots[i + 1 :], counts[:i] + counts[i + 1 :]]
        return [slots, [*counts[:i], value, *counts[i + 1 :]]]
    if not n:
        return tally
    return [[*slots[:i], slot, *slots[i:]], [*counts[:i], n, *counts[i:]]]


def take(tally: Tally, slot: int) -> Tally:
    """One meeting counted at slot taken back; one already folded away (older than the
    horizon) or never counted there changes nothing, so counts never go below zero."""
    slots = tally[0]
    i = bisect_left(slots, slot)
    if i < len(slots) and slots[i] == slot:
        return add(tally, slot, -1)
    return tally


def total(tally: Tally, lo: int, hi: int) -> int:
    """The sum over slots [lo, hi)."""
    slots, counts = tally
    if not slots or slots[-1] < lo or slots[0] >= hi:
        return 0  # most tallies (credits, no-shows) are empty or outside the window
    return sum(counts[bisect_left(slots, lo) : bisect_left(slots, hi)])


def prune(tally: Tally, below: int) -> Tally:
    """Every slot before `below` folded away."""
    slots, counts = tally
    cut = bisect_left(slots, below)
    return [slots[cut:], counts[cut:]] if cut else tally
