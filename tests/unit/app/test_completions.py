"""Shaping a request's token events into OpenAI answers: `collect` (one chat.completion), `sse`
(role chunk, content deltas, finish reason, optional usage chunk, `[DONE]`), logprobs through
`Meta.decode_token`, `ErrorEvent.error`, and the metrics `Meta` records on the way.

Events are real `TokenEvent`s / `ErrorEvent`s. A re-run after a crash repeats tokens; the token
stream (`queues.channel.TokenStream`) trims the repeats with `TokenEvent.after`, so `collect` and
`sse` see each token once: the tests feed them what the stream yields, and one test drives the real
stream with a re-run's raw events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import msgspec
import pytest

from app.completions import Meta, collect, sse
from app.metrics import FrontDoorMetrics
from app.types import ChatCompletion
from queues.channel import Output, TokenStream
from queues.errors import ClientError
from queues.keys import Keys
from queues.messages import (
    ErrorEvent,
    TokenEvent,
    TokenLogprob,
    TopLogprob,
    Usage,
    encode_event,
)
from queues.pubsub import Callback, Subscriber
from queues.types import FinishReason

VOCABULARY = {1: "Hel", 2: "lo", 3: " wor", 4: "ld", 5: "!", 6: "é", 7: "<|im_end|>"}


def decode_token(token_id: int) -> str:
    return VOCABULARY[token_id]


def meta(*, return_token_ids: bool = False) -> Meta:
    return Meta(
        "chatcmpl-1", "tiny", 1700000000, decode_token, FrontDoorMetrics(), return_token_ids=return_token_ids
    )


def tokens(
    seq: int,
    *ids: int,
    finish: FinishReason | None = None,
    usage: Usage | None = None,
    logprobs: bool = False,
    timings: dict[str, float] | None = None,
) -> TokenEvent:
    """An event of `ids` from token index `seq`, each token releasing its vocabulary text."""
    return TokenEvent(
        seq=seq,
        token_ids=list(ids),
        texts=[VOCABULARY[i] for i in ids],
        logprobs=[logprob(i) for i in ids] if logprobs else None,
        finish_reason=finish,
        usage=usage,
        timings=timings,
    )


def logprob(token_id: int) -> TokenLogprob:
    """Token `i` has logprob -i/10, and one alternative, token i+1, at -(i+1)/10."""
    return TokenLogprob(token_id, -token_id / 10, [TopLogprob(token_id + 1, -(token_id + 1) / 10)])


async def feed(*events: Output, read: list[Output] | None = None) -> AsyncIterator[Output]:
    for event in events:
        if read is not None:
            read.append(event)
        yield event


async def frames(events: AsyncIterator[Output], m: Meta, include_usage: bool = False) -> list[bytes]:
    """What `sse` writes, write by write."""
    return [chunk async for chunk in sse(events, m, include_usage)]


def payloads(writes: list[bytes]) -> list[Any]:
    """Each `data:` frame's JSON (the final `[DONE]` as the string)."""
    found: list[Any] = []
    for frame in b"".join(writes).split(b"\n\n"):
        if not frame:
            continue
        assert frame.startswith(b"data: ")
        data = frame[len(b"data: ") :]
        found.append("[DONE]" if data == b"[DONE]" else msgspec.json.decode(data))
    return found


def count(m: Meta, sample: str) -> float:
    value = m.metrics.registry.get_sample_value(sample)
    assert value is not None, sample
    return value


def as_json(completion: ChatCompletion) -> Any:
    return msgspec.json.decode(msgspec.json.encode(completion))


class ScriptedSubscriber:
    """Stands in for `queues.pubsub.Subscriber`: the test delivers the channel's messages."""

    def __init__(self) -> None:
        self.callback: Callback | None = None

    async def subscribe(self, channel: str, callback: Callback) -> None:
        self.callback = callback

    async def unsubscribe(self, channel: str) -> None:
        self.callback = None

    def deliver(self, message: bytes) -> None:
        assert self.callback is not None
        self.callback(message)


USAGE = Usage(prompt_tokens=12, completion_tokens=5)
FINISHED: dict[str, Any] = {"finish": "stop", "usage": USAGE, "timings": {"decode": 0.25}}


