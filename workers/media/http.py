"""http(s) downloads: one shared client per process, per-modality timeouts and byte caps, guarded redirects.

Each fetch has a connect timeout, a read timeout (the longest wait for more bytes) and a total
deadline covering every redirect hop, so a server that drips bytes cannot hold a worker. The body is
streamed and the download aborted as soon as it passes the modality's byte cap (checked against
Content-Length first, and against the decoded bytes, so gzip cannot smuggle more in). Redirects are
followed by hand: each hop is re-validated (scheme, literal address) and its connection goes through
the SSRF guard again. Proxies from the environment are ignored on purpose: the guard must see the
address actually connected to.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, replace

import httpcore
import httpx

from queues.errors import ClientError
from queues.media.config import MediaConfig
from queues.media.errors import too_large, upstream
from queues.media.ssrf import GuardedNetworkBackend, Resolver, system_resolver
from queues.media.validate import RefValidator
from queues.types import Modality

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Fetched:
    """One completed download (or a 304 answer to a conditional request)."""

    data: bytes
    content_hash: str  # sha256 hex of `data` ("" when not_modified)
    url: str  # final URL, after redirects
    media_type: str | None
    etag: str | None
    last_modified: str | None
    max_age_s: float | None  # freshness the server allows (Cache-Control), None if it says nothing
    not_modified: bool = False


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the connection pool built on the SSRF-guarded network backend."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, max_connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),  # honours SSL_CERT_FILE / SSL_CERT_DIR
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=backend,
        )


class HttpFetcher:
    """Downloads media over http(s) with one lazily created `httpx.AsyncClient`."""

    def __init__(
        self, config: MediaConfig, validator: RefValidator | None = None, resolver: Resolver = system_resolver
    ) -> None:
        self._config = config
        self._validator = validator or RefValidator(config)
        self._resolver = resolver
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            backend = GuardedNetworkBackend(self._validator.policy, self._resolver)
            self._client = httpx.AsyncClient(
                transport=GuardedTransport(backend, self._config.http_max_connections),
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": self._config.user_agent},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, url: str, modality: Modality, validators: dict[str, str] | None = None) -> Fetched:
        """Download `url`; `validators` (If-None-Match / If-Modified-Since) make it conditional."""
        limits = self._config.limits(modality)
        timeout = httpx.Timeout(
            connect=limits.connect_timeout_s,
            read=limits.read_timeout_s,
            write=limits.read_timeout_s,
            pool=limits.total_timeout_s,  # a burst waits for a free connection; the deadline still holds
        )
        headers = {"Accept": f"{modality}/*, */*;q=0.5", **(validators or {})}
        try:
            async with asyncio.timeout(limits.total_timeout_s):
                current = url
                for _ in range(self._config.max_redirects + 1):
                    self._validator.check_http_url(current)
                    async with self.client().stream(
                        "GET", current, headers=headers, timeout=timeout
                    ) as response:
                        location = response.headers.get("location")
                        if response.status_code in _REDIRECTS and location:
                            current = str(response.url.join(location))
                            continue
                        return await self._read(response, modality, limits.max_bytes, bool(validators))
                raise upstream(
                    "too_many_redirects",
                    f"the media URL redirected more than {self._config.max_redirects} times",
                )
        except TimeoutError:
            raise upstream(
                "upstream_timeout",
                f"downloading the {modality} took longer than {limits.total_timeout_s:g} s",
            ) from None
        except httpx.TimeoutException as exc:
            raise upstream("upstream_timeout", f"the media server timed out ({_phase(exc)})") from None
        except httpx.InvalidURL:
            raise upstream("bad_redirect", "the media server redirected to a malformed URL") from None
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise upstream("upstream_error", f"the media download failed: {_describe(exc)}") from None

    @staticmethod
    async def _read(
        response: httpx.Response, modality: Modality, max_bytes: int, conditional: bool
    ) -> Fetched:
        headers = response.headers
        cache_control = headers.get("cache-control", "")
        max_age: float | None = None
        if _NO_CACHE.search(cache_control):
            max_age = 0.0
        elif match := _MAX_AGE.search(cache_control):
            max_age = float(match.group(1))
        answer = Fetched(
            data=b"",
            content_hash="",
            url=str(response.url),
            media_type=headers.get("content-type", "").split(";")[0].strip().lower() or None,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            max_age_s=max_age,
            not_modified=True,
        )
        if response.status_code == 304 and conditional:
            return answer
        if response.status_code != 200:
            raise upstream("upstream_status", f"the media server answered HTTP {response.status_code}")
        declared = headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and "content-encoding" not in headers
            and int(declared) > max_bytes
        ):
            raise _too_large(modality, max_bytes)
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(modality, max_bytes)
            digest.update(chunk)
            chunks.append(chunk)
        return replace(answer, data=b"".join(chunks), content_hash=digest.hexdigest(), not_modified=False)


def _too_large(modality: Modality, max_bytes: int) -> ClientError:
    return too_large("media_too_large", f"the {modality} download is larger than the {max_bytes}-byte limit")


def _phase(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "waiting for data",
        httpx.WriteTimeout: "sending the request",
        httpx.PoolTimeout: "waiting for a free connection",
    }.get(type(exc), "timeout")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect to the media server"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the media server broke the HTTP protocol"
    return type(exc).__name__
