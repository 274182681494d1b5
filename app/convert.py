"""Turn an OpenAI chat request into what the stages need: chat-template messages with one
placeholder per media item, and the media references, validated before anything is enqueued."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.settings import AppSettings
from app.types import (
    UNSUPPORTED_FIELDS,
    AudioPart,
    ChatCompletionRequest,
    ImagePart,
    InputAudioPart,
    TextPart,
    VideoPart,
)
from queues.errors import ClientError
from queues.media.config import MediaConfig
from queues.media.validate import validate_media_ref
from queues.messages import MediaRef

# input_audio formats OpenAI accepts, and the media type of the data URL each becomes
AUDIO_FORMATS = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
}


@dataclass
class Converted:
    messages: list[dict[str, Any]]  # Hugging Face chat-template form
    media: list[MediaRef]  # in placeholder order


def check_fields(body: ChatCompletionRequest) -> None:
    for name in UNSUPPORTED_FIELDS:
        if getattr(body, name) is not None:
            raise ClientError(
                400, f"`{name}` is not supported by this server", param=name, code="unsupported_field"
            )
    if body.n not in (None, 1):
        raise ClientError(
            400,
            "`n` greater than 1 is not supported; send several requests",
            param="n",
            code="unsupported_value",
        )
    if not body.messages:
        raise ClientError(
            400, "`messages` must hold at least one message", param="messages", code="invalid_value"
        )


def convert(
    body: ChatCompletionRequest, settings: AppSettings, media_config: MediaConfig, modalities: frozenset[str]
) -> Converted:
    check_fields(body)
    messages: list[dict[str, Any]] = []
    media: list[MediaRef] = []
    for index, message in enumerate(body.messages):
        where = f"messages[{index}]"
        role = "system" if message.role == "developer" else message.role
        if message.content is None or isinstance(message.content, str):
            messages.append({"role": role, "content": message.content or ""})
            continue
        parts: list[dict[str, Any]] = []
        for n, part in enumerate(message.content):
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
                continue
            param = f"{where}.content[{n}]"
            ref = _media_ref(part, param)
            url_param = ref.param
            if role != "user":
                raise ClientError(
                    400,
                    f"{where}: media is only accepted in user messages",
                    param=param,
                    code="invalid_value",
                )
            if ref.modality not in modalities:
                supported = ", ".join(sorted(modalities)) or "text only"
                raise ClientError(
                    400,
                    f"this model does not accept {ref.modality} input (it takes: {supported})",
                    param=param,
                    code="unsupported_modality",
                )
            try:
                validate_media_ref(ref, media_config)
            except ClientError as exc:  # about the URL, unless it names its field
                raise (exc if exc.param else exc.at(url_param)) from None
            parts.append({"type": ref.modality})
            media.append(ref)
        messages.append({"role": role, "content": parts})
    _check_counts(media, settings)
    return Converted(messages=messages, media=media)


def _media_ref(part: ImagePart | VideoPart | AudioPart | InputAudioPart, where: str) -> MediaRef:
    """The part as a MediaRef; `where` is the part's path (`messages[0].content[1]`)."""
    if isinstance(part, ImagePart):
        image = part.image_url
        return MediaRef(modality="image", url=image.url, detail=image.detail, param=f"{where}.image_url.url")
    if isinstance(part, VideoPart):
        video = part.video_url
        return MediaRef(
            modality="video",
            url=video.url,
            fps=video.fps,
            num_frames=video.num_frames,
            param=f"{where}.video_url.url",
        )
    if isinstance(part, AudioPart):
        return MediaRef(modality="audio", url=part.audio_url.url, param=f"{where}.audio_url.url")
    media_type = AUDIO_FORMATS.get(part.input_audio.format.lower())
    if media_type is None:
        raise ClientError(
            400,
            f"input_audio format {part.input_audio.format!r} is not one of {', '.join(AUDIO_FORMATS)}",
            param=f"{where}.input_audio.format",
            code="unsupported_audio_format",
        )
    url = f"data:{media_type};base64,{part.input_audio.data}"
    return MediaRef(modality="audio", url=url, param=f"{where}.input_audio.data")


def _check_counts(media: list[MediaRef], settings: AppSettings) -> None:
    limits = {
        "image": settings.max_images_per_request,
        "video": settings.max_videos_per_request,
        "audio": settings.max_audios_per_request,
    }
    for modality, limit in limits.items():
        count = sum(1 for ref in media if ref.modality == modality)
        if count > limit:
            raise ClientError(
                400,
                f"the request holds {count} {modality} items; at most {limit} are accepted",
                param="messages",
                code="too_many_media_items",
            )
