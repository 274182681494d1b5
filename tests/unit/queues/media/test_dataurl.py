"""Data URL parsing: examples of each rule, and properties checked with hypothesis."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queues.errors import ClientError
from queues.media.dataurl import media_type_matches, parse_data_url
from queues.types import Modality

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def status_of(url: str, modality: Modality = "image", max_bytes: int = 1000) -> int:
    with pytest.raises(ClientError) as caught:
        parse_data_url(url, modality, max_bytes)
    return caught.value.status


def test_plain_base64_round_trip() -> None:
    parsed = parse_data_url("data:image/png;base64," + b64(PNG_MAGIC), "image", 1000)
    assert parsed.data == PNG_MAGIC
    assert parsed.media_type == "image/png"


@pytest.mark.parametrize(
    "url",
    [
        "DATA:IMAGE/PNG;BASE64," + b64(PNG_MAGIC),
        "data:image/png;name=a.png;charset=binary;base64," + b64(PNG_MAGIC),
        "data:image/png;base64," + b64(PNG_MAGIC).rstrip("="),  # no padding
        "data:image/png;base64," + quote(b64(PNG_MAGIC), safe=""),  # percent-encoded
        "data:image/png;base64,\n" + "\r\n ".join(b64(PNG_MAGIC)),  # line breaks and spaces
        "data:image/png;base64," + base64.urlsafe_b64encode(PNG_MAGIC).decode(),
    ],
    ids=["upper-case", "parameters", "unpadded", "percent-encoded", "whitespace", "url-safe"],
)
def test_lenient_forms_decode_to_the_same_bytes(url: str) -> None:
    assert parse_data_url(url, "image", 1000).data == PNG_MAGIC


@pytest.mark.parametrize(
    ("url", "modality", "status"),
    [
        ("image/png;base64," + b64(b"x"), "image", 400),  # no data: prefix
        ("data:image/png;base64" + b64(b"x"), "image", 400),  # no comma
        ("data:image/png" + ";a=b" * 300 + ";base64," + b64(b"x"), "image", 400),  # header too long
        ("data:image/png," + b64(b"x"), "image", 400),  # not base64
        ("data:image/png;base64,@@@@", "image", 400),  # bad alphabet
        ("data:image/png;base64,QUJD=====", "image", 400),  # too much padding
        ("data:image/png;base64,QUJDR", "image", 400),  # impossible length
        ("data:image/png;base64,QU=JD", "image", 400),  # padding in the middle
        ("data:image/png;base64,QUJD\u00e9", "image", 400),  # non-ASCII
        ("data:image png;base64," + b64(b"x"), "image", 400),  # malformed media type
        ("data:;base64," + b64(b"x"), "image", 415),  # no media type
        ("data:text/plain;base64," + b64(b"x"), "image", 415),
        ("data:audio/wav;base64," + b64(b"x"), "image", 415),
        ("data:image/png;base64," + b64(b"x"), "audio", 415),
        ("data:image/png;base64," + b64(b"x" * 1001), "image", 413),
        ("data:image/png;base64," + "A" * 100_000, "image", 413),  # refused before decoding
    ],
)
def test_refusals(url: str, modality: Modality, status: int) -> None:
    assert status_of(url, modality) == status


def test_media_types_per_modality() -> None:
    assert media_type_matches("image/webp", "image")
    assert media_type_matches("image/gif", "video")  # animated GIF
    assert media_type_matches("application/octet-stream", "audio")
    assert not media_type_matches("video/mp4", "audio")
    assert not media_type_matches("imagex/png", "image")


def test_cap_is_inclusive() -> None:
    assert len(parse_data_url("data:audio/wav;base64," + b64(b"y" * 1000), "audio", 1000).data) == 1000


MEDIA_TYPES = st.sampled_from(["image/png", "image/jpeg", "IMAGE/WebP", "application/octet-stream"])
PARAMS = st.lists(st.sampled_from([";charset=utf-8", ";name=x.png", ";foo=bar"]), max_size=2)


@given(data=st.binary(max_size=600), media_type=MEDIA_TYPES, params=PARAMS)
def test_round_trip_property(data: bytes, media_type: str, params: list[str]) -> None:
    parsed = parse_data_url(f"data:{media_type}{''.join(params)};base64,{b64(data)}", "image", 600)
    assert parsed.data == data
    assert parsed.media_type == media_type.lower()


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_whitespace_anywhere_in_the_payload_is_ignored(data: bytes, cuts: list[int]) -> None:
    encoded = b64(data)
    for cut in sorted(set(cuts), reverse=True):
        encoded = encoded[:cut] + "\n " + encoded[cut:]
    assert parse_data_url("data:image/png;base64," + encoded, "image", 300).data == data


@given(data=st.binary(max_size=300))
def test_percent_encoding_and_url_safe_alphabet_are_equivalent(data: bytes) -> None:
    plain = parse_data_url("data:image/png;base64," + b64(data), "image", 300).data
    quoted = parse_data_url("data:image/png;base64," + quote(b64(data), safe=""), "image", 300).data
    urlsafe = parse_data_url(
        "data:image/png;base64," + base64.urlsafe_b64encode(data).decode(), "image", 300
    ).data
    assert plain == quoted == urlsafe == data


@given(size=st.integers(min_value=0, max_value=200), cap=st.integers(min_value=0, max_value=200))
def test_cap_property(size: int, cap: int) -> None:
    url = "data:image/png;base64," + b64(bytes(size))
    if size <= cap:
        assert len(parse_data_url(url, "image", cap).data) == size
    else:
        assert status_of(url, "image", cap) == 413


@settings(max_examples=300)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    for url in (text, "data:" + text, "data:image/png;base64," + text):
        try:
            parsed = parse_data_url(url, "image", 100)
        except ClientError as exc:
            assert exc.status in (400, 413, 415)
        else:
            assert len(parsed.data) <= 100
