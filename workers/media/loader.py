"""`MediaLoader`: the one entry point that turns a `MediaRef` into decoded media for the encoder.

Create one per worker process and share it between requests (it owns the HTTP client, the decode
thread pool and the caches); `await loader.aclose()` on shutdown.

Caching: decoded media is kept in a content-addressed LRU keyed by (sha256 of the source bytes,
modality, decode options), so one image reached through a data URL, a file and two URLs is decoded
once. http(s) URLs additionally map URL -> content hash (+ ETag / Last-Modified): within
`MEDIA_URL_CACHE_TTL_S` (or the server's shorter Cache-Control max-age) a URL hit is served without
touching the network; after it, the URL is revalidated with a conditional request, and a changed body
is detected by its hash. Concurrent loads of one URL download it once, and concurrent loads of one
content decode it once. Cached results are shared: callers must not modify them in place (the numpy
arrays are read-only).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from queues.errors import ClientError
from queues.media.config import MediaConfig
from queues.media.dataurl import parse_data_url
from queues.media.errors import undecodable
from queues.media.ssrf import Resolver, system_resolver
from queues.media.validate import RefValidator, scheme_of
from queues.messages import MediaRef
from queues.types import Modality
from workers.media.audio import AudioOptions, decode_audio
from workers.media.cache import ByteLRU, CacheStats
from workers.media.http import Fetched, HttpFetcher
from workers.media.image import decode_image
from workers.media.singleflight import SingleFlight
from workers.media.types import LoadedImage, LoadedMedia, LoadedVideo
from workers.media.video import VideoOptions, decode_video

log = logging.getLogger(__name__)
T = TypeVar("T")
DecodeOptions = VideoOptions | AudioOptions | None
DecodeKey = tuple[str, Modality, DecodeOptions]
# Data URLs longer than this are base64-decoded and hashed in the thread pool, off the event loop
# (measured: below it, the hop to a thread costs about as much as the work).
_INLINE_LIMIT = 64 << 10


@dataclass(frozen=True)
class UrlEntry:
    content_hash: str
    etag: str | None
    last_modified: str | None
    fresh_until: float  # time.monotonic()

    def validators(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class MediaStats:
    decoded: CacheStats  # hits / misses / evictions of the decoded-media LRU
    url_entries: int  # URLs remembered (http(s) URLs, and data URLs by the hash of their text)
    url_fresh_hits: int  # URL loads served without any request
    url_revalidated: int  # conditional requests answered 304
    fetches: int  # downloads started
    fetches_joined: int  # loads that shared a download already running
    decodes: int  # decodes run
    decodes_joined: int  # loads that shared a decode already running


def sizeof_media(media: LoadedMedia) -> int:
    if isinstance(media, LoadedImage):
        return media.image.width * media.image.height * len(media.image.getbands())
    if isinstance(media, LoadedVideo):
        return int(media.frames.nbytes)
    return int(media.samples.nbytes)


class MediaLoader:
    """Fetch, validate, decode and cache media items; see the module docstring."""

    def __init__(self, config: MediaConfig | None = None, *, resolver: Resolver = system_resolver) -> None:
        self.config = config or MediaConfig.from_env()
        self.validator = RefValidator(self.config)
        self._http = HttpFetcher(self.config, self.validator, resolver)
        self._pool = ThreadPoolExecutor(self.config.thread_count, thread_name_prefix="media-decode")
        self._decoded: ByteLRU[DecodeKey, LoadedMedia] = ByteLRU(self.config.cache_bytes, sizeof_media)
        self._urls: ByteLRU[str, UrlEntry] = ByteLRU(self.config.url_cache_entries, lambda _: 1)
        self._fetches: SingleFlight[tuple[str, Modality, bool], Fetched] = SingleFlight()
        self._decodes: SingleFlight[DecodeKey, LoadedMedia] = SingleFlight()
        self._url_fresh_hits = 0
        self._url_revalidated = 0

    async def __aenter__(self) -> MediaLoader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def load(
        self,
        ref: MediaRef,
        *,
        audio_rate: int | None = None,
        video_fps: float | None = None,
        video_max_frames: int | None = None,
    ) -> LoadedMedia:
        """Load one media item; raises ClientError (and nothing else) when it cannot.

        `audio_rate` is the model's sampling rate (None keeps the source's); `video_fps` and
        `video_max_frames` are the model's sampling defaults, used when the reference does not say
        (`ref.num_frames` wins over `ref.fps`, which wins over `video_fps`); `MEDIA_VIDEO_MAX_FRAMES`
        caps both.
        """
        self.validator.check(ref, decode_data=False)
        options = self._options(ref, audio_rate, video_fps, video_max_frames)
        scheme = scheme_of(ref.url)
        if scheme in ("http", "https"):
            return await self._load_url(ref.url, ref.modality, options)
        if scheme == "data":
            return await self._load_data_url(ref.url, ref.modality, options)
        max_bytes = self.config.limits(ref.modality).max_bytes
        data, digest = await self._in_pool(lambda: _hashed(self.validator.files.read(ref.url, max_bytes)))
        return await self._decode(data, digest, ref.modality, options)

    def stats(self) -> MediaStats:
        return MediaStats(
            decoded=self._decoded.stats(),
            url_entries=len(self._urls),
            url_fresh_hits=self._url_fresh_hits,
            url_revalidated=self._url_revalidated,
            fetches=self._fetches.started,
            fetches_joined=self._fetches.joined,
            decodes=self._decodes.started,
            decodes_joined=self._decodes.joined,
        )

    def _options(
        self, ref: MediaRef, audio_rate: int | None, video_fps: float | None, video_max_frames: int | None
    ) -> DecodeOptions:
        config = self.config
        if ref.modality == "video":
            return VideoOptions(
                num_frames=ref.num_frames,
                fps=ref.fps or video_fps or config.video_fps,
                max_frames=min(video_max_frames or config.video_max_frames, config.video_max_frames),
                max_duration_s=config.video_max_duration_s,
                max_pixels=config.max_pixels,
                max_frame_pixels=config.video_max_frame_pixels,
            )
        if ref.modality == "audio":
            return AudioOptions(rate=audio_rate, max_duration_s=config.audio_max_duration_s)
        return None

    async def _load_url(self, url: str, modality: Modality, options: DecodeOptions) -> LoadedMedia:
        entry = self._urls.get(url)
        cached = self._decoded.peek((entry.content_hash, modality, options)) if entry else None
        if entry is not None and cached is not None and time.monotonic() < entry.fresh_until:
            self._url_fresh_hits += 1
            return self._decoded.get((entry.content_hash, modality, options)) or cached
        validators = entry.validators() if entry is not None and cached is not None else {}
        fetched = await self._fetches.run(
            (url, modality, bool(validators)), lambda: self._http.fetch(url, modality, validators or None)
        )
        ttl = self.config.url_cache_ttl_s
        if fetched.max_age_s is not None:
            ttl = min(ttl, fetched.max_age_s)
        if fetched.not_modified and entry is not None and cached is not None:
            self._url_revalidated += 1
            self._urls.put(url, replace(entry, fresh_until=time.monotonic() + ttl))
            return self._decoded.get((entry.content_hash, modality, options)) or cached
        new_entry = UrlEntry(
            fetched.content_hash, fetched.etag, fetched.last_modified, time.monotonic() + ttl
        )
        self._urls.put(url, new_entry)
        return await self._decode(fetched.data, fetched.content_hash, modality, options)

    async def _load_data_url(self, url: str, modality: Modality, options: DecodeOptions) -> LoadedMedia:
        # A data URL's text never changes meaning, so the hash of the text maps to the content hash
        # for good: a data URL sent again (every turn of a chat resends its images) is not decoded again.
        offload = len(url) > _INLINE_LIMIT
        text_key = await self._maybe_in_pool(
            offload, lambda: "data:" + hashlib.sha256(url.encode()).hexdigest()
        )
        entry = self._urls.get(text_key)
        found = (
            self._decoded.get((entry.content_hash, modality, options), count_miss=False) if entry else None
        )
        if found is not None:
            return found
        max_bytes = self.config.limits(modality).max_bytes
        data, digest = await self._maybe_in_pool(
            offload, lambda: _hashed(parse_data_url(url, modality, max_bytes).data)
        )
        self._urls.put(text_key, UrlEntry(digest, None, None, math.inf))
        return await self._decode(data, digest, modality, options)

    async def _decode(
        self, data: bytes, digest: str, modality: Modality, options: DecodeOptions
    ) -> LoadedMedia:
        key: DecodeKey = (digest, modality, options)
        found = self._decoded.get(key)
        if found is not None:
            return found

        async def decode_and_store() -> LoadedMedia:
            media = await self._in_pool(lambda: _decode_now(data, digest, modality, options, self.config))
            self._decoded.put(key, media)
            return media

        return await self._decodes.run(key, decode_and_store)

    async def _in_pool(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def _maybe_in_pool(self, offload: bool, work: Callable[[], T]) -> T:
        return await self._in_pool(work) if offload else work()


def _hashed(data: bytes) -> tuple[bytes, str]:
    return data, hashlib.sha256(data).hexdigest()


def _decode_now(
    data: bytes, digest: str, modality: Modality, options: DecodeOptions, config: MediaConfig
) -> LoadedMedia:
    try:
        if isinstance(options, VideoOptions):
            return decode_video(data, digest, options)
        if isinstance(options, AudioOptions):
            return decode_audio(data, digest, options)
        return LoadedImage(image=decode_image(data, config.max_pixels), content_hash=digest)
    except ClientError:
        raise
    except Exception as exc:
        # A decoder failing in a way its module does not anticipate: still the client's payload that
        # cannot be decoded, but logged with its traceback, since it may hide a bug.
        log.exception("unexpected error decoding %s %s", modality, digest[:16])
        raise undecodable("undecodable_media", f"the {modality} could not be decoded") from exc
