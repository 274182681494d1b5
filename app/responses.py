"""Relaying a request's result while watching for the client to leave.

`unless_disconnected` runs work in the request's own task with one watcher task that cancels it when
the client disconnects. `EventStreamResponse` streams server-sent events the same way. Starlette's
`StreamingResponse` runs every response in a task group with a second listener task and ends the
body with an empty message (one more write per request); here the frame that closes the stream
(`data: [DONE]`) carries the end of the body, and the generator's own cleanup runs in this task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Mapping
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from queues.errors import ClientError

T = TypeVar("T")
DONE = b"data: [DONE]\n\n"


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work` in this task; if the client disconnects first, cancel it and raise a 499."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        current.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        current.uncancel()
        raise ClientError(499, "the client disconnected", code="client_disconnected") from None
    finally:
        watcher.cancel()


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        with contextlib.suppress(ClientError):  # the client left: nobody to tell
            await unless_disconnected(receive, self._relay(send))

    async def _relay(self, send: Send) -> None:
        ended = False
        try:
            async for frame in self.frames:
                ended = frame.endswith(DONE)
                await send({"type": "http.response.body", "body": frame, "more_body": not ended})
                if ended:
                    break
        finally:
            await self.frames.aclose()
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
