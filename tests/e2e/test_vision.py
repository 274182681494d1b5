"""The whole system in each mode with the tiny Qwen2-VL: the tokens of every request equal Hugging
Face `generate` on the same inputs (greedy and seeded sampling), through the official openai client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from queues.keys import Keys
from queues.messages import MediaRef, SamplingParams
from tests.e2e.client import GREEDY, SAMPLED, ask, ask_streaming, data_url, expected, png
from tests.e2e.conftest import MediaServer, System
from tests.unit.engine.oracle import Reference
from workers.media import synth

FAMILY = "qwen2-vl"


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
async def test_text(system: System, reference: Reference, sampling: SamplingParams) -> None:
    want = await expected(reference, "Tell me a story.", [], sampling)
    assert await ask(system, "Tell me a story.", [], sampling) == want


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
async def test_one_image_data_url(system: System, reference: Reference, sampling: SamplingParams) -> None:
    refs = [MediaRef(modality="image", url=png(1))]
    want = await expected(reference, "What is this?", refs, sampling)
    assert await ask(system, "What is this?", refs, sampling) == want


async def test_one_image_url(system: System, reference: Reference, media_server: MediaServer) -> None:
    url = media_server.add("cat.png", synth.image_bytes("PNG", 56, 56, seed=1), "image/png")
    refs = [MediaRef(modality="image", url=url)]
    want = await expected(reference, "What is this?", refs, SAMPLED)
    assert await ask(system, "What is this?", refs, SAMPLED) == want


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
async def test_three_images_of_different_sizes(
    system: System, reference: Reference, sampling: SamplingParams
) -> None:
    refs = [
        MediaRef(modality="image", url=png(2, 56, 56)),
        MediaRef(modality="image", url=png(3, 84, 56)),
        MediaRef(modality="image", url=png(4, 56, 112)),
    ]
    want = await expected(reference, "Compare them.", refs, sampling)
    assert await ask(system, "Compare them.", refs, sampling) == want


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
async def test_video(system: System, reference: Reference, sampling: SamplingParams) -> None:
    clip = synth.video_bytes("mp4", width=56, height=56, fps=4, frames=8)
    refs = [MediaRef(modality="video", url=data_url(clip, "video/mp4"))]
    want = await expected(reference, "What happens?", refs, sampling)
    assert await ask(system, "What happens?", refs, sampling) == want


async def test_a_different_image_gives_different_tokens(system: System) -> None:
    first = await ask(system, "Describe.", [MediaRef(modality="image", url=png(5))], GREEDY)
    second = await ask(system, "Describe.", [MediaRef(modality="image", url=png(6))], GREEDY)
    assert first != second


async def test_streaming_and_non_streaming_agree(system: System) -> None:
    refs = [MediaRef(modality="image", url=png(7))]
    assert await ask_streaming(system, "Hi!", refs, SAMPLED) == await ask(system, "Hi!", refs, SAMPLED)


async def test_32_concurrent_requests(system: System, reference: Reference) -> None:
    cases = [
        (f"Question number {i}.", [MediaRef(modality="image", url=png(10 + i % 4))] if i % 2 else [], i)
        for i in range(32)
    ]
    samplings = {
        seed: SamplingParams(max_tokens=6, seed=seed, temperature=0.8, top_k=40) for _, _, seed in cases
    }
    wants = [await expected(reference, text, refs, samplings[seed]) for text, refs, seed in cases]
    gots = await asyncio.gather(*(ask(system, text, refs, samplings[seed]) for text, refs, seed in cases))
    assert list(gots) == wants


def said(*parts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A request body whose one user message holds `parts` (or the text "x")."""
    content: Any = list(parts) if parts else "x"
    return {"messages": [{"role": "user", "content": content}], **fields}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b"{not json", 400, "not valid JSON"),
    ("unknown field", said(frobnicate=1), 400, "frobnicate"),
    ("tools", said(tools=[{"type": "function"}]), 400, "tools"),
    ("no messages", {"messages": []}, 400, "messages"),
    ("n=2", said(n=2), 400, "`n`"),
    ("huge max_tokens", said(max_tokens=10**9), 400, "max_tokens"),
    ("unsupported scheme", said(image("ftp://x/y.png")), 400, "ftp"),
    ("bad base64", said(image("data:image/png;base64,@@@")), 400, "base64"),
    (
        "audio to a vision model",
        said({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
        400,
        "audio",
    ),
]


@pytest.mark.parametrize(("name", "body", "status", "words"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_requests_get_clear_4xx(
    system: System, name: str, body: Any, status: int, words: str
) -> None:
    async with httpx.AsyncClient(base_url=system.url) as client:
        if isinstance(body, bytes):
            response = await client.post(
                "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
            )
        else:
            response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"], error
    assert words in error["message"]


async def test_undecodable_image_fails_cleanly_and_workers_stay_up(system: System) -> None:
    garbage = data_url(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")
    async with httpx.AsyncClient(base_url=system.url, timeout=60) as client:
        response = await client.post("/v1/chat/completions", json=said(image(garbage)))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["message"] and error["code"], error
        assert error["param"] == "messages[0].content[0].image_url.url", error  # found by the worker
    assert len(await ask(system, "Still there?", [], GREEDY)) > 0


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "not-streaming"])
async def test_client_disconnect_cancels_the_work(system: System, stream: bool) -> None:
    keys = Keys()
    last_stage = {"agg": "agg", "e-pd": "pd", "e-p-d": "decode"}[system.mode]
    body = {
        "messages": [{"role": "user", "content": "Go on forever."}],
        "max_tokens": 4000,
        "ignore_eos": True,
        "stream": stream,
    }
    if stream:
        async with (
            httpx.AsyncClient(base_url=system.url, timeout=60) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            chunks = 0
            async for _ in response.aiter_lines():
                chunks += 1
                if chunks > 6:
                    break  # leaving the block closes the connection mid-stream
    else:  # the client gives up waiting for the whole answer and closes the connection
        async with httpx.AsyncClient(base_url=system.url, timeout=1.5) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/v1/chat/completions", json=body)
    client_redis = aioredis.Redis.from_url(system.redis.url)
    try:
        stage_stream = keys.stream(last_stage)
        deadline = time.monotonic() + 15  # 4000 tokens would take far longer than this
        while time.monotonic() < deadline:
            if await client_redis.xlen(stage_stream) == 0:
                break
            await asyncio.sleep(0.2)
        assert await client_redis.xlen(stage_stream) == 0
        assert (await client_redis.xpending(stage_stream, last_stage))["pending"] == 0
    finally:
        await client_redis.aclose()
