"""Model runtime: loading, family adapters, encode, prefill, batched decode, sampling.

Public entry points (import them from their modules; this package stays import-light because
queues/messages.py imports `workers.engine.types`, which must not pull in torch):

- `types`: `EncodedMeta`, `DecodeState`, `TokenOutput` — msgspec Structs that cross processes.
- `model_info.ModelInfo.load(dir)`: family, tokenizer, `render_prompt`, generation defaults, EOS ids.
- `loader.load_engine(dir, device, dtype, limits)` → `engine.TransformersEngine`.
- `mock.MockEngine`: the same interface with simulated timings, for infrastructure tests.
- `base.Engine`: the interface both implement; `base.PrefillResult`, `base.EncodedItem`.
- `limits.EngineLimits` / `limits.EngineStats`.
"""
