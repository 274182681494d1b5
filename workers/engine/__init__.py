"""Model runtime: loading, family adapters, encode, prefill, batched decode, sampling.

Public entry points (import them from their modules):

- `model_info.ModelInfo.load(dir)`: the torch-free `queues.checkpoint.Checkpoint` card, the family's
  adapter class and the transformers tokenizer (detokenizing).
- `types.TokenOutput`: what the engine hands the stage code per generated token.
- `loader.load_engine(dir, device, dtype, limits)` → `engine.TransformersEngine`.
- `mock.MockEngine`: the same interface with simulated timings, for infrastructure tests.
- `base.Engine`: the interface both implement; `base.PrefillResult`, `base.EncodedItem`.
- `limits.EngineLimits` / `limits.EngineStats`.
"""
