"""The token channel against a real redis-server: ordering, duplicates, gaps, silence, reconnection."""

from __future__ import annotations

import asyncio
import signal

import redis.asyncio as aioredis

from ops.redis import RedisServer
from queues.channel import Output, TokenPublisher, TokenStream
from queues.keys import Keys
from queues.messages import ErrorEvent, ProgressEvent, TokenEvent
from queues.pubsub import Subscriber
from queues.scripts import Pooled


def token(seq: int, final: bool = False) -> TokenEvent:
    return TokenEvent(seq=seq, token_ids=[seq], texts=[f"t{seq}"], finish_reason="stop" if final else None)


def tokens(first: int, last: int, final: bool = False) -> TokenEvent:
    """One event carrying tokens first..last."""
    ids = list(range(first, last + 1))
    return TokenEvent(
        seq=first, token_ids=ids, texts=[f"t{i}" for i in ids], finish_reason="stop" if final else None
    )


async def read_all(stream: TokenStream) -> list[Output]:
    return [event async for event in stream.events()]


async def test_events_arrive_in_order_once_despite_reordering_and_duplicates(redis, subscriber, keys):
    publisher = TokenPublisher(Pooled(redis), keys)
    async with TokenStream(subscriber, redis, keys, "r1", silence_s=5, gap_s=2) as stream:
        reader = asyncio.create_task(read_all(stream))
        for event in (token(1), token(0), token(0), token(1), token(3, final=True), token(2)):
            assert await publisher.publish("r1", event) == 1
        events = await reader
    assert [e.seq for e in events if isinstance(e, TokenEvent)] == [0, 1, 2, 3]


async def test_a_rerun_grouped_differently_is_trimmed_to_new_tokens(redis, subscriber, keys):
    publisher = TokenPublisher(Pooled(redis), keys)
    async with TokenStream(subscriber, redis, keys, "r6", silence_s=5, gap_s=2) as stream:
        reader = asyncio.create_task(read_all(stream))
        for event in (tokens(0, 1), tokens(2, 4), tokens(0, 2), tokens(3, 6), tokens(7, 7, final=True)):
            await publisher.publish("r6", event)
        events = await reader
    delivered = [i for e in events if isinstance(e, TokenEvent) for i in e.token_ids]
    assert delivered == list(range(8))
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == "".join(f"t{i}" for i in range(8))


async def test_an_early_event_that_overlaps_is_trimmed_when_the_gap_fills(redis, subscriber, keys):
    publisher = TokenPublisher(Pooled(redis), keys)
    async with TokenStream(subscriber, redis, keys, "r7", silence_s=5, gap_s=2) as stream:
        reader = asyncio.create_task(read_all(stream))
        for event in (tokens(3, 5, final=True), tokens(0, 3)):
            await publisher.publish("r7", event)
        events = await reader
    assert [i for e in events if isinstance(e, TokenEvent) for i in e.token_ids] == [0, 1, 2, 3, 4, 5]


async def test_a_gap_that_does_not_fill_is_an_error(redis, subscriber, keys):
    publisher = TokenPublisher(Pooled(redis), keys)
    async with TokenStream(subscriber, redis, keys, "r2", silence_s=30, gap_s=0.3) as stream:
        reader = asyncio.create_task(read_all(stream))
        await publisher.publish("r2", token(0))
        await publisher.publish("r2", token(2))
        events = await reader
    assert isinstance(events[0], TokenEvent) and events[0].seq == 0
    assert isinstance(events[1], ErrorEvent) and events[1].code == "stream_lost"
    assert "1..1 never arrived" in events[1].message


async def test_silent_channel_of_a_lost_job_ends_with_an_error(redis, subscriber, keys):
    async with TokenStream(subscriber, redis, keys, "r3", silence_s=0.3, gap_s=1) as stream:
        stream.location = ProgressEvent(
            stage="prefill", stream=keys.stream("prefill"), entry_id="1-0"
        )  # no such entry
        [error] = await read_all(stream)
    assert isinstance(error, ErrorEvent) and "lost" in error.message


