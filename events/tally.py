"""Counts per UTC quarter hour ("slot"), sorted, bounded by the horizon (`events.policy`).

A tally is a pair of lists, slots ascending and their non-zero counts: plain JSON for
snapshots and read-model rows (a dict's integer keys would come back as strings; lists read
back as what was written). A tally is never changed in place: every change returns a new
one, so copying a rotation (the repository does it for every command) shares its members'
tallies instead of copying them. A period's sum is two bisections and a slice, and is
remembered (`_Sums`): a decision sums every member's tallies over the same window, and
between two decisions only the host's changed.
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
    if len(slots) < _Sums.SHORT:
        return sum(counts[bisect_left(slots, lo) : bisect_left(slots, hi)])
    return _SUMS.total(tally, lo, hi)


class _Sums:
    """Sums of long tallies over a window, by the tally's identity: a tally is never
    changed in place, so the same object over the same window sums the same. Each entry
    holds its tally, so its id cannot be reused while the entry lives; the entries forget
    all at once when the tallies they hold reach `BUDGET` slots in all (about 10 MB).

    Measured (`python -m bench --only simulate`): on a rotation whose members book in every
    quarter hour, a decision summed 20 tallies of ~3,000 slots, most of a what-if
    simulation's time beyond the fold itself.
    """

    SHORT = 64  # shorter tallies are summed again: cheaper than remembering them
    BUDGET = 500_000

    def __init__(self) -> None:
        self._sums: dict[tuple[int, int, int], tuple[Tally, int]] = {}
        self._held = 0

    def total(self, tally: Tally, lo: int, hi: int) -> int:
        key = (id(tally), lo, hi)
        known = self._sums.get(key)
        if known is not None and known[0] is tally:
            return known[1]
        slots, counts = tally
        value = sum(counts[bisect_left(slots, lo) : bisect_left(slots, hi)])
        if self._held + len(slots) > self.BUDGET:
            self._sums = {}
            self._held = 0
        self._sums[key] = (tally, value)
        self._held += len(slots)
        return value


_SUMS = _Sums()


def prune(tally: Tally, below: int) -> Tally:
    """Every slot before `below` folded away."""
    slots, counts = tally
    cut = bisect_left(slots, below)
    return [slots[cut:], counts[cut:]] if cut else tally
