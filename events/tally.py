"""Counts per UTC quarter hour ("slot"), sorted, bounded by the horizon (`events.policy`).

A tally is a pair of lists, slots ascending and their non-zero counts: plain JSON for
snapshots and read-model rows (a dict's integer keys would come back as strings; lists read
back as what was written). A tally is never changed in place: every change returns a new
one, so copying a rotation (the repository does it for every command) shares its members'
tallies instead of copying them. A period's sum is two bisections and a slice; for long
tallies it is remembered, and derived from the tally it was made from (`_Sums`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from threading import Lock

Tally = list[list[int]]  # [slots, counts], never changed in place

EMPTY: Tally = [[], []]


def add(tally: Tally, slot: int, n: int) -> Tally:
    """n more (a credit may be negative) at slot; a count that reaches zero is dropped."""
    slots, counts = tally
    i = bisect_left(slots, slot)
    if i < len(slots) and slots[i] == slot:
        value = counts[i] + n
        if value == 0:
            changed = [slots[:i] + slots[i + 1 :], counts[:i] + counts[i + 1 :]]
        else:
            changed = [slots, [*counts[:i], value, *counts[i + 1 :]]]
    elif not n:
        return tally
    else:
        changed = [[*slots[:i], slot, *slots[i:]], [*counts[:i], n, *counts[i:]]]
    if len(slots) >= _Sums.SHORT:
        _SUMS.derived(changed, tally, slot, n)
    return changed


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


def prune(tally: Tally, below: int) -> Tally:
    """Every slot before `below` folded away."""
    slots, counts = tally
    cut = bisect_left(slots, below)
    return [slots[cut:], counts[cut:]] if cut else tally


class _Sums:
    """Sums of long tallies over windows, by the tally's identity: a tally is never changed
    in place, so the same object over the same window sums the same. A tally made by `add`
    from another keeps a link to it (`_made_from`), so its sum over a window is its
    parent's (remembered, or derived the same way) plus the one slot that changed: a host's
    new tally costs no new sum over the windows its old one was summed over. Entries hold
    their tallies, so an id is never reused while its entry lives; the least recently used
    go first, once `SUMS` sums or `LINKS` links are held.

    Measured (`python -m bench --only simulate`): on a rotation whose members book in every
    quarter hour, a decision summed 20 tallies of ~3,000 slots; they were most of a what-if
    simulation's time beyond the fold itself.
    """

    SHORT = 64  # shorter tallies are summed again: cheaper than remembering them
    SUMS = 512  # a rotation's members times the windows its decisions look at, and more
    LINKS = 256  # a few decisions' worth of changed tallies
    DEPTH = 32  # links followed at most before summing afresh

    def __init__(self) -> None:
        self._sums: OrderedDict[tuple[int, int, int], tuple[Tally, int]] = OrderedDict()
        self._made_from: OrderedDict[int, tuple[Tally, Tally, int, int]] = OrderedDict()
        self._lock = Lock()  # decisions run on more than one thread in the service

    def derived(self, tally: Tally, parent: Tally, slot: int, n: int) -> None:
        with self._lock:
            self._made_from[id(tally)] = (tally, parent, slot, n)
            if len(self._made_from) > self.LINKS:
                self._made_from.popitem(last=False)

    def total(self, tally: Tally, lo: int, hi: int) -> int:
        with self._lock:
            value = self._known(tally, lo, hi)
        if value is None:
            slots, counts = tally
            value = sum(counts[bisect_left(slots, lo) : bisect_left(slots, hi)])
        with self._lock:
            self._sums[(id(tally), lo, hi)] = (tally, value)
            if len(self._sums) > self.SUMS:
                self._sums.popitem(last=False)
        return value

    def _known(self, tally: Tally, lo: int, hi: int) -> int | None:
        """The remembered sum, or one derived through the links; None if neither."""
        delta = 0
        for _ in range(self.DEPTH):
            key = (id(tally), lo, hi)
            known = self._sums.get(key)
            if known is not None and known[0] is tally:
                self._sums.move_to_end(key)
                return known[1] + delta
            link = self._made_from.get(id(tally))
            if link is None or link[0] is not tally:
                return None
            _, tally, slot, n = link
            if lo <= slot < hi:
                delta += n
        return None


_SUMS = _Sums()
