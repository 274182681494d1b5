"""The steps the stages are made of: load media, encode, receive embeddings, prefill, generate.

Each stage handler (workers/encode.py, prefill.py, decode.py, pd.py, agg.py) is a few of these in a
row. The steps turn failures into the runtime's vocabulary: bad media or a prompt that cannot fit
is a ClientError (the client gets a 4xx), a lost tensor is a Rerun from the stage that produced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import msgspec
import torch

from queues.errors import ClientError, Rerun
from queues.messages import DecodeState, Encoded, Job, MediaRef, Prefilled
from queues.metrics import observe_step
from queues.runtime import JobContext
from queues.transfer import Received, TensorRef, TransferError
from queues.types import Stage
from workers.context import WorkerContext
from workers.emitter import TokenEmitter
from workers.engine.base import EncodedItem, PrefillResult
from workers.media.types import LoadedMedia


@contextlib.contextmanager
def timed(stage: str, timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's duration to `timings[name]` (it travels with the job) and to the metrics."""
    began = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - began
        timings[name] = timings.get(name, 0.0) + seconds
        observe_step(stage, name.removesuffix("_s"), seconds)


async def load_media(ctx: WorkerContext, job: Job) -> list[LoadedMedia]:
    loader = ctx.need_media()

    async def load(ref: MediaRef) -> LoadedMedia:
        try:
            return await loader.load(ref, audio_rate=ctx.audio_rate)
        except ClientError as exc:  # about the URL, unless it names its field
            raise (exc if exc.param else exc.at(ref.param or "messages")) from None

    return list(await asyncio.gather(*(load(ref) for ref in job.request.media)))


async def encode(ctx: WorkerContext, job: Job, timings: dict[str, float]) -> list[EncodedItem]:
    """Load and encode the job's media; with the encoder-output cache on, an item seen before (same
    content, same processing options) is not encoded again."""
    with timed(ctx.stage, timings, "media_s"):
        media = await load_media(ctx, job)
    with timed(ctx.stage, timings, "encode_s"):
        cache = ctx.encoder_cache
        if not cache.enabled:
            return await ctx.engine.encode(media)

        async def one(item: LoadedMedia, ref: MediaRef) -> EncodedItem:
            options = {
                "model": ctx.settings.model,
                "dtype": ctx.settings.dtype,
                "modality": ref.modality,
                "detail": ref.detail,
                "fps": ref.fps,
                "num_frames": ref.num_frames,
                "audio_rate": ctx.audio_rate,
            }
            [encoded] = await cache.get_or_compute(
                item.content_hash, options, lambda: ctx.engine.encode([item])
            )
            return encoded

        # concurrent single-item calls: the engine batches them together
        return list(
            await asyncio.gather(
                *(one(item, ref) for item, ref in zip(media, job.request.media, strict=True))
            )
        )


async def publish_encoded(ctx: WorkerContext, items: list[EncodedItem]) -> Encoded:
    ref = await ctx.need_transfer().publish([tensor for tensor, _ in items], ttl=ctx.settings.tensor_ttl_s)
    return Encoded(tensors=ref, items=[meta for _, meta in items])


async def receive_encoded(ctx: WorkerContext, job: Job, timings: dict[str, float]) -> list[EncodedItem]:
    """The embeddings encode published for this job (none for a text-only request)."""
    if not job.request.media:
        return []
    if job.encoded is None:
        raise Rerun("encode", "the job carries no embeddings")
    received = await _fetch(ctx, job.encoded.tensors, timings, producer="encode", what="embeddings")
    with received:
        # copies out of the receive pool, which is released for the next transfer
        pairs = zip(received.tensors, job.encoded.items, strict=True)
        return [(tensor.clone(), meta) for tensor, meta in pairs]


