"""Cheap synchronous checks of a media reference, for the front door and for the loader itself.

`validate_media_ref(ref, config)` refuses, before a job is enqueued, what can be refused without
network or decoding: an unknown or disabled scheme, a malformed URL, a literal private address or
`localhost`, a data URL that is malformed, of the wrong media type or over the byte cap, a file
outside the allowed roots (or missing, or too large), nonsensical video sampling options. It does no
DNS lookup: host names are checked when they are resolved, at fetch time.
"""

from __future__ import annotations

import functools
import math
import re

import httpx

from queues.media.config import MediaConfig
from queues.media.dataurl import check_data_url, parse_data_url
from queues.media.errors import bad_request
from queues.media.files import FileSource
from queues.media.ssrf import HostPolicy, literal_ip
from queues.messages import MediaRef

_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$", re.IGNORECASE)  # httpx gives IDNs as punycode
_DETAILS = frozenset({"auto", "low", "high"})
_MODALITIES = frozenset({"image", "video", "audio"})


def scheme_of(url: str) -> str:
    """The lower-cased scheme of `url` ('' when it has none)."""
    colon = url.find(":", 0, 32)
    head = url[:colon].strip() if colon > 0 else ""
    return head.lower() if head.isascii() and head.isalnum() else ""


class RefValidator:
    """The checks of one configuration (policy and roots parsed once)."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self.policy = HostPolicy.parse(config.allow_hosts)
        self.files = FileSource(config.file_roots)

    def check(self, ref: MediaRef, *, decode_data: bool = True) -> None:
        """Raise ClientError (400/413/415/422) if `ref` is refused by the cheap checks.

        `decode_data=False` skips base64-decoding a data URL (the loader decodes it once, later)."""
        if ref.modality not in _MODALITIES:
            raise bad_request("bad_options", f"unknown media modality {ref.modality!r}")
        self._check_options(ref)
        scheme = scheme_of(ref.url)
        limits = self.config.limits(ref.modality)
        if scheme == "data" and "data" in self.config.schemes:
            (parse_data_url if decode_data else check_data_url)(ref.url, ref.modality, limits.max_bytes)
            return
        if len(ref.url) > self.config.max_url_length:
            raise bad_request(
                "invalid_url", f"the media URL is longer than {self.config.max_url_length} characters"
            )
        if scheme == "file":
            self.files.check(ref.url, limits.max_bytes)
        elif scheme in ("http", "https") and scheme in self.config.schemes:
            self.check_http_url(ref.url)
        else:
            allowed = [*self.config.schemes, *(["file"] if self.files.enabled else [])]
            shown = f"{scheme!r}" if scheme else "no scheme"
            raise bad_request(
                "unsupported_scheme",
                f"media URLs with {shown} are not accepted; use one of {', '.join(allowed)}",
            )

    def check_http_url(self, url: str) -> httpx.URL:
        """Parse an http(s) URL and apply the synchronous address checks (also run on every redirect)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            raise bad_request("invalid_url", "the media URL is malformed") from None
        if parsed.scheme not in ("http", "https") or parsed.scheme not in self.config.schemes:
            raise bad_request("unsupported_scheme", f"{parsed.scheme or 'scheme-less'} URLs are not accepted")
        if not parsed.host:
            raise bad_request("invalid_url", "the media URL has no host")
        if not (_HOST_NAME.match(parsed.host) or literal_ip(parsed.host)):
            raise bad_request("invalid_url", "the media URL's host name is malformed")
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise bad_request("invalid_url", "the media URL's port is out of range")
        self.policy.check_host(parsed.host)
        return parsed

    @staticmethod
    def _check_options(ref: MediaRef) -> None:
        """A bad option names itself as `param`: the URL's path with the option in place of `url`."""
        beside = ref.param.rpartition(".")[0] + "." if ref.param else ""
        if ref.detail is not None and ref.detail not in _DETAILS:
            error = bad_request(
                "bad_options", f"detail must be one of {sorted(_DETAILS)}, not {ref.detail!r}"
            )
            raise error.at(beside + "detail")
        if ref.num_frames is not None and ref.num_frames < 1:
            raise bad_request("bad_options", "num_frames must be at least 1").at(beside + "num_frames")
        if ref.fps is not None and not (math.isfinite(ref.fps) and ref.fps > 0):
            raise bad_request("bad_options", "fps must be a positive number").at(beside + "fps")


@functools.lru_cache(maxsize=8)
def _validator(config: MediaConfig) -> RefValidator:
    return RefValidator(config)


def validate_media_ref(ref: MediaRef, config: MediaConfig) -> None:
    """Refuse an obviously bad reference with ClientError before the request is accepted (no I/O but stat)."""
    _validator(config).check(ref)
