"""Cancellation of a request in every stage that holds it.

The front door calls `cancel_request` when its client goes away: a marker key (with a TTL) stops
the job from being handed on to the next stage (the settle script checks it), and a broadcast
tells every worker to stop the request at once if it is running there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from queues.keys import Keys
from queues.pubsub import Subscriber


async def cancel_request(client: aioredis.Redis, keys: Keys, request_id: str, ttl_s: float) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.cancel(request_id), b"1", px=int(ttl_s * 1000))
    pipe.publish(keys.cancel_channel, request_id.encode())
    await pipe.execute()


class CancelWatcher:
    """Remembers recently cancelled request ids and calls `on_cancel` for each as it is announced."""

    def __init__(self, subscriber: Subscriber, keys: Keys, on_cancel: Callable[[str], None], ttl_s: float):
        self._subscriber = subscriber
        self._keys = keys
        self._on_cancel = on_cancel
        self._ttl_s = ttl_s
        self._recent: dict[str, float] = {}
        self._next_prune = 0.0

    async def start(self) -> None:
        await self._subscriber.subscribe(self._keys.cancel_channel, self._received)

    def is_cancelled(self, request_id: str) -> bool:
        return request_id in self._recent

    def _received(self, data: bytes) -> None:
        now = time.monotonic()
        request_id = data.decode(errors="replace")
        self._recent[request_id] = now + self._ttl_s
        if now > self._next_prune:
            self._recent = {rid: until for rid, until in self._recent.items() if until > now}
            self._next_prune = now + 10.0
        self._on_cancel(request_id)
