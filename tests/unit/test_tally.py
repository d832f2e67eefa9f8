"""Window sums of tallies: remembered sums answer as a fresh sum would, for the same tally
over other windows and for new tallies made from it."""

from __future__ import annotations

import random

from events import tally


def _fresh(t: tally.Tally, lo: int, hi: int) -> int:
    return sum(c for s, c in zip(*t, strict=True) if lo <= s < hi)


def test_sums_of_long_tallies_match_a_fresh_sum_as_the_tally_changes(rng: random.Random) -> None:
    t = tally.EMPTY
    kept: list[tally.Tally] = []
    windows = [(lo, lo + rng.randrange(1, 300)) for lo in rng.sample(range(450), 4)]
    for _ in range(3000):
        t = tally.add(t, rng.randrange(400), rng.choice([1, 1, 2, -1]))
        if rng.random() < 0.05:
            t = tally.take(t, rng.randrange(400))
        if rng.random() < 0.01:
            t = tally.prune(t, rng.randrange(50))
        kept.append(t)
        for probe in (t, rng.choice(kept)):
            lo, hi = rng.choice(windows)  # a few windows, as decisions look at
            assert tally.total(probe, lo, hi) == _fresh(probe, lo, hi)
