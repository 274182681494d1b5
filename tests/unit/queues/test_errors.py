"""ClientError: one failure shape from where it is found to the HTTP body, intact across processes."""

from __future__ import annotations

import pickle

from queues.errors import ClientError
from queues.messages import ErrorEvent, decode_event, encode_event


def test_the_type_follows_the_status_unless_given() -> None:
    assert ClientError(400, "m", code="c").type == "invalid_request_error"
    assert ClientError(429, "m", code="c").type == "rate_limit_error"
    assert ClientError(503, "m", code="c").type == "service_unavailable"
    assert ClientError(599, "m", code="c").type == "server_error"
    assert ClientError(400, "m", code="c", type="custom").type == "custom"


def test_at_names_the_field_and_keeps_the_rest() -> None:
    error = ClientError(413, "too big", code="media_too_large", retry_after=3)
    moved = error.at("messages[0].content[1].image_url.url")
    assert (moved.status, moved.message, moved.code, moved.type, moved.retry_after) == (
        413,
        "too big",
        "media_too_large",
        "invalid_request_error",
        3,
    )
    assert moved.param == "messages[0].content[1].image_url.url" and error.param is None


def test_survives_pickle_and_the_token_channel() -> None:
    error = ClientError(422, "undecodable", code="bad_media", param="messages", type="t", retry_after=1)
    copy = pickle.loads(pickle.dumps(error))
    assert vars(copy) == vars(error) and str(copy) == "undecodable"
    event = decode_event(encode_event(ErrorEvent.of(error)))
    assert isinstance(event, ErrorEvent)
    back = event.error()
    assert (back.status, back.message, back.code, back.param, back.type) == (
        422,
        "undecodable",
        "bad_media",
        "messages",
        "t",
    )
