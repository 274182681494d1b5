"""Every request ends in one access-log line and in the metrics with its real outcome: the front door
in process, a real agg worker (mock engine) and a real Redis. A streamed request whose events end in
an error counts as that error, although its HTTP status was already 200."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.server import create_app
from app.settings import AppSettings
from ops.redis import RedisServer
from queues.config import RuntimeConfig
from queues.logs import JsonFormatter
from queues.media.config import MediaConfig
from tests.helpers import Processes, wait_for
from tests.models import tiny_model_dir

GARBAGE_PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="module")
def worker(redis_url: str) -> Iterator[None]:
    processes = Processes({"REDIS_URL": redis_url, "MODEL": str(tiny_model_dir("qwen2-vl"))})
    processes.start(
        "-m", "workers.agg", env={"ENGINE": "mock", "LOG_LEVEL": "WARNING", "CONSUMER_NAME": "agg.1"}
    )
    try:
        yield
    finally:
        processes.stop_all()


@pytest.fixture
async def client(redis_url: str, worker: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = AppSettings(model=str(tiny_model_dir("qwen2-vl")), mode="agg")
    app = create_app(settings, RuntimeConfig(redis_url=redis_url), MediaConfig.from_env())
    await app.state.door.gateway.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:

            async def ready() -> bool:
                return (await http.get("/ready")).status_code == 200

            await wait_for(ready, within=120, what="the agg worker")
            yield http
    finally:
        await app.state.door.gateway.close()


def chat(content: Any, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 4, **fields}


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access lines so far, as LOG_FORMAT=json writes them."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "triptych.access"]


async def counter(http: httpx.AsyncClient, name: str, label: str, value: str) -> float:
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.labels.get(label) == value:
                return float(sample.value)
    return 0.0


async def test_a_streamed_answer_logs_its_tokens_and_timings(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triptych.access")
    before = await counter(client, "triptych_requests", "status", "200")
    response = await client.post("/v1/chat/completions", json=chat("hi", stream=True, ignore_eos=True))
    assert response.status_code == 200 and "[DONE]" in response.text
    [line] = access_lines(caplog)
    assert line["message"].startswith("chat route=/v1/chat/completions mode=agg stream=True status=200")
    assert line["status"] == 200 and line["stream"] is True and line["mode"] == "agg"
    assert (line["finish_reason"], line["completion_tokens"]) == ("length", 4)
    assert line["prompt_tokens"] > 0 and 0 < line["ttft_s"] <= line["total_s"]
    assert "agg.queue_s" in line and "agg.decode_s" in line
    assert await counter(client, "triptych_requests", "status", "200") == before + 1


async def test_a_streamed_error_counts_as_the_error(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triptych.access")
    ok_before = await counter(client, "triptych_requests", "status", "200")
    body = chat([{"type": "image_url", "image_url": {"url": GARBAGE_PNG}}], stream=True)
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200  # the stream had started; its last event is the error
    frames = [json.loads(f[6:]) for f in response.text.split("\n\n") if f.startswith("data: {")]
    error = frames[-1]["error"]
    assert error["param"] == "messages[0].content[0].image_url.url" and error["code"], error
    [line] = access_lines(caplog)
    assert (line["status"], line["code"], line["stream"]) == (422, error["code"], True)
    assert await counter(client, "triptych_requests", "status", "422") == 1
    assert await counter(client, "triptych_errors", "type", error["code"]) == 1
    assert await counter(client, "triptych_requests", "status", "200") == ok_before


async def test_a_refused_request_logs_its_status_and_code(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triptych.access")
    response = await client.post("/v1/chat/completions", json=chat("hi", n=3))
    assert response.status_code == 400
    [line] = access_lines(caplog)
    assert (line["status"], line["code"], line["stream"]) == (400, "unsupported_value", False)
    assert "finish_reason" not in line
