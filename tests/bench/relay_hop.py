"""One hop of the physical baseline: consume a topic, produce every message to the next one.

Same client settings as the services (batch fetch, manual commit after the batch is produced), no
database, no logic. Run as its own process, like a service.
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(bootstrap: str, source: str, target: str, group: str, fetch_max_wait_ms: int) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms,
                                session_timeout_ms=10_000, rebalance_timeout_ms=3_000, heartbeat_interval_ms=1_000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = [await producer.send(target, r.value, key=r.key) for records in batch.values() for r in records]
            await asyncio.gather(*futures)
            if batch:
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(relay(args.bootstrap, args.source, args.target, args.group, args.fetch_max_wait_ms))


if __name__ == "__main__":
    main()
