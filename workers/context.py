"""What a stage worker process holds for all its jobs: the engine, the media loader, the tensor
transfer endpoint; opened once at start and closed on shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from queues.config import RuntimeConfig, from_env
from queues.connection import connect
from queues.keys import Keys
from queues.media.config import MediaConfig
from queues.metrics import KV_TOKENS
from queues.transfer import TensorTransfer, TransferConfig
from queues.types import Stage
from workers.devices import DECODING, fixed_kv_tokens, kv_bytes_of, kv_tokens_on_device, place
from workers.engine.base import EncodedItem, Engine
from workers.engine.limits import EngineLimits
from workers.engine.loader import load_engine
from workers.engine.mock import MockEngine, MockTimings
from workers.engine.model_info import ModelInfo
from workers.media.encoder_cache import EncoderOutputCache
from workers.media.loader import MediaLoader
from workers.settings import DEFAULT_KV_TOKENS, WorkerSettings


@dataclass
class WorkerContext:
    stage: str
    settings: WorkerSettings
    info: ModelInfo
    engine: Engine
    media: MediaLoader | None
    transfer: TensorTransfer | None
    audio_rate: int | None  # the model's audio sampling rate, when it takes audio
    encoder_cache: EncoderOutputCache[list[EncodedItem]]  # off unless MEDIA_ENCODER_CACHE_BYTES > 0

    def need_media(self) -> MediaLoader:
        assert self.media is not None, f"stage {self.stage} has no media loader"
        return self.media

    def need_transfer(self) -> TensorTransfer:
        assert self.transfer is not None, f"stage {self.stage} has no tensor transfer"
        return self.transfer


async def build_engine(settings: WorkerSettings, info: ModelInfo, stage: Stage = "agg") -> Engine:
    if settings.engine == "mock":  # simulated: DEVICE and DTYPE play no part
        limits = EngineLimits(settings.max_batch_size, fixed_kv_tokens(settings, "cpu") or DEFAULT_KV_TOKENS)
        timings = MockTimings(
            prefill_s_per_token=settings.mock_prefill_token_s,
            decode_s_per_step=settings.mock_decode_step_s,
            encode_s_per_item=settings.mock_encode_item_s,
        )
        return _serving(MockEngine(info, timings, limits), stage, limits.max_kv_tokens)
    placement = place(settings)  # a device this machine lacks stops the worker here, before loading
    kv_tokens = fixed_kv_tokens(settings, placement.device.type)
    # with MAX_KV_TOKENS=auto on a GPU, the engine starts with a stand-in figure, settled below
    limits = EngineLimits(settings.max_batch_size, kv_tokens or DEFAULT_KV_TOKENS)
    if placement.device.type == "cpu":
        torch.set_num_threads(settings.torch_threads or max(1, (os.cpu_count() or 1) // 4))
    if settings.engine == "sglang":  # imported here: the sglang backend is an optional install
        from workers.engine.sglang.loader import load_sglang_engine

        engine = await load_sglang_engine(settings, info, stage, placement)
        if engine is not None:  # None: e-pd's encode stage, the transformers vision tower
            return _serving(engine, stage, kv_tokens)  # None: sglang sizes its own KV pool
    engine = await asyncio.to_thread(
        load_engine, settings.model, placement.device, placement.dtype, limits, stage, info
    )
    if kv_tokens is None and stage in DECODING:
        # the model is on the GPU now, and the engine has not served: its schedulers read this
        text_config = engine.family.model.config.get_text_config()
        limits.max_kv_tokens = await asyncio.to_thread(
            kv_tokens_on_device,
            placement.device,
            settings.gpu_memory_fraction,
            kv_bytes_of(text_config, placement.dtype),
        )
    return _serving(engine, stage, limits.max_kv_tokens)


def _serving(engine: Engine, stage: str, kv_tokens: int | None) -> Engine:
    """Export the KV budget of a decoding stage's engine (triptych_kv_tokens) once it is known."""
    if kv_tokens is not None and stage in DECODING:
        KV_TOKENS.labels(stage).set(kv_tokens)
    return engine


def audio_sampling_rate(model_dir: str) -> int | None:
    """The feature extractor's sampling rate (audio models), from preprocessor_config.json."""
    path = Path(model_dir) / "preprocessor_config.json"
    if not path.exists():
        return None
    rate = json.loads(path.read_text()).get("sampling_rate")
    return int(rate) if rate else None


@asynccontextmanager
async def open_context(
    stage: Stage, runtime: RuntimeConfig, *, media: bool, transfer: bool
) -> AsyncIterator[WorkerContext]:
    settings = from_env(WorkerSettings)
    info = ModelInfo.load(settings.model)
    engine = await build_engine(settings, info, stage)
    media_config = MediaConfig.from_env()
    loader = MediaLoader(media_config) if media else None
    endpoint: TensorTransfer | None = None
    redis = connect(runtime)
    try:
        if transfer:
            name = f"{stage}.{socket.gethostname()}.{os.getpid()}"
            config = TransferConfig.from_env()
            endpoint = await TensorTransfer.start(redis, Keys(runtime.key_prefix), name, config)
        yield WorkerContext(
            stage=stage,
            settings=settings,
            info=info,
            engine=engine,
            media=loader,
            transfer=endpoint,
            audio_rate=audio_sampling_rate(settings.model),
            encoder_cache=EncoderOutputCache(media_config.encoder_cache_bytes if media else 0),
        )
    finally:
        if endpoint is not None:
            await endpoint.close(drain=1.0)
        if loader is not None:
            await loader.aclose()
        await engine.close()
        await redis.aclose()
