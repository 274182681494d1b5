"""The token emitter against a real Redis and a real token stream: coalescing under load, order,
and a departed client."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from queues.channel import TokenPublisher, TokenStream
from queues.keys import Keys
from queues.messages import TokenEvent
from queues.pubsub import Subscriber
from queues.runtime import ClientGone, JobContext
from queues.scripts import Pooled
from workers.emitter import TokenEmitter
from workers.engine.types import TokenOutput


def outputs(n: int) -> list[TokenOutput]:
    return [
        TokenOutput(
            index=i,
            token_id=100 + i,
            text=f"w{i} ",
            finish_reason="length" if i == n - 1 else None,
            prompt_tokens=5,
            completion_tokens=i + 1,
        )
        for i in range(n)
    ]


def context(redis: aioredis.Redis, request_id: str) -> JobContext:
    publisher = TokenPublisher(Pooled(redis), Keys())
    return JobContext(
        stage="decode",
        consumer="d.1",
        entry_id="1-0",
        deliveries=1,
        publisher=publisher,
        request_id=request_id,
    )


async def emit_and_read(
    redis: aioredis.Redis,
    request_id: str,
    tokens: list[TokenOutput],
    *,
    stream: bool = True,
    final_timings: dict[str, float] | None = None,
    turn_per_token: bool = False,
    interval_s: float = 0.0,
) -> list[TokenEvent]:
    """Emit `tokens` for `request_id` while a real token stream reads them; the events it got."""
    subscriber = Subscriber(redis)
    await subscriber.start()
    try:
        async with TokenStream(subscriber, redis, Keys(), request_id, silence_s=5, gap_s=2) as reader:
            collecting = asyncio.create_task(_collect(reader))
            ctx = context(redis, request_id)
            async with TokenEmitter(ctx, stream=stream, interval_s=interval_s) as emitter:
                for output in tokens:
                    emitter.add(output, final_timings if output.finish_reason else None)
                    if turn_per_token:
                        await asyncio.sleep(0)
            # the last event is left to the runtime, which publishes it with the job's settle
            final = ctx.final_event
            assert isinstance(final, TokenEvent) and final.finish_reason is not None
            await ctx.emit(final)
            return await collecting
    finally:
        await subscriber.close()


async def _collect(stream: TokenStream) -> list[TokenEvent]:
    return [event async for event in stream.events() if isinstance(event, TokenEvent)]


async def test_a_burst_goes_out_in_few_events_in_order(redis: aioredis.Redis) -> None:
    # all at once, as a fast decode loop delivers them
    events = await emit_and_read(redis, "e1", outputs(50), final_timings={"decode_s": 0.1})
    assert [i for e in events for i in e.token_ids] == [100 + i for i in range(50)]
    assert "".join(e.text for e in events) == "".join(f"w{i} " for i in range(50))
    assert len(events) < 50
    assert events[-1].finish_reason == "length" and events[-1].usage is not None
    assert events[-1].usage.completion_tokens == 50 and events[-1].timings == {"decode_s": 0.1}


async def test_nobody_listening_is_client_gone(redis: aioredis.Redis) -> None:
    with pytest.raises(ClientGone):
        async with TokenEmitter(context(redis, "nobody")) as emitter:
            for output in outputs(3):
                emitter.add(output)
                await asyncio.sleep(0)  # the first token leaves before the last one exists


async def test_the_last_event_is_left_to_the_settle(redis: aioredis.Redis) -> None:
    # tokens that come together with the last one travel in the last event, which the runtime
    # publishes atomically with the job's acknowledgement: nothing is published here
    ctx = context(redis, "settled")
    async with TokenEmitter(ctx) as emitter:
        for output in outputs(3):
            emitter.add(output)
    final = ctx.final_event
    assert isinstance(final, TokenEvent)
    assert final.token_ids == [100, 101, 102] and final.finish_reason == "length"


async def test_not_streaming_sends_one_event(redis: aioredis.Redis) -> None:
    # a slow decode: each token on its own loop turn
    events = await emit_and_read(redis, "e3", outputs(20), stream=False, turn_per_token=True)
    [event] = events
    assert event.token_ids == [100 + i for i in range(20)] and event.finish_reason == "length"


async def test_within_the_interval_tokens_wait_but_never_the_first_or_the_last(redis: aioredis.Redis) -> None:
    # a hang guard, not a timing: the last token must not wait out the 60 s interval
    events = await asyncio.wait_for(
        emit_and_read(redis, "paced", outputs(20), turn_per_token=True, interval_s=60.0), 10
    )
    assert [e.token_ids for e in events] == [[100], [100 + i for i in range(1, 20)]]
