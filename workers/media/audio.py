"""Audio decoding: WAV, FLAC, OGG, MP3, AAC and M4A/MP4/WebM audio to mono float32 at a requested rate.

libsndfile (soundfile) reads WAV, FLAC, OGG and MP3; PyAV reads everything else and whatever
libsndfile refuses. Channels are averaged to mono; resampling uses FFmpeg's swresample. The duration
cap is enforced while decoding, so a file whose header understates its length is still stopped.
Blocking: callers run it in a thread pool.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
import soundfile as sf

from queues.errors import ClientError
from queues.media.errors import describe, media_error, too_large, undecodable, unsupported
from workers.media.sniff import AUDIO_CONTAINERS, Container, sniff
from workers.media.types import LoadedAudio

_SOUNDFILE_CONTAINERS: frozenset[Container] = frozenset({"wav", "flac", "ogg", "mp3"})
_DEMUXERS: dict[Container, str] = {
    "wav": "wav",
    "flac": "flac",
    "ogg": "ogg",
    "mp3": "mp3",
    "aac": "aac",
    "mp4": "mp4",
    "matroska": "matroska",
}
_MIN_RATE, _MAX_RATE = 1000, 384_000


@dataclass(frozen=True)
class AudioOptions:
    """How to decode one audio item; part of the decoded-media cache key."""

    rate: int | None = None  # resample to this rate; None keeps the source's
    max_duration_s: float = 600.0


def decode_audio(data: bytes, content_hash: str, options: AudioOptions) -> LoadedAudio:
    """Decode an audio payload to mono float32; ClientError 400/413/415/422 when it cannot be."""
    if options.rate is not None and not _MIN_RATE <= options.rate <= _MAX_RATE:
        raise media_error(
            400, f"the audio sampling rate must be in [{_MIN_RATE}, {_MAX_RATE}] Hz", "bad_options"
        )
    if not data:
        raise undecodable("empty_media", "the audio is empty (0 bytes)")
    kind = sniff(data)
    if kind not in AUDIO_CONTAINERS:
        raise unsupported("unsupported_media_type", "the audio is not WAV, FLAC, OGG, MP3, AAC or M4A")
    decoded = None
    if kind in _SOUNDFILE_CONTAINERS:
        try:
            decoded = _read_soundfile(data, options.max_duration_s)
        except sf.SoundFileError:
            decoded = None  # let FFmpeg try: it reads codecs inside WAV/OGG that libsndfile does not
    if decoded is None:
        try:
            decoded = _read_pyav(data, _DEMUXERS[kind], options.max_duration_s)
        except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
            raise undecodable(
                "undecodable_media", f"the audio is corrupt or truncated ({describe(exc)})"
            ) from None
    samples, rate = decoded
    if samples.size == 0:
        raise undecodable("undecodable_media", "the audio contains no samples")
    duration = samples.size / rate
    if options.rate is not None and options.rate != rate:
        samples = resample(samples, rate, options.rate)
    samples.flags.writeable = False
    return LoadedAudio(
        samples=samples,
        sampling_rate=options.rate or rate,
        content_hash=content_hash,
        extra={"duration_s": duration, "source_sampling_rate": float(rate)},
    )


def _read_soundfile(data: bytes, max_duration_s: float) -> tuple[np.ndarray, int]:
    with sf.SoundFile(io.BytesIO(data)) as source:
        rate = int(source.samplerate)
        if rate <= 0:
            raise undecodable("undecodable_media", "the audio declares no sampling rate")
        limit = int(max_duration_s * rate)
        if 0 < source.frames < 2**62 and source.frames > limit:
            raise _too_long(source.frames / rate, max_duration_s)
        block = source.read(frames=limit + 1, dtype="float32", always_2d=True)
    if len(block) > limit:
        raise _too_long(len(block) / rate, max_duration_s)
    return _mono(block.T), rate


def _read_pyav(data: bytes, demuxer: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data), mode="r", format=demuxer) as container:
        if not container.streams.audio:
            raise undecodable("undecodable_media", "the file has no audio stream")
        stream = container.streams.audio[0]
        if container.duration is not None and container.duration / 1e6 > max_duration_s:
            raise _too_long(container.duration / 1e6, max_duration_s)
        to_float = av.AudioResampler(format="fltp")  # keeps layout and rate, gives planar float32
        chunks: list[np.ndarray] = []
        total, rate = 0, 0
        for frame in container.decode(stream):
            rate = rate or frame.sample_rate
            for converted in to_float.resample(frame):
                chunk = _mono(converted.to_ndarray())
                chunks.append(chunk)
                total += chunk.size
            if rate and total > max_duration_s * rate:
                raise _too_long(total / rate, max_duration_s)
    if not chunks:
        return np.zeros(0, np.float32), rate or 1
    return np.concatenate(chunks), rate


def _mono(planar: np.ndarray) -> np.ndarray:
    """Average the channels of a (channels, samples) array into float32 (samples,)."""
    if planar.shape[0] == 1:
        return np.ascontiguousarray(planar[0], dtype=np.float32)
    return np.asarray(planar.mean(axis=0, dtype=np.float32))


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float32 samples with swresample; the result has round(n * target / source) samples."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = source_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    parts = [out.to_ndarray()[0] for out in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def _too_long(duration_s: float, limit_s: float) -> ClientError:
    return too_large("media_too_long", f"the audio is {duration_s:.1f} s long; the limit is {limit_s:g} s")