# ---- collect -----------------------------------------------------------------------------------


async def test_collect_joins_the_events_into_one_answer() -> None:
    m = meta()
    completion = await collect(feed(tokens(0, 1, 2), tokens(2, 3), tokens(3, 4, 5, **FINISHED)), m)
    assert as_json(completion) == {
        "id": "chatcmpl-1",
        "created": 1700000000,
        "model": "tiny",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world!"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        "timings": {"decode": 0.25},
    }


async def test_collect_returns_token_ids_when_asked() -> None:
    events = (tokens(0, 1, 2), tokens(2, 7, finish="stop"))
    assert (await collect(feed(*events), meta(return_token_ids=True))).choices[0].token_ids == [1, 2, 7]
    assert "token_ids" not in as_json(await collect(feed(*events), meta()))["choices"][0]


async def test_collect_without_usage_reports_zeros() -> None:
    completion = await collect(feed(tokens(0, 1, finish="length")), meta())
    assert completion.choices[0].finish_reason == "length"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (0, 0, 0)


async def test_collect_stops_reading_at_the_final_event() -> None:
    read: list[Output] = []
    final = tokens(0, 1, finish="stop")
    completion = await collect(feed(final, tokens(1, 2), read=read), meta())
    assert completion.choices[0].message.content == "Hel"
    assert read == [final]


async def test_collect_of_a_rerun_as_the_token_stream_trims_it() -> None:
    """The first run delivered tokens 0-1 and crashed; the re-run repeats them grouped differently
    (0-2, then 2-4 with the finish). The stream hands on only what is new."""
    first = tokens(0, 1, 2, logprobs=True)
    rerun = tokens(0, 1, 2, 3, logprobs=True)
    final = tokens(2, 3, 4, 5, logprobs=True, **FINISHED)
    delivered = [first, rerun.after(first.end), final.after(rerun.end)]
    assert [(event.seq, event.token_ids) for event in delivered] == [(0, [1, 2]), (2, [3]), (3, [4, 5])]
    completion = await collect(feed(*delivered), meta(return_token_ids=True))
    choice = completion.choices[0]
    assert choice.message.content == "Hello world!"
    assert choice.token_ids == [1, 2, 3, 4, 5]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert [item.token for item in choice.logprobs.content] == ["Hel", "lo", " wor", "ld", "!"]


async def test_a_repeated_final_event_with_nothing_new_still_ends_the_answer() -> None:
    final = tokens(0, 1, 2, **FINISHED)
    delivered = [tokens(0, 1, 2), final.after(2)]  # the re-run's final event, every token already seen
    assert delivered[1].token_ids == [] and delivered[1].finish_reason == "stop"
    completion = await collect(feed(*delivered), meta())
    assert completion.choices[0].message.content == "Hello"
    assert completion.usage.total_tokens == 17


async def test_collect_reads_the_real_token_stream_of_a_rerun() -> None:
    """Raw events as a crash and re-run publish them (repeats, overlaps, a repeated final event),
    through the real `TokenStream` with a scripted subscriber (no Redis), into `collect`."""
    subscriber = ScriptedSubscriber()
    published = [
        tokens(0, 1, 2),
        tokens(2, 3),  # the first run crashes here
        tokens(0, 1),  # the re-run: a repeat
        tokens(1, 2, 3, 4),  # an overlap: only token 4 is new
        tokens(4, 5, **FINISHED),
        tokens(4, 5, **FINISHED),  # delivered twice
    ]
    stream = TokenStream(
        cast(Subscriber, subscriber), cast(Any, None), Keys(), "r1", silence_s=60.0, gap_s=60.0
    )
    async with stream:
        for event in published:
            subscriber.deliver(encode_event(event))
        completion = await collect(stream.events(), meta(return_token_ids=True))
    assert completion.choices[0].message.content == "Hello world!"
    assert completion.choices[0].token_ids == [1, 2, 3, 4, 5]
    assert completion.usage.completion_tokens == 5


async def test_collect_raises_the_error_event() -> None:
    error = ErrorEvent(message="decode worker died", code="worker_failed", status=502, type="server_error")
    with pytest.raises(ClientError) as info:
        await collect(feed(tokens(0, 1), error), meta())
    assert (info.value.status, info.value.code, info.value.type, info.value.message) == (
        502,
        "worker_failed",
        "server_error",
        "decode worker died",
    )


