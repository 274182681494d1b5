"""MediaLoader with data URLs and files: decoding, content addressing across sources, offloading."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from queues.media.dataurl import DataUrl
from queues.messages import MediaRef
from queues.types import Modality
from workers.media import loader as loader_module
from workers.media import synth
from workers.media.loader import MediaLoader
from workers.media.types import LoadedAudio, LoadedImage, LoadedVideo


def data_url(media_type: str, payload: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(payload).decode()}"


async def test_data_urls_of_each_modality(loader: MediaLoader) -> None:
    image = await loader.load(
        MediaRef(modality="image", url=data_url("image/webp", synth.image_bytes("WEBP")))
    )
    video = await loader.load(
        MediaRef(modality="video", url=data_url("video/webm", synth.video_bytes("webm")), num_frames=2)
    )
    gif = await loader.load(MediaRef(modality="video", url=data_url("image/gif", synth.video_bytes("gif"))))
    audio = await loader.load(
        MediaRef(modality="audio", url=data_url("audio/mp3", synth.audio_bytes("mp3"))), audio_rate=16000
    )
    assert isinstance(image, LoadedImage) and image.image.size == (64, 48)
    assert isinstance(video, LoadedVideo) and video.frames.shape[0] == 2
    assert isinstance(gif, LoadedVideo) and gif.frames.shape[0] == 4  # 2 s at the default 2 fps
    assert isinstance(audio, LoadedAudio) and audio.sampling_rate == 16000


async def test_one_content_through_three_sources_decodes_once(
    tmp_path: Path, make_loader: Callable[..., MediaLoader]
) -> None:
    payload = synth.image_bytes("JPEG", 120, 90, seed=3)
    (tmp_path / "cat.jpg").write_bytes(payload)
    loader = make_loader(file_roots=(str(tmp_path),))
    from_data = await loader.load(MediaRef(modality="image", url=data_url("image/jpeg", payload)))
    from_file = await loader.load(MediaRef(modality="image", url=(tmp_path / "cat.jpg").as_uri()))
    assert from_file is from_data
    assert loader.stats().decodes == 1 and loader.stats().decoded.hits == 1


async def test_different_video_options_are_cached_separately(loader: MediaLoader) -> None:
    url = data_url("video/mp4", synth.video_bytes("mp4", frames=20))
    four = await loader.load(MediaRef(modality="video", url=url, num_frames=4))
    two = await loader.load(MediaRef(modality="video", url=url, num_frames=2))
    again = await loader.load(MediaRef(modality="video", url=url, num_frames=4))
    assert isinstance(four, LoadedVideo) and isinstance(two, LoadedVideo)
    assert (len(four.frames), len(two.frames)) == (4, 2)
    assert again is four
    assert loader.stats().decodes == 2


async def test_large_data_url_is_decoded_off_the_event_loop(loader: MediaLoader) -> None:
    payload = synth.image_bytes("BMP", 700, 600)  # ~1.2 MB, above the inline limit
    media = await loader.load(MediaRef(modality="image", url=data_url("image/bmp", payload)))
    assert isinstance(media, LoadedImage) and media.image.size == (700, 600)


async def test_audio_rate_is_part_of_the_cache_key(loader: MediaLoader) -> None:
    url = data_url("audio/wav", synth.audio_bytes("wav", seconds=0.5, rate=16000))
    native = await loader.load(MediaRef(modality="audio", url=url))
    low = await loader.load(MediaRef(modality="audio", url=url), audio_rate=8000)
    assert isinstance(native, LoadedAudio) and isinstance(low, LoadedAudio)
    assert (len(native.samples), len(low.samples)) == (8000, 4000)


async def test_a_data_url_sent_again_is_not_decoded_again(
    loader: MediaLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = loader_module.parse_data_url  # type: ignore[attr-defined]  # the name the loader calls

    def counting(url: str, modality: Modality, max_bytes: int) -> DataUrl:
        calls.append(url)
        return real(url, modality, max_bytes)

    monkeypatch.setattr(loader_module, "parse_data_url", counting)
    url = data_url("image/png", synth.image_bytes("PNG", seed=9))
    first = await loader.load(MediaRef(modality="image", url=url))
    second = await loader.load(MediaRef(modality="image", url=url))
    assert second is first
    assert len(calls) == 1
