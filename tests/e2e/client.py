"""Helpers of the end-to-end tests: requests through the official openai client, and the oracle's
expected tokens for the same inputs."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import openai

from queues.media.config import MediaConfig
from queues.messages import MediaRef, SamplingParams
from tests.e2e.conftest import System
from tests.unit.engine.oracle import Reference
from tests.unit.engine.oracle import Request as OracleRequest
from workers.media import synth
from workers.media.loader import MediaLoader
from workers.media.types import LoadedMedia

GREEDY = SamplingParams(max_tokens=8, seed=0, temperature=0.0)
SAMPLED = SamplingParams(max_tokens=8, seed=1234, temperature=0.9, top_p=0.9, top_k=40)


def data_url(body: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(body).decode()}"


def png(seed: int, width: int = 56, height: int = 56) -> str:
    return data_url(synth.image_bytes("PNG", width, height, seed=seed), "image/png")


async def load(refs: list[MediaRef], audio_rate: int | None) -> list[LoadedMedia]:
    """The oracle sees exactly what the media loaders hand the encoder."""
    async with MediaLoader(MediaConfig.from_env(allow_hosts=("127.0.0.1",))) as loader:
        return [await loader.load(ref, audio_rate=audio_rate) for ref in refs]


def api_fields(sampling: SamplingParams) -> dict[str, Any]:
    return {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed,
        "extra_body": {"top_k": sampling.top_k, "repetition_penalty": 1.0, "return_token_ids": True},
    }


def content(text: str, refs: list[MediaRef], input_audio: bool = False) -> list[dict[str, Any]]:
    """OpenAI content parts: the media in order, then the text (the oracle's order too). With
    `input_audio`, audio data URLs go as `input_audio` parts instead of `audio_url`."""
    parts: list[dict[str, Any]] = []
    for ref in refs:
        if input_audio and ref.modality == "audio":
            head, _, data = ref.url.partition(";base64,")
            parts.append(
                {"type": "input_audio", "input_audio": {"data": data, "format": head.split("/")[-1]}}
            )
            continue
        key = {"image": "image_url", "video": "video_url", "audio": "audio_url"}[ref.modality]
        parts.append({"type": key, key: {"url": ref.url}})
    return [*parts, {"type": "text", "text": text}]


async def ask(
    system: System, text: str, refs: list[MediaRef], sampling: SamplingParams, input_audio: bool = False
) -> list[int]:
    messages: Any = [{"role": "user", "content": content(text, refs, input_audio)}]
    async with openai.AsyncOpenAI(base_url=system.api, api_key="unused", max_retries=0) as client:
        response = await client.chat.completions.create(
            model=system.model_dir.name, messages=messages, **api_fields(sampling)
        )
    token_ids = list(getattr(response.choices[0], "token_ids", []))
    assert response.usage is not None and response.usage.completion_tokens == len(token_ids)
    return token_ids


async def ask_streaming(
    system: System, text: str, refs: list[MediaRef], sampling: SamplingParams
) -> list[int]:
    messages: Any = [{"role": "user", "content": content(text, refs)}]
    async with openai.AsyncOpenAI(base_url=system.api, api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=system.model_dir.name,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **api_fields(sampling),
        )
        ids: list[int] = []
        async for chunk in stream:
            for choice in chunk.choices:
                ids.extend(getattr(choice, "token_ids", None) or [])
    return ids


async def expected(
    reference: Reference, text: str, refs: list[MediaRef], sampling: SamplingParams
) -> list[int]:
    extractor = getattr(reference.processor, "feature_extractor", None)
    media = await load(refs, getattr(extractor, "sampling_rate", None))
    return await asyncio.to_thread(
        reference.generate, OracleRequest(text=text, media=media, sampling=sampling)
    )
