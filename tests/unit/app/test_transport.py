"""Writes of one loop turn reach the underlying transport as one write; close flushes, abort drops."""

from __future__ import annotations

import asyncio

from app.transport import GatheringTransport


class Recorder(asyncio.Transport):
    """Stands in for the socket: what reached it, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_one_turn_one_write() -> None:
    socket = Recorder()
    transport = GatheringTransport(socket)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(memoryview(b"body"))
    assert socket.writes == [] and transport.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert socket.writes[1:] == [b"next"]


async def test_close_flushes_and_abort_drops() -> None:
    socket = Recorder()
    transport = GatheringTransport(socket)
    transport.write(b"last words")
    transport.close()
    assert socket.writes == [b"last words"] and socket.closed
    socket = Recorder()
    transport = GatheringTransport(socket)
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert socket.writes == [] and socket.closed