async def _fetch(
    ctx: WorkerContext, ref: TensorRef, timings: dict[str, float], *, producer: Stage, what: str
) -> Received:
    """Read tensors another worker published; if they are gone, re-run the stage that makes them."""
    with timed(ctx.stage, timings, "transfer_s"):
        try:
            return await ctx.need_transfer().fetch(ref)
        except TransferError as exc:
            raise Rerun(producer, f"lost the {what} ({exc.reason}: {exc})") from None


async def prefill(
    ctx: WorkerContext, job: Job, items: list[EncodedItem], timings: dict[str, float]
) -> PrefillResult:
    request = job.request
    expanded = len(request.prompt_ids) - len(items) + sum(meta.num_tokens for _, meta in items)
    limit = ctx.info.max_context
    if expanded + request.sampling.max_tokens > limit:
        raise ClientError(
            400,
            f"the prompt has {expanded} tokens (media included) and asks for up to "
            f"{request.sampling.max_tokens} more; the model's context is {limit} tokens",
            code="context_length_exceeded",
            param="messages",
        )
    with timed(ctx.stage, timings, "prefill_s"):
        try:
            return await ctx.engine.prefill(request.prompt_ids, items, request.sampling)
        except ValueError as exc:  # the items do not fit the prompt's placeholders
            message = f"the request's media do not fit its prompt: {exc}"
            raise ClientError(422, message, code="media_mismatch") from None


async def publish_prefilled(ctx: WorkerContext, result: PrefillResult) -> Prefilled:
    ref = await ctx.need_transfer().publish(result.kv, ttl=ctx.settings.tensor_ttl_s)
    return Prefilled(tensors=ref, state=result.state)


async def receive_prefilled(
    ctx: WorkerContext, job: Job, timings: dict[str, float]
) -> tuple[list[torch.Tensor], DecodeState]:
    if job.prefilled is None:
        raise Rerun("prefill", "the job carries no KV cache")
    received = await _fetch(ctx, job.prefilled.tensors, timings, producer="prefill", what="KV cache")
    with received:
        return [tensor.clone() for tensor in received.tensors], job.prefilled.state


async def generate(
    ctx: WorkerContext,
    jctx: JobContext,
    job: Job,
    kv: list[torch.Tensor],
    state: DecodeState,
    timings: dict[str, float],
) -> None:
    """Decode to the end, publishing every token to the client (ClientGone if nobody listens)."""
    began = time.perf_counter()
    stream = ctx.engine.generate(job.request.id, kv, state, job.request.sampling, stream=job.request.stream)
    interval = ctx.settings.stream_interval_ms / 1000
    async with contextlib.aclosing(stream), TokenEmitter(jctx, job.request.stream, interval) as emitter:
        async for output in stream:
            final_timings = None
            if output.finish_reason is not None:
                timings["decode_s"] = time.perf_counter() - began
                observe_step(ctx.stage, "decode", timings["decode_s"])
                final_timings = merged_timings(job, ctx.stage, timings)
            emitter.add(output, final_timings)


def start_timings(job: Job) -> dict[str, float]:
    """This stage's timings, starting with how long the job waited in the stream."""
    return {"queue_s": max(time.time() - job.enqueued_at, 0.0)}


def merged_timings(job: Job, stage: str, timings: dict[str, float]) -> dict[str, float]:
    return {**job.timings, **{f"{stage}.{name}": value for name, value in timings.items()}}


def hand_on(
    job: Job,
    stage: str,
    timings: dict[str, float],
    *,
    encoded: Encoded | None = None,
    prefilled: Prefilled | None = None,
) -> Job:
    """The job for the next stage of the route, carrying this stage's outputs and timings."""
    next_stage = job.next_stage()
    assert next_stage is not None, f"{stage} is the last stage of {job.request.route}"
    merged = merged_timings(job, stage, timings)
    return msgspec.structs.replace(
        job,
        stage=next_stage,
        timings=merged,
        attempt=0,
        last_error="",
        encoded=encoded or job.encoded,
        prefilled=prefilled or job.prefilled,
    )
