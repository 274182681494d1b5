"""The stage steps with the mock engine and the real media loader (no Redis needed)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import pytest

from queues.errors import ClientError
from queues.media.config import MediaConfig
from queues.messages import Job, MediaRef, Request, SamplingParams
from tests.models import tiny_model_dir
from workers import steps
from workers.context import WorkerContext
from workers.engine.limits import EngineLimits
from workers.engine.mock import MockEngine
from workers.engine.model_info import ModelInfo
from workers.media import synth
from workers.media.encoder_cache import EncoderOutputCache
from workers.media.loader import MediaLoader
from workers.settings import WorkerSettings


@pytest.fixture
async def context() -> AsyncIterator[WorkerContext]:
    model = tiny_model_dir("qwen2-vl")
    info = ModelInfo.load(model)
    engine = MockEngine(info, limits=EngineLimits())
    async with MediaLoader(MediaConfig.from_env()) as loader:
        yield WorkerContext(
            stage="agg",
            settings=WorkerSettings(model=str(model)),
            info=info,
            engine=engine,
            media=loader,
            transfer=None,
            audio_rate=None,
            encoder_cache=EncoderOutputCache(64 * 1024 * 1024),
        )
    await engine.close()


def job_with(media: list[MediaRef], max_tokens: int = 4, prompt_ids: list[int] | None = None) -> Job:
    now = time.time()
    request = Request(
        id="r1",
        model="m",
        prompt_ids=prompt_ids or [1, 2, 3],
        media=media,
        sampling=SamplingParams(max_tokens=max_tokens, seed=0),
        route=["agg"],
        deadline=now + 60,
        created=now,
    )
    return Job(request=request, stage="agg")


def image_ref(seed: int) -> MediaRef:
    body = base64.b64encode(synth.image_bytes("PNG", 56, 56, seed=seed)).decode()
    return MediaRef(modality="image", url=f"data:image/png;base64,{body}")


async def test_encoder_cache_encodes_a_repeated_image_once(context: WorkerContext) -> None:
    engine = context.engine
    assert isinstance(engine, MockEngine)
    first = await steps.encode(context, job_with([image_ref(1), image_ref(2)]), {})
    again = await steps.encode(context, job_with([image_ref(2), image_ref(1)]), {})
    assert engine.stats.encode_items == 2
    assert [meta.content_hash for _, meta in again] == [meta.content_hash for _, meta in reversed(first)]


async def test_encoder_cache_separates_processing_options(context: WorkerContext) -> None:
    engine = context.engine
    assert isinstance(engine, MockEngine)
    await steps.encode(context, job_with([image_ref(3)]), {})
    detailed = image_ref(3)
    await steps.encode(context, job_with([MediaRef(modality="image", url=detailed.url, detail="low")]), {})
    assert engine.stats.encode_items == 2


async def test_prefill_refuses_a_prompt_past_the_context(context: WorkerContext) -> None:
    limit = context.info.max_context
    job = job_with([], max_tokens=limit)
    with pytest.raises(ClientError, match="context"):
        await steps.prefill(context, job, [], {})


async def test_bad_media_becomes_a_client_error(context: WorkerContext) -> None:
    garbage = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode()
    with pytest.raises(ClientError) as caught:
        await steps.encode(context, job_with([MediaRef(modality="image", url=garbage)]), {})
    assert caught.value.status == 422
