"""Stage workers (encode, prefill, decode, pd, agg) and what they run: media loading and the engine."""