async def test_collect_of_a_stream_without_a_final_event_is_a_502() -> None:
    with pytest.raises(ClientError) as info:
        await collect(feed(tokens(0, 1), tokens(1, 2)), meta())
    assert (info.value.status, info.value.code) == (502, "stream_lost")


async def test_collect_records_ttft_e2e_and_tokens_but_no_inter_token_latency() -> None:
    m = meta()
    await collect(feed(tokens(0, 1, 2), tokens(2, 3, 4, 5, **FINISHED)), m)
    assert count(m, "triptych_time_to_first_token_seconds_count") == 1
    assert count(m, "triptych_request_latency_seconds_count") == 1
    assert count(m, "triptych_inter_token_latency_seconds_count") == 0  # the tokens came together
    assert count(m, "triptych_prompt_tokens_total") == 12
    assert count(m, "triptych_completion_tokens_total") == 5
    outcome = m.outcome
    assert (outcome.finish_reason, outcome.prompt_tokens, outcome.completion_tokens) == ("stop", 12, 5)
    assert outcome.timings == {"decode": 0.25} and outcome.ttft_s is not None


# ---- logprobs ----------------------------------------------------------------------------------


def test_logprobs_are_decoded_with_their_bytes_and_alternatives() -> None:
    shaped = meta().logprobs([logprob(5), TokenLogprob(6, -0.5, [])])
    assert shaped is not None and shaped.content is not None
    first, second = shaped.content
    assert (first.token, first.logprob, first.bytes) == ("!", -0.5, [33])
    assert [(alt.token, alt.logprob, alt.bytes) for alt in first.top_logprobs] == [("é", -0.6, [0xC3, 0xA9])]
    assert (second.token, second.bytes, second.top_logprobs) == ("é", [0xC3, 0xA9], [])


def test_no_logprobs_stays_none_and_an_empty_list_stays_empty() -> None:
    assert meta().logprobs(None) is None
    shaped = meta().logprobs([])
    assert shaped is not None and shaped.content == []


def test_logprobs_use_the_given_decoder() -> None:
    seen: list[int] = []

    def decoder(token_id: int) -> str:
        seen.append(token_id)
        return f"<{token_id}>"

    m = Meta("chatcmpl-2", "tiny", 0, decoder, FrontDoorMetrics())
    shaped = m.logprobs([logprob(1)])
    assert shaped is not None and shaped.content is not None
    assert shaped.content[0].token == "<1>" and shaped.content[0].top_logprobs[0].token == "<2>"
    assert seen == [1, 2]


async def test_collect_shapes_the_logprobs_of_every_event() -> None:
    completion = await collect(
        feed(tokens(0, 1, 2, logprobs=True), tokens(2, 3, logprobs=True, finish="stop")), meta()
    )
    logprobs = as_json(completion)["choices"][0]["logprobs"]
    assert [item["token"] for item in logprobs["content"]] == ["Hel", "lo", " wor"]
    assert [item["logprob"] for item in logprobs["content"]] == [-0.1, -0.2, -0.3]
    assert logprobs["content"][2]["top_logprobs"] == [{"token": "ld", "logprob": -0.4, "bytes": list(b"ld")}]


# ---- sse ---------------------------------------------------------------------------------------


async def test_sse_role_chunk_deltas_finish_and_done() -> None:
    m = meta()
    found = payloads(await frames(feed(tokens(0, 1, 2), tokens(2, 3), tokens(3, 4, 5, **FINISHED)), m))
    assert found[-1] == "[DONE]"
    chunks = found[:-1]
    for chunk in chunks:
        assert (chunk["id"], chunk["model"], chunk["created"]) == ("chatcmpl-1", "tiny", 1700000000)
        assert chunk["object"] == "chat.completion.chunk"
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " wor"},
        {"content": "ld!"},
    ]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    assert [chunk["timings"] for chunk in chunks] == [None, None, None, {"decode": 0.25}]
    assert all(chunk["usage"] is None for chunk in chunks)  # no usage chunk unless asked


