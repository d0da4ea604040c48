"""Inspect and replay dead letters: ``python -m shared.tools.dlq list|replay --group NAME``; move a
halted consumer group past messages: ``python -m shared.tools.dlq skip --group NAME --topic T
--partition P --offset N`` (stop the service first).

`replay` re-publishes each dead letter's original key and value to its origin topic (from the
``dlq.origin.topic`` header) and commits its progress in the consumer group ``<group>.dlq-replay``, so
a letter is replayed once. Consumers dedupe by event id, so a replay never doubles an effect; a letter
that is still bad simply lands in the DLQ again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts import dlq_topic
from shared.contracts.topics import CONSUMER_GROUPS
from shared.settings import EMBEDDED_KAFKA


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered message with its origin and error, as read back from a DLQ topic."""

    partition: int
    offset: int
    origin_topic: str
    origin: str
    error: str
    key: bytes | None
    value: bytes | None


def _letter(record) -> DeadLetter:  # type: ignore[no-untyped-def]
    headers = {k: v.decode(errors="replace") for k, v in record.headers}
    return DeadLetter(record.partition, record.offset, headers.get("dlq.origin.topic", ""),
                      f"{headers.get('dlq.origin.topic')}/{headers.get('dlq.origin.partition')}"
                      f"@{headers.get('dlq.origin.offset')}", headers.get("dlq.error", ""), record.key, record.value)


async def _drain(consumer: AIOKafkaConsumer, limit: int) -> list[tuple[TopicPartition, DeadLetter]]:
    letters: list[tuple[TopicPartition, DeadLetter]] = []
    idle = 0
    while len(letters) < limit and idle < 3:
        batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(letters))
        idle = 0 if batch else idle + 1
        for tp, records in batch.items():
            letters.extend((tp, _letter(r)) for r in records)
    return letters


def _consumer(bootstrap: str, group: str, commit_group: str | None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(dlq_topic(group), bootstrap_servers=bootstrap, group_id=commit_group,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            session_timeout_ms=10_000, rebalance_timeout_ms=3_000)


async def list_letters(bootstrap: str, group: str, *, limit: int) -> list[DeadLetter]:
    """Every dead letter of ``group`` (up to ``limit``), oldest first per partition."""
    consumer = _consumer(bootstrap, group, None)
    await consumer.start()
    try:
        return [letter for _, letter in await _drain(consumer, limit)]
    finally:
        await consumer.stop()


async def replay(bootstrap: str, group: str, *, limit: int, dry_run: bool) -> int:
    """Replay letters not yet replayed; returns how many (or would be, with ``dry_run``)."""
    consumer = _consumer(bootstrap, group, f"{group}.dlq-replay")
    await consumer.start()
    try:
        letters = await _drain(consumer, limit)
        if dry_run or not letters:
            return len(letters)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for _, letter in letters:
                if letter.origin_topic:
                    await producer.send_and_wait(
                        letter.origin_topic, letter.value, key=letter.key,
                        headers=[("dlq.replayed-from", f"{group}@{letter.offset}".encode())])
        finally:
            await producer.stop()
        # Progress is recorded only after every letter was acknowledged by the broker.
        offsets: dict[TopicPartition, int] = {}
        for tp, letter in letters:
            offsets[tp] = max(offsets.get(tp, 0), letter.offset + 1)
        await consumer.commit(offsets)
        return len(letters)
    finally:
        await consumer.stop()


async def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    """The offset ``group`` has committed on ``topic``/``partition`` (None if it never committed)."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


class GroupBusy(RuntimeError):
    """The group's partition went to another member: the service is still running."""


async def skip_to(bootstrap: str, group: str, topic: str, partition: int, offset: int, *,
                  join_timeout_s: float = 30.0) -> int | None:
    """Commit ``offset`` for ``group`` on ``topic``/``partition``: the group resumes there. For a consumer
    halted by its dead-letter limits, whose batch is not committed: after fixing (or dead-lettering) what
    stopped it, move past the messages it must not see again. Stop the service first. Returns the offset
    committed before.

    The commit is made as a member of the group (join, wait for the partition, commit with the group's
    generation, leave): some brokers refuse a commit from outside a group that had members before."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.subscribe([topic])
        deadline = asyncio.get_running_loop().time() + join_timeout_s
        while tp not in consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                raise GroupBusy(f"{group} did not get {topic}/{partition} within {join_timeout_s:.0f} s: stop the "
                                "service (every replica) first, then run skip again")
            await consumer.getmany(timeout_ms=200, max_records=1)  # joins the group; records are not committed
        before = await consumer.committed(tp)
        await consumer.commit({tp: offset})
        return before
    finally:
        await consumer.stop()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("list", "replay", "skip"))
    parser.add_argument("--group", required=True, choices=CONSUMER_GROUPS)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--dry-run", action="store_true", help="replay: show what would be replayed")
    parser.add_argument("--topic", help="skip: the topic the group consumes")
    parser.add_argument("--partition", type=int, help="skip: the partition")
    parser.add_argument("--offset", type=int, help="skip: the offset the group resumes at (the first one it reads)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", EMBEDDED_KAFKA))
    args = parser.parse_args()
    if args.command == "skip":
        if args.topic is None or args.partition is None or args.offset is None or args.offset < 0:
            parser.error("skip needs --topic, --partition and --offset (>= 0)")
        try:
            before = asyncio.run(skip_to(args.bootstrap, args.group, args.topic, args.partition, args.offset))
        except GroupBusy as exc:
            sys.stderr.write(f"{exc}\n")
            raise SystemExit(2) from None
        sys.stdout.write(f"{args.group} on {args.topic}/{args.partition}: committed offset {before} -> "
                         f"{args.offset}; restart the service\n")
    elif args.command == "list":
        letters = asyncio.run(list_letters(args.bootstrap, args.group, limit=args.limit))
        for letter in letters:
            sys.stdout.write(f"{letter.partition}@{letter.offset}  from {letter.origin}  {letter.error[:200]}\n")
        sys.stdout.write(f"{len(letters)} dead letter(s) in {dlq_topic(args.group)}\n")
    else:
        count = asyncio.run(replay(args.bootstrap, args.group, limit=args.limit, dry_run=args.dry_run))
        verb = "would replay" if args.dry_run else "replayed"
        sys.stdout.write(f"{verb} {count} dead letter(s) from {dlq_topic(args.group)}\n")


if __name__ == "__main__":
    main()
