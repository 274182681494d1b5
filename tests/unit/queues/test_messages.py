"""Job messages: where a re-run starts and what it drops."""

from __future__ import annotations

import time

import msgspec
import pytest

from queues.messages import (
    DecodeState,
    Encoded,
    EncodedMeta,
    Job,
    MediaRef,
    Prefilled,
    Request,
    SamplingParams,
)
from queues.transfer.config import Transport
from queues.transfer.ref import TensorRef
from queues.types import Stage

IMAGE = MediaRef(modality="image", url="data:image/png;base64,AAAA")
E_P_D: list[Stage] = ["encode", "prefill", "decode"]
STATE = DecodeState(
    prompt_len=6, next_position=6, first_token=3, num_layers=2, num_kv_heads=2, head_dim=8, kv_dtype="float32"
)


def ref(transport: Transport) -> TensorRef:
    data = b"\0" * 8 if transport == "inline" else b""
    return TensorRef(
        transport=transport,
        tensors=[],
        nbytes=8,
        tag=1,
        expires_at=time.time() + 60,
        owner="w",
        epoch=1,
        data=data,
    )


def job(
    stage: Stage, route: list[Stage], media: bool, embeddings: Transport | None, kv: Transport | None
) -> Job:
    now = time.time()
    request = Request(
        id="r",
        model="m",
        prompt_ids=[1, 2],
        media=[IMAGE] if media else [],
        sampling=SamplingParams(max_tokens=4, seed=1),
        route=route,
        deadline=now + 60,
        created=now,
    )
    meta = EncodedMeta(modality="image", num_tokens=4, content_hash="h", dtype="float32", shape=[4, 8])
    encoded = Encoded(tensors=ref(embeddings), items=[meta]) if embeddings else None
    prefilled = Prefilled(tensors=ref(kv), state=STATE) if kv else None
    return Job(request=request, stage=stage, encoded=encoded, prefilled=prefilled)


@pytest.mark.parametrize("embeddings", ["nixl", "shm", "redis"])
def test_lost_kv_of_an_image_request_goes_back_to_encode_at_once(embeddings: Transport) -> None:
    """Prefill read the embeddings, so their owner freed them: re-running prefill alone would fail."""
    decoding = job("decode", E_P_D, media=True, embeddings=embeddings, kv="nixl")
    assert decoding.rerun_from("prefill") == "encode"
    again = decoding.without_outputs_from("encode")
    assert (again.stage, again.encoded, again.prefilled) == ("encode", None, None)


def test_inline_embeddings_travel_with_the_job_and_are_reused() -> None:
    decoding = job("decode", E_P_D, media=True, embeddings="inline", kv="nixl")
    assert decoding.rerun_from("prefill") == "prefill"
    again = decoding.without_outputs_from("prefill")
    assert again.encoded == decoding.encoded and again.prefilled is None


def test_text_requests_go_back_to_prefill() -> None:
    decoding = job("decode", ["prefill", "decode"], media=False, embeddings=None, kv="nixl")
    assert decoding.rerun_from("prefill") == "prefill"


def test_lost_embeddings_go_back_to_encode() -> None:
    stages: tuple[Stage, ...] = ("prefill", "pd")
    for stage in stages:
        reading = job(stage, ["encode", stage], media=True, embeddings="nixl", kv=None)
        assert reading.rerun_from("encode") == "encode"


def test_job_survives_the_wire() -> None:
    original = job("decode", E_P_D, media=True, embeddings="inline", kv="shm")
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(original), type=Job)
    assert decoded == original
