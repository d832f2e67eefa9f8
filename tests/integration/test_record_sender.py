"""BatchSender on the real broker: partitions as aiokafka's own, order and headers kept."""

from __future__ import annotations

from collections import defaultdict

from aiokafka.partitioner import DefaultPartitioner

from service.record_sender import BatchSender, OutgoingRecord
from service.topics import ensure_topics
from tests.integration.helpers import read_topic

PARTITIONS = 3


async def test_records_arrive_in_order_on_the_default_partitioners_partitions(
    bootstrap_servers: str, uid: str
) -> None:
    keyed, keyless = f"sender-keyed-{uid}", f"sender-keyless-{uid}"
    await ensure_topics(bootstrap_servers, [keyed, keyless], PARTITIONS)
    # Small batches: 300 records of ~100 bytes need several per partition.
    sender = BatchSender(bootstrap_servers, 0, "test-sender", max_batch_size=1024)
    await sender.start()
    try:
        records = [
            OutgoingRecord(
                keyed,
                f"{i:04d}".encode() * 25,
                key=f"rotation-{i % 7}".encode(),
                headers=(("position", str(i).encode()),),
            )
            for i in range(300)
        ]
        records += [OutgoingRecord(keyless, f"reply-{i}".encode()) for i in range(50)]
        await sender.send(records)
    finally:
        await sender.stop()

    received = await read_topic(bootstrap_servers, keyed)
    positions: defaultdict[bytes, list[int]] = defaultdict(list)
    for record in received:
        expected = DefaultPartitioner()(record.key, list(range(PARTITIONS)), [])
        assert record.partition == expected
        positions[record.key].append(int(dict(record.headers)["position"]))
    assert sorted(p for ps in positions.values() for p in ps) == list(range(300))
    assert all(ps == sorted(ps) for ps in positions.values())  # a key's records in order
    replies = await read_topic(bootstrap_servers, keyless)
    assert [r.value for r in replies] == [f"reply-{i}".encode() for i in range(50)]
    assert len({r.partition for r in replies}) == 1  # one call's keyless records stick
