"""A trivial OpenAI-shaped server, to measure the load client's own ceiling.

    python -m ops.bench.serve.trivial --port PORT --tokens 16

It answers every POST at once from bytes prepared at start: a chat.completion body, or (when the
request asks for `"stream": true`) one SSE chunk per token, a usage chunk and `data: [DONE]`, all in
one write. What it costs is near nothing, so the client's requests/s against it bounds what the client
can drive on this machine (the two still share the CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import cast

import httptools
import uvloop


def responses(tokens: int) -> tuple[bytes, bytes]:
    """(non-streaming response, streaming response), whole HTTP/1.1 responses."""
    base = {"id": "chatcmpl-trivial", "created": 0, "model": "trivial"}
    usage = {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
    message = {"role": "assistant", "content": " word" * tokens}
    choice = {"index": 0, "message": message, "finish_reason": "length"}
    body = json.dumps({**base, "object": "chat.completion", "choices": [choice], "usage": usage}).encode()
    plain = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    frames = []
    for i in range(tokens):
        delta = {
            "index": 0,
            "delta": {"content": " word"},
            "finish_reason": "length" if i == tokens - 1 else None,
        }
        frames.append({**base, "object": "chat.completion.chunk", "choices": [delta]})
    frames.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    events = [b"data: " + json.dumps(frame).encode() + b"\n\n" for frame in frames] + [b"data: [DONE]\n\n"]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return plain + body, head + chunked


class _Server(asyncio.Protocol):
    def __init__(self, plain: bytes, stream: bytes) -> None:
        self._answers = (plain, stream)
        self._parser = httptools.HttpRequestParser(self)
        self._streaming = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    def on_message_begin(self) -> None:
        self._streaming = False

    def on_body(self, body: bytes) -> None:
        self._streaming = self._streaming or b'"stream":true' in body.replace(b" ", b"")

    def on_message_complete(self) -> None:
        if self._transport is not None:
            self._transport.write(self._answers[self._streaming])
            if not self._parser.should_keep_alive():
                self._transport.close()


async def serve(port: int, tokens: int) -> None:
    plain, stream = responses(tokens)
    server = await asyncio.get_running_loop().create_server(lambda: _Server(plain, stream), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.tokens))


if __name__ == "__main__":
    main()
