"""Stopping the front door without cutting a stream short.

On SIGTERM or SIGINT uvicorn stops accepting connections and waits for the open ones. The front
door hears the same signal (its handler runs before uvicorn's): requests in flight get the drain
time (QUEUE_GRACE_S, what the workers get to finish their jobs) to end on their own; every one still
open then ends with an error event, `server_shutting_down`, instead of a connection closed mid-stream.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from queues.messages import ErrorEvent

SHUTTING_DOWN = ErrorEvent(
    message="the server is shutting down; retry the request",
    code="server_shutting_down",
    status=503,
    type="service_unavailable",
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on the running loop when SIGTERM or SIGINT arrives, then whatever handled the
    signal before (uvicorn's shutdown). Returns the function that puts the previous handlers back.
    Outside the main thread (an app under test) signals cannot be handled: nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)

    for signum in STOP_SIGNALS:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handle)

    def restore() -> None:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is handle:
                signal.signal(signum, handler)

    return restore
