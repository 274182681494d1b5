"""MediaLoader over real HTTP: formats, de-duplication, URL cache and revalidation, redirects, the guard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from queues.errors import ClientError
from queues.messages import MediaRef
from tests.integration.media.server import MediaServer
from workers.media import synth
from workers.media.loader import MediaLoader
from workers.media.types import LoadedAudio, LoadedImage, LoadedVideo


def image_ref(url: str) -> MediaRef:
    return MediaRef(modality="image", url=url)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
async def test_images_over_http(
    fmt: synth.ImageFormat, media_server: MediaServer, loader: MediaLoader
) -> None:
    url = media_server.add(
        f"/formats/img.{fmt.lower()}", synth.image_bytes(fmt, 40, 30), content_type="image/x"
    )
    media = await loader.load(image_ref(url))
    assert isinstance(media, LoadedImage)
    assert media.image.mode == "RGB" and media.image.size == (40, 30)


@pytest.mark.parametrize("container", ["mp4", "webm", "mkv", "gif"])
async def test_videos_over_http(
    container: synth.VideoContainer, media_server: MediaServer, loader: MediaLoader
) -> None:
    url = media_server.add(f"/formats/clip.{container}", synth.video_bytes(container, frames=20, fps=10))
    media = await loader.load(MediaRef(modality="video", url=url, num_frames=5))
    assert isinstance(media, LoadedVideo)
    assert media.frames.shape == (5, 48, 64, 3)
    assert media.timestamps[0] == 0.0 and media.timestamps[-1] == pytest.approx(1.9, abs=0.011)


async def test_video_sampling_defaults_come_from_the_model_then_the_reference(
    media_server: MediaServer, loader: MediaLoader
) -> None:
    url = media_server.add("/defaults.mp4", synth.video_bytes("mp4", frames=40, fps=10))  # 4 s
    by_model = await loader.load(MediaRef(modality="video", url=url), video_fps=1.0)
    by_ref = await loader.load(MediaRef(modality="video", url=url, fps=2.0), video_fps=1.0)
    by_count = await loader.load(
        MediaRef(modality="video", url=url, num_frames=3, fps=2.0), video_max_frames=2
    )
    assert (
        isinstance(by_model, LoadedVideo)
        and isinstance(by_ref, LoadedVideo)
        and isinstance(by_count, LoadedVideo)
    )
    assert (len(by_model.frames), len(by_ref.frames), len(by_count.frames)) == (4, 8, 2)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
async def test_audio_over_http(
    fmt: synth.AudioFormat, media_server: MediaServer, loader: MediaLoader
) -> None:
    url = media_server.add(
        f"/formats/sound.{fmt}", synth.audio_bytes(fmt, seconds=0.5, rate=24000, channels=2)
    )
    media = await loader.load(MediaRef(modality="audio", url=url), audio_rate=16000)
    assert isinstance(media, LoadedAudio)
    assert media.sampling_rate == 16000 and media.samples.dtype == np.float32
    assert len(media.samples) == pytest.approx(8000, rel=0.1)


async def test_ten_concurrent_loads_fetch_and_decode_once(
    media_server: MediaServer, loader: MediaLoader
) -> None:
    url = media_server.add("/dedup.jpg", synth.image_bytes("JPEG", 200, 100), delay_s=0.2)
    results = await asyncio.gather(*[loader.load(image_ref(url)) for _ in range(10)])
    assert media_server.hits["/dedup.jpg"] == 1
    assert all(r is results[0] for r in results)
    stats = loader.stats()
    assert (stats.fetches, stats.fetches_joined, stats.decodes) == (1, 9, 1)


async def test_fresh_url_is_served_without_a_request(media_server: MediaServer, loader: MediaLoader) -> None:
    url = media_server.add("/fresh.png", synth.image_bytes("PNG"))
    first = await loader.load(image_ref(url))
    second = await loader.load(image_ref(url))
    assert second is first
    assert media_server.hits["/fresh.png"] == 1
    assert loader.stats().url_fresh_hits == 1
    assert loader.stats().decoded.hits == 1


async def test_stale_url_is_revalidated_with_its_etag(
    media_server: MediaServer, make_loader: Callable[..., MediaLoader]
) -> None:
    loader = make_loader(url_cache_ttl_s=0)
    url = media_server.add("/etag.png", synth.image_bytes("PNG"), etag='"v1"')
    first = await loader.load(image_ref(url))
    second = await loader.load(image_ref(url))
    assert second is first
    assert media_server.hits["/etag.png"] == 2
    stats = loader.stats()
    assert (stats.url_revalidated, stats.decodes) == (1, 1)


async def test_changed_content_at_the_same_url_is_detected_by_its_hash(
    media_server: MediaServer, make_loader: Callable[..., MediaLoader]
) -> None:
    loader = make_loader()
    url = media_server.add(
        "/changes.png", synth.image_bytes("PNG", seed=1), headers={"Cache-Control": "no-cache"}
    )
    first = await loader.load(image_ref(url))
    media_server.add("/changes.png", synth.image_bytes("PNG", seed=2), headers={"Cache-Control": "no-cache"})
    second = await loader.load(image_ref(url))
    assert isinstance(first, LoadedImage) and isinstance(second, LoadedImage)
    assert first.content_hash != second.content_hash
    assert media_server.hits["/changes.png"] == 2  # no-cache: the TTL does not apply


async def test_same_bytes_from_two_urls_decode_once(media_server: MediaServer, loader: MediaLoader) -> None:
    payload = synth.image_bytes("JPEG", 100, 80, seed=5)
    one = await loader.load(image_ref(media_server.add("/twin/a.jpg", payload)))
    two = await loader.load(image_ref(media_server.add("/twin/b.jpg", payload)))
    assert two is one
    assert loader.stats().decodes == 1


async def test_redirects_within_the_limit_are_followed(
    media_server: MediaServer, loader: MediaLoader
) -> None:
    target = media_server.add("/hops/end.png", synth.image_bytes("PNG"))
    media_server.redirect("/hops/2", target, status=307)
    media_server.redirect("/hops/1", "/hops/2", status=301)  # relative Location
    media = await loader.load(image_ref(media_server.url("/hops/1")))
    assert isinstance(media, LoadedImage)
    assert media_server.hits["/hops/end.png"] == 1


async def test_guard_checks_resolved_addresses_on_every_redirect(
    media_server: MediaServer, make_loader: Callable[..., MediaLoader]
) -> None:
    """`good.test` is allowlisted by name; it redirects to `evil.test`, which resolves to loopback too."""
    dns = {"good.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        return dns[host]

    media_server.add("/guard/target.png", synth.image_bytes("PNG"))
    media_server.redirect("/guard/start", f"http://evil.test:{media_server.port}/guard/target.png")
    loader = make_loader(resolver=resolver, allow_hosts=("good.test",))  # no real DNS names exist here
    direct = f"http://good.test:{media_server.port}/guard/target.png"
    assert isinstance(await loader.load(image_ref(direct)), LoadedImage)
    with pytest.raises(ClientError) as caught:
        await loader.load(image_ref(f"http://good.test:{media_server.port}/guard/start"))
    assert (caught.value.status, caught.value.code) == (400, "forbidden_address")
    assert media_server.hits["/guard/start"] == 1
    assert media_server.hits["/guard/target.png"] == 1  # only the direct load reached it


async def test_eviction_is_counted(
    media_server: MediaServer, make_loader: Callable[..., MediaLoader]
) -> None:
    loader = make_loader(cache_bytes=100 * 80 * 3 * 2)  # room for two 100x80 images
    for seed in range(3):
        await loader.load(
            image_ref(media_server.add(f"/evict/{seed}.png", synth.image_bytes("PNG", 100, 80, seed=seed)))
        )
    stats = loader.stats().decoded
    assert (stats.entries, stats.evictions) == (2, 1)


async def test_a_cancelled_load_does_not_break_the_next(
    media_server: MediaServer, loader: MediaLoader
) -> None:
    url = media_server.add("/cancel.png", synth.image_bytes("PNG"), delay_s=5.0)
    task = asyncio.create_task(loader.load(image_ref(url)))
    assert await asyncio.to_thread(media_server.wait_for_hit, "/cancel.png")  # in the server's hands
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    media_server.add("/cancel.png", synth.image_bytes("PNG"))  # no delay now
    assert isinstance(await loader.load(image_ref(url)), LoadedImage)
    assert media_server.hits["/cancel.png"] == 2  # a new download, not the abandoned one
