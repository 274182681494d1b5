"""The whole system with `ENGINE=sglang` (agg and e-pd), through the HTTP API and the official
openai client: for text, one image, three images and video, greedy tokens equal HF `generate`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from queues.messages import MediaRef
from tests.e2e.client import GREEDY, ask, ask_streaming, data_url, expected, png
from tests.e2e.conftest import MediaServer, System, launch
from tests.models import tiny_model_dir
from tests.unit.engine.oracle import Reference
from workers.media import synth

MODES = ["agg", "e-pd"]
SGLANG_ENV = {"ENGINE": "sglang", "MAX_KV_TOKENS": "8192", "MAX_BATCH_SIZE": "16"}


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference(tiny_model_dir("qwen2-vl"))


@pytest.fixture(scope="module")
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()


@pytest.fixture(scope="module", params=MODES)
def system(request: pytest.FixtureRequest, placeholder_calls: Path) -> Iterator[System]:
    with launch(request.param, tiny_model_dir("qwen2-vl"), SGLANG_ENV) as launched:
        yield launched


async def test_text(system: System, reference: Reference) -> None:
    want = await expected(reference, "Tell me a story.", [], GREEDY)
    assert await ask(system, "Tell me a story.", [], GREEDY) == want


async def test_one_image(system: System, reference: Reference) -> None:
    refs = [MediaRef(modality="image", url=png(1))]
    want = await expected(reference, "What is this?", refs, GREEDY)
    assert await ask(system, "What is this?", refs, GREEDY) == want


async def test_one_image_url_fetched_by_our_loader(
    system: System, reference: Reference, media_server: MediaServer
) -> None:
    url = media_server.add("cat.png", synth.image_bytes("PNG", 56, 56, seed=1), "image/png")
    refs = [MediaRef(modality="image", url=url)]
    want = await expected(reference, "What is this?", refs, GREEDY)
    assert await ask(system, "What is this?", refs, GREEDY) == want


async def test_three_images_of_different_sizes(system: System, reference: Reference) -> None:
    refs = [
        MediaRef(modality="image", url=png(2, 56, 56)),
        MediaRef(modality="image", url=png(3, 84, 56)),
        MediaRef(modality="image", url=png(4, 56, 112)),
    ]
    want = await expected(reference, "Compare them.", refs, GREEDY)
    assert await ask(system, "Compare them.", refs, GREEDY) == want


async def test_video(system: System, reference: Reference) -> None:
    clip = synth.video_bytes("mp4", width=56, height=56, fps=4, frames=8)
    refs = [MediaRef(modality="video", url=data_url(clip, "video/mp4"))]
    want = await expected(reference, "What happens?", refs, GREEDY)
    assert await ask(system, "What happens?", refs, GREEDY) == want


async def test_streaming_and_concurrent_requests(system: System, reference: Reference) -> None:
    cases = [
        (f"Question number {i}.", [MediaRef(modality="image", url=png(10 + i))] if i % 2 else [])
        for i in range(8)
    ]
    wants = [await expected(reference, text, refs, GREEDY) for text, refs in cases]
    gots = await asyncio.gather(*(ask_streaming(system, text, refs, GREEDY) for text, refs in cases))
    assert list(gots) == wants
