"""The OpenAI chat-completions vocabulary: request and response bodies as msgspec Structs.

Requests are decoded strictly: an unknown field is refused with a 400 that names it, never
silently ignored. Fields OpenAI defines but this server does not implement are declared, so the
refusal can say "not supported" instead of "unknown".
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# ---- request -----------------------------------------------------------------------------------


class ImageURL(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class VideoURL(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    fps: float | None = None  # extension: frames per second of video time to sample
    num_frames: int | None = None  # extension: exact number of frames


class AudioURL(msgspec.Struct, forbid_unknown_fields=True):
    url: str


class InputAudio(msgspec.Struct, forbid_unknown_fields=True):
    data: str  # base64
    format: str  # wav, mp3, flac, ogg, m4a


class TextPart(msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True):
    text: str


class ImagePart(msgspec.Struct, tag_field="type", tag="image_url", forbid_unknown_fields=True):
    image_url: ImageURL


class VideoPart(msgspec.Struct, tag_field="type", tag="video_url", forbid_unknown_fields=True):
    video_url: VideoURL


class AudioPart(msgspec.Struct, tag_field="type", tag="audio_url", forbid_unknown_fields=True):
    audio_url: AudioURL


class InputAudioPart(msgspec.Struct, tag_field="type", tag="input_audio", forbid_unknown_fields=True):
    input_audio: InputAudio


ContentPart = TextPart | ImagePart | VideoPart | AudioPart | InputAudioPart


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(msgspec.Struct, forbid_unknown_fields=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[Message]
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    n: int | None = None
    user: str | None = None
    # extensions (vLLM / SGLang names)
    top_k: int | None = None
    min_tokens: int | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool | None = None
    return_token_ids: bool | None = None  # add each choice's generated token ids (as vLLM does)
    # defined by OpenAI, not implemented here: refused with a 400 naming the field when set
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logit_bias: dict[str, float] | None = None
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    web_search_options: dict[str, Any] | None = None


UNSUPPORTED_FIELDS = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "audio",
    "modalities",
    "prediction",
    "reasoning_effort",
    "service_tier",
    "store",
    "metadata",
    "web_search_options",
)

# ---- response ----------------------------------------------------------------------------------


class TopLogprobOut(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None


class LogprobOut(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(msgspec.Struct):
    content: list[LogprobOut] | None


class UsageOut(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseMessage(msgspec.Struct):
    role: str
    content: str


class Choice(msgspec.Struct):
    index: int
    message: ResponseMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None
    token_ids: list[int] | msgspec.UnsetType = msgspec.UNSET  # extension: with return_token_ids


class ChatCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut
    object: str = "chat.completion"
    timings: dict[str, float] | None = None  # extension: seconds per stage step


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    token_ids: list[int] | msgspec.UnsetType = msgspec.UNSET  # extension: with return_token_ids


class ChatCompletionChunk(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: str = "chat.completion.chunk"
    usage: UsageOut | None = None
    timings: dict[str, float] | None = None  # extension, on the last chunk


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "triptych"
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(msgspec.Struct):
    error: ErrorBody
