"""Message types that cross a process boundary, as msgspec Structs.

Every job message carries the whole original request (prompt token ids, media references,
resolved sampling parameters including the seed, the deadline), so any stage can send a job
back to an earlier stage and a re-run repeats exactly the same tokens.
"""

from __future__ import annotations

import msgspec

from queues.errors import ClientError, UnreadableMessage
from queues.transfer.ref import TensorRef
from queues.types import FinishReason, Modality, Stage


class EncodedMeta(msgspec.Struct, frozen=True, kw_only=True):
    """One encoded media item: what its embedding tensor is and what prefill needs to place it."""

    modality: Modality
    num_tokens: int  # the item's placeholder expands to this many tokens (rows of the embedding)
    content_hash: str = ""
    dtype: str = "float32"  # torch dtype name of the embedding, e.g. "bfloat16"
    shape: list[int] = []  # [num_tokens, hidden_size]
    grid_thw: list[int] = []  # Qwen-VL: image_grid_thw / video_grid_thw row of this item, in patches
    second_per_grid_t: float = 0.0  # Qwen2.5-VL video: seconds per temporal grid step
    audio_feature_length: int = 0  # Qwen2-Audio: mel frames of the clip (before the encoder's 4x reduction)


class DecodeState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything besides the KV tensors that a decode worker needs to continue a sequence.

    KV layout: a list of `num_layers` contiguous tensors, tensor `i` of shape
    `(2, num_kv_heads, prompt_len, head_dim)` in `kv_dtype`: `[0]` the keys, `[1]` the values of
    layer `i`, for every prompt position (media tokens expanded), rotary embedding already applied.
    """

    prompt_len: int  # expanded prompt length: prompt tokens incl. media tokens, = KV length
    next_position: int  # text position of the token after the prompt (= prompt_len)
    rope_delta: int = 0  # Qwen M-RoPE: decode positions are next_position + k + rope_delta on all axes
    first_token: int
    first_logprob: float | None = None
    first_top_logprobs: list[tuple[int, float]] = []
    generator_state: bytes = b""  # torch.Generator state after sampling the first token (empty: greedy)
    generator_device: str = "cpu"
    penalty_prompt_ids: list[int] = []  # distinct expanded prompt ids, set when repetition_penalty != 1
    num_layers: int
    num_kv_heads: int
    head_dim: int
    kv_dtype: str  # torch dtype name, e.g. "float32"


class SamplingParams(msgspec.Struct, frozen=True, kw_only=True):
    """Fully resolved sampling parameters: the front door fills every field (client value, else the
    checkpoint's generation_config.json, else the OpenAI default) and always sets a seed."""

    max_tokens: int
    seed: int
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means off
    min_tokens: int = 0
    stop: list[str] = []
    stop_token_ids: list[int] = []  # in addition to the checkpoint's EOS ids
    ignore_eos: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logprobs: bool = False
    top_logprobs: int = 0
    logit_bias: dict[int, float] = {}  # token id -> added to its logit first, as HF's sequence_bias is


class MediaRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where one media item of a request comes from and how to sample it."""

    modality: Modality
    url: str  # http(s)://, data: (base64) or file://
    detail: str | None = None  # image_url.detail: auto | low | high
    fps: float | None = None  # video: frames per second of video time to sample
    num_frames: int | None = None  # video: exact number of frames (wins over fps)
    param: str = (
        ""  # where the URL is in the request, as an error's `param`: messages[0].content[1].image_url.url
    )


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """The whole original request, carried by every job so any stage can re-run it."""

    id: str
    model: str
    prompt_ids: list[int]  # rendered chat template, one placeholder token per media item
    media: list[MediaRef] = []
    sampling: SamplingParams
    route: list[Stage]  # the stages this request passes through, in order
    deadline: float  # unix seconds; past it the client gets a 504 and the work stops
    created: float  # unix seconds when the front door accepted it
    stream: bool = True  # False: the client wants only the whole answer, so decode sends one event


class Encoded(msgspec.Struct, frozen=True, kw_only=True):
    """What encode produced: one embedding per media item, all in one transfer, in prompt order."""

    tensors: TensorRef
    items: list[EncodedMeta]


class Prefilled(msgspec.Struct, frozen=True, kw_only=True):
    """What prefill produced: the KV cache (one transfer) and the state decode continues from."""

    tensors: TensorRef
    state: DecodeState


# What a re-run from a stage drops: the outputs of that stage and of every later one.
_DROPPED_BY_RERUN: dict[Stage, dict[str, None]] = {
    "encode": {"encoded": None, "prefilled": None},
    "prefill": {"prefilled": None},
}
# The tensors each stage reads (the job field carrying them) and the stage that produces them.
_INPUT: dict[Stage, str] = {"prefill": "encoded", "pd": "encoded", "decode": "prefilled"}
_PRODUCER: dict[str, Stage] = {"encoded": "encode", "prefilled": "prefill"}


class Job(msgspec.Struct, kw_only=True):
    """One stream entry: a request at one stage, with what earlier stages produced for it."""

    request: Request
    stage: Stage
    attempt: int = 0  # retryable failures of this job at this stage so far
    reruns: int = 0  # times this job was sent back to an earlier stage
    last_error: str = ""
    enqueued_at: float = 0.0  # unix seconds when this entry was added (queue-wait metric)
    timings: dict[str, float] = {}  # seconds spent per stage step, accumulated along the route
    encoded: Encoded | None = None
    prefilled: Prefilled | None = None

    def next_stage(self) -> Stage | None:
        route = self.request.route
        index = route.index(self.stage)
        return route[index + 1] if index + 1 < len(route) else None

    def rerun_from(self, stage: Stage) -> Stage:
        """Where to re-run a job whose `stage` output was lost: `stage`, or an earlier stage when
        `stage`'s own input is gone too. A payload is freed once its reader has it, so every input
        already read (all but inline ones, which travel in the message) is gone: a decode that lost
        the KV cache of an image request goes straight back to encode, one re-run, not two."""
        while (field := _INPUT.get(stage)) is not None and _PRODUCER[field] in self.request.route:
            if field == "encoded" and not self.request.media:
                break  # a text-only request has no embeddings to need
            made: Encoded | Prefilled | None = getattr(self, field)
            if made is not None and made.tensors.transport == "inline":
                break
            stage = _PRODUCER[field]
        return stage

    def without_outputs_from(self, stage: Stage) -> Job:
        """A copy to re-run from `stage`: what that stage and later ones produced is dropped."""
        dropped = _DROPPED_BY_RERUN.get(stage, {})
        return msgspec.structs.replace(self, stage=stage, attempt=0, **dropped)


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int


class TopLogprob(msgspec.Struct, frozen=True, array_like=True):
    token_id: int
    logprob: float


class TokenLogprob(msgspec.Struct, frozen=True, array_like=True):
    token_id: int
    logprob: float
    top: list[TopLogprob] = []


class TokenEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="token"):
    """One or more consecutive generated tokens of a request.

    `seq` is the index of the first token, so a reader can drop or trim what it already has (a
    re-run after a crash repeats the same tokens, possibly grouped differently into events)."""

    seq: int
    token_ids: list[int]
    texts: list[str]  # the text delta each token releases (often "" mid-character or mid-stop-string)
    logprobs: list[TokenLogprob] | None = None  # one per token when asked
    finish_reason: FinishReason | None = None  # set on the last event
    usage: Usage | None = None  # set on the last event
    timings: dict[str, float] | None = None  # set on the last event: seconds per stage step

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def end(self) -> int:
        """Index just past this event's last token."""
        return self.seq + len(self.token_ids)

    def after(self, index: int) -> TokenEvent:
        """This event without its tokens before `index` (already delivered)."""
        skip = max(index - self.seq, 0)
        if skip == 0:
            return self
        logprobs = self.logprobs[skip:] if self.logprobs is not None else None
        return msgspec.structs.replace(
            self, seq=index, token_ids=self.token_ids[skip:], texts=self.texts[skip:], logprobs=logprobs
        )


class ErrorEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="error"):
    """The request failed; ends the stream. A `ClientError` on the wire, field for field."""

    message: str
    code: str  # a short stable identifier clients and metrics branch on
    status: int = 500
    type: str = "server_error"
    param: str | None = None

    @classmethod
    def of(cls, error: ClientError) -> ErrorEvent:
        return cls(
            message=error.message, code=error.code, status=error.status, type=error.type, param=error.param
        )

    def error(self) -> ClientError:
        return ClientError(self.status, self.message, code=self.code, param=self.param, type=self.type)


class ProgressEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="progress"):
    """The job now sits at `entry_id` of `stream`; the front door probes it when the channel goes silent."""

    stage: Stage
    stream: str
    entry_id: str


Event = TokenEvent | ErrorEvent | ProgressEvent

MESSAGE_VERSION = 1

_job_encoder = msgspec.msgpack.Encoder()
_job_decoder = msgspec.msgpack.Decoder(Job)
_event_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)


def encode_job(job: Job) -> dict[str, bytes | str]:
    """The stream entry fields of a job: version, request id (readable without decoding), payload."""
    return {"v": str(MESSAGE_VERSION), "rid": job.request.id, "d": _job_encoder.encode(job)}


def decode_job(fields: dict[bytes, bytes]) -> Job:
    version = fields.get(b"v", b"?").decode(errors="replace")
    if version != str(MESSAGE_VERSION):
        raise UnreadableMessage(f"unsupported message version {version!r} (reads {MESSAGE_VERSION})")
    try:
        return _job_decoder.decode(fields[b"d"])
    except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UnreadableMessage(f"undecodable job payload: {exc}") from None


def encode_event(event: Event) -> bytes:
    return _job_encoder.encode(event)


def decode_event(data: bytes) -> Event:
    return _event_decoder.decode(data)
