"""Fixtures of the media integration tests: the local media server and loaders allowed to reach it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from queues.media.config import MediaConfig, ModalityLimits
from queues.media.ssrf import Resolver, system_resolver
from tests.integration.media.server import MediaServer
from workers.media.loader import MediaLoader

# Short timeouts: the slow-server tests wait for them, never for a default.
FAST = ModalityLimits(max_bytes=4 << 20, connect_timeout_s=2.0, read_timeout_s=0.5, total_timeout_s=2.0)


@pytest.fixture(scope="session")
def media_server() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


def local_config(**overrides: Any) -> MediaConfig:
    """Defaults, plus the loopback allowlisted and short timeouts, plus `overrides`."""
    values: dict[str, Any] = {"allow_hosts": ("127.0.0.1",), "image": FAST, "video": FAST, "audio": FAST}
    values.update(overrides)
    return MediaConfig(**values)


@pytest.fixture
async def make_loader() -> AsyncIterator[Callable[..., MediaLoader]]:
    """A factory of loaders (a resolver, config overrides as keywords), all closed after the test."""
    loaders: list[MediaLoader] = []

    def make(resolver: Resolver = system_resolver, **overrides: Any) -> MediaLoader:
        loaders.append(MediaLoader(local_config(**overrides), resolver=resolver))
        return loaders[-1]

    yield make
    for loader in loaders:
        await loader.aclose()


@pytest.fixture
async def loader(make_loader: Callable[..., MediaLoader]) -> MediaLoader:
    return make_loader()
