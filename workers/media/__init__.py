"""Media ingestion: fetch, validate, decode and cache images, video and audio.

The public API, by module (nothing is re-exported here, so the front door can import the validator
without loading the decoders):

- `loader.MediaLoader(config)`: `await load(ref, audio_rate=..., video_fps=..., video_max_frames=...)`
  -> `types.LoadedImage | LoadedVideo | LoadedAudio`; `stats()`; `await aclose()`. One per process.
- `config.MediaConfig.from_env()`: every limit, timeout and allowlist (`MEDIA_*` variables).
- `validate.validate_media_ref(ref, config)`: the front door's cheap synchronous check.
- `queues.errors.ClientError` (made by `queues.media.errors`): the only error raised.
- `encoder_cache.EncoderOutputCache(budget_bytes)`: encoder outputs keyed by content hash + options.
- `synth`: synthetic media for tests, benchmarks and warm-up.
"""
