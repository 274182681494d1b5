"""A system under test as the load client sees it, the requests it gets, and the probe that checks it
answers as the benchmark expects before anything is measured."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ops.bench.serve.load import Workload

PROMPT = "Request {i}: tell me a short story about a lighthouse keeper and the sea."


@dataclass
class Target:
    name: str
    host: str
    port: int
    model: str
    config: str  # what it runs with, for the report
    pids: list[int]  # roots of its processes (the CPU meter follows their children)
    extra: dict[str, Any] = field(default_factory=dict)  # fields added to every request body

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def workload(self, stream: bool, tokens: int, images: list[str], keep_alive: bool = True) -> Workload:
        encode = msgspec.json.Encoder().encode
        fixed: dict[str, Any] = {"model": self.model, "max_tokens": tokens, "ignore_eos": True, **self.extra}
        if stream:
            fixed |= {"stream": True, "stream_options": {"include_usage": True}}
        media = [{"type": "image_url", "image_url": {"url": url}} for url in images]

        def body(i: int) -> bytes:
            text = PROMPT.format(i=i)
            content: str | list[dict[str, Any]] = [*media, {"type": "text", "text": text}] if media else text
            return encode({**fixed, "messages": [{"role": "user", "content": content}]})

        return Workload(self.host, self.port, body, stream, tokens, keep_alive)


def png_data_url(size: int = 56) -> str:
    """A small synthetic picture as a data URL (the same bytes every run)."""
    from PIL import Image

    image = Image.new("RGB", (size, size))
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(size) for x in range(size)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait_for_model(url: str, model: str, alive: Callable[[], bool], timeout: float) -> None:
    """Poll `GET /v1/models` until `model` is listed; `alive()` false means the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server behind {url} exited before it listed {model}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                listed = [card["id"] for card in msgspec.json.decode(response.read())["data"]]
            if model in listed:
                return
        except (urllib.error.URLError, OSError, KeyError, msgspec.DecodeError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not list the model {model} within {timeout:.0f}s")


async def probe(target: Target, tokens: int, images: list[str]) -> None:
    """A streaming and a plain request must each bring `tokens` completion tokens, with text."""
    for stream in (True, False):
        work = target.workload(stream, tokens, images)
        client = work.client()
        try:
            for attempt in range(20):  # a freshly started peer may still be wiring its routes
                sample = await client.send(work.request(attempt), stream, tokens)
                if not sample.error and sample.pieces:
                    break
                await asyncio.sleep(0.5)
        finally:
            client.close()
        if sample.error or not sample.pieces:
            raise RuntimeError(f"{target.name} answered the probe wrongly: {sample.error or 'no content'}")


def answer_text(target: Target, tokens: int, images: list[str]) -> str:
    """The text of one plain answer (the report shows it: real words, not empty strings)."""
    request = urllib.request.Request(
        target.url + "/v1/chat/completions",
        data=target.workload(False, tokens, images).body(0),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(msgspec.json.decode(response.read())["choices"][0]["message"]["content"])
