"""The simulation's log of diverged meetings: what it holds on disk reads back as it was
put, dropped meetings are gone, and the moved meetings list in booking order."""

from __future__ import annotations

import random

import pytest

from projections.divergence import Diverged, DivergenceLog


@pytest.mark.parametrize("flush", [1, 3, 1000])
def test_the_log_answers_as_a_dict_would_whenever_it_writes_to_disk(
    flush: int, rng: random.Random
) -> None:
    log, expected = DivergenceLog(flush=flush), dict[str, Diverged]()
    booked = dict(enumerate(rng.sample(range(10_000), 60)))  # each meeting's own version
    for step in range(300):
        n = rng.randrange(60)
        meeting = f"m{n}"
        if rng.random() < 0.3:
            log.drop(meeting)
            expected.pop(meeting, None)
        else:
            host = rng.choice([None, "a", "b"])
            facts = Diverged(host, step, rng.choice(["a", "b"]), booked[n])
            log.put(meeting, facts)
            expected[meeting] = facts
        probe = f"m{rng.randrange(60)}"
        assert log.get(probe) == expected.get(probe)
    changed, unassigned = log.moved()
    order = sorted(expected.items(), key=lambda item: item[1].booked_version)
    assert changed == [m for m, d in order if d.host_id != d.recorded_host]
    assert unassigned == [m for m, d in order if d.host_id is None]


def test_moved_meetings_read_back_by_index_and_slice() -> None:
    log = DivergenceLog(flush=2)
    for n in range(5):
        log.put(f"m{n}", Diverged("b", n, "a", 100 - n))
    log.put("same", Diverged("a", 9, "a", 0))  # another version only: not moved
    changed, unassigned = log.moved()
    assert list(changed) == ["m4", "m3", "m2", "m1", "m0"]
    assert (len(changed), changed[0], changed[-1], changed[1:3]) == (5, "m4", "m0", ("m3", "m2"))
    assert changed[::2] == ("m4", "m2", "m0")
    assert len(unassigned) == 0 and unassigned == ()
    with pytest.raises(IndexError):
        changed[5]
