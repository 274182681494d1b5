"""The private parts of other libraries we use, checked against the installed versions: an upgrade
that moves them fails here, by name, not as a hang or a silent fallback in production."""

from __future__ import annotations

import asyncio
import inspect

import pytest
import redis.asyncio as aioredis
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.transport import GatheringHttpToolsProtocol
from queues.config import RuntimeConfig
from queues.connection import connect
from queues.wire import take_over


async def test_redis_py_connection_streams_can_be_taken_over(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, protocol=3)
    conn = client.connection_pool.make_connection()
    await conn.connect()
    assert isinstance(conn._reader, asyncio.StreamReader) and isinstance(conn._writer, asyncio.StreamWriter)
    assert isinstance(conn._reader._buffer, bytearray)  # type: ignore[attr-defined]
    writer, leftover = take_over(conn)
    assert leftover == b"" and conn._reader is None and conn._writer is None
    writer.close()
    await client.aclose()


def test_take_over_fails_loudly_when_redis_py_changes() -> None:
    class Elsewhere:
        _streams = None

    with pytest.raises(RuntimeError, match=r"redis-py .* queues/wire\.py needs updating"):
        take_over(Elsewhere())


async def test_connections_speak_resp3_by_default(redis_url: str) -> None:
    """The token channel needs RESP3 pushes: redis-py 8 negotiates it unless REDIS_URL says otherwise
    (while keeping RESP2-shaped replies, which the runtime parses). Forcing protocol=3 would change
    the reply shapes."""
    client = connect(RuntimeConfig(redis_url=redis_url))
    conn = client.connection_pool.make_connection()
    await conn.connect()
    assert conn.protocol == 3
    assert client.connection_pool.connection_kwargs.get("protocol") is None
    await conn.disconnect()
    await client.aclose()


def test_uvicorn_httptools_protocol_is_what_transport_subclasses() -> None:
    assert issubclass(HttpToolsProtocol, asyncio.Protocol)
    assert list(inspect.signature(HttpToolsProtocol.connection_made).parameters) == ["self", "transport"]
    config = uvicorn.Config(app=lambda *_: None, http=GatheringHttpToolsProtocol)
    config.load()
    assert config.http_protocol_class is GatheringHttpToolsProtocol