async def test_sse_usage_chunk_when_asked() -> None:
    found = payloads(await frames(feed(tokens(0, 1), tokens(1, 2, **FINISHED)), meta(), include_usage=True))
    usage_chunk = found[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert found[-3]["choices"][0]["finish_reason"] == "stop" and found[-1] == "[DONE]"
    assert len(found) == 5  # role, two deltas, usage, [DONE]


async def test_sse_groups_frames_that_are_ready_together() -> None:
    """The role chunk leaves with the first tokens; the last tokens with the usage chunk and [DONE]."""
    writes = await frames(
        feed(tokens(0, 1), tokens(1, 2), tokens(2, 3, **FINISHED)), meta(), include_usage=True
    )
    assert [len(payloads([write])) for write in writes] == [2, 1, 3]
    assert writes[-1].endswith(b"data: [DONE]\n\n")
    single = await frames(feed(tokens(0, 1, finish="stop")), meta())
    assert len(single) == 1 and len(payloads(single)) == 3  # role, the tokens with the finish, [DONE]


async def test_sse_token_ids_and_logprobs_per_chunk() -> None:
    m = meta(return_token_ids=True)
    found = payloads(await frames(feed(tokens(0, 1, 2, logprobs=True), tokens(2, 3, finish="stop")), m))
    role, first, last = (chunk["choices"][0] for chunk in found[:-1])
    assert "token_ids" not in role and role["logprobs"] is None
    assert first["token_ids"] == [1, 2] and last["token_ids"] == [3]
    assert [item["token"] for item in first["logprobs"]["content"]] == ["Hel", "lo"]
    assert last["logprobs"] is None  # this event carried none
    without = payloads(await frames(feed(tokens(0, 1, finish="stop")), meta()))
    assert "token_ids" not in without[1]["choices"][0]


async def test_sse_error_event_is_the_last_frame_before_done() -> None:
    m = meta()
    error = ErrorEvent(
        message="the request did not finish before its deadline",
        code="deadline_exceeded",
        status=504,
        type="timeout_error",
    )
    found = payloads(await frames(feed(tokens(0, 1), error, tokens(1, 2)), m))
    assert found[1]["choices"][0]["delta"] == {"content": "Hel"}
    assert found[2] == {
        "error": {
            "message": "the request did not finish before its deadline",
            "type": "timeout_error",
            "param": None,
            "code": "deadline_exceeded",
        }
    }
    assert found[3:] == ["[DONE]"]  # nothing after the error is read
    assert (m.outcome.status, m.outcome.code, m.outcome.finish_reason) == (504, "deadline_exceeded", None)


async def test_sse_stops_reading_at_the_final_event() -> None:
    read: list[Output] = []
    final = tokens(0, 1, finish="stop")
    found = payloads(await frames(feed(final, tokens(1, 2), read=read), meta()))
    assert read == [final] and len(found) == 3


async def test_sse_records_inter_token_latency_per_token() -> None:
    """One observation between events and one (of 0 s) per further token of an event: 2 + 1 + 2."""
    m = meta()
    await frames(feed(tokens(0, 1, 2, 3), tokens(3, 4), tokens(4, 5, 6, **FINISHED)), m)
    assert count(m, "triptych_inter_token_latency_seconds_count") == 5
    assert count(m, "triptych_time_to_first_token_seconds_count") == 1
    assert count(m, "triptych_request_latency_seconds_count") == 1
    assert (m.outcome.finish_reason, m.outcome.completion_tokens) == ("stop", 5)


# ---- ErrorEvent.error ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            ErrorEvent(message="boom", code="internal"),
            (500, "server_error", "internal", None, "boom"),
        ),
        (
            ErrorEvent(
                message="the image could not be decoded",
                code="undecodable_image",
                status=422,
                type="invalid_request_error",
                param="messages[0].content[1].image_url.url",
            ),
            (
                422,
                "invalid_request_error",
                "undecodable_image",
                "messages[0].content[1].image_url.url",
                "the image could not be decoded",
            ),
        ),
    ],
)
def test_an_error_event_becomes_its_client_error(event: ErrorEvent, expected: tuple[Any, ...]) -> None:
    error = event.error()
    assert (error.status, error.type, error.code, error.param, error.message) == expected
