"""Audio decoding: formats, mono mix, resampling, duration cap, bad payloads."""

from __future__ import annotations

import numpy as np
import pytest

from queues.errors import ClientError
from workers.media import synth
from workers.media.audio import AudioOptions, decode_audio, resample


def dominant_frequencies(samples: np.ndarray, rate: int, count: int) -> list[float]:
    spectrum = np.abs(np.fft.rfft(samples))
    peaks = np.argsort(spectrum)[-count:]
    return sorted(float(p) * rate / len(samples) for p in peaks)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_formats_decode_to_mono_float32_at_the_requested_rate(fmt: synth.AudioFormat) -> None:
    data = synth.audio_bytes(fmt, seconds=1.0, rate=22050, channels=2, freq=300.0)
    audio = decode_audio(data, "hash", AudioOptions(rate=16000))
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.sampling_rate == 16000
    assert len(audio.samples) == pytest.approx(16000, rel=0.05)  # codec padding allowed
    # Both channels survive the mix to mono: 300 Hz (left) and 600 Hz (right).
    assert dominant_frequencies(audio.samples, 16000, 2) == pytest.approx([300.0, 600.0], abs=2.0)
    assert audio.extra["source_sampling_rate"] == 22050.0
    assert audio.content_hash == "hash"
    assert not audio.samples.flags.writeable


def test_native_rate_is_kept_without_a_target() -> None:
    audio = decode_audio(synth.audio_bytes("wav", seconds=0.5, rate=8000), "h", AudioOptions())
    assert audio.sampling_rate == 8000 and len(audio.samples) == 4000


def test_stereo_mix_is_the_channel_mean() -> None:
    data = synth.audio_bytes("wav", seconds=0.1, rate=8000, channels=2)
    audio = decode_audio(data, "h", AudioOptions())
    expected = synth.tone(0.1, 8000, 2).mean(axis=1)
    assert np.allclose(audio.samples, expected, atol=1e-3)


def test_resample_length_and_pitch() -> None:
    tone = synth.tone(2.0, 44100, 1, freq=1000.0)[:, 0]
    out = resample(tone, 44100, 16000)
    assert len(out) == 32000
    assert dominant_frequencies(out, 16000, 1) == pytest.approx([1000.0], abs=1.0)


@pytest.mark.parametrize(
    ("data", "options", "status"),
    [
        (b"", AudioOptions(), 422),
        (b"plain text, not audio", AudioOptions(), 415),
        (synth.image_bytes("PNG"), AudioOptions(), 415),
        (synth.audio_bytes("wav")[:20], AudioOptions(), 422),  # header cut short
        (synth.audio_bytes("flac")[:60], AudioOptions(), 422),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), AudioOptions(), 422),  # zeroed format block
        (synth.video_bytes("webm", frames=4), AudioOptions(), 422),  # no audio stream
        (synth.audio_bytes("wav", seconds=3.0), AudioOptions(max_duration_s=2.0), 413),
        (synth.audio_bytes("m4a", seconds=3.0), AudioOptions(max_duration_s=2.0), 413),
        (synth.audio_bytes("wav"), AudioOptions(rate=10), 400),
    ],
    ids=[
        "empty",
        "text",
        "png",
        "wav-header",
        "flac-header",
        "wav-zeroed",
        "no-audio",
        "wav-long",
        "m4a-long",
        "bad-rate",
    ],
)
def test_bad_audio(data: bytes, options: AudioOptions, status: int) -> None:
    with pytest.raises(ClientError) as caught:
        decode_audio(data, "h", options)
    assert caught.value.status == status