async def test_silent_channel_of_a_queued_job_keeps_waiting(redis, subscriber, keys):
    publisher = TokenPublisher(Pooled(redis), keys)
    entry_id = (await redis.xadd(keys.stream("prefill"), {"x": "1"})).decode()
    async with TokenStream(subscriber, redis, keys, "r4", silence_s=0.2, gap_s=1) as stream:
        stream.location = ProgressEvent(stage="prefill", stream=keys.stream("prefill"), entry_id=entry_id)
        reader = asyncio.create_task(read_all(stream))
        await asyncio.sleep(1.0)  # five silence periods: the probe finds the entry each time
        assert not reader.done()
        await publisher.publish("r4", token(0, final=True))
        events = await reader
    assert [e.seq for e in events if isinstance(e, TokenEvent)] == [0]


async def test_progress_events_move_the_probe(redis, subscriber, keys):
    publisher = TokenPublisher(Pooled(redis), keys)
    async with TokenStream(subscriber, redis, keys, "r5", silence_s=0.3, gap_s=1) as stream:
        reader = asyncio.create_task(read_all(stream))
        await publisher.publish(
            "r5", ProgressEvent(stage="decode", stream=keys.stream("decode"), entry_id="5-0")
        )
        await asyncio.sleep(0.05)
        assert stream.location is not None and stream.location.stage == "decode"
        [error] = await reader
    assert isinstance(error, ErrorEvent)


async def test_publish_reports_no_listener(redis, keys):
    assert await TokenPublisher(Pooled(redis), keys).publish("nobody", token(0)) == 0


async def test_subscriber_resubscribes_after_redis_restarts() -> None:
    server = RedisServer().start()
    keys = Keys()
    try:
        client = aioredis.Redis.from_url(server.url)
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        subscriber = Subscriber(client, timeout_s=1.0, ping_s=0.5, on_reconnect=on_reconnect)
        await subscriber.start()
        received: list[bytes] = []
        await subscriber.subscribe(keys.tokens("r"), received.append)
        port = server.port
        server.kill()
        server = RedisServer(port=port).start()  # same port, no data, no subscriptions
        await asyncio.wait_for(reconnected.wait(), 10)
        publisher = TokenPublisher(Pooled(aioredis.Redis.from_url(server.url)), keys)
        assert await publisher.publish("r", token(0)) == 1
        await asyncio.sleep(0.1)
        assert len(received) == 1
        await subscriber.close()
        await client.aclose()
    finally:
        server.stop()


async def test_a_probe_that_fails_is_not_a_lost_job() -> None:
    """On a loaded machine the probe of a silent channel can time out: only a probe that finds the
    entry gone means the job is lost (a loaded `make chaos` turned 49 slow jobs into stream_lost)."""
    server = RedisServer().start()
    keys = Keys()
    client = aioredis.Redis.from_url(server.url, socket_timeout=0.2)
    subscriber = Subscriber(aioredis.Redis.from_url(server.url))
    await subscriber.start()
    try:
        added = await client.xadd(keys.stream("prefill"), {"x": "1"})
        entry_id = added.decode() if isinstance(added, bytes) else added
        async with TokenStream(subscriber, client, keys, "r8", silence_s=0.2, gap_s=1) as stream:
            stream.location = ProgressEvent(stage="prefill", stream=keys.stream("prefill"), entry_id=entry_id)
            reader = asyncio.create_task(read_all(stream))
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)  # every probe meanwhile times out
            await asyncio.sleep(1.0)
            server.process.send_signal(signal.SIGCONT)
            assert not reader.done()
            await TokenPublisher(Pooled(client), keys).publish("r8", token(0, final=True))
            events = await reader
        assert [e.seq for e in events if isinstance(e, TokenEvent)] == [0]
    finally:
        await subscriber.close()
        await client.aclose()
        server.stop()
