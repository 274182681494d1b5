"""`convert`: an OpenAI chat request into chat-template messages (one placeholder part per media
item) and the `MediaRef`s the stages load, with every refusal a `ClientError` whose `param` is the
OpenAI-style path of the offending field (`messages[0].content[1].image_url.url`)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.convert import Converted, convert
from app.settings import AppSettings
from app.types import UNSUPPORTED_FIELDS, ChatCompletionRequest
from queues.errors import ClientError
from queues.media.config import MediaConfig
from queues.messages import MediaRef

SETTINGS = AppSettings(model="/models/tiny")
INVALID = "invalid_request_error"  # the OpenAI error type of every refusal here (400, 413, 415)
MEDIA = MediaConfig.from_env({})
EVERYTHING = frozenset({"image", "video", "audio"})
PAYLOAD = base64.b64encode(b"\x00\x01\x02 not decoded by convert, only base64-checked").decode()
PNG = f"data:image/png;base64,{PAYLOAD}"
MP4 = f"data:video/mp4;base64,{PAYLOAD}"
WAV = f"data:audio/wav;base64,{PAYLOAD}"


# ---- builders ----------------------------------------------------------------------------------


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str = PNG, **options: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **options}}


def video(url: str = MP4, **options: Any) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url, **options}}


def audio(url: str = WAV) -> dict[str, Any]:
    return {"type": "audio_url", "audio_url": {"url": url}}


def input_audio(data: str = PAYLOAD, format: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": format}}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def body(*messages: dict[str, Any], **fields: Any) -> ChatCompletionRequest:
    """A request decoded as the server decodes a JSON body."""
    return msgspec.convert({"messages": list(messages), **fields}, ChatCompletionRequest)


def run(
    request: ChatCompletionRequest,
    *,
    settings: AppSettings = SETTINGS,
    media: MediaConfig = MEDIA,
    modalities: frozenset[str] = EVERYTHING,
) -> Converted:
    return convert(request, settings, media, modalities)


def refused(request: ChatCompletionRequest, **options: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        run(request, **options)
    return info.value


def shape(error: ClientError) -> tuple[int, str, str, str | None]:
    return error.status, error.type, error.code, error.param


# ---- message shapes ----------------------------------------------------------------------------


def test_string_content_stays_a_string_and_developer_becomes_system() -> None:
    converted = run(
        body(
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "hi", "name": "ann"},
            {"role": "assistant", "content": None},
        )
    )
    assert converted.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": ""},
    ]
    assert converted.media == []


def test_parts_keep_their_order_and_media_become_placeholders() -> None:
    converted = run(body(user(text("compare"), image(), text("with"), video(), audio(), input_audio())))
    assert converted.messages == [
        {
            "role": "user",
            "content": [
                text("compare"),
                {"type": "image"},
                text("with"),
                {"type": "video"},
                {"type": "audio"},
                {"type": "audio"},
            ],
        }
    ]
    assert [ref.modality for ref in converted.media] == ["image", "video", "audio", "audio"]


def test_media_refs_carry_the_request_options_and_where_each_url_is() -> None:
    url = "https://example.com/cat.png"  # no DNS lookup: host names are checked at fetch time
    converted = run(
        body(
            {"role": "system", "content": "look"},
            user(
                text("these"),
                image(url, detail="low"),
                video("https://example.com/clip.mp4", fps=1.5),
                video(num_frames=8),
            ),
            {"role": "assistant", "content": "ok"},
            user(audio("https://example.com/a.wav"), image()),
        )
    )
    assert converted.media == [
        MediaRef(modality="image", url=url, detail="low", param="messages[1].content[1].image_url.url"),
        MediaRef(
            modality="video",
            url="https://example.com/clip.mp4",
            fps=1.5,
            param="messages[1].content[2].video_url.url",
        ),
        MediaRef(modality="video", url=MP4, num_frames=8, param="messages[1].content[3].video_url.url"),
        MediaRef(
            modality="audio", url="https://example.com/a.wav", param="messages[3].content[0].audio_url.url"
        ),
        MediaRef(modality="image", url=PNG, param="messages[3].content[1].image_url.url"),
    ]


@pytest.mark.parametrize(
    ("format", "media_type"),
    [
        ("wav", "audio/wav"),
        ("mp3", "audio/mpeg"),
        ("flac", "audio/flac"),
        ("ogg", "audio/ogg"),
        ("m4a", "audio/mp4"),
    ],
)
def test_input_audio_becomes_a_data_url(format: str, media_type: str) -> None:
    [ref] = run(body(user(input_audio(PAYLOAD, format)))).media
    assert ref == MediaRef(
        modality="audio",
        url=f"data:{media_type};base64,{PAYLOAD}",
        param="messages[0].content[0].input_audio.data",
    )


def test_input_audio_format_is_case_insensitive() -> None:
    [ref] = run(body(user(input_audio(PAYLOAD, "WAV")))).media
    assert ref.url.startswith("data:audio/wav;base64,")


def test_file_urls_under_an_allowed_root(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG")
    media = MediaConfig.from_env({"MEDIA_FILE_ROOTS": str(tmp_path)})
    [ref] = run(body(user(image(f"file://{tmp_path}/cat.png"))), media=media).media
    assert ref.url == f"file://{tmp_path}/cat.png"
    error = refused(body(user(text("x"), image(f"file://{tmp_path}/dog.png"))), media=media)
    assert shape(error) == (400, INVALID, "file_not_found", "messages[0].content[1].image_url.url")


# ---- what the request may hold -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "part"),
    [("max_images_per_request", image), ("max_videos_per_request", video), ("max_audios_per_request", audio)],
)
def test_media_counts_are_limited_per_request(setting: str, part: Any) -> None:
    settings = msgspec.structs.replace(SETTINGS, **{setting: 2})
    at_the_limit = body(user(part(), text("and")), user(part()))  # counted across messages
    assert len(run(at_the_limit, settings=settings).media) == 2
    error = refused(body(user(part(), part()), user(part())), settings=settings)
    assert shape(error) == (400, INVALID, "too_many_media_items", "messages")
    assert "3" in error.message and "2" in error.message


def test_each_modality_has_its_own_limit() -> None:
    settings = msgspec.structs.replace(
        SETTINGS, max_images_per_request=1, max_videos_per_request=1, max_audios_per_request=1
    )
    assert len(run(body(user(image(), video(), audio())), settings=settings).media) == 3
    assert refused(body(user(input_audio(), audio())), settings=settings).code == "too_many_media_items"


def test_a_modality_the_model_does_not_take_is_refused() -> None:
    error = refused(body(user(text("hear"), audio())), modalities=frozenset({"image", "video"}))
    assert shape(error) == (400, INVALID, "unsupported_modality", "messages[0].content[1]")
    assert "audio" in error.message and "image, video" in error.message


def test_a_text_only_model_refuses_any_media() -> None:
    error = refused(body(user(image())), modalities=frozenset())
    assert (error.code, error.param) == ("unsupported_modality", "messages[0].content[0]")
    assert "text only" in error.message


def test_text_needs_no_modality() -> None:
    converted = run(body(user(text("hi"))), modalities=frozenset())
    assert converted.messages == [{"role": "user", "content": [text("hi")]}]


@pytest.mark.parametrize("role", ["system", "developer", "assistant"])
def test_media_only_in_user_messages(role: str) -> None:
    error = refused(body(user(text("hi")), {"role": role, "content": [text("see"), image()]}))
    assert shape(error) == (400, INVALID, "invalid_value", "messages[1].content[1]")


# ---- bad media references ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "status", "code", "where"),
    [
        (image("data:image/png;base64,@@not base64@@"), 400, "invalid_base64", "image_url.url"),
        (image("data:image/png,plain"), 400, "invalid_data_url", "image_url.url"),
        (image(WAV), 415, "unsupported_media_type", "image_url.url"),
        (image("ftp://example.com/cat.png"), 400, "unsupported_scheme", "image_url.url"),
        (image("cat.png"), 400, "unsupported_scheme", "image_url.url"),
        (image("file:///etc/passwd"), 400, "unsupported_scheme", "image_url.url"),  # no MEDIA_FILE_ROOTS
        (image("http://127.0.0.1/cat.png"), 400, "forbidden_address", "image_url.url"),
        (image("http://localhost:8000/cat.png"), 400, "forbidden_address", "image_url.url"),
        (image("https://exa mple.com/cat.png"), 400, "invalid_url", "image_url.url"),
        (video(PNG), 415, "unsupported_media_type", "video_url.url"),
        (audio("http://10.0.0.1/a.wav"), 400, "forbidden_address", "audio_url.url"),
        (input_audio("@@@"), 400, "invalid_base64", "input_audio.data"),
        (input_audio(PAYLOAD, "aac"), 400, "unsupported_audio_format", "input_audio.format"),
    ],
)
def test_a_bad_reference_is_refused_with_the_path_of_its_field(
    part: dict[str, Any], status: int, code: str, where: str
) -> None:
    error = refused(body({"role": "system", "content": "hi"}, user(text("look"), part)))
    assert shape(error) == (status, INVALID, code, f"messages[1].content[1].{where}")


def test_a_data_url_over_the_byte_limit_is_413() -> None:
    media = MediaConfig.from_env({"MEDIA_IMAGE_MAX_BYTES": "16"})
    big = "data:image/png;base64," + base64.b64encode(bytes(64)).decode()
    small = "data:image/png;base64," + base64.b64encode(bytes(16)).decode()
    assert len(run(body(user(image(small))), media=media).media) == 1
    error = refused(body(user(image(big))), media=media)
    assert shape(error) == (413, INVALID, "media_too_large", "messages[0].content[0].image_url.url")


def test_a_disabled_scheme_is_refused() -> None:
    media = MediaConfig.from_env({"MEDIA_SCHEMES": "https"})
    assert len(run(body(user(image("https://example.com/a.png"))), media=media).media) == 1
    for url in (PNG, "http://example.com/a.png"):
        assert refused(body(user(image(url))), media=media).code == "unsupported_scheme"


@pytest.mark.parametrize(("option", "value"), [("fps", 0.0), ("fps", -1.0), ("num_frames", 0)])
def test_bad_video_sampling_options_are_refused(option: str, value: Any) -> None:
    error = refused(body(user(video(**{option: value}))))
    assert (error.status, error.code) == (400, "bad_options")
    assert option in error.message


@pytest.mark.parametrize(("option", "value"), [("fps", 0.0), ("num_frames", 0)])
def test_a_bad_video_option_names_the_option(option: str, value: Any) -> None:
    assert refused(body(user(video(**{option: value})))).param == f"messages[0].content[0].video_url.{option}"


# ---- request fields ----------------------------------------------------------------------------

# A value of the declared type for each field OpenAI defines and this server refuses.
UNSUPPORTED_VALUES: dict[str, Any] = {
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "functions": [{"name": "f"}],
    "function_call": "auto",
    "response_format": {"type": "json_object"},
    "audio": {"voice": "alloy", "format": "wav"},
    "modalities": ["text"],
    "prediction": {"type": "content", "content": "x"},
    "reasoning_effort": "low",
    "service_tier": "auto",
    "store": False,
    "metadata": {"k": "v"},
    "web_search_options": {},
}


def test_every_unsupported_field_has_a_value_here() -> None:
    assert set(UNSUPPORTED_VALUES) == set(UNSUPPORTED_FIELDS)


@pytest.mark.parametrize("field", sorted(UNSUPPORTED_VALUES))
def test_unsupported_fields_are_refused_by_name(field: str) -> None:
    error = refused(body(user(text("hi")), **{field: UNSUPPORTED_VALUES[field]}))
    assert shape(error) == (400, INVALID, "unsupported_field", field)
    assert f"`{field}`" in error.message


def test_n_above_one_is_refused() -> None:
    assert len(run(body(user(text("hi")), n=1)).messages) == 1
    assert shape(refused(body(user(text("hi")), n=2))) == (400, INVALID, "unsupported_value", "n")


def test_messages_must_not_be_empty() -> None:
    assert shape(refused(body())) == (400, INVALID, "invalid_value", "messages")
